//! `facekit embed` against Python onnxruntime: the committed tiny models of
//! `scripts/models/make_models.py` and the reference rows
//! `scripts/fixtures/embed_reference.py` computed (PIL decode, RGB,
//! (x-127.5)/127.5, flip as emb(x)+emb(mirror x), L2). Needs the onnxruntime
//! library: `ORT_DYLIB_PATH` (what `.ci/run` sets), else the test skips
//! (and fails where `FACEKIT_REQUIRE` declares `onnxruntime`).

mod require;
mod same_dir;
mod sample;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use facekit::evalinput::{labels, npy};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embed")
}

fn facekit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_facekit"))
}

/// The onnxruntime library, or a skip line (a failure where required).
fn runtime(test: &str) -> Option<PathBuf> {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ => {
            require::skip(
                "onnxruntime",
                test,
                "ORT_DYLIB_PATH does not name the onnxruntime library",
            );
            None
        }
    }
}

fn embed_command(model: &str, inputs: &[&Path], out: &Path, extra: &[&str]) -> Command {
    let mut cmd = facekit();
    cmd.arg("embed").arg("--model").arg(fixtures().join(model));
    cmd.args(inputs).arg("--out").arg(out).args(extra);
    cmd
}

fn embed(model: &str, inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    embed_command(model, inputs, out, extra).output().unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One-line error, exit 1, naming `needle`.
fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

/// Rows of an EMB_DIR keyed by their label path.
fn rows_by_path(dir: &Path) -> HashMap<String, Vec<f32>> {
    let m = npy::read_matrix(&dir.join("embeddings.npy")).unwrap();
    let l = labels::read_labels(&dir.join("labels.parquet")).unwrap();
    let csv = labels::read_labels(&dir.join("labels.csv")).unwrap();
    assert_eq!(l, csv, "labels.csv and labels.parquet hold the same table");
    assert_eq!(m.rows, l.len(), "one label row per embedding");
    let paths = l.path.unwrap();
    paths
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, m.row(i).to_vec()))
        .collect()
}

fn reference(model: &str, flip: bool, folder: &str) -> HashMap<String, Vec<f32>> {
    let suffix = if flip { "_flip" } else { "" };
    let m = npy::read_matrix(&fixtures().join(format!("ref_{model}{suffix}.npy"))).unwrap();
    let paths =
        std::fs::read_to_string(fixtures().join(format!("ref_paths_{folder}.txt"))).unwrap();
    paths
        .lines()
        .enumerate()
        .map(|(i, p)| (p.to_string(), m.row(i).to_vec()))
        .collect()
}

/// PNG rows (lossless: the pipeline alone decides) within 1e-4 of Python's;
/// JPEG rows at cosine >= 0.9999, because PIL (libjpeg-turbo) and facekit
/// (zune-jpeg) round the inverse DCT differently by a grey level here and
/// there (measured: up to 6e-4 per component on these crops).
fn assert_close(got: &HashMap<String, Vec<f32>>, want: &HashMap<String, Vec<f32>>) {
    assert_eq!(got.len(), want.len(), "rows");
    for (path, row) in want {
        let mine = got
            .get(path)
            .unwrap_or_else(|| panic!("{path} not embedded"));
        assert_eq!(mine.len(), row.len(), "{path}: width");
        if path.ends_with(".png") {
            let worst = mine
                .iter()
                .zip(row)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-4, "{path}: max |diff| {worst}");
        } else {
            let cos: f64 = mine
                .iter()
                .zip(row)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            assert!(cos >= 0.9999, "{path}: cosine {cos}");
        }
    }
}

#[test]
fn rows_equal_python_onnxruntime_for_every_export_variant() {
    let Some(_) = runtime("rows_equal_python_onnxruntime_for_every_export_variant") else {
        return;
    };
    for (model, folder) in [
        ("tiny", "crops"),
        ("tiny_selfnorm", "crops"),
        ("tiny_batch1", "crops"),
        ("tiny_out4d", "crops"),
        ("tiny_input1_128", "crops128"),
    ] {
        for flip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("emb");
            let flags: &[&str] = if flip {
                &["--flip", "--batch", "4"]
            } else {
                &["--batch", "4"]
            };
            let run = embed(
                &format!("{model}.onnx"),
                &[&fixtures().join(folder)],
                &out,
                flags,
            );
            ok(&run);
            assert_close(&rows_by_path(&out), &reference(model, flip, folder));
            let record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("embed.json")).unwrap()).unwrap();
            let norm = &record["preprocessing"]["normalisation"];
            let expect_raw = model == "tiny_selfnorm";
            assert_eq!(norm["mean"] == 0.0, expect_raw, "{model}: {norm}");
            assert_eq!(record["flip"], flip);
            assert_eq!(record["device"]["provider"]["name"], "CPUExecutionProvider");
            assert_eq!(record["counts"]["failed"], 0);
            assert_eq!(
                record["model"]["sha256"].as_str().unwrap().len(),
                64,
                "{record}"
            );
        }
    }
}

#[test]
fn broken_images_are_failed_rows_and_labels_never_shift() {
    let Some(_) = runtime("broken_images_are_failed_rows_and_labels_never_shift") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let crops = dir.path().join("crops");
    copy_tree(&fixtures().join("crops"), &crops);
    // Sorted among the good ones: a truncated JPEG, a text file called .jpg,
    // and a crop of the wrong size.
    let good = std::fs::read(crops.join("19062421/0.jpg")).unwrap();
    std::fs::write(crops.join("19062421/0a.jpg"), &good[..good.len() / 2]).unwrap();
    std::fs::write(crops.join("19062634/00.jpg"), b"not a picture").unwrap();
    std::fs::copy(
        fixtures().join("crops128/19062421/0.png"),
        crops.join("김민수/1a.png"),
    )
    .unwrap();
    let out = dir.path().join("emb");
    let run = embed("tiny.onnx", &[&crops], &out, &["--batch", "2", "--quiet"]);
    ok(&run);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("3 of 12 faces failed"),
        "said even with -q: {stderr}"
    );
    assert_close(&rows_by_path(&out), &reference("tiny", false, "crops"));
    let failed = std::fs::read_to_string(out.join("failed.csv")).unwrap();
    let lines: Vec<&str> = failed.lines().collect();
    assert_eq!(lines[0], "path,reason");
    assert_eq!(lines.len(), 4, "{failed}");
    assert!(
        lines[1].starts_with("19062421/0a.jpg,") && lines[1].contains("JPEG"),
        "{failed}"
    );
    assert!(lines[2].starts_with("19062634/00.jpg,"), "{failed}");
    assert!(
        lines[3].starts_with("김민수/1a.png,") && lines[3].contains("128x128"),
        "{failed}"
    );
}

#[test]
fn model_problems_are_one_line_and_leave_no_output() {
    let Some(_) = runtime("model_problems_are_one_line_and_leave_no_output") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let crops = fixtures().join("crops");
    let not_onnx = dir.path().join("model.onnx");
    std::fs::write(&not_onnx, "this is not a model\n").unwrap();
    let out = dir.path().join("emb");
    let mut cmd = facekit();
    let run = cmd
        .args(["embed", "--model"])
        .arg(&not_onnx)
        .arg(&crops)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    fails_with(&run, "model.onnx: not an ONNX model");
    for (model, needle) in [
        ("bad_op.onnx", "FacekitNoSuchOp"),
        ("rank3.onnx", "rank 3"),
        ("gray.onnx", "1 channels"),
    ] {
        fails_with(&embed(model, &[&crops], &out, &[]), needle);
        fails_with(&embed(model, &[&crops], &out, &[]), model);
    }
    let run = embed("tiny.onnx", &[&crops], &out, &["--device", "cuda"]);
    fails_with(&run, "--device cuda");
    assert!(!out.exists(), "no EMB_DIR after a failure");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "model.onnx")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_missing_runtime_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("emb");
    let run = facekit()
        .args(["embed", "--model"])
        .arg(fixtures().join("tiny.onnx"))
        .arg(fixtures().join("crops"))
        .arg("--out")
        .arg(&out)
        .arg("--onnxruntime")
        .arg(dir.path().join("libonnxruntime.so"))
        .output()
        .unwrap();
    fails_with(
        &run,
        "libonnxruntime.so: cannot load onnxruntime: no such file",
    );
    // Nothing to find: no flag, no environment, no python3 on PATH.
    let run = facekit()
        .args(["embed", "--model"])
        .arg(fixtures().join("tiny.onnx"))
        .arg(fixtures().join("crops"))
        .arg("--out")
        .arg(&out)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("VIRTUAL_ENV")
        .env_remove("CONDA_PREFIX")
        .env_remove("LD_LIBRARY_PATH")
        .env("PATH", dir.path())
        .output()
        .unwrap();
    fails_with(&run, "pip install onnxruntime");
    assert!(!out.exists());
}

#[test]
fn an_existing_result_is_replaced_only_with_force() {
    let Some(_) = runtime("an_existing_result_is_replaced_only_with_force") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let crops = fixtures().join("crops");
    let out = dir.path().join("emb");
    ok(&embed("tiny.onnx", &[&crops], &out, &["-q"]));
    fails_with(&embed("tiny.onnx", &[&crops], &out, &[]), "--force");
    ok(&embed(
        "tiny.onnx",
        &[&crops],
        &out,
        &["--flip", "--force", "-q"],
    ));
    assert_close(&rows_by_path(&out), &reference("tiny", true, "crops"));
    // A user's folder: embed writes beside their files, never over them.
    let foreign = dir.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    ok(&embed("tiny.onnx", &[&crops], &foreign, &["-q"]));
    std::fs::write(foreign.join("embeddings.npy"), "mine too").unwrap();
    std::fs::remove_file(foreign.join(".facekit-embed.json")).unwrap();
    fails_with(
        &embed("tiny.onnx", &[&crops], &foreign, &["--force"]),
        "embeddings.npy: exists and was not written by facekit embed",
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("embeddings.npy")).unwrap(),
        "mine too"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn run_ok(args: &[&std::ffi::OsStr]) -> Output {
    let out = facekit().args(args).output().unwrap();
    ok(&out);
    out
}

/// The README's path with a real model: convert (held-out identities) →
/// embed eval/ → evaluate → report, and the verification .bin → embed
/// --flip → evaluate --pairs, whose 10-fold accuracy equals arcface_torch's
/// own computation (scripts/interop/bin_kfold.py, Python onnxruntime).
#[test]
fn convert_embed_evaluate_report_and_the_bin_kfold() {
    let Some(_) = runtime("convert_embed_evaluate_report_and_the_bin_kfold") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).into_os_string();
    let model = fixtures().join("tiny.onnx");
    ok(&facekit()
        .args(sample::convert_args(&dir.path().join("kface112"), &[]))
        .output()
        .unwrap());
    let eval_dir = dir.path().join("kface112/eval");
    run_ok(&[
        "embed".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        eval_dir.as_os_str(),
        "--out".as_ref(),
        &d("emb"),
        "-q".as_ref(),
    ]);
    let l = labels::read_labels(&dir.path().join("emb/labels.parquet")).unwrap();
    assert!(l.role.is_some(), "eval/'s roles reach the labels");
    assert!(l.column("camera").is_some() && l.column("in_db").is_some());
    run_ok(&[
        "evaluate".as_ref(),
        "--embeddings".as_ref(),
        &d("emb/embeddings.npy"),
        "--labels".as_ref(),
        &d("emb/labels.parquet"),
        "--group-by".as_ref(),
        "camera".as_ref(),
        "--out".as_ref(),
        &d("eval"),
        "-q".as_ref(),
    ]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("eval/summary.json")).unwrap())
            .unwrap();
    assert!(
        summary["identification"]["mated_count"].as_u64().unwrap() > 0,
        "{summary}"
    );
    run_ok(&[
        "report".as_ref(),
        &d("eval"),
        "--out".as_ref(),
        &d("report"),
        "-q".as_ref(),
    ]);
    assert!(dir.path().join("report/index.html").is_file());
    run_ok(&[
        "search".as_ref(),
        "--gallery".as_ref(),
        &d("emb"),
        "--probes".as_ref(),
        &d("emb"),
        "--format".as_ref(),
        "csv".as_ref(),
    ]);

    run_ok(&[
        "pairs".as_ref(),
        &d("kface112"),
        "--out".as_ref(),
        &d("kface112"),
        "--positives".as_ref(),
        "40".as_ref(),
        "--negatives".as_ref(),
        "40".as_ref(),
        "-q".as_ref(),
    ]);
    let bin = dir.path().join("kface112/kface.bin");
    run_ok(&[
        "embed".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        bin.as_os_str(),
        "--flip".as_ref(),
        "--out".as_ref(),
        &d("emb_bin"),
        "-q".as_ref(),
    ]);
    let pairs = std::fs::read_to_string(dir.path().join("emb_bin/pairs.txt")).unwrap();
    assert_eq!(pairs.lines().count(), 80);
    assert!(pairs.starts_with("kface.bin#0 kface.bin#1 "), "{pairs}");
    run_ok(&[
        "evaluate".as_ref(),
        "--embeddings".as_ref(),
        &d("emb_bin/embeddings.npy"),
        "--labels".as_ref(),
        &d("emb_bin/labels.csv"),
        "--pairs".as_ref(),
        &d("emb_bin/pairs.txt"),
        "--out".as_ref(),
        &d("eval_bin"),
        "-q".as_ref(),
    ]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("eval_bin/summary.json")).unwrap())
            .unwrap();
    let kfold = &summary["verification"]["kfold_accuracy"];
    let (mean, std) = (
        kfold["mean"].as_f64().unwrap(),
        kfold["std"].as_f64().unwrap(),
    );
    let Some(python) = std::env::var_os("FACEKIT_PYTHON_ORT") else {
        require::skip(
            "onnxruntime",
            "convert_embed_evaluate_report_and_the_bin_kfold (the Python side)",
            "FACEKIT_PYTHON_ORT is not set (a python with numpy, pillow, onnxruntime)",
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/interop/bin_kfold.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&model)
        .arg(&bin)
        .output()
        .unwrap();
    ok(&out);
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        (theirs["mean"].as_f64().unwrap() - mean).abs() < 1e-12
            && (theirs["std"].as_f64().unwrap() - std).abs() < 1e-12,
        "facekit {mean} ± {std}, arcface_torch's rule in Python {theirs}"
    );
}

/// Crops with broken images among them, then a `.bin` of 7 pairs whose
/// images 0 and 5 are broken: inputs whose split puts failed rows and
/// pairs on both sides of a part boundary.
fn sharding_inputs(dir: &Path) -> Vec<PathBuf> {
    let crops = dir.join("crops");
    copy_tree(&fixtures().join("crops"), &crops);
    let good = std::fs::read(crops.join("19062421/0.jpg")).unwrap();
    std::fs::write(crops.join("19062421/0a.jpg"), &good[..good.len() / 2]).unwrap();
    std::fs::write(crops.join("19062634/00.jpg"), b"not a picture").unwrap();
    let crops_read: Vec<Vec<u8>> = walkdir::WalkDir::new(fixtures().join("crops"))
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    let mut images: Vec<Vec<u8>> = crops_read.iter().cycle().take(14).cloned().collect();
    images[0].truncate(100);
    images[5] = b"not a picture".to_vec();
    let issame: Vec<bool> = (0..7).map(|i| i % 2 == 0).collect();
    let bin = dir.join("k.bin");
    std::fs::write(
        &bin,
        facekit::shard::verification_bin::to_bytes(&images, &issame).unwrap(),
    )
    .unwrap();
    vec![crops, bin]
}

/// `embed -q` with the tiny model, `extra` flags and environment.
fn embed_part(inputs: &[PathBuf], out: &Path, extra: &[&str], env: &[(&str, String)]) -> Output {
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    embed_command("tiny.onnx", &inputs, out, extra)
        .arg("-q")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

fn merge(parts: &[PathBuf], out: &Path) -> Output {
    facekit()
        .arg("merge")
        .args(parts)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .output()
        .unwrap()
}

/// `embed.json`'s shard note.
fn shard_note(dir: &Path) -> String {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("embed.json")).unwrap()).unwrap();
    record["shards"].as_str().unwrap().to_string()
}

/// N = 1, 2, 3, 7 parts, from the flag, a Slurm array and a Kubernetes
/// Indexed Job, merged in any order: the directory one run writes, byte for
/// byte but for the timings and the shard note.
#[test]
fn parts_merged_equal_one_run_whatever_their_number() {
    let Some(_) = runtime("parts_merged_equal_one_run_whatever_their_number") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let inputs = sharding_inputs(dir.path());
    let plain = dir.path().join("plain");
    ok(&embed_part(&inputs, &plain, &[], &[]));
    assert_eq!(shard_note(&plain), "one machine");
    assert!(
        !plain.join("partial.json").exists(),
        "a plain run is no part"
    );
    let pairs = std::fs::read_to_string(plain.join("pairs.txt")).unwrap();
    assert_eq!(
        pairs.lines().count(),
        5,
        "2 of 7 pairs lose an image: {pairs}"
    );
    for n in [1u32, 2, 3, 7] {
        let parts: Vec<PathBuf> = (0..n)
            .map(|i| {
                let part = dir.path().join(format!("n{n}/part-{i}"));
                let (flags, env): (Vec<String>, Vec<(&str, String)>) = match n {
                    3 => (
                        vec![],
                        vec![
                            ("SLURM_ARRAY_TASK_ID", (i + 1).to_string()),
                            ("SLURM_ARRAY_TASK_COUNT", n.to_string()),
                            ("SLURM_ARRAY_TASK_MIN", "1".into()),
                        ],
                    ),
                    2 => (
                        vec!["--shard-count".into(), n.to_string()],
                        vec![("JOB_COMPLETION_INDEX", i.to_string())],
                    ),
                    _ => (vec!["--shard".into(), format!("{i}/{n}")], vec![]),
                };
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                ok(&embed_part(&inputs, &part, &flags, &env));
                part
            })
            .collect();
        let header: serde_json::Value =
            serde_json::from_slice(&std::fs::read(parts[0].join("partial.json")).unwrap()).unwrap();
        let source = header["source"].as_str().unwrap();
        let expected = match n {
            3 => "Slurm",
            2 => "Kubernetes",
            _ => "--shard",
        };
        assert!(source.contains(expected), "{n} parts: {source}");
        // Each part is an EMB_DIR of its own rows.
        let rows: usize = parts
            .iter()
            .map(|p| npy::read_matrix(&p.join("embeddings.npy")).unwrap().rows)
            .sum();
        assert_eq!(
            rows,
            npy::read_matrix(&plain.join("embeddings.npy"))
                .unwrap()
                .rows
        );
        let merged = dir.path().join(format!("n{n}/merged"));
        let mut shuffled = parts.clone();
        shuffled.reverse();
        ok(&merge(&shuffled, &merged));
        same_dir::assert_same(&plain, &merged, &["seconds", "shards"]);
        assert_eq!(shard_note(&merged), format!("merged from {n} parts"));
    }
}

/// Parts of another job, a missing part, a part given twice, a folder that
/// is no part: one line each, and no output.
#[test]
fn merges_of_parts_that_do_not_fit_fail_with_one_line() {
    let Some(_) = runtime("merges_of_parts_that_do_not_fit_fail_with_one_line") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let inputs = sharding_inputs(dir.path());
    let part = |name: &str, i: u32, extra: &[&str]| {
        let out = dir.path().join(name);
        let shard = format!("{i}/3");
        let flags: Vec<&str> = ["--shard", shard.as_str()]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        ok(&embed_part(&inputs, &out, &flags, &[]));
        out
    };
    let (p0, p1, p2) = (part("p0", 0, &[]), part("p1", 1, &[]), part("p2", 2, &[]));
    let flipped = part("flipped", 1, &["--flip"]);
    let other = {
        let out = dir.path().join("other");
        ok(&embed_part(&inputs[..1], &out, &["--shard", "1/3"], &[]));
        out
    };
    let merged = dir.path().join("merged");
    for (parts, needle) in [
        (
            vec![&p0, &flipped, &p2],
            "flipped: the fingerprint of the inputs and flags differs",
        ),
        (
            vec![&p0, &other, &p2],
            "other: the fingerprint of the inputs and flags differs",
        ),
        (vec![&p0, &p2], "shard 1/3 is missing"),
        (vec![&p0, &p1, &p1, &p2], "shard 1/3 given twice"),
        (
            vec![&p0, &p1, &p2, &dir.path().join("crops")],
            "no partial.json",
        ),
    ] {
        let parts: Vec<PathBuf> = parts.into_iter().cloned().collect();
        fails_with(&merge(&parts, &merged), needle);
        assert!(!merged.exists(), "no output after {needle}");
    }
    ok(&merge(&[p2, p1, p0], &merged));
}

/// Embeddings, whether one run's or merged from parts, carry the
/// fingerprint of the dataset they were made from: once it is converted
/// again, evaluate says they are stale.
#[test]
fn embeddings_and_merged_parts_say_when_their_dataset_changed() {
    let Some(_) = runtime("embeddings_and_merged_parts_say_when_their_dataset_changed") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kface112");
    let convert = |seed: &str| {
        let out = facekit()
            .args(sample::convert_args(&data, &["--seed", seed, "--force"]))
            .output()
            .unwrap();
        ok(&out);
    };
    convert("0");
    let inputs = [data.join("eval")];
    let plain = dir.path().join("plain");
    ok(&embed_part(&inputs, &plain, &[], &[]));
    let parts: Vec<PathBuf> = (0..2)
        .map(|i| {
            let part = dir.path().join(format!("part-{i}"));
            ok(&embed_part(
                &inputs,
                &part,
                &["--shard", &format!("{i}/2")],
                &[],
            ));
            part
        })
        .collect();
    let merged = dir.path().join("merged");
    ok(&merge(&parts, &merged));
    let evaluate = |emb: &Path| {
        let out = facekit()
            .arg("evaluate")
            .arg("--embeddings")
            .arg(emb.join("embeddings.npy"))
            .arg("--labels")
            .arg(emb.join("labels.parquet"))
            .arg("--out")
            .arg(dir.path().join("eval"))
            .arg("-q")
            .output()
            .unwrap();
        ok(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for emb in [&plain, &merged] {
        let said = evaluate(emb);
        assert!(!said.contains("rerun facekit embed"), "{said}");
    }
    convert("1");
    for emb in [&plain, &merged] {
        let said = evaluate(emb);
        assert!(
            said.contains("rerun facekit embed"),
            "{}: {said}",
            emb.display()
        );
    }
}
