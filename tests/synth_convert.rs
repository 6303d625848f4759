//! `facekit convert` on the synthetic K-Face tree, as a user downloads it
//! (Korean-named parent folder, an extra nesting level, stray files and
//! broken files): exactly the planted faults fail, every other image
//! converts, and the stray files are counted, not read as images.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use facekit::synth::{self, Config, FaultKind};

#[test]
fn convert_fails_exactly_the_planted_faults_of_a_synthetic_download() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        identities: 3,
        selection: "S1-2 L1-3,7 E1-3 C1,4,7,10,13".parse().unwrap(),
        seed: 5,
        faults: true,
        korean_parent: true,
        extra_nesting: true,
        ..Config::default()
    };
    let summary = synth::generate(&config, dir.path()).unwrap();
    let src = dir
        .path()
        .join(synth::KOREAN_PARENT)
        .join("Middle_Resolution");
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_facekit"))
        .arg("convert")
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let dataset: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("dataset.json")).unwrap()).unwrap();
    let counts = &dataset["counts"];
    // 3 identities × 2 accessories × 4 lights × 3 expressions × 5 cameras;
    // the default selection leaves out L7.
    assert_eq!(summary.images, 360);
    assert_eq!(counts["images_seen"], 360);
    assert_eq!(counts["skipped"], 90);
    assert_eq!(counts["identities_found"], 3);
    assert_eq!(
        counts["stray_files"].as_u64(),
        Some(summary.files_of(FaultKind::StrayFile).len() as u64)
    );

    // Each planted fault fails its image: the broken JPEG itself, or the
    // image beside the broken annotation. The annotation with landmarks off
    // the image still parses, so the unannotated siblings that borrow it
    // (same identity, camera and expression) fail with it; nothing else fails.
    let planted: BTreeSet<String> = summary
        .faults
        .iter()
        .filter(|f| f.kind != FaultKind::StrayFile)
        .map(|f| {
            f.file
                .trim_end_matches(".txt")
                .trim_end_matches(".jpg")
                .to_string()
                + ".jpg"
        })
        .collect();
    assert_eq!(planted.len(), 5);
    let outside = summary.files_of(FaultKind::LandmarksOutside)[0];
    let borrowed = |file: &str| {
        let (a, b): (Vec<&str>, Vec<&str>) =
            (file.split('/').collect(), outside.split('/').collect());
        a[0] == b[0]
            && a[3] == b[3]
            && a[4].trim_end_matches(".jpg") == b[4].trim_end_matches(".txt")
    };
    let tree_root = summary.tree_root.as_deref().unwrap();
    let failures = dataset["first_failures"].as_array().unwrap();
    let failed: BTreeSet<String> = failures
        .iter()
        .map(|f| relative(tree_root, f["source"].as_str().unwrap()))
        .collect();
    assert!(
        failed.is_superset(&planted),
        "failures: {}",
        dataset["first_failures"]
    );
    for f in failures {
        let file = relative(tree_root, f["source"].as_str().unwrap());
        if !planted.contains(&file) {
            assert!(borrowed(&file), "{file} failed: {}", f["reason"]);
            assert!(
                f["reason"].as_str().unwrap().contains("outside"),
                "{file}: {}",
                f["reason"]
            );
        }
    }
    let failed_count = failed.len() as u64;
    assert_eq!(counts["failed"].as_u64(), Some(failed_count));
    assert_eq!(counts["ok"].as_u64(), Some(360 - 90 - failed_count));
    assert_eq!(dataset["num_image"].as_u64(), Some(360 - 90 - failed_count));
    assert_eq!(dataset["num_classes"], 3);
}

fn relative(root: &Path, source: &str) -> String {
    Path::new(source)
        .strip_prefix(root)
        .unwrap_or(Path::new(source))
        .to_string_lossy()
        .replace('\\', "/")
}
