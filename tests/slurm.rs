//! The chain of `scripts/slurm/` on a real Slurm: `submit.sh` sends the
//! bundled sample through embed (an array of 4) → merge → evaluate (an
//! array of 4) → merge → report with `sbatch`, and the merged EMB_DIR and
//! EVAL_DIR equal what one machine writes, byte for byte but for the
//! timings and the shard note. Needs a cluster that answers (`.ci/run`
//! starts one with `scripts/slurm/local-cluster.sh`; clients find it
//! through SLURM_CONF) and onnxruntime; else the tests skip, and fail where
//! FACEKIT_REQUIRE declares `slurm`.

mod require;
mod same_dir;
mod sample;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Parts per array, as in the issue.
const TASKS: u32 = 4;
/// How long a chain may take on a busy two-core machine.
const PATIENCE: Duration = Duration::from_secs(600);
/// What the comparison leaves out: timings and the shard note (in
/// embed.json and summary.json).
const MASKED: [&str; 2] = ["seconds", "shards"];
/// The environment of a scheduler's task: a plain run must not see it
/// (cargo test itself may run inside a Slurm job).
const TASK_ENV: [&str; 5] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> PathBuf {
    root().join("data/models/tiny-arcface.onnx")
}

/// Whether a Slurm controller answers and onnxruntime is here, else a
/// skip line (a failure where required).
fn ready(test: &str) -> bool {
    let answers = Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers {
        require::skip(
            "slurm",
            test,
            "no Slurm controller answers `sinfo` (scripts/slurm/local-cluster.sh start)",
        );
        return false;
    }
    if !std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| Path::new(&p).is_file()) {
        require::skip(
            "onnxruntime",
            test,
            "ORT_DYLIB_PATH does not name the onnxruntime library",
        );
        return false;
    }
    true
}

/// facekit outside any scheduler's task.
fn facekit(args: &[&std::ffi::OsStr]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facekit"));
    cmd.args(args);
    for name in TASK_ENV {
        cmd.env_remove(name);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "facekit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sample converted (two held-out identities) with its pairs, once
/// for both tests: what the chain embeds, `eval/` and `kface.bin`.
fn inputs() -> &'static (tempfile::TempDir, Vec<PathBuf>) {
    static INPUTS: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("kface112");
        let convert = sample::convert_args(&data, &[]);
        facekit(&convert.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
        facekit(&[
            "pairs".as_ref(),
            data.as_os_str(),
            "--out".as_ref(),
            data.as_os_str(),
            "-q".as_ref(),
        ]);
        let inputs = vec![data.join("eval"), data.join("kface.bin")];
        (dir, inputs)
    })
}

/// One machine's embeddings of the inputs, into `out`.
fn embed_plain(inputs: &[PathBuf], out: &Path) {
    let model = model();
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["embed".as_ref(), "--model".as_ref(), model.as_os_str()];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    args.extend(["--out".as_ref(), out.as_os_str(), "-q".as_ref()]);
    facekit(&args);
}

/// Runs `scripts/slurm/submit.sh` into `work` and waits for its last job;
/// on timeout, cancels the jobs it submitted.
fn submit(inputs: &[PathBuf], work: &Path, steps: &str) {
    let list: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    let mut child = Command::new(root().join("scripts/slurm/submit.sh"))
        .env("MODEL", model())
        .env("INPUTS", list.join(" "))
        .env("WORK", work)
        .env("N", TASKS.to_string())
        .env("FACEKIT", env!("CARGO_BIN_EXE_facekit"))
        .env("STEPS", steps)
        .env("WAIT", "1")
        .current_dir(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let jobs = jobs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                jobs.lock().unwrap().push(line.unwrap());
            }
        })
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > PATIENCE {
            child.kill().unwrap();
            child.wait().unwrap();
            let jobs = jobs.lock().unwrap().clone();
            let _ = Command::new("scancel").args(&jobs).status();
            panic!("the chain ({steps}) took over {PATIENCE:?}; cancelled jobs {jobs:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success(),
        "the chain ({steps}) failed: {stderr}\nlogs:\n{}",
        logs(work)
    );
}

/// Every job log of the chain, for a failure message.
fn logs(work: &Path) -> String {
    let mut text = String::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(work.join("logs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        let body = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("== {}\n{body}", path.display()));
    }
    text
}

#[test]
fn embed_array_and_merge_on_slurm_equal_one_machine() {
    if !ready("embed_array_and_merge_on_slurm_equal_one_machine") {
        return;
    }
    let (_, inputs) = inputs();
    let work = tempfile::tempdir().unwrap();
    submit(inputs, work.path(), "embed");
    let plain = work.path().join("plain-emb");
    embed_plain(inputs, &plain);
    for i in 0..TASKS {
        let header =
            std::fs::read_to_string(work.path().join(format!("parts/emb-{i}/partial.json")))
                .unwrap();
        assert!(header.contains("Slurm array"), "part {i}: {header}");
    }
    same_dir::assert_same(&plain, &work.path().join("emb"), &MASKED);
}

#[test]
fn the_whole_chain_on_slurm_equals_one_machine() {
    if !ready("the_whole_chain_on_slurm_equals_one_machine") {
        return;
    }
    // eval/ alone: its gallery and probe roles make an identification run.
    let inputs = &inputs().1[..1];
    let work = tempfile::tempdir().unwrap();
    submit(inputs, work.path(), "all");
    let plain_emb = work.path().join("plain-emb");
    embed_plain(inputs, &plain_emb);
    let merged_emb = work.path().join("emb");
    same_dir::assert_same(&plain_emb, &merged_emb, &MASKED);
    // One machine's evaluate of the same files at the same path (summary.json
    // names its inputs), against the evaluate array merged.
    let plain_eval = work.path().join("plain-eval");
    facekit(&[
        "evaluate".as_ref(),
        "--embeddings".as_ref(),
        merged_emb.join("embeddings.npy").as_os_str(),
        "--labels".as_ref(),
        merged_emb.join("labels.parquet").as_os_str(),
        "--out".as_ref(),
        plain_eval.as_os_str(),
        "-q".as_ref(),
    ]);
    same_dir::assert_same(&plain_eval, &work.path().join("eval"), &MASKED);
    assert!(work.path().join("report/index.html").is_file());
}
