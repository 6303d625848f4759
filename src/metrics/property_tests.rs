//! Properties of the metrics on small random score sets, against brute
//! force.

use proptest::prelude::*;

use super::bootstrap::{miss_rate_intervals, SubjectScore};
use super::verification::*;
use super::ScoreCounts;
use crate::compare::{HistogramSpec, ScoreBand};

/// Scores on a coarse grid so ties within and across classes are common.
fn scores(max: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-40i32..=40).prop_map(|k| k as f32 / 40.0), 1..max)
}

/// FMR targets from the top of the impostor scores to the bottom.
const TARGETS: [f64; 9] = [0.0, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.5, 0.9, 1.0];

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

    /// Impostor scores on the edges of 64 bins and inside them, many tied,
    /// with the exact tail cut anywhere (an engine may cut it inside a run
    /// of ties) and a band of bins held exactly anywhere among them: every
    /// figure marked exact is the exact scores' one, and a tail or a band
    /// holding every score marks everything exact. The bins are those of a
    /// 4,096-bin histogram from 0.5 up: a band counts every f32 value of
    /// its bins, 8,192 a bin there (in the 64 bins of [-1, 1] a band would
    /// span up to 10^9, beyond what engines place, `MAX_BAND_VALUES`).
    #[test]
    fn figures_marked_exact_are_the_exact_ones(
        g in scores(60),
        i in prop::collection::vec((0i32..64, 0i32..3).prop_map(|(k, sub)| 0.5 + k as f32 / 2048.0 + sub as f32 / 8192.0), 1..400),
        keep in 0usize..420,
        band in prop::option::of((0u32..64, 1u32..70)),
    ) {
        let spec = HistogramSpec { bins: 4096 };
        let first = spec.bin(0.5) as u32;
        let mut hist = vec![0u64; spec.bins as usize];
        for &s in &i {
            hist[spec.bin(s)] += 1;
        }
        let mut tail = i.clone();
        tail.sort_by(|a, b| b.total_cmp(a));
        tail.truncate(keep);
        let bands: Vec<ScoreBand> = band
            .map(|(low, len)| ScoreBand { low: first + low, high: first + (low + len).min(64) })
            .into_iter()
            .collect();
        let band_counts = crate::compare::band_counts_of(&bands, spec, &i);
        let binned_counts = ScoreCounts::from_binned(&tail, &band_counts, &hist, spec);
        let exact_counts = ScoreCounts::from_scores(i.clone());
        for &t in binned_counts.values() {
            prop_assert_eq!(binned_counts.at_or_above(t), exact_counts.at_or_above(t));
        }
        // The genuine scores among the impostors'.
        let gc = ScoreCounts::from_scores(g.iter().map(|&s| 0.515 + s * 0.016).collect());
        let binned = verification(&gc, &binned_counts, &TARGETS).unwrap();
        let exact = verification(&gc, &exact_counts, &TARGETS).unwrap();
        let (b, e) = (&binned.summary, &exact.summary);
        for (pb, pe) in b.operating_points.iter().zip(&e.operating_points) {
            prop_assert!(pe.exact);
            if pb.exact {
                prop_assert_eq!(pb, pe);
            }
        }
        if b.auc_exact {
            prop_assert_eq!(b.auc, e.auc);
        }
        if b.eer_exact {
            prop_assert_eq!((b.eer_low, b.eer_high, b.eer_threshold), (e.eer_low, e.eer_high, e.eer_threshold));
            prop_assert_eq!(binned.eer, exact.eer);
        }
        if keep >= i.len() || band_counts.iter().flat_map(|b| b.runs()).map(|r| r.1).sum::<u64>() == i.len() as u64 {
            prop_assert_eq!(&binned_counts, &exact_counts);
            prop_assert_eq!(&binned, &exact);
        }
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

/// bob.measure `_minimizing_threshold(neg, pos, "absolute-difference")`,
/// transcribed loop for loop, with the rates compared exactly
/// (|FA·P − FR·N|) instead of bob's float accumulation.
fn bob_eer_threshold_reference(neg: &[f32], pos: &[f32]) -> f64 {
    let mut neg: Vec<f64> = neg.iter().map(|&x| x as f64).collect();
    let mut pos: Vec<f64> = pos.iter().map(|&x| x as f64).collect();
    neg.sort_by(f64::total_cmp);
    pos.sort_by(f64::total_cmp);
    let (n, p) = (neg.len() as i128, pos.len() as i128);
    let (mut fa, mut fr) = (n, 0i128); // far = fa / n, frr = fr / p
    let crit = |fa: i128, fr: i128| (fa * p - fr * n).abs();
    let mut min_pred = i128::MAX;
    let mut min_thr = f64::NAN;
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut thr = neg[0].min(pos[0]);
    while pi < pos.len() && ni < neg.len() {
        let pred = crit(fa, fr);
        if pred <= min_pred {
            min_pred = pred;
            min_thr = thr;
        }
        if pos[pi] >= neg[ni] {
            thr = neg[ni];
            ni += 1;
            fa -= 1;
        } else {
            thr = pos[pi];
            pi += 1;
            fr += 1;
        }
        while ni < neg.len() && thr == neg[ni] {
            ni += 1;
            fa -= 1;
        }
        while pi < pos.len() && thr == pos[pi] {
            pi += 1;
            fr += 1;
        }
        if ni < neg.len() || pi < pos.len() {
            if ni < neg.len() && pi < pos.len() {
                thr += neg[ni].min(pos[pi]);
            } else if ni < neg.len() {
                thr += neg[ni];
            } else {
                thr += pos[pi];
            }
            thr /= 2.0;
        }
    }
    if crit(fa, fr) < min_pred {
        min_pred = crit(fa, fr);
        min_thr = thr;
    }
    if (ni < neg.len() || pi < pos.len()) && crit(0, p) < min_pred {
        min_thr = if ni < neg.len() {
            neg[neg.len() - 1].next_up()
        } else {
            pos[pos.len() - 1].next_up()
        };
    }
    min_thr
}

/// pyeer `get_eer_values` over every distinct score (ascending), exact.
/// `None` where pyeer warns that the curves never cross.
fn pyeer_eer_reference(g: &[f32], i: &[f32]) -> Option<(f64, f64, f64)> {
    let mut values: Vec<f64> = g.iter().chain(i).map(|&x| x as f64).collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    let (p, n) = (g.len() as u128, i.len() as u128);
    let fm = |t: f64| brute_at_or_above(i, t) as u128;
    let fnm = |t: f64| g.len() as u128 - brute_at_or_above(g, t) as u128;
    let t2 = values.iter().position(|&t| fm(t) * p <= fnm(t) * n)?;
    let t1 = if fm(values[t2]) * p != fnm(values[t2]) * n && t2 != 0 {
        t2 - 1
    } else {
        t2
    };
    let (a, b) = (values[t1], values[t2]);
    let rates = |t: f64| (fm(t) as f64 / n as f64, fnm(t) as f64 / p as f64);
    if fm(a) * p + fnm(a) * n <= fm(b) * p + fnm(b) * n {
        let (fmr, fnmr) = rates(a);
        Some((fnmr, fmr, a))
    } else {
        let (fmr, fnmr) = rates(b);
        Some((fmr, fnmr, b))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bob_eer_threshold_matches_its_loop(g in scores(40), i in scores(120)) {
        let (gc, ic) = (ScoreCounts::from_scores(g.clone()), ScoreCounts::from_scores(i.clone()));
        let e = CurveSummary::compute(&gc, &ic).unwrap().eer;
        prop_assert_eq!(e.bob_threshold, bob_eer_threshold_reference(&i, &g));
    }

    #[test]
    fn eer_interval_matches_pyeer_where_the_curves_cross(g in scores(40), i in scores(120)) {
        let (gc, ic) = (ScoreCounts::from_scores(g.clone()), ScoreCounts::from_scores(i.clone()));
        let e = CurveSummary::compute(&gc, &ic).unwrap().eer;
        if let Some((low, high, t)) = pyeer_eer_reference(&g, &i) {
            prop_assert_eq!((e.low, e.high, e.threshold), (low, high, t));
        } else {
            // Only the vertex above every score has FMR <= FNMR.
            prop_assert!(e.threshold >= gc.values()[0].max(ic.values()[0]));
        }
    }

    #[test]
    fn the_decimated_curve_keeps_every_vertex_on_its_polyline(g in scores(40), i in scores(200)) {
        let (gc, ic) = (ScoreCounts::from_scores(g), ScoreCounts::from_scores(i));
        let full: Vec<RocPoint> = roc_vertices(&gc, &ic).collect();
        let roc = CurveSummary::compute(&gc, &ic).unwrap().roc;
        prop_assert_eq!(roc.first(), full.first());
        prop_assert_eq!(roc.last(), full.last());
        for v in &roc {
            prop_assert!(full.contains(v));
        }
        // Each full vertex lies on the segment of the decimated curve that
        // spans its false-match count and false-non-match count.
        for v in &full {
            let on = roc.windows(2).any(|w| {
                let (a, b) = (&w[0], &w[1]);
                let within = a.false_matches <= v.false_matches && v.false_matches <= b.false_matches
                    && b.false_non_matches <= v.false_non_matches && v.false_non_matches <= a.false_non_matches;
                let cross = (b.false_matches as i128 - a.false_matches as i128) * (v.false_non_matches as i128 - a.false_non_matches as i128)
                    - (v.false_matches as i128 - a.false_matches as i128) * (b.false_non_matches as i128 - a.false_non_matches as i128);
                within && cross == 0
            });
            prop_assert!(on, "vertex {:?} off the decimated curve", v);
        }
        prop_assert_eq!(drop_collinear(full.iter().copied()), roc);
    }
}
