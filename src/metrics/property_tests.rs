//! Properties of the metrics on small random score sets, against brute
//! force.

use proptest::prelude::*;

use super::bootstrap::{miss_rate_intervals, SubjectScore};
use super::verification::*;
use super::ScoreCounts;
use crate::compare::HistogramSpec;

/// Scores on a coarse grid so ties within and across classes are common.
fn scores(max: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-40i32..=40).prop_map(|k| k as f32 / 40.0), 1..max)
}

fn brute_at_or_above(s: &[f32], t: f64) -> u64 {
    s.iter().filter(|&&x| x as f64 >= t).count() as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn radix_sorted_counts_equal_a_comparison_sort(s in prop::collection::vec(any::<f32>().prop_filter("not NaN", |x| !x.is_nan()), 0..2000)) {
        let c = ScoreCounts::from_scores(s.clone());
        let mut sorted = s.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let mut values: Vec<f64> = sorted.iter().map(|&x| x as f64).collect();
        values.dedup();
        prop_assert_eq!(c.values(), &values[..]);
        prop_assert_eq!(c.total(), s.len() as u64);
        for (k, &v) in values.iter().enumerate() {
            prop_assert_eq!(c.at_or_above_index(k), brute_at_or_above(&s, v));
        }
    }

    #[test]
    fn every_vertex_has_the_brute_force_counts(g in scores(60), i in scores(300)) {
        let (gc, ic) = (ScoreCounts::from_scores(g.clone()), ScoreCounts::from_scores(i.clone()));
        let vertices: Vec<RocPoint> = roc_vertices(&gc, &ic).collect();
        let mut distinct: Vec<f64> = g.iter().chain(&i).map(|&x| x as f64).collect();
        distinct.sort_by(|a, b| b.total_cmp(a));
        distinct.dedup();
        prop_assert_eq!(vertices.len(), distinct.len() + 1);
        prop_assert!(vertices[0].threshold > distinct[0]);
        for v in &vertices {
            prop_assert_eq!(v.false_matches, brute_at_or_above(&i, v.threshold));
            prop_assert_eq!(v.false_non_matches, g.len() as u64 - brute_at_or_above(&g, v.threshold));
        }
        for (v, &t) in vertices[1..].iter().zip(&distinct) {
            prop_assert_eq!(v.threshold, t);
        }
    }

    #[test]
    fn auc_is_the_mann_whitney_statistic(g in scores(60), i in scores(300)) {
        let (gc, ic) = (ScoreCounts::from_scores(g.clone()), ScoreCounts::from_scores(i.clone()));
        let mut twice_u = 0u64;
        for &x in &g {
            for &y in &i {
                twice_u += if x > y { 2 } else if x == y { 1 } else { 0 };
            }
        }
        let want = twice_u as f64 / (2.0 * g.len() as f64 * i.len() as f64);
        let got = CurveSummary::compute(&gc, &ic).unwrap().auc;
        prop_assert!((got - want).abs() < 1e-12, "auc {} vs {}", got, want);
    }

    #[test]
    fn fmr_point_is_the_lowest_impostor_score_within_the_target(g in scores(60), i in scores(300), target in 0.0f64..1.0) {
        let (gc, ic) = (ScoreCounts::from_scores(g.clone()), ScoreCounts::from_scores(i.clone()));
        let p = fmr_point(&gc, &ic, target).unwrap();
        let n = i.len() as f64;
        prop_assert_eq!(p.false_matches, brute_at_or_above(&i, p.threshold));
        prop_assert_eq!(p.false_non_matches, g.len() as u64 - brute_at_or_above(&g, p.threshold));
        prop_assert!(p.fmr <= target);
        // No lower impostor score keeps the FMR within the target.
        for &y in &i {
            let y = y as f64;
            if y < p.threshold {
                prop_assert!(brute_at_or_above(&i, y) as f64 / n > target);
            }
        }
    }

    #[test]
    fn eer_interval_brackets_the_crossing(g in scores(60), i in scores(300)) {
        let (gc, ic) = (ScoreCounts::from_scores(g.clone()), ScoreCounts::from_scores(i.clone()));
        let e = CurveSummary::compute(&gc, &ic).unwrap().eer;
        prop_assert!(e.low <= e.high);
        prop_assert!((e.eer - (e.low + e.high) / 2.0).abs() < 1e-15);
        let fmr = brute_at_or_above(&i, e.threshold) as f64 / i.len() as f64;
        let fnmr = (g.len() as u64 - brute_at_or_above(&g, e.threshold)) as f64 / g.len() as f64;
        prop_assert_eq!((fmr.min(fnmr), fmr.max(fnmr)), (e.low, e.high));
    }

    #[test]
    fn binned_counts_with_everything_in_the_tail_give_the_exact_metrics(g in scores(60), i in scores(300)) {
        let spec = HistogramSpec { bins: 64 };
        let mut hist = vec![0u64; spec.bins as usize];
        for &s in &i {
            hist[spec.bin(s)] += 1;
        }
        let mut tail = i.clone();
        tail.sort_by(|a, b| b.total_cmp(a));
        let binned = ScoreCounts::from_binned(&tail, &hist, spec);
        let exact = ScoreCounts::from_scores(i.clone());
        prop_assert_eq!(&binned, &exact);
        let gc = ScoreCounts::from_scores(g);
        let targets = [0.0, 1e-3, 0.01, 0.1, 0.5, 1.0];
        prop_assert_eq!(verification(&gc, &binned, &targets).unwrap(), verification(&gc, &exact, &targets).unwrap());
    }

    #[test]
    fn bootstrap_intervals_are_seeded_and_bracket_the_rate(
        subjects in prop::collection::vec((0u32..12, -20i32..=20), 1..120),
        seed in any::<u64>(),
    ) {
        let samples: Vec<SubjectScore> = subjects.iter().map(|&(s, k)| SubjectScore { subject: s, score: k as f64 / 20.0 }).collect();
        let thresholds = [-0.5, 0.0, 0.3, 2.0];
        let a = miss_rate_intervals(&samples, &thresholds, 200, seed).unwrap();
        prop_assert_eq!(&a, &miss_rate_intervals(&samples, &thresholds, 200, seed).unwrap());
        for ([lo, hi], &t) in a.iter().zip(&thresholds) {
            prop_assert!(0.0 <= *lo && lo <= hi && *hi <= 1.0);
            if t > 1.0 {
                prop_assert_eq!([*lo, *hi], [1.0, 1.0]);
            }
        }
    }
}
