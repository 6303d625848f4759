//! The `.bin` reader against files Python wrote in every style real files
//! come in (scripts/fixtures/verification_bin.py): raw bytes under pickle
//! protocols 2 to 5, numpy arrays from `cv2.imencode` (build_eval_pack),
//! Python 2 `str` (lfw2pack under py2) and Python 2 numpy arrays
//! (build_eval_pack under py2).

use std::fs;
use std::path::PathBuf;

use facekit::shard::verification_bin;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/verification_bin")
}

#[test]
fn every_style_reads_to_the_known_contents() {
    let expected: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let issame: Vec<bool> = expected["issame"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect();
    let images: Vec<(u64, u64)> = expected["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["len"].as_u64().unwrap(), v["crc32"].as_u64().unwrap()))
        .collect();
    let files = expected["files"].as_array().unwrap();
    assert_eq!(files.len(), 10);
    for file in files {
        let name = file.as_str().unwrap();
        let bin = verification_bin::read(&fs::read(fixtures().join(name)).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(bin.issame, issame, "{name}");
        let got: Vec<(u64, u64)> = bin
            .images
            .iter()
            .map(|b| (b.len() as u64, crc32fast::hash(b) as u64))
            .collect();
        assert_eq!(got, images, "{name}");
        assert!(
            bin.images.iter().all(|b| b.starts_with(&[0xff, 0xd8])),
            "{name}: JPEG bytes"
        );
    }
}

#[test]
fn facekit_rewrites_a_python_bin_to_the_same_contents() {
    let original =
        verification_bin::read(&fs::read(fixtures().join("numpy_protocol4.bin")).unwrap()).unwrap();
    let rewritten = verification_bin::to_bytes(&original.images, &original.issame).unwrap();
    assert_eq!(verification_bin::read(&rewritten).unwrap(), original);
    // Python's protocol-3 pickle of the same bytes uses memo opcodes; facekit
    // leaves them out, which is the only difference.
    let python = fs::read(fixtures().join("bytes_protocol3.bin")).unwrap();
    assert_eq!(verification_bin::read(&python).unwrap(), original);
}
