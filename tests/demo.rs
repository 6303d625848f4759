//! `facekit demo` on a clean directory writes the report and a summary that
//! says its scores are synthetic, prints the three numbers that matter, and
//! runs again over its own output with the same numbers.

use std::path::Path;
use std::process::{Command, Output};

use facekit::evaldir;
use facekit::synthetic_model::NOTE;
use facekit::text::percent;

fn demo(out: &Path, extra: &[&str]) -> String {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_facekit"))
        .arg("demo")
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("facekit runs");
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn demo_writes_the_report_and_prints_the_three_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let printed = demo(&out, &[]);

    let index = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    assert!(
        index.contains("synthetic generator"),
        "the page says the scores are synthetic"
    );
    let summary = evaldir::read_summary(&out.join("eval")).unwrap();
    assert_eq!(summary.synthetic_note.as_deref(), Some(NOTE));
    assert!(std::fs::read_to_string(out.join("eval/summary.md"))
        .unwrap()
        .starts_with(&format!("> {NOTE}")));
    let labels = std::fs::read_to_string(out.join("embeddings/labels.csv")).unwrap();
    assert!(
        labels.starts_with("identity,role,path,"),
        "{}",
        &labels[..80.min(labels.len())]
    );
    assert!(out.join("embeddings/embeddings.npy").is_file());

    let v = summary.verification.as_ref().expect("verification");
    let at_1e3 = v
        .operating_points
        .iter()
        .find(|p| p.fmr_target == 1e-3)
        .expect("FMR 1e-3");
    let open = summary
        .identification
        .as_ref()
        .and_then(|i| i.operating_points.iter().find(|p| p.fpir_target == 1e-2))
        .expect("FPIR 1e-2");
    assert!(open.fpir <= 0.01 && open.fpir > 0.0, "{}", open.fpir);
    for expected in [
        format!("report: {}", out.join("index.html").display()),
        format!("EER: {}", percent(v.eer)),
        format!(
            "FNMR at FMR 1e-3: {} (realised FMR {:.2e}",
            percent(at_1e3.fnmr),
            at_1e3.fmr
        ),
        format!(
            "open-set threshold for FPIR 1%: cosine {:.4} = distance {:.4}",
            open.threshold, open.threshold_l2
        ),
        NOTE.to_string(),
    ] {
        assert!(
            printed.contains(&expected),
            "missing {expected:?} in:\n{printed}"
        );
    }

    // Again over its own output: the source tree is replaced, the numbers
    // are the same.
    let json: serde_json::Value = serde_json::from_str(&demo(&out, &["--json"])).expect("JSON");
    assert_eq!(json["numbers"]["eer"].as_f64(), Some(v.eer));
    assert_eq!(
        json["numbers"]["fpir_1e2"]["threshold"].as_f64(),
        Some(open.threshold)
    );
    assert_eq!(json["synthetic_note"], NOTE);
}

#[test]
fn demo_refuses_a_source_folder_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("source/mine")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args(["demo", "--quiet", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not written by facekit demo"));
    assert!(tmp.path().join("source/mine").is_dir(), "left alone");
}
