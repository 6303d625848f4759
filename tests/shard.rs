//! `facekit evaluate --shard I/N` and `facekit merge`: for N = 1, 2, 3 and
//! 7 parts run one after another, the merged EVAL_DIR equals the plain run
//! byte for byte (every file; in summary.json only the shard note may
//! differ), for probe × gallery, all distinct pairs, pair lists and
//! `--group-by`, on embeddings with tied scores and with more parts than
//! some blocks have rows. Merges of parts that do not belong together fail
//! with one line and leave no output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use facekit::evalinput::npy;

/// Of `identities`, the first two thirds are enrolled (image 0 in the
/// gallery), the rest are not.
const IDENTITIES: usize = 9;
const PER_ID: usize = 4;
const DIM: usize = 8;

fn facekit(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facekit"));
    c.args(args)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .env_remove("JOB_COMPLETION_INDEX");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("facekit runs")
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "facekit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Embeddings on a coarse grid (values -2..2), so that many scores tie,
/// and labels with roles, paths and two attribute columns; a pairs list.
fn dataset(dir: &Path, seed: u64, identities: usize) -> (PathBuf, PathBuf, PathBuf) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 5) as f32 - 2.0
    };
    let mut data = Vec::new();
    let mut csv = String::from("identity,role,path,camera,light\n");
    for id in 0..identities {
        let center: Vec<f32> = (0..DIM).map(|_| next()).collect();
        for image in 0..PER_ID {
            // One coordinate moved per image: identities stay apart, ties
            // stay common.
            data.extend(center.iter().enumerate().map(|(d, &c)| {
                if d == image % DIM {
                    c + 1.0
                } else {
                    c + 0.5
                }
            }));
            let role = if id < identities * 2 / 3 && image == 0 {
                "gallery"
            } else {
                "probe"
            };
            csv.push_str(&format!(
                "id{id},{role},id{id}/{image}.jpg,C{},L{}\n",
                image % 2,
                1 + id % 3
            ));
        }
    }
    let emb = dir.join("embeddings.npy");
    npy::write_f32(&emb, identities * PER_ID, DIM, &data).unwrap();
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    let mut pairs = String::new();
    for id in 0..identities {
        pairs.push_str(&format!("id{id}/0.jpg id{id}/1.jpg 1\n"));
        pairs.push_str(&format!("id{id}/2.jpg id{id}/3.jpg 1\n"));
        let other = (id + 1) % identities;
        pairs.push_str(&format!("id{id}/1.jpg id{other}/2.jpg 0\n"));
    }
    let pairs_path = dir.join("pairs.txt");
    std::fs::write(&pairs_path, pairs).unwrap();
    (emb, labels, pairs_path)
}

/// Every file of a directory, hidden ones (the ownership marker) too,
/// with summary.json's shard note taken out.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".facekit-lock" {
            continue;
        }
        let mut bytes = std::fs::read(entry.path()).unwrap();
        if name == "summary.json" {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let note = v.as_object_mut().unwrap().remove("shards");
            assert!(note.is_some(), "summary.json carries the shard note");
            bytes = serde_json::to_vec_pretty(&v).unwrap();
        }
        out.insert(name, bytes);
    }
    out
}

fn shard_note(dir: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    v["shards"].as_str().unwrap().to_string()
}

/// Runs the job whole and as N parts merged, for each N, and compares.
fn merged_equals_plain(case: &str, identities: usize, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let (emb, labels, pairs) = dataset(tmp.path(), 3, identities);
    merged_equals_plain_on(case, tmp.path(), (&emb, &labels, &pairs), extra);
}

/// [`merged_equals_plain`] on given embeddings, labels and pairs, with
/// outputs in `d`; returns the plain run's summary.json.
fn merged_equals_plain_on(
    case: &str,
    d: &Path,
    (emb, labels, pairs): (&Path, &Path, &Path),
    extra: &[&str],
) -> serde_json::Value {
    let mut args: Vec<String> = ["evaluate", "--embeddings", p(emb), "--labels", p(labels)]
        .map(String::from)
        .to_vec();
    for a in extra {
        args.push(a.replace("PAIRS", p(pairs)));
    }
    let run = |more: &[&str]| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(more);
        ok(facekit(&all, &[]))
    };
    let plain = d.join("plain");
    run(&["--out", p(&plain), "--quiet"]);
    assert_eq!(shard_note(&plain), "one machine");
    let want = files(&plain);
    let summary = serde_json::from_slice(&want["summary.json"]).unwrap();
    for n in [1usize, 2, 3, 7] {
        let mut parts = Vec::new();
        for i in 0..n {
            let part = d.join(format!("part-{n}-{i}"));
            let out = run(&["--shard", &format!("{i}/{n}"), "--out", p(&part)]);
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains(&format!("part {i}/{n}")) && said.contains("--shard"),
                "{case}: the summary names the part and its source: {said}"
            );
            parts.push(part);
        }
        let merged = d.join(format!("merged-{n}"));
        let mut merge: Vec<&str> = vec!["merge"];
        merge.extend(parts.iter().map(|p| p.to_str().unwrap()));
        merge.extend(["--out", p(&merged), "--quiet"]);
        ok(facekit(&merge, &[]));
        assert_eq!(shard_note(&merged), format!("merged from {n} parts"));
        let got = files(&merged);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{case}, {n} parts: the same files"
        );
        for (name, bytes) in &want {
            assert!(
                &got[name] == bytes,
                "{case}, {n} parts: {name} differs from the plain run's"
            );
        }
    }
    summary
}

#[test]
fn probe_gallery_parts_merge_to_the_plain_run() {
    merged_equals_plain(
        "probe × gallery",
        IDENTITIES,
        &[
            "--protocol",
            "probe-gallery",
            "--group-by",
            "camera",
            "--top-k",
            "3",
        ],
    );
}

#[test]
fn all_pairs_parts_merge_to_the_plain_run() {
    merged_equals_plain(
        "all distinct pairs",
        IDENTITIES,
        &["--group-by", "light", "--group-by", "camera+light"],
    );
}

#[test]
fn pair_list_parts_merge_to_the_plain_run() {
    merged_equals_plain(
        "pairs file",
        IDENTITIES,
        &[
            "--pairs",
            "PAIRS",
            "--group-by",
            "camera",
            "--bootstrap",
            "50",
        ],
    );
}

/// Two identities, 8 images of which 1 is in the gallery and 7 probes:
/// more parts than probes, listed pairs or rows of the triangle's tail.
#[test]
fn more_parts_than_rows_merge_to_the_plain_run() {
    merged_equals_plain(
        "tiny probe × gallery",
        2,
        &["--protocol", "probe-gallery", "--group-by", "light"],
    );
    merged_equals_plain("tiny all pairs", 2, &["--group-by", "camera"]);
    merged_equals_plain("tiny pairs file", 2, &["--pairs", "PAIRS"]);
}

/// Beyond a small exact budget the jobs keep score bands around their FMR
/// thresholds, placed from a sample drawn with the seed: every part places
/// the same, and their counts merge to the plain run's.
#[test]
fn parts_beyond_the_exact_budget_merge_to_the_plain_run() {
    // 600 rows of 174,000 impostor pairs (tests/evaluate.rs's anchors).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exact_all_pairs");
    let (emb, labels) = (fixture.join("embeddings.npy"), fixture.join("labels.csv"));
    let tmp = tempfile::tempdir().unwrap();
    let s = merged_equals_plain_on(
        "all distinct pairs, budget 5000",
        tmp.path(),
        (&emb, &labels, &labels),
        &["--exact-budget", "5000", "--bootstrap", "20"],
    );
    // A band below the exact tail: a hole in the binned ranges.
    let binned = s["score"]["binned"].as_array().map_or(0, Vec::len);
    assert!(binned >= 2, "no score band: {}", s["score"]);
    let points = s["verification"]["operating_points"].as_array().unwrap();
    assert!(points.iter().all(|p| p["exact"] == true), "{points:?}");
}

/// Runs one part of the default job into `out`.
fn part(emb: &Path, labels: &Path, shard: &str, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "evaluate",
        "--embeddings",
        p(emb),
        "--labels",
        p(labels),
        "--shard",
        shard,
        "--out",
        p(out),
        "--quiet",
    ];
    args.extend(extra);
    ok(facekit(&args, &[]));
}

/// `facekit merge PARTS --out OUT` fails with one line holding `needles`,
/// and OUT is not created.
fn merge_fails(parts: &[&Path], out: &Path, needles: &[&str]) {
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", p(out)]);
    let o = facekit(&args, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "merge must fail: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} names {n:?}");
    }
    assert!(!out.exists(), "a failed merge leaves no output");
}

#[test]
fn parts_that_do_not_belong_together_do_not_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (emb, labels, _) = dataset(d, 3, IDENTITIES);
    let (a0, a1, a2) = (d.join("a0"), d.join("a1"), d.join("a2"));
    part(&emb, &labels, "0/3", &a0, &[]);
    part(&emb, &labels, "1/3", &a1, &[]);
    part(&emb, &labels, "2/3", &a2, &[]);
    let out = d.join("merged");

    // Another flag.
    let fmr = d.join("fmr");
    part(&emb, &labels, "1/3", &fmr, &["--fmr", "1e-2"]);
    merge_fails(&[&a0, &fmr, &a2], &out, &["fmr", "fingerprint"]);
    // A missing shard, a duplicate.
    merge_fails(&[&a0, &a2], &out, &["shard 1/3 is missing"]);
    let copy = d.join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in std::fs::read_dir(&a1).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
    }
    merge_fails(&[&a0, &a1, &copy, &a2], &out, &["shard 1/3 given twice"]);
    // Not a part at all.
    merge_fails(&[&a0, d], &out, &["not a part"]);
    // Other embeddings (same shape, other values).
    let other = d.join("other");
    std::fs::create_dir(&other).unwrap();
    let (emb2, labels2, _) = dataset(&other, 4, IDENTITIES);
    std::fs::copy(&labels2, &labels).unwrap();
    part(&emb2, &labels, "1/3", &d.join("b1"), &[]);
    merge_fails(&[&a0, &d.join("b1"), &a2], &out, &["fingerprint"]);
    // The labels edited after the parts ran: the merge reads them again.
    let mut text = std::fs::read_to_string(&labels).unwrap();
    text.push_str("\n");
    std::fs::write(&labels, text).unwrap();
    merge_fails(&[&a0, &a1, &a2], &out, &["labels.csv", "changed"]);
}

#[test]
fn parts_from_the_scheduler_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (emb, labels, _) = dataset(d, 3, IDENTITIES);
    let base = ["evaluate", "--embeddings", p(&emb), "--labels", p(&labels)];
    // A Slurm array task takes its part from the environment and says so.
    let part = d.join("slurm1");
    let mut args = base.to_vec();
    args.extend(["--out", p(&part)]);
    let o = ok(facekit(
        &args,
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    ));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("part 1/2") && said.contains("Slurm"),
        "{said}"
    );
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(part.join("partial.json")).unwrap()).unwrap();
    assert_eq!(
        (header["kind"].as_str(), header["index"].as_u64()),
        (Some("evaluate"), Some(1))
    );
    // Scores computed elsewhere are not split.
    let scores = d.join("scores.csv");
    std::fs::write(&scores, "score,genuine\n0.9,1\n0.1,0\n0.2,0\n").unwrap();
    let o = facekit(
        &[
            "evaluate",
            "--scores",
            p(&scores),
            "--shard",
            "0/2",
            "--out",
            p(&d.join("s")),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--scores"), "{err}");
}

#[test]
fn search_reads_a_merged_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (emb, labels, _) = dataset(d, 3, IDENTITIES);
    let (a0, a1) = (d.join("a0"), d.join("a1"));
    part(&emb, &labels, "0/2", &a0, &[]);
    part(&emb, &labels, "1/2", &a1, &[]);
    let merged = d.join("merged");
    ok(facekit(
        &["merge", p(&a0), p(&a1), "--out", p(&merged), "--quiet"],
        &[],
    ));
    let threshold = format!("{}:fmr=1e-1", p(&merged));
    ok(facekit(
        &[
            "search",
            "--gallery",
            p(d),
            "--probes",
            p(d),
            "--threshold",
            &threshold,
        ],
        &[],
    ));
}
