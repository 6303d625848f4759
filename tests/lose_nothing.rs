//! Issue 15 against the binary: a run never destroys what it did not write,
//! never leaves a mix of two runs, never eats the machine's memory on a
//! small hostile file, and never exits 0 with a wrong result. Inputs are
//! made here; each test checks what is left on disk as well as the exit.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use facekit::kface::Selection;
use facekit::synth::{self, Config};

mod kface_fixture;
use kface_fixture::{annotation, photo};

fn facekit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args(args)
        .output()
        .expect("facekit runs")
}

/// `facekit ARGS` under a 2 GiB address-space limit.
fn facekit_limited(args: &[&str]) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 2097152 && exec '{}' {}",
            env!("CARGO_BIN_EXE_facekit"),
            quoted.join(" ")
        ))
        .output()
        .expect("sh runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(&o)
    );
    o
}

/// Exit 1 with one line that holds every `says`.
fn refused(o: &Output, says: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for s in says {
        assert!(err.contains(s), "expected {s:?} in: {err}");
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file below `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), fs::read(e.path()).unwrap()))
        .collect()
}

/// A small synthetic K-Face tree: 6 identities, 8 images each.
fn kface_tree(dir: &Path) -> PathBuf {
    let config = Config {
        identities: 6,
        selection: "S1 L1 E1-2 C4-7".parse::<Selection>().unwrap(),
        ..Config::default()
    };
    synth::generate(&config, dir).unwrap();
    dir.to_path_buf()
}

fn convert(src: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["convert", p(src), "--out", p(out), "--holdout", "4", "-q"];
    args.extend(extra);
    facekit(&args)
}

#[test]
fn force_replaces_only_convert_files_and_a_failed_rerun_keeps_the_old_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let src = kface_tree(&tmp.path().join("src"));
    let out = tmp.path().join("out");
    ok(convert(&src, &out, &["--format", "folder"]));
    fs::write(out.join("train/notes.py"), "mine").unwrap();
    fs::write(out.join("eval/README"), "mine too").unwrap();

    // Without --force: refused, nothing touched.
    let before = snapshot(&out);
    refused(&convert(&src, &out, &["--format", "folder"]), &["--force"]);
    assert_eq!(snapshot(&out), before);

    // A forced rerun that fails leaves the previous dataset whole.
    let nothing = convert(&src, &out, &["--force", "--select", "C20"]);
    assert_eq!(nothing.status.code(), Some(1), "{}", stderr(&nothing));
    assert_eq!(snapshot(&out), before);

    // A forced rerun that works replaces convert's files only.
    ok(convert(&src, &out, &["--force", "--seed", "3"]));
    assert_eq!(
        fs::read_to_string(out.join("train/notes.py")).unwrap(),
        "mine"
    );
    assert_eq!(
        fs::read_to_string(out.join("eval/README")).unwrap(),
        "mine too"
    );
    assert!(out.join("train.rec").is_file());
    let left_in_train: Vec<_> = fs::read_dir(out.join("train")).unwrap().collect();
    assert_eq!(
        left_in_train.len(),
        1,
        "only the user's file stays in train/"
    );
}

#[test]
fn a_users_file_under_an_output_name_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let src = kface_tree(&tmp.path().join("src"));
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("dataset.json"), "my notes").unwrap();
    for force in [&[][..], &["--force"][..]] {
        refused(
            &convert(&src, &out, force),
            &["dataset.json", "was not written by facekit convert"],
        );
    }
    assert_eq!(
        fs::read_to_string(out.join("dataset.json")).unwrap(),
        "my notes"
    );
    assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
}

#[test]
fn temporaries_of_a_killed_run_are_removed_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let src = kface_tree(&tmp.path().join("src"));
    let out = tmp.path().join("out");
    fs::create_dir_all(out.join(".facekit-stage-999999/eval")).unwrap();
    fs::write(out.join(".facekit-spool-999999"), vec![0u8; 4096]).unwrap();
    fs::write(out.join(".train.rec.partial-999999"), b"half").unwrap();
    ok(convert(&src, &out, &[]));
    let hidden: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(hidden, [".facekit-convert.json"]);
}

#[test]
fn pairs_from_an_earlier_conversion_are_reported_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let src = kface_tree(&tmp.path().join("src"));
    let out = tmp.path().join("out");
    ok(convert(&src, &out, &[]));
    let pairs = [
        "pairs",
        p(&out),
        "--out",
        p(&out),
        "--positives",
        "4",
        "--negatives",
        "4",
        "-q",
    ];
    ok(facekit(&pairs));
    let bin = out.join("kface.bin");
    ok(facekit(&["inspect", p(&bin), "-q"]));

    ok(convert(&src, &out, &["--force", "--seed", "7"]));
    refused(
        &facekit(&["inspect", p(&bin), "-q"]),
        &["kface.bin", "rerun facekit pairs"],
    );
    refused(
        &facekit(&["inspect", p(&out), "-q"]),
        &["rerun facekit pairs"],
    );
    ok(facekit(&pairs));
    ok(facekit(&["inspect", p(&bin), "-q"]));
}

/// Kills a child left blocked when a test fails.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `what` until it holds, for at most a minute.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(unix)]
#[test]
fn a_second_run_on_a_locked_folder_is_refused_and_the_first_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = kface_tree(&tmp.path().join("src"));
    let data = tmp.path().join("data");
    ok(convert(&src, &data, &[]));
    let pairs = |out: &Path| -> Vec<String> {
        [
            "pairs",
            p(&data),
            "--out",
            p(out),
            "--positives",
            "4",
            "--negatives",
            "4",
            "-q",
        ]
        .map(String::from)
        .to_vec()
    };
    let expected = tmp.path().join("expected");
    ok(facekit(
        &pairs(&expected)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));

    // `pairs` reads the dataset's marker once it holds the lock of --out:
    // made a FIFO, the marker holds the first run there until written.
    let marker = data.join(".facekit-convert.json");
    let marker_text = fs::read(&marker).unwrap();
    fs::remove_file(&marker).unwrap();
    assert!(Command::new("mkfifo")
        .arg(&marker)
        .status()
        .unwrap()
        .success());
    let out = tmp.path().join("out");
    let first = Reaped(
        Command::new(env!("CARGO_BIN_EXE_facekit"))
            .args(pairs(&out))
            .spawn()
            .unwrap(),
    );
    let holder = format!("facekit pairs (pid {})", first.0.id());
    let lock = out.join(".facekit-lock");
    wait_for("the first run's lock", || {
        fs::read_to_string(&lock).is_ok_and(|t| t == holder)
    });

    let second = facekit(&pairs(&out).iter().map(String::as_str).collect::<Vec<_>>());
    refused(&second, &[p(&out), "in use by", &holder]);

    // Let the first run go on: it finishes with its whole result.
    let writer = std::thread::spawn(move || fs::write(&marker, marker_text).unwrap());
    let mut first = first;
    let mut status = None;
    wait_for("the first run to finish", || {
        status = first.0.try_wait().unwrap();
        status.is_some()
    });
    writer.join().unwrap();
    assert!(status.unwrap().success(), "first run: {status:?}");
    for file in ["pairs.txt", "kface.bin"] {
        assert_eq!(
            fs::read(out.join(file)).unwrap(),
            fs::read(expected.join(file)).unwrap(),
            "{file}"
        );
    }
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".facekit-pairs.json", "kface.bin", "pairs.txt"]);
}

#[test]
fn demo_never_replaces_a_users_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    fs::create_dir_all(out.join("kface112")).unwrap();
    fs::write(out.join("kface112/mine.txt"), "mine").unwrap();
    refused(
        &facekit(&["demo", "--out", p(&out), "-q"]),
        &["kface112", "was not written by facekit demo"],
    );
    assert_eq!(
        fs::read_to_string(out.join("kface112/mine.txt")).unwrap(),
        "mine"
    );
}

fn scores(dir: &Path, bad: &str) -> PathBuf {
    let path = dir.join(format!("s-{}.csv", bad.replace(['.', '-', '+'], "_")));
    fs::write(
        &path,
        format!("score,genuine\n0.9,1\n0.8,1\n{bad},1\n0.2,0\n0.1,0\n"),
    )
    .unwrap();
    path
}

/// `DIR/eval`, evaluated from a sound score file.
fn evaluated(dir: &Path) -> PathBuf {
    let eval = dir.join("eval");
    let good = scores(dir, "0.7");
    ok(facekit(&[
        "evaluate",
        "--scores",
        p(&good),
        "--out",
        p(&eval),
        "-q",
    ]));
    eval
}

#[test]
fn unusable_scores_are_refused_and_the_previous_evaluation_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let eval = evaluated(tmp.path());
    let before = snapshot(&eval);
    for bad in ["inf", "4e38", "abc", "NaN"] {
        let file = scores(tmp.path(), bad);
        refused(
            &facekit(&["evaluate", "--scores", p(&file), "--out", p(&eval), "-q"]),
            &[p(&file), "row 2", &format!("{bad:?}")],
        );
        assert_eq!(snapshot(&eval), before, "after {bad}");
    }
}

#[test]
fn search_refuses_a_threshold_that_is_not_a_cosine() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("s.csv");
    fs::write(&file, "score,genuine\n40,1\n33,1\n20,0\n10,0\n5,0\n").unwrap();
    let eval = tmp.path().join("eval");
    ok(facekit(&[
        "evaluate",
        "--scores",
        p(&file),
        "--out",
        p(&eval),
        "--fmr",
        "0.5",
        "-q",
    ]));
    let emb = tmp.path().join("emb");
    fs::create_dir_all(&emb).unwrap();
    facekit::evalinput::npy::write_f32(&emb.join("embeddings.npy"), 2, 2, &[1.0, 0.0, 0.0, 1.0])
        .unwrap();
    fs::write(emb.join("labels.csv"), "identity\na\nb\n").unwrap();
    let threshold = format!("{}:fmr=0.5", p(&eval));
    refused(
        &facekit(&[
            "search",
            "--gallery",
            p(&emb),
            "--probes",
            p(&emb),
            "--threshold",
            &threshold,
        ]),
        &["summary.json", "not cosine"],
    );
}

#[test]
fn report_on_an_emptied_roc_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let eval = evaluated(tmp.path());
    fs::write(eval.join("roc.csv"), "").unwrap();
    let report = tmp.path().join("report");
    refused(
        &facekit(&["report", p(&eval), "--out", p(&report), "-q"]),
        &["roc.csv", "no curve"],
    );
    assert!(!report.join("index.html").exists());
}

#[test]
fn hostile_sizes_are_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let good = scores(tmp.path(), "0.7");
    let eval = tmp.path().join("eval");
    let o = facekit_limited(&[
        "evaluate",
        "--scores",
        p(&good),
        "--out",
        p(&eval),
        "--bootstrap",
        "4000000000",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = facekit_limited(&[
        "convert",
        p(tmp.path()),
        "--out",
        p(&eval),
        "--size",
        "4480",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!eval.exists());
}

#[test]
fn a_memo_bomb_bin_is_refused_within_two_gib() {
    // Each level a list of ten references to the one below: 10^9 leaves
    // if the memo copied, a few hundred bytes on disk.
    let mut bomb = vec![0x80, 2, b']', b'q', 0];
    for level in 1..=9u8 {
        bomb.extend([b']', b'q', level, b'(']);
        for _ in 0..10 {
            bomb.extend([b'h', level - 1]);
        }
        bomb.push(b'e');
    }
    bomb.extend([b']', 0x86, b'.']);
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bomb.bin");
    fs::write(&bin, &bomb).unwrap();
    refused(
        &facekit_limited(&["inspect", p(&bin)]),
        &["bomb.bin", "not encoded image bytes"],
    );
}

#[test]
fn a_truncated_tier_zip_is_recorded_as_lost_and_said_last_even_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        identities: 6,
        selection: "S1 L1 E1-2 C4-7".parse::<Selection>().unwrap(),
        tree: false,
        zip: true,
        ..Config::default()
    };
    synth::generate(&config, tmp.path()).unwrap();
    let zip = walkdir::WalkDir::new(tmp.path())
        .into_iter()
        .map(Result::unwrap)
        .find(|e| e.file_name() == "Middle_Resolution.zip")
        .expect("a tier zip")
        .into_path();
    let bytes = fs::read(&zip).unwrap();
    fs::write(&zip, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = tmp.path().join("out");
    let o = ok(facekit(&["convert", p(&zip), "--out", p(&out), "-q"]));
    let err = stderr(&o);
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("data lost") && last.contains("Middle_Resolution.zip"),
        "{err}"
    );
    let dataset: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("dataset.json")).unwrap()).unwrap();
    let lost = dataset["lost"].as_array().expect("lost");
    assert!(!lost.is_empty());
    assert!(lost[0]["source"]
        .as_str()
        .unwrap()
        .contains("Middle_Resolution.zip"));
}

/// A tier zip holding one identity archive that is `pad` bytes and more
/// once inflated (a stored member of zeros beside four annotated images),
/// deflated into the tier zip, which stays a few megabytes: written as a
/// stream, never held in memory here either.
fn tier_zip_with_a_large_identity(path: &Path, pad: u64) {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let mut tier = ZipWriter::new(fs::File::create(path).unwrap());
    tier.start_file("19062421.zip", deflated).unwrap();
    let mut inner = ZipWriter::new_stream(&mut tier);
    for camera in [4, 5, 6, 7] {
        let stem = format!("S001/L1/E01/C{camera}");
        inner.start_file(format!("{stem}.jpg"), stored).unwrap();
        inner.write_all(&photo(camera)).unwrap();
        inner.start_file(format!("{stem}.txt"), stored).unwrap();
        inner.write_all(annotation(camera, 0).as_bytes()).unwrap();
    }
    inner.start_file("S001/padding.bin", stored).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..pad.div_ceil(zeros.len() as u64) {
        inner.write_all(&zeros).unwrap();
    }
    inner.finish().unwrap();
    tier.finish().unwrap();
}

#[test]
fn a_large_identity_archive_in_a_tier_zip_converts_within_two_gib() {
    // Larger than the address space allowed: an archive read into memory
    // whole cannot fit.
    const PAD: u64 = 9 << 28; // 2.25 GiB
    let tmp = tempfile::tempdir().unwrap();
    let zip = tmp.path().join("Middle_Resolution.zip");
    tier_zip_with_a_large_identity(&zip, PAD);
    assert!(fs::metadata(&zip).unwrap().len() < 64 << 20);
    let out = tmp.path().join("out");
    ok(facekit_limited(&[
        "convert",
        p(&zip),
        "--out",
        p(&out),
        "--jobs",
        "2",
        "-q",
    ]));
    let dataset: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(dataset["counts"]["ok"], 4, "{dataset}");
    assert_eq!(dataset["failures"], 0, "{dataset}");
    assert_eq!(dataset["lost"], serde_json::json!([]), "{dataset}");
    // The inflated archive went with the stage: nothing of it is left.
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".facekit-convert.json",
            "dataset.json",
            "identities.csv",
            "manifest.parquet",
            "preview.png",
            "train.idx",
            "train.rec"
        ]
    );
}

#[test]
fn an_absurd_face_box_is_a_failed_row_not_a_black_crop() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dir = src.join("19062421/S001/L1/E01");
    fs::create_dir_all(&dir).unwrap();
    let lines: Vec<String> = annotation(4, 0).lines().map(str::to_string).collect();
    for (camera, face_box) in [
        (4, lines[7].clone()),
        (7, "-1000000\t-1000000\t2000000\t2000000".into()),
    ] {
        fs::write(dir.join(format!("C{camera}.jpg")), photo(camera)).unwrap();
        let mut text = lines.clone();
        text[7] = face_box;
        fs::write(dir.join(format!("C{camera}.txt")), text.join("\n") + "\n").unwrap();
    }
    let out = tmp.path().join("out");
    ok(facekit(&[
        "convert",
        p(&src),
        "--out",
        p(&out),
        "--landmarks",
        "bbox",
        "--select",
        "C4,7",
        "-q",
    ]));
    let dataset: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(dataset["num_image"], 1, "{dataset}");
    let failures = dataset["first_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{dataset}");
    assert!(failures[0]["source"].as_str().unwrap().ends_with("C7.jpg"));
    assert!(
        failures[0]["reason"]
            .as_str()
            .unwrap()
            .contains("crop would be black"),
        "{dataset}"
    );
}
