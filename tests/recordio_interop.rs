//! Reads a shard written by facekit with the real `mxnet.recordio`, the way
//! arcface_torch's MXFaceDataset does (scripts/interop/check_rec.py).
//! Needs FACEKIT_PYTHON_INTEROP (a python with mxnet 1.9.1, numpy < 1.24);
//! skipped with a note when it is unset.

mod require;
mod shard_fixture;

use std::path::Path;
use std::process::Command;

use facekit::imaging::{decode_jpeg, DEFAULT_MAX_PIXELS};
use serde_json::Value;
use shard_fixture::{jpeg_of, label_of, write_shard, Fault, NUM_IMAGES};

#[test]
fn mxnet_reads_facekit_rec_like_arcface_torch() {
    let Ok(python) = std::env::var("FACEKIT_PYTHON_INTEROP") else {
        require::skip(
            "interop",
            "mxnet_reads_facekit_rec_like_arcface_torch",
            "FACEKIT_PYTHON_INTEROP is not set (a python with mxnet 1.9.1)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_shard(dir.path(), Fault::None);
    // Key 3's record really is split around escaped magic numbers (cflag 1 first chunk).
    let rec = std::fs::read(dir.path().join("train.rec")).unwrap();
    let idx = std::fs::read_to_string(dir.path().join("train.idx")).unwrap();
    let offset: usize = idx
        .lines()
        .nth(3)
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        u32::from_le_bytes(rec[offset + 4..offset + 8].try_into().unwrap()) >> 29,
        1
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/interop/check_rec.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .arg("--records")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(summary["layout"], "flat");
    assert_eq!(summary["header0_flag"], 0);
    assert_eq!(summary["num_samples"], NUM_IMAGES);
    assert_eq!(
        summary["shapes"],
        serde_json::json!({"112x112x3": NUM_IMAGES})
    );
    assert_eq!(summary["dtypes"], serde_json::json!({"uint8": NUM_IMAGES}));
    assert_eq!(summary["flags"], serde_json::json!({"0": NUM_IMAGES}));
    assert_eq!(summary["ids_equal_keys"], true);
    let records = summary["records"].as_array().unwrap();
    for (key, record) in (0..NUM_IMAGES).zip(records) {
        assert_eq!(record["key"], key);
        assert_eq!(record["label"], label_of(key), "key {key}");
        // Same pixels, in RGB order, as facekit decodes (decoders may differ by a grey level).
        let ours = decode_jpeg(&jpeg_of(key), DEFAULT_MAX_PIXELS).unwrap();
        for c in 0..3 {
            let mean = ours.pixels().map(|p| f64::from(p[c])).sum::<f64>() / (112.0 * 112.0);
            let theirs = record["mean_rgb"][c].as_f64().unwrap();
            assert!(
                (mean - theirs).abs() < 1.0,
                "key {key} channel {c}: ours {mean}, mxnet {theirs}"
            );
        }
    }
}
