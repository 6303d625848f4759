//! End-to-end tests of `facekit evaluate` on small synthetic embeddings:
//! every EVAL_DIR file is written and parses with `evaldir`'s readers, the
//! numbers agree with what the inputs imply, bad inputs fail with one line
//! naming the file, and outputs are byte-identical whatever `--jobs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chacha20::ChaCha8Rng;
use facekit::evaldir::{self, HistogramRow, OperatingPointRow, ProbeRow, RocRow};
use facekit::evalinput::npy;
use rand::{RngExt, SeedableRng};

const DIM: usize = 16;
/// Identities 0..8 are enrolled (first image in the gallery); 8..12 are
/// out-of-DB; every identity has 5 images.
const IDENTITIES: usize = 12;
const PER_ID: usize = 5;
const ENROLLED: usize = 8;

fn facekit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facekit"))
        .arg("evaluate")
        .args(args)
        .output()
        .expect("facekit runs")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Writes embeddings.npy and labels.csv (identity, role, path, camera,
/// light) into `dir`.
fn dataset(dir: &Path) -> (PathBuf, PathBuf) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut data = Vec::new();
    let mut csv = String::from("identity,role,path,camera,light\n");
    for id in 0..IDENTITIES {
        let center: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
        for image in 0..PER_ID {
            data.extend(center.iter().map(|c| c + rng.random_range(-0.6..0.6)));
            let role = if id < ENROLLED && image == 0 {
                "gallery"
            } else {
                "probe"
            };
            csv.push_str(&format!(
                "id{id:02},{role},id{id:02}/{image}.jpg,C{},L{}\n",
                4 + image % 3,
                1 + id % 2
            ));
        }
    }
    let emb = dir.join("embeddings.npy");
    npy::write_f32(&emb, IDENTITIES * PER_ID, DIM, &data).unwrap();
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    (emb, labels)
}

fn pairs_file(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for id in 0..IDENTITIES {
        text.push_str(&format!("id{id:02}/0.jpg id{id:02}/1.jpg 1\n"));
        text.push_str(&format!(
            "id{id:02}/2.jpg id{:02}/3.jpg 0\n",
            (id + 1) % IDENTITIES
        ));
    }
    let path = dir.join("pairs.txt");
    std::fs::write(&path, text).unwrap();
    path
}

const FILES: [&str; 6] = [
    evaldir::SUMMARY_JSON,
    evaldir::SUMMARY_MD,
    evaldir::ROC_CSV,
    evaldir::OPERATING_POINTS_CSV,
    evaldir::SCORES_PARQUET,
    evaldir::PROBES_CSV,
];

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "facekit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads every file back with evaldir's readers.
fn read_all(
    dir: &Path,
) -> (
    evaldir::Summary,
    Vec<RocRow>,
    Vec<OperatingPointRow>,
    Vec<HistogramRow>,
    Vec<ProbeRow>,
) {
    for f in FILES {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    (
        evaldir::read_summary(dir).unwrap(),
        evaldir::read_csv(&dir.join(evaldir::ROC_CSV)).unwrap(),
        evaldir::read_csv(&dir.join(evaldir::OPERATING_POINTS_CSV)).unwrap(),
        evaldir::read_histograms(&dir.join(evaldir::SCORES_PARQUET)).unwrap(),
        evaldir::read_csv(&dir.join(evaldir::PROBES_CSV)).unwrap(),
    )
}

#[test]
fn all_pairs_with_roles_groups_and_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (emb, labels) = dataset(tmp.path());
    let out = tmp.path().join("eval");
    let run = facekit(&[
        "--embeddings",
        p(&emb),
        "--labels",
        p(&labels),
        "--out",
        p(&out),
        "--group-by",
        "camera",
        "--group-by",
        "camera+light",
        "--fpir",
        "0.1,0.01",
        "--bootstrap",
        "50",
    ]);
    ok(&run);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("AUC") && stdout.contains("rank-1"),
        "{stdout}"
    );
    let (summary, roc, points, hist, probes) = read_all(&out);

    let n = (IDENTITIES * PER_ID) as u64;
    let genuine = (IDENTITIES * PER_ID * (PER_ID - 1) / 2) as u64;
    let v = summary.verification.as_ref().unwrap();
    assert_eq!(summary.inputs.protocol, "all-pairs");
    assert_eq!(
        (v.genuine_count, v.impostor_count),
        (genuine, n * (n - 1) / 2 - genuine)
    );
    assert_eq!(
        summary.score.resolution, 0.0,
        "a small set keeps every impostor score exactly"
    );
    assert!(v.auc > 0.5 && v.auc <= 1.0);
    assert_eq!(v.operating_points.len(), 6);
    assert!(v
        .operating_points
        .iter()
        .all(|p| p.fnmr_ci95.is_some() && p.fmr_ci95.is_some()));

    let id = summary.identification.as_ref().unwrap();
    let probes_count = (IDENTITIES * PER_ID - ENROLLED) as u64;
    assert_eq!(id.mated_count, (ENROLLED * (PER_ID - 1)) as u64);
    assert_eq!(id.non_mated_count, probes_count - id.mated_count);
    assert_eq!(
        (id.gallery_count, id.gallery_identities),
        (ENROLLED as u64, ENROLLED as u64)
    );
    assert_eq!(id.operating_points.len(), 2);

    // roc.csv: monotone, from (0, 1) to (1, 0).
    assert_eq!((roc[0].fmr, roc[0].fnmr), (0.0, 1.0));
    assert_eq!(
        (roc.last().unwrap().fmr, roc.last().unwrap().fnmr),
        (1.0, 0.0)
    );
    assert!(roc
        .windows(2)
        .all(|w| w[0].threshold > w[1].threshold && w[0].fmr <= w[1].fmr));
    assert_eq!(points.iter().filter(|p| p.kind == "fmr").count(), 6);
    assert_eq!(points.iter().filter(|p| p.kind == "fpir").count(), 2);

    let total = |kind: &str| {
        hist.iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.count)
            .sum::<u64>()
    };
    assert_eq!(total(evaldir::HIST_GENUINE), v.genuine_count);
    assert_eq!(total(evaldir::HIST_IMPOSTOR), v.impostor_count);
    assert_eq!(total(evaldir::HIST_MATED_TOP1), id.mated_count);
    assert_eq!(total(evaldir::HIST_NON_MATED_TOP1), id.non_mated_count);

    assert_eq!(probes.len() as u64, probes_count);
    let decision = id
        .operating_points
        .iter()
        .find(|p| p.fpir_target == 0.01)
        .unwrap()
        .threshold;
    for row in &probes {
        assert_eq!(row.mated, row.mate_rank.is_some());
        assert_eq!(row.decision_threshold, decision);
        let accepted = row.top1_score.unwrap() >= decision;
        assert_eq!(
            row.decision,
            if accepted {
                row.top1_identity.clone().unwrap()
            } else {
                "unknown".into()
            }
        );
        assert!(row.path.as_deref().unwrap().starts_with(&row.identity));
    }

    assert_eq!(summary.groups.len(), 2);
    assert_eq!(summary.groups[0].columns, ["camera"]);
    let cameras: Vec<&str> = summary.groups[0]
        .rows
        .iter()
        .map(|r| r.values[0].as_str())
        .collect();
    assert_eq!(&cameras[..6], ["C4"; 6]);
    assert_eq!(summary.groups[1].columns, ["camera", "light"]);
    assert_eq!(summary.groups[1].rows.len(), 3 * 2 * 6);
    let md = std::fs::read_to_string(out.join(evaldir::SUMMARY_MD)).unwrap();
    assert!(
        md.contains("## Verification")
            && md.contains("## Identification")
            && md.contains("## By camera × light")
    );
}

#[test]
fn probe_gallery_and_pairs_protocols() {
    let tmp = tempfile::tempdir().unwrap();
    let (emb, labels) = dataset(tmp.path());
    let out = tmp.path().join("pg");
    ok(&facekit(&[
        "--embeddings",
        p(&emb),
        "--labels",
        p(&labels),
        "--protocol",
        "probe-gallery",
        "--out",
        p(&out),
    ]));
    let (summary, ..) = read_all(&out);
    let v = summary.verification.unwrap();
    let id = summary.identification.unwrap();
    // Probes × gallery: each mated probe has one genuine comparison.
    assert_eq!(v.genuine_count, id.mated_count);
    assert_eq!(
        v.genuine_count + v.impostor_count,
        (IDENTITIES * PER_ID - ENROLLED) as u64 * ENROLLED as u64
    );

    let pairs = pairs_file(tmp.path());
    let out = tmp.path().join("pairs");
    ok(&facekit(&[
        "--embeddings",
        p(&emb),
        "--labels",
        p(&labels),
        "--pairs",
        p(&pairs),
        "--out",
        p(&out),
    ]));
    let (summary, ..) = read_all(&out);
    assert_eq!(summary.inputs.protocol, "pairs-file");
    let v = summary.verification.unwrap();
    assert_eq!(
        (v.genuine_count, v.impostor_count),
        (IDENTITIES as u64, IDENTITIES as u64)
    );
    let k = v.kfold_accuracy.unwrap();
    assert_eq!(k.folds, 10);
    assert!(k.mean > 0.0 && k.mean <= 1.0);
}

#[test]
fn score_files() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("s.csv");
    std::fs::write(
        &csv,
        "score,genuine\n0.9,1\n0.8,1\n0.3,1\n0.5,0\n0.1,0\n-0.2,0\n0.05,0\n",
    )
    .unwrap();
    let out = tmp.path().join("e1");
    ok(&facekit(&[
        "--scores",
        p(&csv),
        "--out",
        p(&out),
        "--bootstrap",
        "0",
    ]));
    let (summary, roc, _, hist, probes) = read_all(&out);
    let v = summary.verification.unwrap();
    assert_eq!((v.genuine_count, v.impostor_count), (3, 4));
    // Genuine {0.9, 0.8, 0.3} vs impostor {0.5, 0.1, 0.05, -0.2}: 11 of 12
    // pairs ranked right.
    assert!((v.auc - 11.0 / 12.0).abs() < 1e-12);
    assert!(summary.identification.is_none() && probes.is_empty());
    assert_eq!(hist.iter().map(|r| r.count).sum::<u64>(), 7);
    assert!(roc.len() >= 2);

    let bob = tmp.path().join("s.txt");
    std::fs::write(
        &bob,
        "a a p1 0.9\na a p2 0.8\nb b p3 0.3\na b p4 0.5\nb a p5 0.1\nc a p6 -0.2\nc b p7 0.05\n",
    )
    .unwrap();
    let out2 = tmp.path().join("e2");
    ok(&facekit(&[
        "--scores",
        p(&bob),
        "--out",
        p(&out2),
        "--bootstrap",
        "0",
    ]));
    let (s2, ..) = read_all(&out2);
    assert_eq!(s2.verification.unwrap().auc, v.auc);
    // Each test_label is a search: p1-p3 find their mate first, p4-p7 are
    // out of the gallery; at FPIR 1e-1 no stranger passes (T above 0.5),
    // and p3's mate (0.3) is missed.
    let id = s2
        .identification
        .expect("identification from bob's 4 columns");
    assert_eq!((id.mated_count, id.non_mated_count, id.rank1), (3, 4, 1.0));
    assert_eq!(id.gallery_identities, 3);
    let first = &id.operating_points[0];
    assert_eq!((first.fpir_target, first.fpir), (0.1, 0.0));
    assert_eq!(first.fnir, 1.0 / 3.0);
}

#[test]
fn outputs_do_not_depend_on_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let (emb, labels) = dataset(tmp.path());
    let run = |jobs: &str, name: &str| {
        let out = tmp.path().join(name);
        ok(&facekit(&[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&labels),
            "--out",
            p(&out),
            "--jobs",
            jobs,
            "--group-by",
            "light",
            "--seed",
            "3",
        ]));
        out
    };
    let (a, b, c) = (run("1", "a"), run("2", "b"), run("3", "c"));
    for f in FILES {
        let bytes = std::fs::read(a.join(f)).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between --jobs 1 and 2"
        );
        assert_eq!(
            bytes,
            std::fs::read(c.join(f)).unwrap(),
            "{f} differs between --jobs 1 and 3"
        );
    }
}

/// `--device cpu --precision bf16` (where the CPU has AVX-512 BF16) on a
/// set this small: every impostor score is kept exactly, so bf16 would
/// rescore them all in fp32 and be slower; fp32 runs instead, the summary
/// says why, the results are fp32's, and outputs do not depend on `--jobs`.
#[test]
fn cpu_bf16_runs_fp32_where_its_rescoring_would_cost_more() {
    let tmp = tempfile::tempdir().unwrap();
    let (emb, labels) = dataset(tmp.path());
    let run = |precision: &str, jobs: &str| {
        let out = tmp.path().join(format!("{precision}-{jobs}"));
        let done = facekit(&[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&labels),
            "--device",
            "cpu",
            "--precision",
            precision,
            "--jobs",
            jobs,
            "--out",
            p(&out),
        ]);
        (done, out)
    };
    let (done, bf16) = run("bf16", "1");
    if !done.status.success() {
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(err.contains("lacks AVX-512 BF16"), "{err}");
        eprintln!("no AVX-512 BF16 here: the refusal was checked instead");
        return;
    }
    let (done, fp32) = run("fp32", "1");
    ok(&done);
    let (b, b_roc, _, _, b_probes) = read_all(&bf16);
    let (f, f_roc, _, _, f_probes) = read_all(&fp32);
    // Identification is exact fp32 in both: top-1, mate ranks, decisions.
    assert_eq!(b_probes, f_probes);
    assert_eq!(b.identification, f.identification);
    assert_eq!(b.engine.precision, "bf16");
    assert_eq!(f.engine.precision, "fp32");
    assert_eq!(f.engine.max_abs_score_error, None);
    assert_eq!(f.engine.precision_note, None);
    let note = b
        .engine
        .precision_note
        .as_deref()
        .expect("bf16 says it ran fp32");
    assert!(
        note.starts_with("fp32 ran instead of bf16: the exact impostor tail"),
        "{note}"
    );
    // The verification job ran fp32; the search jobs (no exact tail) ran
    // bf16 and sampled its error.
    assert!(
        b.engine.max_abs_score_error.is_some(),
        "the searches ran bf16"
    );
    let md = std::fs::read_to_string(bf16.join("summary.md")).unwrap();
    assert!(md.contains(note), "summary.md says it too");
    assert_eq!(b.verification, f.verification);
    assert_eq!(b_roc, f_roc);
    let (done, again) = run("bf16", "2");
    ok(&done);
    for f in FILES {
        assert_eq!(
            std::fs::read(bf16.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f} differs between --jobs 1 and 2"
        );
    }
}

/// Exit code 1 and one line on stderr that contains each `needles`.
fn fails(args: &[&str], needles: &[&str]) {
    let out = facekit(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "args {args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (emb, labels) = dataset(d);
    let out = d.join("out");
    let o = p(&out);
    let write = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut values = vec![0.5f32; (IDENTITIES * PER_ID) * DIM];
    values[7 * DIM + 3] = f32::NAN;
    let nan = d.join("nan.npy");
    npy::write_f32(&nan, IDENTITIES * PER_ID, DIM, &values).unwrap();
    fails(
        &["--embeddings", p(&nan), "--labels", p(&labels), "--out", o],
        &["nan.npy", "row 7", "NaN"],
    );
    let mut values = vec![0.5f32; (IDENTITIES * PER_ID) * DIM];
    values[11 * DIM..12 * DIM].fill(0.0);
    let zero = d.join("zero.npy");
    npy::write_f32(&zero, IDENTITIES * PER_ID, DIM, &values).unwrap();
    fails(
        &["--embeddings", p(&zero), "--labels", p(&labels), "--out", o],
        &["zero.npy", "row 11", "all zeros"],
    );

    let short = write("short.csv", "identity\na\nb\n");
    fails(
        &["--embeddings", p(&emb), "--labels", p(&short), "--out", o],
        &["embeddings.npy", "60", "short.csv", "2"],
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evaluate_npy");
    let three = write("three.csv", "identity\na\na\nb\n");
    fails(
        &[
            "--embeddings",
            p(&fixtures.join("fortran.npy")),
            "--labels",
            p(&three),
            "--out",
            o,
        ],
        &["fortran.npy", "Fortran"],
    );
    fails(
        &[
            "--embeddings",
            p(&fixtures.join("f64.npy")),
            "--labels",
            p(&three),
            "--out",
            o,
        ],
        &["f64.npy", "<f8"],
    );
    ok(&facekit(&[
        "--embeddings",
        p(&fixtures.join("f16.npy")),
        "--labels",
        p(&three),
        "--out",
        o,
    ]));

    let no_id = write("noid.csv", "name\nx\n");
    fails(
        &["--embeddings", p(&emb), "--labels", p(&no_id), "--out", o],
        &["noid.csv", "identity"],
    );
    let mut bad_role = String::from("identity,role\n");
    for i in 0..IDENTITIES * PER_ID {
        bad_role.push_str(&format!(
            "id{},{}\n",
            i / PER_ID,
            if i == 4 { "enrol" } else { "probe" }
        ));
    }
    let bad_role = write("badrole.csv", &bad_role);
    fails(
        &[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&bad_role),
            "--out",
            o,
        ],
        &["badrole.csv", "row 4", "enrol"],
    );
    let all_probe = write("allprobe.csv", &bad_role_text(|_| "probe"));
    fails(
        &[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&all_probe),
            "--out",
            o,
        ],
        &["allprobe.csv", "no gallery"],
    );
    let no_roles = write(
        "noroles.csv",
        &bad_role_text(|_| "")
            .replace(",\n", "\n")
            .replace("identity,role", "identity"),
    );
    fails(
        &[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&no_roles),
            "--protocol",
            "probe-gallery",
            "--out",
            o,
        ],
        &["noroles.csv", "role column"],
    );
    fails(
        &[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&labels),
            "--group-by",
            "pose",
            "--out",
            o,
        ],
        &["labels.csv", "pose"],
    );
    let pairs = write("pairs.txt", "id00/0.jpg id99/0.jpg 1\n");
    fails(
        &[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&labels),
            "--pairs",
            p(&pairs),
            "--out",
            o,
        ],
        &["pairs.txt", "line 1", "id99/0.jpg"],
    );
    let scores = write("bad.txt", "a a p 0.5\na b p\n");
    fails(
        &["--scores", p(&scores), "--out", o],
        &["bad.txt", "line 2"],
    );
    let only_genuine = write("gen.csv", "score,genuine\n0.5,1\n0.6,1\n");
    fails(
        &["--scores", p(&only_genuine), "--out", o],
        &["gen.csv", "impostor"],
    );
    fails(
        &[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&labels),
            "--fmr",
            "0,0.1",
            "--out",
            o,
        ],
        &["--fmr"],
    );
    fails(
        &[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&labels),
            "--device",
            "cpu",
            "--precision",
            "fp16",
            "--out",
            o,
        ],
        &["--precision fp16", "CUDA"],
    );
    fails(
        &[
            "--embeddings",
            p(&d.join("missing.npy")),
            "--labels",
            p(&labels),
            "--out",
            o,
        ],
        &["missing.npy"],
    );
}

fn bad_role_text(role: impl Fn(usize) -> &'static str) -> String {
    let mut text = String::from("identity,role\n");
    for i in 0..IDENTITIES * PER_ID {
        text.push_str(&format!("id{},{}\n", i / PER_ID, role(i)));
    }
    text
}

/// All distinct pairs of 600 embeddings whose cosines are exact in float32
/// whatever the order of the sums (`scripts/fixtures/metrics_reference.py`
/// made them and ran the anchors on the same scores): 174,000 impostor
/// scores, targets 1e-1 to 1e-6. Every operating point is bob.measure's
/// (`far_threshold`, `farfrr`), the AUC scikit-learn's, the EER interval
/// pyeer's, in fp32 and in bf16 (where the CPU has it); and with an exact
/// budget of 5,000 scores, where the 1e-1 threshold lies far below the
/// exact tail and a score band placed from a sample holds it, every
/// operating point is bob's still.
#[test]
fn all_pairs_figures_are_the_anchors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exact_all_pairs");
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The fixture writes floats as their repr strings.
    let num = |v: &serde_json::Value| v.as_str().unwrap().parse::<f64>().unwrap();
    let bob = reference["bob"]["far_points"].as_array().unwrap();
    // The set is one where bins showed: the 1e-1 threshold is no bin edge.
    let edges = (num(&bob[0]["threshold"]) + 1.0) * 32768.0;
    assert_ne!(edges, edges.floor(), "bob's 1e-1 threshold is a bin edge");

    let tmp = tempfile::tempdir().unwrap();
    let mut precisions = vec!["fp32"];
    if facekit::compare::cpu::bf16::supported() {
        precisions.push("bf16");
    } else {
        eprintln!("no AVX-512 BF16 here: bf16 products not compared with the anchors");
    }
    let budgets = precisions
        .iter()
        .flat_map(|&p| [(p, "268435456"), (p, "5000")]);
    for (precision, budget) in budgets {
        let banded = budget == "5000";
        let out = tmp.path().join(format!("{precision}-{budget}"));
        ok(&facekit(&[
            "--exact-budget",
            budget,
            "--embeddings",
            p(&dir.join("embeddings.npy")),
            "--labels",
            p(&dir.join("labels.csv")),
            "--device",
            "cpu",
            "--precision",
            precision,
            "--fmr",
            "1e-1,1e-2,1e-3,1e-4,1e-5,1e-6",
            "--bootstrap",
            "0",
            "--out",
            p(&out),
            "--quiet",
        ]));
        let summary = evaldir::read_summary(&out).unwrap();
        if banded {
            // A band below the tail: the binned ranges have a hole.
            let s = &summary.score;
            assert!(s.exact_from.is_some() && s.binned.len() >= 2, "{s:?}");
            let note = summary.engine.precision_note.unwrap_or_default();
            assert_eq!(precision == "bf16", note.contains("bands"), "{note}");
        } else {
            assert_eq!(
                (summary.score.resolution, summary.score.exact_from),
                (0.0, None)
            );
        }
        let v = summary.verification.unwrap();
        assert_eq!(
            (v.genuine_count, v.impostor_count),
            (
                reference["genuine_count"].as_u64().unwrap(),
                reference["impostor_count"].as_u64().unwrap()
            )
        );
        let sklearn_auc = num(&reference["sklearn_auc"]);
        // With bands, genuine scores lie among binned impostor scores.
        assert!(
            (v.auc - sklearn_auc).abs() <= 1e-12 && v.auc_exact || banded && !v.auc_exact,
            "{precision}: AUC {} vs scikit-learn {sklearn_auc}",
            v.auc
        );
        for (got, want) in v.operating_points.iter().zip(bob) {
            let target = num(&want["target"]);
            assert_eq!(got.fmr_target, target);
            assert_eq!(
                (got.threshold, got.false_matches, got.false_non_matches),
                (
                    num(&want["threshold"]),
                    want["false_matches"].as_u64().unwrap(),
                    want["false_non_matches"].as_u64().unwrap()
                ),
                "{precision}: FMR {target}"
            );
            // The same counts; bob divides in numpy (the last bit may differ).
            for (rate, anchor) in [(got.fmr, &want["fmr"]), (got.fnmr, &want["fnmr"])] {
                assert!(
                    (rate - num(anchor)).abs() <= 1e-15,
                    "{precision}: FMR {target}"
                );
            }
            assert!(got.exact, "{precision}: FMR {target} marked inexact");
        }
        // With bands the EER lies among binned scores here, and says so.
        assert_eq!(v.eer_exact, !banded, "{precision}: EER");
        if v.eer_exact {
            let pyeer = &reference["pyeer"];
            assert_eq!(
                (v.eer_low, v.eer_high, v.eer_threshold),
                (
                    num(&pyeer["eer_low"]),
                    num(&pyeer["eer_high"]),
                    num(&pyeer["eer_threshold"])
                ),
                "{precision}: EER"
            );
        }
    }
}

/// `--rank R`: FNIR(N, R, T) at the same thresholds, never above rank 1's
/// (a mate found within R is a hit where rank 1 may have missed it).
#[test]
fn fnir_at_rank_r() {
    let tmp = tempfile::tempdir().unwrap();
    let (emb, labels) = dataset(tmp.path());
    let run = |rank: &str| {
        let out = tmp.path().join(format!("rank{rank}"));
        ok(&facekit(&[
            "--embeddings",
            p(&emb),
            "--labels",
            p(&labels),
            "--rank",
            rank,
            "--bootstrap",
            "0",
            "--quiet",
            "--out",
            p(&out),
        ]));
        evaldir::read_summary(&out).unwrap().identification.unwrap()
    };
    let (one, three) = (run("1"), run("3"));
    assert_eq!((one.fnir_rank, three.fnir_rank), (1, 3));
    for (a, b) in one.operating_points.iter().zip(&three.operating_points) {
        assert_eq!(a.threshold, b.threshold);
        assert!(
            b.fnir <= a.fnir,
            "rank 3 FNIR {} above rank 1's {}",
            b.fnir,
            a.fnir
        );
    }
    // A bad argument: exit 2, naming the flag.
    let zero = facekit(&["--scores", "x.csv", "--rank", "0"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--rank"));
}
