//! The bundled sample, converted as the README does: `data/kface-sample`
//! with two held-out identities, so `eval/` has gallery, probes and
//! out-of-DB faces.

use std::ffi::OsString;
use std::path::Path;

/// The arguments of `facekit convert` of the sample into `out`, then `extra`.
pub fn convert_args(out: &Path, extra: &[&str]) -> Vec<OsString> {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/kface-sample");
    let mut args: Vec<OsString> = vec![
        "convert".into(),
        sample.into(),
        "--out".into(),
        out.into(),
        "--holdout".into(),
        "2".into(),
        "-q".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    args
}
