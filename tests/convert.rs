//! End-to-end tests of `facekit convert` on small K-Face trees built here.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use facekit::imaging::decode_jpeg;
use facekit::shard::recordio::{read_index, unpack, Label, RecordReader};
use polars::prelude::*;

mod kface_fixture;
mod require;
use kface_fixture::{annotation, photo};

fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

const IDS: [&str; 4] = ["19062421", "19062431", "19070111", "19071241"];

/// Per identity: S001/L1/E01/C4, C7 (annotated), S001/L1/E01/C1 (annotated
/// profile), S002/L1/E01/C7 (no annotation: sibling), S001/L7/E01/C7
/// (L7: outside the default selection). 5 images, 4 selected.
fn tree(root: &Path) {
    for (i, id) in IDS.iter().enumerate() {
        let base = format!("한국인 안면 이미지/Middle_Resolution/{id}");
        for camera in [1, 4, 7] {
            put(
                root,
                &format!("{base}/S001/L1/E01/C{camera}.jpg"),
                &photo(i as u32 * 10 + camera),
            );
            put(
                root,
                &format!("{base}/S001/L1/E01/C{camera}.txt"),
                annotation(camera, i as i32).as_bytes(),
            );
        }
        put(
            root,
            &format!("{base}/S002/L1/E01/C7.jpg"),
            &photo(i as u32 * 10 + 9),
        );
        put(root, &format!("{base}/S001/L7/E01/C7.jpg"), &photo(0));
    }
    put(root, "한국인 안면 이미지/readme.txt", b"not data");
}

fn facekit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args(args)
        .output()
        .unwrap()
}

fn convert(src: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "convert",
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    facekit(&args)
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn parquet(path: &Path) -> DataFrame {
    ParquetReader::new(fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn strings(df: &DataFrame, column: &str) -> Vec<Option<String>> {
    let values = df.column(column).unwrap().str().unwrap();
    (0..values.len())
        .map(|i| values.get(i).map(str::to_string))
        .collect()
}

/// Every record of DIR/train.rec: key, label, decoded image size.
fn records(dir: &Path) -> Vec<(u64, f32, (u32, u32))> {
    let index = read_index(BufReader::new(
        fs::File::open(dir.join("train.idx")).unwrap(),
    ))
    .unwrap();
    let mut reader = RecordReader::new(fs::File::open(dir.join("train.rec")).unwrap());
    index
        .iter()
        .map(|entry| {
            let payload = reader.read_at(entry.offset).unwrap();
            let record = unpack(&payload).unwrap();
            assert_eq!(record.header.flag, 0);
            assert_eq!(record.header.id, entry.key);
            let Label::Scalar(label) = record.label else {
                panic!("vector label")
            };
            let image = decode_jpeg(record.image, 1 << 20).unwrap();
            (entry.key, label, image.dimensions())
        })
        .collect()
}

#[test]
fn converts_a_tree_into_records_and_tables() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    tree(src.path());
    let output = ok(facekit(&[
        "convert",
        src.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("num_classes = 4"), "{stdout}");
    assert!(stdout.contains("num_image   = 16"), "{stdout}");

    let dataset = json(&out.path().join("dataset.json"));
    assert_eq!(dataset["num_classes"], 4);
    assert_eq!(dataset["num_image"], 16);
    assert_eq!(dataset["image_size"], serde_json::json!([112, 112]));
    assert_eq!(dataset["counts"]["images_seen"], 20);
    assert_eq!(dataset["counts"]["excluded"], 4);
    assert_eq!(dataset["counts"]["stray_files"], 1);
    assert_eq!(dataset["failures"], 0);
    assert_eq!(dataset["arcface_torch"][1], "config.num_classes = 4");
    // Named as on the command line.
    assert_eq!(dataset["format"], "rec");
    assert_eq!(dataset["landmarks"], "sibling");

    let recs = records(out.path());
    assert_eq!(recs.len(), 16);
    let keys: Vec<u64> = recs.iter().map(|r| r.0).collect();
    assert_eq!(keys, (0..16).collect::<Vec<_>>());
    assert!(recs.iter().all(|r| r.2 == (112, 112)));
    let mut per_label = [0; 4];
    for r in &recs {
        per_label[r.1 as usize] += 1;
    }
    assert_eq!(per_label, [4; 4]);

    let manifest = parquet(&out.path().join("manifest.parquet"));
    assert_eq!(manifest.height(), 20);
    let names: Vec<&str> = manifest
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(
        &names[..12],
        [
            "source",
            "identity",
            "label",
            "accessory",
            "light",
            "expression",
            "camera",
            "split",
            "status",
            "reason",
            "record_key",
            "landmark_source"
        ]
    );
    assert_eq!(names[12..].len(), 10);
    let identity = strings(&manifest, "identity");
    let labels = manifest.column("label").unwrap().u32().unwrap();
    let label: Vec<Option<u32>> = (0..labels.len()).map(|i| labels.get(i)).collect();
    let landmark = strings(&manifest, "landmark_source");
    let camera = strings(&manifest, "camera");
    let accessory = strings(&manifest, "accessory");
    let split = strings(&manifest, "split");
    // Sorted by identity, then conditions; labels follow sorted identity.
    assert_eq!(identity[0].as_deref(), Some(IDS[0]));
    assert_eq!(identity[19].as_deref(), Some(IDS[3]));
    assert_eq!(label[0], Some(0));
    assert_eq!(label[19], Some(3));
    for i in 0..20 {
        let expected = match (
            accessory[i].as_deref(),
            camera[i].as_deref(),
            split[i].as_deref(),
        ) {
            (_, _, Some("excluded")) => None,
            (Some("S001"), Some("C1"), _) => Some("bbox"),
            (Some("S001"), _, _) => Some("own"),
            (Some("S002"), _, _) => Some("sibling:S001/L1/E01/C7.txt"),
            other => panic!("{other:?}"),
        };
        assert_eq!(landmark[i].as_deref(), expected, "row {i}");
    }
    let identities = fs::read_to_string(out.path().join("identities.csv")).unwrap();
    assert_eq!(identities.lines().next(), Some("label,identity,images"));
    assert_eq!(identities.lines().nth(1), Some("0,19062421,4"));
    let preview = image::open(out.path().join("preview.png")).unwrap();
    assert_eq!((preview.width(), preview.height()), (8 * 112, 2 * 112));
    // No temporary file is left behind; the record of what the run wrote is.
    let leftovers: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".facekit-convert.json")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_images_become_failed_rows_and_the_run_goes_on() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    tree(src.path());
    let base = src.path().join("한국인 안면 이미지/Middle_Resolution");
    let good = photo(3);
    fs::write(base.join("19062421/S001/L1/E01/C4.jpg"), b"").unwrap();
    fs::write(
        base.join("19062431/S001/L1/E01/C4.jpg"),
        &good[..good.len() / 2],
    )
    .unwrap();
    fs::write(
        base.join("19070111/S001/L1/E01/C4.jpg"),
        b"\x89PNG\r\n\x1a\n",
    )
    .unwrap();
    fs::write(base.join("19071241/S001/L1/E01/C4.txt"), b"1 2\n3 4\n").unwrap();
    // Landmarks beyond the image at any scale.
    fs::write(
        base.join("19071241/S001/L1/E01/C7.txt"),
        annotation(7, -400),
    )
    .unwrap();
    // An annotation in the pixels of the High tier (2.5x): rescaled, and said.
    let high: String = annotation(4, 0)
        .lines()
        .map(|l| {
            let v: Vec<String> = l
                .split('\t')
                .map(|n| (n.parse::<i32>().unwrap() * 5 / 2).to_string())
                .collect();
            v.join("\t") + "\n"
        })
        .collect();
    fs::write(base.join("19070111/S001/L1/E01/C1.txt"), &high).unwrap();
    fs::write(base.join("19062431/S001/L1/E01/C7.txt"), &high).unwrap();
    // A name that is not UTF-8, and a link to nothing.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let name = std::ffi::OsString::from_vec(b"C\xff7.jpg".to_vec());
        fs::write(base.join("19062421/S001/L1/E01").join(name), &good).unwrap();
        let dangling = base.join("19062431/S003/L1/E01/C7.jpg");
        fs::create_dir_all(dangling.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(src.path().join("gone.jpg"), dangling).unwrap();
    }
    let planted = if cfg!(unix) { 8 } else { 6 };
    let output = ok(convert(src.path(), out.path(), &["--json"]));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["failures"], planted, "{summary}");
    // C7 of 19071241 lost its landmarks, and so did its S002 sibling.
    assert_eq!(summary["num_image"], 10);
    let manifest = parquet(&out.path().join("manifest.parquet"));
    let status = strings(&manifest, "status");
    let reason = strings(&manifest, "reason");
    let source = strings(&manifest, "source");
    let failed: Vec<(String, String)> = (0..manifest.height())
        .filter(|&i| status[i].as_deref() == Some("failed"))
        .map(|i| (source[i].clone().unwrap(), reason[i].clone().unwrap()))
        .collect();
    assert_eq!(failed.len(), planted);
    let reason_of = |tail: &str| {
        failed
            .iter()
            .find(|(s, _)| s.ends_with(tail))
            .map(|(_, r)| r.as_str())
            .unwrap()
    };
    assert!(reason_of("19062421/S001/L1/E01/C4.jpg").contains("empty"));
    assert!(reason_of("19062431/S001/L1/E01/C4.jpg").contains("truncated"));
    assert!(reason_of("19070111/S001/L1/E01/C4.jpg").contains("not a JPEG"));
    assert!(reason_of("19071241/S001/L1/E01/C4.jpg")
        .contains("S001/L1/E01/C4.txt: annotation has 2 point lines"));
    assert!(reason_of("19071241/S001/L1/E01/C7.jpg").contains("outside the 346x230 image, at any"));
    assert!(reason_of("19071241/S002/L1/E01/C7.jpg").contains("outside the 346x230 image, at any"));
    let landmark = strings(&manifest, "landmark_source");
    let scaled: Vec<(&str, &str)> = (0..manifest.height())
        .filter(|&i| landmark[i].as_deref().is_some_and(|l| l.contains("scaled")))
        .map(|i| {
            (
                source[i].as_deref().unwrap(),
                landmark[i].as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(scaled.len(), 3, "{scaled:?}");
    assert!(scaled[0].0.ends_with("19062431/S001/L1/E01/C7.jpg"));
    assert_eq!(scaled[0].1, "own scaled 0.4005");
    assert_eq!(scaled[1].1, "sibling:S001/L1/E01/C7.txt scaled 0.4005");
    assert_eq!(scaled[2].1, "bbox scaled 0.4005");
    if cfg!(unix) {
        assert!(reason_of("19062431/S003/L1/E01/C7.jpg").contains("cannot read"));
        let undecodable = failed.iter().find(|(s, _)| s.contains('\u{fffd}')).unwrap();
        assert_eq!(undecodable.1, "file name is not valid UTF-8");
    }
    assert_eq!(records(out.path()).len(), 10);
}

#[test]
fn outputs_do_not_depend_on_jobs() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    ok(convert(
        src.path(),
        one.path(),
        &["--jobs", "1", "--holdout", "2", "--seed", "5"],
    ));
    ok(convert(
        src.path(),
        two.path(),
        &["--jobs", "2", "--holdout", "2", "--seed", "5"],
    ));
    for file in [
        "train.rec",
        "train.idx",
        "manifest.parquet",
        "identities.csv",
        "preview.png",
        "eval/manifest.parquet",
    ] {
        assert_eq!(
            fs::read(one.path().join(file)).unwrap(),
            fs::read(two.path().join(file)).unwrap(),
            "{file}"
        );
    }
    let three = tempfile::tempdir().unwrap();
    ok(convert(
        src.path(),
        three.path(),
        &["--jobs", "2", "--holdout", "2", "--seed", "6"],
    ));
    assert_ne!(
        fs::read(one.path().join("train.rec")).unwrap(),
        fs::read(three.path().join("train.rec")).unwrap()
    );
}

#[test]
fn a_finished_output_is_replaced_only_with_force() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    tree(src.path());
    ok(convert(src.path(), out.path(), &["--holdout", "2"]));
    assert!(out.path().join("eval").is_dir());
    let refused = convert(src.path(), out.path(), &[]);
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("--force") && message.contains("dataset.json"),
        "{message}"
    );
    ok(convert(src.path(), out.path(), &["--force"]));
    // The old evaluation set went with the old run.
    assert!(!out.path().join("eval").exists());
    assert_eq!(json(&out.path().join("dataset.json"))["num_image"], 16);
}

#[test]
fn holdout_writes_the_evaluation_set() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    tree(src.path());
    let list = src.path().join("holdout.txt");
    fs::write(&list, format!("{}\n{}\n19999999\n", IDS[1], IDS[3])).unwrap();
    ok(convert(
        src.path(),
        out.path(),
        &[
            "--holdout",
            list.to_str().unwrap(),
            "--out-of-db-share",
            "0.5",
        ],
    ));
    let dataset = json(&out.path().join("dataset.json"));
    assert_eq!(dataset["num_classes"], 2);
    assert_eq!(dataset["num_image"], 8);
    assert_eq!(
        dataset["holdout"]["missing"],
        serde_json::json!(["19999999"])
    );
    let out_of_db = dataset["holdout"]["out_of_db"].as_array().unwrap().clone();
    assert_eq!(out_of_db.len(), 1);
    let identities = fs::read_to_string(out.path().join("identities.csv")).unwrap();
    assert!(!identities.contains(IDS[1]) && !identities.contains(IDS[3]));

    let eval = parquet(&out.path().join("eval/manifest.parquet"));
    let names: Vec<&str> = eval.get_column_names().iter().map(|n| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "path",
            "identity",
            "role",
            "in_db",
            "accessory",
            "light",
            "expression",
            "camera"
        ]
    );
    assert_eq!(eval.height(), 8);
    let path = strings(&eval, "path");
    let identity = strings(&eval, "identity");
    let role = strings(&eval, "role");
    let in_db = eval.column("in_db").unwrap().bool().unwrap();
    let in_db: Vec<Option<bool>> = (0..in_db.len()).map(|i| in_db.get(i)).collect();
    for i in 0..8 {
        let (p, id) = (path[i].clone().unwrap(), identity[i].clone().unwrap());
        assert!(p.starts_with(&format!("{id}/")), "{p}");
        let decoded = decode_jpeg(
            &fs::read(out.path().join("eval").join(&p)).unwrap(),
            1 << 20,
        )
        .unwrap();
        assert_eq!(decoded.dimensions(), (112, 112));
        let outside = out_of_db.iter().any(|o| o.as_str() == Some(id.as_str()));
        assert_eq!(in_db[i], Some(!outside));
        let expected = if !outside && p.ends_with("/S001/L1/E01/C7.jpg") {
            "gallery"
        } else {
            "probe"
        };
        assert_eq!(role[i].as_deref(), Some(expected), "{p}");
    }
    assert_eq!(
        role.iter()
            .filter(|r| r.as_deref() == Some("gallery"))
            .count(),
        1
    );
    assert_eq!(strings(&eval, "accessory")[0].as_deref(), Some("S001"));
    assert!(strings(&eval, "camera")
        .iter()
        .all(|c| c.as_deref().is_some_and(|c| c.starts_with('C'))));
}

#[test]
fn landmark_policies() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let out = tempfile::tempdir().unwrap();
    ok(convert(
        src.path(),
        out.path(),
        &["--landmarks", "annotation"],
    ));
    let dataset = json(&out.path().join("dataset.json"));
    assert_eq!(dataset["num_image"], 12);
    assert_eq!(dataset["counts"]["skipped"], 8);
    assert_eq!(dataset["landmarks"], "annotation");
    let bbox = tempfile::tempdir().unwrap();
    ok(convert(
        src.path(),
        bbox.path(),
        &["--landmarks", "bbox", "--select", "C4,7"],
    ));
    let manifest = parquet(&bbox.path().join("manifest.parquet"));
    let sources: Vec<Option<String>> = strings(&manifest, "landmark_source");
    assert!(
        sources
            .iter()
            .flatten()
            .all(|s| s == "bbox" || s == "bbox:sibling:S001/L1/E01/C7.txt"),
        "{sources:?}"
    );
    let dataset = json(&bbox.path().join("dataset.json"));
    assert_eq!(dataset["num_image"], 16);
    assert_eq!(dataset["landmarks"], "bbox");
}

#[test]
fn folder_format_and_other_sizes() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let out = tempfile::tempdir().unwrap();
    ok(convert(
        src.path(),
        out.path(),
        &[
            "--format",
            "folder",
            "--size",
            "224",
            "--select",
            "S1 L1 E1 C7",
        ],
    ));
    let mut classes: Vec<String> = fs::read_dir(out.path().join("train"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    classes.sort();
    assert_eq!(
        classes,
        ["0_19062421", "1_19062431", "2_19070111", "3_19071241"]
    );
    let crop = out.path().join("train/0_19062421/S001_L1_E01_C7.jpg");
    assert_eq!(
        decode_jpeg(&fs::read(crop).unwrap(), 1 << 20)
            .unwrap()
            .dimensions(),
        (224, 224)
    );
    assert!(!out.path().join("train.rec").exists());
    assert_eq!(json(&out.path().join("dataset.json"))["format"], "folder");
}

#[test]
fn user_errors_exit_1_with_a_message() {
    let empty = tempfile::tempdir().unwrap();
    fs::write(empty.path().join("notes.txt"), b"").unwrap();
    let out = empty.path().join("out");
    let output = convert(empty.path(), &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("no K-Face images found")
            && message.contains(empty.path().to_str().unwrap()),
        "{message}"
    );
    assert!(message.contains("<ID>/S00a/Lb/E0c/Cn.jpg"), "{message}");
    assert!(!out.exists());

    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let output = convert(src.path(), &out, &["--select", "S1 L7 X2"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"X2\""));
    let output = convert(src.path(), &out, &["--select", "S3"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is in the selection"));
    let broken = tempfile::tempdir().unwrap();
    put(broken.path(), "19062421/S001/L1/E01/C7.jpg", b"");
    let output = convert(broken.path(), &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("no image could be converted (1 failed)"),
        "{message}"
    );
    let missing: PathBuf = src.path().join("nope");
    let output = convert(&missing, &out, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no such file"));
}

/// Reads train.rec with mxnet the way arcface_torch's MXFaceDataset does.
#[test]
fn mxnet_reads_the_records() {
    let Ok(python) = std::env::var("FACEKIT_PYTHON_INTEROP") else {
        require::skip(
            "interop",
            "mxnet_reads_the_records",
            "FACEKIT_PYTHON_INTEROP is not set (the interop venv's python)",
        );
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    tree(src.path());
    ok(convert(src.path(), out.path(), &[]));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/interop/check_rec.py");
    let output = Command::new(python)
        .arg(script)
        .arg(out.path())
        .arg("--records")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["layout"], "flat", "{report}");
    assert_eq!(report["num_samples"], 16, "{report}");
    assert_eq!(
        report["labels"],
        serde_json::json!({"min": 0, "max": 3, "distinct": 4})
    );
    assert_eq!(report["shapes"], serde_json::json!({"112x112x3": 16}));
    assert_eq!(report["flags"], serde_json::json!({"0": 16}));
    assert_eq!(report["ids_equal_keys"], true);
    let ours = records(out.path());
    let theirs = report["records"].as_array().unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (record, (key, label, _)) in theirs.iter().zip(&ours) {
        assert_eq!(
            (record["key"].as_u64(), record["label"].as_u64()),
            (Some(*key), Some(*label as u64))
        );
    }
}

#[test]
fn flat_names_and_duplicate_identities_across_sources() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    tree(first.path());
    // The flat naming of the K-Face README, one identity new, one already seen.
    for (id, camera) in [("19080101", 7), ("19080101", 4), (IDS[0], 7)] {
        let stem = format!("{id}_S001_L1_E01_C{camera}");
        put(second.path(), &format!("flat/{stem}.jpg"), &photo(camera));
        put(
            second.path(),
            &format!("flat/{stem}.txt"),
            annotation(camera, 0).as_bytes(),
        );
    }
    let out = tempfile::tempdir().unwrap();
    let output = facekit(&[
        "convert",
        first.path().to_str().unwrap(),
        second.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "--json",
    ]);
    let output = ok(output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("identity {} in", IDS[0])),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["num_classes"], 5);
    assert_eq!(summary["num_image"], 18);
    assert_eq!(summary["counts"]["duplicate_identities"], 1);
    let manifest = parquet(&out.path().join("manifest.parquet"));
    let reason = strings(&manifest, "reason");
    let duplicates = reason
        .iter()
        .flatten()
        .filter(|r| r.starts_with("duplicate identity"))
        .count();
    assert_eq!(duplicates, 1);
    assert_eq!(manifest.height(), 23);
}
