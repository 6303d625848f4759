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

/// Values -2..2 drawn by a xorshift seeded with `seed`.
fn grid_values(seed: u64) -> impl FnMut() -> f32 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 5) as f32 - 2.0
    }
}

/// Embeddings on a coarse grid (values -2..2), so that many scores tie,
/// and labels with roles, paths and two attribute columns; a pairs list.
fn dataset(dir: &Path, seed: u64, identities: usize) -> (PathBuf, PathBuf, PathBuf) {
    let mut next = grid_values(seed);
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

/// The splits of the byte-identity tests: N parts, the gallery in 1 block.
const SPLITS: [(usize, usize); 4] = [(1, 1), (2, 1), (3, 1), (7, 1)];

/// Runs the job whole and as N parts merged, for each N, and compares.
fn merged_equals_plain(case: &str, identities: usize, extra: &[&str]) {
    merged_equals_plain_split(case, identities, extra, &SPLITS);
}

/// [`merged_equals_plain`] with `(N, G)` splits: N parts over G gallery
/// blocks (`--gallery-blocks G`).
fn merged_equals_plain_split(
    case: &str,
    identities: usize,
    extra: &[&str],
    splits: &[(usize, usize)],
) {
    let tmp = tempfile::tempdir().unwrap();
    let (emb, labels, pairs) = dataset(tmp.path(), 3, identities);
    merged_equals_plain_on(case, tmp.path(), (&emb, &labels, &pairs), extra, splits);
}

/// A gallery of one image per identity and probes far from their mates
/// (every coordinate moved by up to 2), on the same coarse grid: mates are
/// often outranked, so ranks above 1 and their ties are common.
fn noisy_probes(dir: &Path, identities: usize) -> (PathBuf, PathBuf) {
    let mut next = grid_values(11);
    let mut data = Vec::new();
    let mut csv = String::from("identity,role,camera\n");
    for id in 0..identities {
        let center: Vec<f32> = (0..DIM).map(|_| next() + 0.5).collect();
        data.extend(&center);
        csv.push_str(&format!("id{id},gallery,C0\n"));
        for image in 1..PER_ID {
            data.extend(center.iter().map(|&c| c + next()));
            csv.push_str(&format!("id{id},probe,C{}\n", image % 2));
        }
    }
    let emb = dir.join("noisy.npy");
    npy::write_f32(&emb, identities * PER_ID, DIM, &data).unwrap();
    let labels = dir.join("noisy.csv");
    std::fs::write(&labels, csv).unwrap();
    (emb, labels)
}

/// [`merged_equals_plain_split`] on given embeddings, labels and pairs,
/// with outputs in `d`; returns the plain run's summary.json.
fn merged_equals_plain_on(
    case: &str,
    d: &Path,
    (emb, labels, pairs): (&Path, &Path, &Path),
    extra: &[&str],
    splits: &[(usize, usize)],
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
    for &(n, g) in splits {
        let mut parts = Vec::new();
        let blocks = g.to_string();
        for i in 0..n {
            let part = d.join(format!("part-{n}x{g}-{i}"));
            let shard = format!("{i}/{n}");
            let mut more = vec!["--shard", &shard, "--out", p(&part)];
            if g > 1 {
                more.extend(["--gallery-blocks", &blocks]);
            }
            let out = run(&more);
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains(&format!("part {i}/{n}")) && said.contains("--shard"),
                "{case}: the summary names the part and its source: {said}"
            );
            parts.push(part);
        }
        let merged = d.join(format!("merged-{n}x{g}"));
        let mut merge: Vec<&str> = vec!["merge"];
        merge.extend(parts.iter().map(|p| p.to_str().unwrap()));
        merge.extend(["--out", p(&merged), "--quiet"]);
        ok(facekit(&merge, &[]));
        let note = if g > 1 {
            format!(
                "merged from {n} parts ({} probe blocks × {g} gallery blocks)",
                n / g
            )
        } else {
            format!("merged from {n} parts")
        };
        assert_eq!(shard_note(&merged), note);
        let got = files(&merged);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{case}, {n} parts over {g} gallery blocks: the same files"
        );
        for (name, bytes) in &want {
            assert!(
                &got[name] == bytes,
                "{case}, {n} parts over {g} gallery blocks: {name} differs from the plain run's"
            );
        }
    }
    summary
}

/// The probe × gallery job of the byte-identity tests.
const PROBE_GALLERY: [&str; 6] = [
    "--protocol",
    "probe-gallery",
    "--group-by",
    "camera",
    "--top-k",
    "3",
];

#[test]
fn probe_gallery_parts_merge_to_the_plain_run() {
    merged_equals_plain("probe × gallery", IDENTITIES, &PROBE_GALLERY);
}

/// The gallery split too: each part holds one block of it (and its probes'
/// mates from the others); candidates, ranks and every count merge to the
/// plain run's, with empty blocks where there are more blocks than rows.
#[test]
fn gallery_blocks_merge_to_the_plain_run() {
    let grid = [(2, 2), (4, 2), (6, 3), (7, 7)];
    merged_equals_plain_split("probe × gallery blocks", IDENTITIES, &PROBE_GALLERY, &grid);
    merged_equals_plain_split(
        "tiny probe × gallery blocks",
        2,
        &["--protocol", "probe-gallery", "--top-k", "2"],
        &[(3, 3)],
    );
    // Mates outranked by non-mates of other blocks: their ranks add up.
    let tmp = tempfile::tempdir().unwrap();
    let (emb, labels) = noisy_probes(tmp.path(), 40);
    merged_equals_plain_on(
        "noisy probes × gallery blocks",
        tmp.path(),
        (&emb, &labels, &labels),
        &["--protocol", "probe-gallery", "--top-k", "5"],
        &[(3, 3), (4, 2)],
    );
    let probes = std::fs::read_to_string(tmp.path().join("plain/probes.csv")).unwrap();
    let rank = probes
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "mate_rank");
    let ranks: Vec<u64> = probes
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(rank.unwrap())?.parse().ok())
        .collect();
    assert!(
        ranks.iter().filter(|&&r| r > 1).count() >= 10,
        "the noisy set outranks few mates: {ranks:?}"
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
        &SPLITS,
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
    // Gallery blocks: a grid that the parts fill, of probe × gallery.
    for (extra, needle) in [
        (
            &[
                "--protocol",
                "probe-gallery",
                "--shard",
                "0/4",
                "--gallery-blocks",
                "3",
            ][..],
            "divide",
        ),
        (
            &["--protocol", "probe-gallery", "--gallery-blocks", "2"][..],
            "divide",
        ),
        (
            &["--shard", "0/2", "--gallery-blocks", "2"][..],
            "probe-gallery",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let out = d.join("g");
        args.extend(["--out", p(&out)]);
        let o = facekit(&args, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(needle) && err.contains("--gallery-blocks"),
            "{err}"
        );
    }
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
