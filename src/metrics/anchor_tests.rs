//! The metrics against values the anchor tools computed
//! (`scripts/fixtures/metrics_reference.py` → `tests/fixtures/metrics/`):
//! scikit-learn, bob.measure 6.1.1, pyeer 0.5.6, insightface's lookups,
//! numpy brute force and scipy.

use serde_json::Value;

use super::bootstrap::clopper_pearson;
use super::identification::{identification, search_results};
use super::kfold::{insightface_kfold, squared_l2_of_cosine};
use super::verification::*;
use super::ScoreCounts;
use crate::compare::{Candidate, ProbeResult};

const TOL: f64 = 1e-12;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/metrics/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture writes every float as its repr string, parsed exactly here.
fn num(v: &Value) -> f64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{v} is not a float string"));
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("count"))
        .collect()
}

fn counts(v: &Value) -> ScoreCounts {
    // The fixture holds float32 values widened to float64: narrowing is exact.
    ScoreCounts::from_scores(f64s(v).into_iter().map(|x| x as f32).collect())
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL,
        "{what}: got {got:e}, anchor {want:e}"
    );
}

/// sklearn puts `inf` above every score; facekit the next float above the
/// highest score.
fn check_curve(name: &str, label: &str, got: &[RocPoint], want: &Value) {
    let thresholds = f64s(&want["thresholds"]);
    let fm = u64s(&want["false_matches"]);
    let fnm = u64s(&want["false_non_matches"]);
    assert_eq!(got.len(), thresholds.len(), "{name} {label}: vertex count");
    assert_eq!(thresholds[0], f64::INFINITY);
    assert_eq!(
        got[0].threshold,
        thresholds[1].next_up(),
        "{name} {label}: top vertex"
    );
    for (k, v) in got.iter().enumerate() {
        if k > 0 {
            assert_eq!(v.threshold, thresholds[k], "{name} {label}: threshold {k}");
        }
        assert_eq!(
            (v.false_matches, v.false_non_matches),
            (fm[k], fnm[k]),
            "{name} {label}: counts at {k}"
        );
    }
}

const VERIFICATION_SETS: [&str; 5] = [
    "continuous",
    "coarse",
    "tiny",
    "small_impostor",
    "all_equal",
];

#[test]
fn curve_and_auc_match_scikit_learn() {
    for name in VERIFICATION_SETS {
        let f = fixture(name);
        let (g, i) = (counts(&f["genuine"]), counts(&f["impostor"]));
        let full: Vec<RocPoint> = roc_vertices(&g, &i).collect();
        check_curve(name, "full", &full, &f["sklearn_roc_full"]);
        let sklearn_drop = drop_intermediate(full.iter().copied());
        check_curve(
            name,
            "drop_intermediate",
            &sklearn_drop,
            &f["sklearn_roc_drop"],
        );
        let curve = CurveSummary::compute(&g, &i).unwrap();
        // facekit's decimation keeps a subset of scikit-learn's vertices.
        assert!(
            curve.roc.iter().all(|v| sklearn_drop.contains(v)),
            "{name}: decimation"
        );
        close(&format!("{name} auc"), curve.auc, num(&f["sklearn_auc"]));
    }
}

#[test]
fn operating_points_and_eer_match_bob_measure() {
    for name in VERIFICATION_SETS {
        let f = fixture(name);
        let (g, i) = (counts(&f["genuine"]), counts(&f["impostor"]));
        for p in f["bob"]["far_points"].as_array().unwrap() {
            let target = num(&p["target"]);
            let got = fmr_point(&g, &i, target).unwrap();
            let what = format!("{name} far_threshold({target})");
            assert_eq!(got.threshold, num(&p["threshold"]), "{what}");
            close(&format!("{what} fmr"), got.fmr, num(&p["fmr"]));
            close(&format!("{what} fnmr"), got.fnmr, num(&p["fnmr"]));
            assert!(got.fmr <= target, "{what}: realised FMR above the target");
            assert_eq!(got.false_matches as f64 / i.total() as f64, got.fmr);
        }
        let eer = CurveSummary::compute(&g, &i).unwrap().eer;
        assert_eq!(
            eer.bob_threshold,
            num(&f["bob"]["eer_threshold"]),
            "{name} bob eer_threshold"
        );
        close(
            &format!("{name} bob eer"),
            eer.bob_eer,
            num(&f["bob"]["eer"]),
        );
    }
}

#[test]
fn eer_interval_matches_pyeer() {
    for name in VERIFICATION_SETS {
        let f = fixture(name);
        let (g, i) = (counts(&f["genuine"]), counts(&f["impostor"]));
        let eer = CurveSummary::compute(&g, &i).unwrap().eer;
        let py = &f["pyeer"];
        if name == "all_equal" {
            // pyeer's curve has no vertex above every score, so FMR and FNMR
            // never cross on it: it warns and reports 1. facekit's curve
            // has that vertex: the interval is the whole [0, 1], EER 0.5 at
            // the score itself.
            assert_eq!(num(&py["eer"]), 1.0);
            assert_eq!(
                (eer.low, eer.high, eer.eer, eer.threshold),
                (0.0, 1.0, 0.5, 0.5)
            );
            continue;
        }
        close(&format!("{name} eer"), eer.eer, num(&py["eer"]));
        close(&format!("{name} eer_low"), eer.low, num(&py["eer_low"]));
        close(&format!("{name} eer_high"), eer.high, num(&py["eer_high"]));
        assert_eq!(
            eer.threshold,
            num(&py["eer_threshold"]),
            "{name} eer threshold"
        );
    }
}

#[test]
fn nearest_fmr_matches_pyeer_and_insightface() {
    for name in VERIFICATION_SETS {
        let f = fixture(name);
        let (g, i) = (counts(&f["genuine"]), counts(&f["impostor"]));
        let top = g.values()[0].max(i.values()[0]).next_up();
        for (rule, key) in [
            (NearestRule::Pyeer, &f["pyeer"]["nearest"]),
            (NearestRule::InsightfaceIjb, &f["insightface_ijb"]),
        ] {
            for p in key.as_array().unwrap() {
                let target = num(&p["target"]);
                let got = nearest_fmr_point(&g, &i, target, rule).unwrap();
                let what = format!("{name} {rule:?} nearest({target})");
                let want = match num(&p["threshold"]) {
                    t if t == f64::INFINITY => top,
                    t => t,
                };
                assert_eq!(got.threshold, want, "{what}");
                close(&format!("{what} fmr"), got.fmr, num(&p["fmr"]));
                close(&format!("{what} fnmr"), got.fnmr, num(&p["fnmr"]));
            }
        }
    }
}

#[test]
fn moments_and_d_prime_match_pyeer() {
    for name in VERIFICATION_SETS {
        let f = fixture(name);
        let (g, i) = (counts(&f["genuine"]), counts(&f["impostor"]));
        let report = verification(&g, &i, &[1e-3]).unwrap().summary;
        let py = &f["pyeer"];
        close(
            &format!("{name} gmean"),
            report.genuine_mean,
            num(&py["gmean"]),
        );
        close(
            &format!("{name} gstd"),
            report.genuine_std,
            num(&py["gstd"]),
        );
        close(
            &format!("{name} imean"),
            report.impostor_mean,
            num(&py["imean"]),
        );
        close(
            &format!("{name} istd"),
            report.impostor_std,
            num(&py["istd"]),
        );
        close(&format!("{name} d'"), report.d_prime, num(&py["d_prime"]));
    }
}

#[test]
fn small_impostor_set_warns_below_its_resolution() {
    let f = fixture("small_impostor");
    let (g, i) = (counts(&f["genuine"]), counts(&f["impostor"]));
    let below = fmr_point(&g, &i, 1e-3).unwrap();
    assert_eq!(below.false_matches, 0);
    assert_eq!(below.threshold, i.values()[0].next_up());
    assert!(below.warning.as_deref().unwrap().contains("below 1/700"));
    let rule_of_3 = fmr_point(&g, &i, 2e-3).unwrap();
    assert!(rule_of_3.warning.as_deref().unwrap().contains("rule of 3"));
    assert_eq!(fmr_point(&g, &i, 1e-2).unwrap().warning, None);
    // The nearest-FMR lookup overshoots the same target.
    let nearest = nearest_fmr_point(&g, &i, 1e-3, NearestRule::Pyeer).unwrap();
    assert!(nearest.fmr > 1e-3);
}

/// Probe results the way an engine defines them, by a naive loop over the
/// fixture's score matrix.
fn naive_probe_results(
    scores: &[Vec<f64>],
    probe_labels: &[u64],
    gallery_labels: &[u64],
    top_k: usize,
) -> Vec<ProbeResult> {
    scores
        .iter()
        .zip(probe_labels)
        .map(|(row, &label)| {
            let row: Vec<f32> = row.iter().map(|&s| s as f32).collect();
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let top = order[..top_k]
                .iter()
                .map(|&j| Candidate {
                    index: j as u32,
                    score: row[j],
                })
                .collect();
            let mate_score = row
                .iter()
                .zip(gallery_labels)
                .filter(|(_, &l)| l == label)
                .map(|(&s, _)| s)
                .reduce(f32::max);
            let mate_rank = mate_score.map(|m| {
                1 + row
                    .iter()
                    .zip(gallery_labels)
                    .filter(|(&s, &l)| l != label && s >= m)
                    .count() as u64
            });
            ProbeResult {
                top,
                mate_score,
                mate_rank,
            }
        })
        .collect()
}

#[test]
fn open_set_matches_numpy_brute_force() {
    let f = fixture("open_set");
    let scores: Vec<Vec<f64>> = f["scores"].as_array().unwrap().iter().map(f64s).collect();
    let probes = naive_probe_results(
        &scores,
        &u64s(&f["probe_labels"]),
        &u64s(&f["gallery_labels"]),
        5,
    );
    let points = f["points"].as_array().unwrap();
    let targets: Vec<f64> = points.iter().map(|p| num(&p["target"])).collect();
    let id = identification(&probes, 45, 30, &targets, 10, 1).unwrap();
    check_open_set(&id, &f);
}

/// An identification block against the open-set fixture's brute force.
fn check_open_set(id: &crate::evaldir::Identification, f: &Value) {
    assert_eq!(id.mated_count, f["mated_count"].as_u64().unwrap());
    assert_eq!(id.non_mated_count, f["non_mated_count"].as_u64().unwrap());
    close("rank1", id.rank1, num(&f["rank1"]));
    for (r, (&got, want)) in id.cmc.iter().zip(f64s(&f["cmc"])).enumerate() {
        close(&format!("cmc rank {}", r + 1), got, want);
    }
    for (got, want) in id
        .operating_points
        .iter()
        .zip(f["points"].as_array().unwrap())
    {
        let what = format!("fpir target {}", got.fpir_target);
        assert_eq!(got.threshold, num(&want["threshold"]), "{what}");
        close(&format!("{what} fpir"), got.fpir, num(&want["fpir"]));
        close(&format!("{what} fnir"), got.fnir, num(&want["fnir"]));
        assert!(got.fpir <= got.fpir_target);
    }
}

/// The same searches written as a bob.bio.base 5-column score file
/// (`claimed_id model_label real_id test_label score`, one row per probe and
/// gallery row), read back and grouped by probe: the same CMC, FPIR and
/// FNIR as numpy's brute force.
#[test]
fn bob_five_column_searches_match_numpy_brute_force() {
    use std::fmt::Write as _;
    let f = fixture("open_set");
    let scores: Vec<Vec<f64>> = f["scores"].as_array().unwrap().iter().map(f64s).collect();
    let (probe_labels, gallery_labels) = (u64s(&f["probe_labels"]), u64s(&f["gallery_labels"]));
    let mut text = String::new();
    for (p, row) in scores.iter().enumerate() {
        for (g, &score) in row.iter().enumerate() {
            let _ = writeln!(
                text,
                "id{} model{g} id{} probe{p} {score}",
                gallery_labels[g], probe_labels[p]
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scores.txt");
    std::fs::write(&path, text).unwrap();
    let read = crate::evalinput::scores::read_scores(&path).unwrap();
    assert_eq!(read.format, "bob 5-column");
    assert_eq!((read.models, read.gallery_identities), (45, 30));
    let points = f["points"].as_array().unwrap();
    let targets: Vec<f64> = points.iter().map(|p| num(&p["target"])).collect();
    let probes = search_results(&read.searches, 5);
    let id = identification(
        &probes,
        read.models,
        read.gallery_identities,
        &targets,
        10,
        1,
    )
    .unwrap();
    check_open_set(&id, &f);
}

#[test]
fn clopper_pearson_matches_scipy() {
    let f = fixture("clopper_pearson");
    for c in f["cases"].as_array().unwrap() {
        let (k, n) = (c["errors"].as_u64().unwrap(), c["trials"].as_u64().unwrap());
        let [lo, hi] = clopper_pearson(k, n, 0.95);
        for (got, want) in [(lo, num(&c["low"])), (hi, num(&c["high"]))] {
            // Relative: the bounds go down to 1e-12 at 10^10 trials. The
            // fixture's values are exact binomial-sum solutions up to 2000
            // errors (scipy is 1e-4 off at 999 in 10^8), scipy's above.
            assert!(
                (got - want).abs() <= 1e-10 * want,
                "clopper_pearson({k}, {n}): got {got:e}, reference {want:e}"
            );
        }
    }
}

#[test]
fn kfold_matches_insightface_protocol() {
    for name in ["kfold_continuous", "kfold_grid"] {
        let f = fixture(name);
        let same: Vec<bool> = f["same"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_bool().unwrap())
            .collect();
        let dist = match f.get("cosine") {
            Some(cos) => f64s(cos).into_iter().map(squared_l2_of_cosine).collect(),
            None => f64s(&f["squared_l2"]),
        };
        assert!(dist == f64s(&f["squared_l2"]), "{name}: distances differ");
        let got = insightface_kfold(&dist, &same, 10).unwrap();
        close(&format!("{name} mean"), got.mean, num(&f["mean"]));
        close(&format!("{name} std"), got.std, num(&f["std"]));
        assert_eq!(
            got.thresholds_squared_l2,
            f64s(&f["thresholds"]),
            "{name}: fold thresholds"
        );
    }
}
