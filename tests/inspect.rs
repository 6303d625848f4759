//! End-to-end tests of `facekit inspect` on shards written by facekit's own
//! RecordIO writer (tests/shard_fixture), sound and spoiled.

mod shard_fixture;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use shard_fixture::{write_shard, Fault, NUM_CLASSES, NUM_IMAGES};

fn inspect(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facekit"))
        .arg("inspect")
        .args(args)
        .arg(path)
        .output()
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[test]
fn a_sound_shard_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    write_shard(dir.path(), Fault::None);

    let plain = inspect(&[], dir.path());
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        plain.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        text.contains("records:          12 (12 index entries)"),
        "{text}"
    );
    assert!(
        text.contains("classes:          4 (labels 0 .. 3)"),
        "{text}"
    );
    assert!(
        text.contains("images per class: min 3, median 3, max 3"),
        "{text}"
    );
    assert!(text.contains("image size:       112x112x3 JPEG"), "{text}");
    assert!(text.contains("problems:         0"), "{text}");

    let json = json_of(&inspect(&["--json"], &dir.path().join("train.rec")));
    assert_eq!(json["records"], NUM_IMAGES);
    assert_eq!(json["classes"], NUM_CLASSES);
    assert_eq!(json["label_min"], 0);
    assert_eq!(json["label_max"], 3);
    assert_eq!(json["problems"], 0);
    assert_eq!(json["image_size"], serde_json::json!([112, 112]));

    let quiet = inspect(&["--quiet"], dir.path());
    assert!(quiet.status.success());
    assert!(quiet.stdout.is_empty());
}

/// Runs inspect on a spoiled shard: exit 1, the problem named on stderr and
/// listed in the JSON with its key.
fn assert_caught(fault: Fault, key: Option<u64>, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_shard(dir.path(), fault);
    let output = inspect(&["--json"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("train.rec") && stderr.contains("problem(s); first:"),
        "{stderr}"
    );
    let json = json_of(&output);
    let problems = json["first_problems"].as_array().unwrap();
    let found = problems
        .iter()
        .find(|p| p["problem"].as_str().unwrap().contains(needle));
    assert_eq!(
        found.unwrap_or_else(|| panic!("{json}"))["key"].as_u64(),
        key,
        "{json}"
    );
}

#[test]
fn spoiled_records_are_named() {
    assert_caught(Fault::LabelOutOfRange, Some(5), "label 7 outside [0, 4)");
    assert_caught(Fault::IdNotKey, Some(6), "id 99 differs from the key");
    assert_caught(
        Fault::BrokenJpeg,
        Some(8),
        "image: corrupt or truncated JPEG",
    );
    assert_caught(Fault::MissingIndexLine, None, "record is not in the index");
    assert_caught(
        Fault::MissingIndexLine,
        Some(10),
        "key missing from the index",
    );
}

#[test]
fn a_truncated_rec_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_shard(dir.path(), Fault::None);
    let rec = dir.path().join("train.rec");
    let bytes = std::fs::read(&rec).unwrap();
    std::fs::write(&rec, &bytes[..bytes.len() - 100]).unwrap();
    let output = inspect(&[], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is cut off"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    std::fs::remove_file(dir.path().join("train.idx")).unwrap();
    let output = inspect(&[], dir.path());
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("train.idx: not found"));

    let output = inspect(&[], &dir.path().join("nothing-here"));
    assert_eq!(output.status.code(), Some(1));
}

/// `facekit inspect DIR | true`: the reader is gone before anything is
/// written; the command ends quietly with success instead of panicking.
#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    write_shard(dir.path(), Fault::None);
    for json in [false, true] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_facekit"))
            .arg("inspect")
            .args(json.then_some("--json"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{:?}: {stderr}",
            out.status
        );
    }
}
