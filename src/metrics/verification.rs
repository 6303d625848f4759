//! Verification (1:1) metrics from genuine and impostor [`ScoreCounts`]: the
//! exact ROC/DET step curve, AUC, EER, FNMR at FMR targets and d′.
//!
//! facekit's definitions (accept iff score >= threshold throughout):
//! * the **curve** has one vertex per distinct score value, thresholds
//!   descending, plus a first vertex just above every score (FMR 0, FNMR 1),
//!   as scikit-learn's `roc_curve(drop_intermediate=False)` (which puts
//!   `inf` there);
//! * **AUC** is the exact area under that curve, ties counted half
//!   (= scikit-learn `roc_auc_score`, = Mann–Whitney U / (n⁺ n⁻));
//! * **EER** is FVC2000's interval on the step curve (as pyeer): the two
//!   vertices where FMR − FNMR changes sign, the one with the smaller
//!   FMR + FNMR, `[eer_low, eer_high]` its two rates, `eer` their midpoint,
//!   the threshold that vertex's score. bob.measure's `eer` (the HTER at its
//!   midpoint threshold) comes along as a compatibility figure;
//! * **FNMR at FMR x** uses bob.measure's `far_threshold`: the lowest
//!   impostor score t with FMR(t) <= x, so the realised FMR never exceeds the
//!   target; a target below 1/N gives FMR 0 at a threshold just above the
//!   highest impostor score. The nearest-FMR lookup of pyeer and insightface
//!   (which can overshoot) is [`nearest_fmr_point`].
//!
//! * **roc.csv** holds the curve without collinear vertices
//!   ([`drop_collinear`]); scikit-learn's `drop_intermediate` is
//!   [`drop_intermediate`], for its compatibility lookups.
//!
//! Counts are integers until the final division. Nothing here walks the
//! impostor values one by one except the moments (one pass) and the
//! compatibility lookup [`nearest_fmr_point`]: FMR − FNMR is monotone in the
//! threshold, so the EERs are binary searches, and the curve only turns at
//! genuine values, so it costs O(genuine · log impostor).

use rayon::prelude::*;

use super::{MetricsError, ScoreCounts};
use crate::evaldir::{cosine_to_l2, FmrPoint, RocRow, Verification};

/// One vertex of the empirical step curve: at `threshold`, `false_matches`
/// impostor scores are >= it and `false_non_matches` genuine scores are below
/// it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    pub threshold: f64,
    pub false_matches: u64,
    pub false_non_matches: u64,
}

/// Every vertex of the step curve, thresholds descending: first a vertex
/// just above every score (`next_up` of the highest; no false matches,
/// every genuine score rejected), then one per distinct value of either
/// class. See [`roc_vertices`].
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct RocVertices<'a> {
    genuine: &'a ScoreCounts,
    impostor: &'a ScoreCounts,
    g: usize,
    i: usize,
    false_matches: u64,
    genuine_accepted: u64,
    started: bool,
}

/// The step curve of `genuine` against `impostor`, lazily (a 10^7-value
/// curve is never stored; [`drop_intermediate`] keeps what a chart needs).
#[cfg(test)]
pub(crate) fn roc_vertices<'a>(
    genuine: &'a ScoreCounts,
    impostor: &'a ScoreCounts,
) -> RocVertices<'a> {
    RocVertices {
        genuine,
        impostor,
        g: 0,
        i: 0,
        false_matches: 0,
        genuine_accepted: 0,
        started: false,
    }
}

#[cfg(test)]
impl Iterator for RocVertices<'_> {
    type Item = RocPoint;

    #[inline]
    fn next(&mut self) -> Option<RocPoint> {
        let gv = self.genuine.values();
        let iv = self.impostor.values();
        if !self.started {
            self.started = true;
            let top = match (gv.first(), iv.first()) {
                (Some(&a), Some(&b)) => a.max(b),
                (Some(&a), None) | (None, Some(&a)) => a,
                (None, None) => f64::NEG_INFINITY,
            };
            return Some(RocPoint {
                threshold: top.next_up(),
                false_matches: 0,
                false_non_matches: self.genuine.total(),
            });
        }
        let g = gv.get(self.g).copied();
        let i = iv.get(self.i).copied();
        let v = match (g, i) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        if g == Some(v) {
            self.genuine_accepted = self.genuine.at_or_above_index(self.g);
            self.g += 1;
        }
        if i == Some(v) {
            self.false_matches = self.impostor.at_or_above_index(self.i);
            self.i += 1;
        }
        Some(RocPoint {
            threshold: v,
            false_matches: self.false_matches,
            false_non_matches: self.genuine.total() - self.genuine_accepted,
        })
    }
}

/// The curve without its intermediate collinear vertices, with
/// scikit-learn's `drop_intermediate=True` semantics: the first vertex
/// (above every score) is kept, and among the rest a vertex is dropped when
/// the step into it equals the step out of it in both counts (the second
/// differences of false matches and true matches are both zero); the first
/// and last are always kept. AUC and the drawn shape are unchanged.
#[cfg(test)]
pub(crate) fn drop_intermediate(vertices: impl IntoIterator<Item = RocPoint>) -> Vec<RocPoint> {
    let step = |a: &RocPoint, b: &RocPoint| {
        (
            b.false_matches - a.false_matches,
            a.false_non_matches - b.false_non_matches,
        )
    };
    let mut it = vertices.into_iter();
    let mut out = Vec::new();
    let Some(top) = it.next() else { return out };
    out.push(top);
    let Some(mut prev) = it.next() else {
        return out;
    };
    out.push(prev);
    let Some(mut cur) = it.next() else { return out };
    for next in it {
        if step(&prev, &cur) != step(&cur, &next) {
            out.push(cur);
        }
        prev = cur;
        cur = next;
    }
    out.push(cur);
    out
}

/// The equal error rate, facekit's and bob.measure's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eer {
    /// The midpoint of `low` and `high`.
    pub eer: f64,
    /// FVC2000's interval on the step curve (pyeer's `eer_low`, `eer_high`).
    pub low: f64,
    pub high: f64,
    /// The score of the EER vertex (a real score, or just above the highest
    /// score when the curves cross only there).
    pub threshold: f64,
    /// bob.measure `eer`: (FMR + FNMR) / 2 at bob's `eer_threshold`.
    pub bob_eer: f64,
    /// bob.measure `eer_threshold`: among the midpoints between consecutive
    /// distinct scores (and the lowest score), the one minimising
    /// |FMR − FNMR|; ties go to the higher threshold. facekit compares the
    /// rates exactly, where bob accumulates them in floating point, so on an
    /// exact tie the two may pick different candidates.
    pub bob_threshold: f64,
}

/// What the step curve gives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CurveSummary {
    pub genuine_count: u64,
    pub impostor_count: u64,
    /// Exact AUC, ties counted half.
    pub auc: f64,
    pub eer: Eer,
    /// The curve after [`drop_collinear`], for `roc.csv` and charts.
    pub roc: Vec<RocPoint>,
    /// Whether `auc` is what the exact scores give (see
    /// [`ScoreCounts::exact_from`]).
    pub auc_exact: bool,
    /// Whether the EER (both definitions) is what the exact scores give.
    pub eer_exact: bool,
}

/// Counts at any threshold, and the union of both classes' distinct values.
struct Curve<'a> {
    genuine: &'a ScoreCounts,
    impostor: &'a ScoreCounts,
    p: u64,
    n: u64,
}

impl Curve<'_> {
    fn at(&self, threshold: f64) -> RocPoint {
        RocPoint {
            threshold,
            false_matches: self.impostor.at_or_above(threshold),
            false_non_matches: self.genuine.below(threshold),
        }
    }

    /// FMR − FNMR scaled by N·P: strictly increasing as the threshold falls.
    fn gap(&self, v: &RocPoint) -> i128 {
        (v.false_matches as i128) * (self.p as i128)
            - (v.false_non_matches as i128) * (self.n as i128)
    }

    /// FMR + FNMR scaled by N·P.
    fn error_sum(&self, v: &RocPoint) -> u128 {
        (v.false_matches as u128) * (self.p as u128)
            + (v.false_non_matches as u128) * (self.n as u128)
    }

    /// The highest distinct value (of either class) below `t`.
    fn next_below(&self, t: f64) -> Option<f64> {
        let below = |c: &ScoreCounts| {
            c.values()
                .get(c.values().partition_point(|&v| v >= t))
                .copied()
        };
        match (below(self.genuine), below(self.impostor)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The lowest distinct value (of either class) above `t`.
    fn next_above(&self, t: f64) -> Option<f64> {
        let above = |c: &ScoreCounts| {
            let k = c.values().partition_point(|&v| v > t);
            (k > 0).then(|| c.values()[k - 1])
        };
        match (above(self.genuine), above(self.impostor)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The highest value of `class` whose vertex has FMR > FNMR.
    fn first_positive_gap(&self, class: &ScoreCounts) -> Option<f64> {
        let values = class.values();
        let k = values.partition_point(|&v| self.gap(&self.at(v)) <= 0);
        values.get(k).copied()
    }

    /// The vertices where the curve may turn, thresholds descending: the
    /// top vertex, and per genuine value the lowest impostor-only vertex
    /// above it and its own vertex, then the lowest impostor vertex. The
    /// impostor-only vertices left out lie on horizontal runs between
    /// these, so the polyline is the same. O(genuine · log impostor).
    fn turning_candidates(&self) -> Vec<RocPoint> {
        let (gv, iv) = (self.genuine.values(), self.impostor.values());
        let mut out = Vec::with_capacity(2 * gv.len() + 2);
        let top = gv[0].max(iv[0]).next_up();
        out.push(RocPoint {
            threshold: top,
            false_matches: 0,
            false_non_matches: self.p,
        });
        let mut i = 0;
        let mut accepted = 0;
        let mut false_matches = 0;
        for (j, &v) in gv.iter().enumerate() {
            let k = i + iv[i..].partition_point(|&x| x > v);
            if k > i {
                false_matches = self.impostor.at_or_above_index(k - 1);
                out.push(RocPoint {
                    threshold: iv[k - 1],
                    false_matches,
                    false_non_matches: self.p - accepted,
                });
                i = k;
            }
            if iv.get(i) == Some(&v) {
                false_matches = self.impostor.at_or_above_index(i);
                i += 1;
            }
            accepted = self.genuine.at_or_above_index(j);
            out.push(RocPoint {
                threshold: v,
                false_matches,
                false_non_matches: self.p - accepted,
            });
        }
        if i < iv.len() {
            out.push(RocPoint {
                threshold: iv[iv.len() - 1],
                false_matches: self.n,
                false_non_matches: 0,
            });
        }
        out
    }
}

/// The vertices of a step curve without the ones that lie on a straight
/// line between their neighbours (exact integer test), thresholds
/// descending, first and last kept. The polyline, and so the AUC and the
/// drawn curve, is unchanged. This drops more than scikit-learn's
/// [`drop_intermediate`] (which keeps collinear vertices unless the steps
/// on both sides are equal): 10^7 impostor scores leave about 2 rows per
/// distinct genuine score instead of 10^6.
pub(crate) fn drop_collinear(vertices: impl IntoIterator<Item = RocPoint>) -> Vec<RocPoint> {
    let mut out: Vec<RocPoint> = Vec::new();
    for v in vertices {
        while out.len() >= 2 {
            let (a, b) = (&out[out.len() - 2], &out[out.len() - 1]);
            let (dx1, dy1) = (
                b.false_matches as i128 - a.false_matches as i128,
                b.false_non_matches as i128 - a.false_non_matches as i128,
            );
            let (dx2, dy2) = (
                v.false_matches as i128 - b.false_matches as i128,
                v.false_non_matches as i128 - b.false_non_matches as i128,
            );
            if dx1 * dy2 != dx2 * dy1 {
                break;
            }
            out.pop();
        }
        out.push(v);
    }
    out
}

impl CurveSummary {
    /// AUC, both EERs and the decimated curve. The EERs need a handful of
    /// binary searches (FMR − FNMR is monotone in the threshold), the curve
    /// one binary search per genuine value: nothing walks the impostor
    /// values one by one.
    pub(crate) fn compute(
        genuine: &ScoreCounts,
        impostor: &ScoreCounts,
    ) -> Result<CurveSummary, MetricsError> {
        if genuine.is_empty() {
            return Err(MetricsError::NoGenuine);
        }
        if impostor.is_empty() {
            return Err(MetricsError::NoImpostor);
        }
        let c = Curve {
            genuine,
            impostor,
            p: genuine.total(),
            n: impostor.total(),
        };
        let (p, n) = (c.p, c.n);
        let roc = drop_collinear(c.turning_candidates());
        let top = roc[0];
        let lowest = genuine.values()[genuine.values().len() - 1]
            .min(impostor.values()[impostor.values().len() - 1]);

        // AUC: trapezoids in units of 1/(2 N P) over the polyline.
        let area: u128 = roc
            .windows(2)
            .map(|w| {
                let (a, b) = (&w[0], &w[1]);
                ((b.false_matches - a.false_matches) as u128)
                    * ((2 * p - a.false_non_matches - b.false_non_matches) as u128)
            })
            .sum();

        // FVC2000: t1 = the highest vertex with FMR > FNMR, t2 = the vertex
        // above it (the lowest with FMR <= FNMR); without a t1, t2 is the
        // lowest vertex.
        let t1 = match (
            c.first_positive_gap(genuine),
            c.first_positive_gap(impostor),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let (t2, t1) = match t1 {
            Some(t1) => {
                let t1 = c.at(t1);
                (c.next_above(t1.threshold).map_or(top, |t| c.at(t)), t1)
            }
            None => (c.at(lowest), c.at(lowest)),
        };
        let t1 = if c.gap(&t2) == 0 { t2 } else { t1 };
        // Both EER rules read the curve at t1, t2 and the midpoint below
        // t1: exact when no impostor score from the vertex below t1 up to
        // t2 stands at a bin edge.
        let below_t1 = c.next_below(t1.threshold).unwrap_or(t1.threshold);
        let eer_exact = impostor.exact_over(below_t1, t2.threshold);
        // A genuine score in a collapsed range is compared with impostor
        // scores moved to the range's edge: the AUC is exact without any.
        let auc_exact = impostor
            .collapsed()
            .iter()
            .all(|&(low, high)| genuine.at_or_above(low) == genuine.at_or_above(high));
        let fmr = |v: &RocPoint| v.false_matches as f64 / n as f64;
        let fnmr = |v: &RocPoint| v.false_non_matches as f64 / p as f64;
        let (low, high, threshold) = if c.error_sum(&t1) <= c.error_sum(&t2) {
            (fnmr(&t1), fmr(&t1), t1.threshold)
        } else {
            (fmr(&t2), fnmr(&t2), t2.threshold)
        };

        // bob.measure eer_threshold. Its candidates: each vertex with both
        // classes still above it (threshold <= min(max genuine, max
        // impostor)) and a vertex below, at the midpoint to that vertex,
        // minimising |gap| (ties: the higher threshold); then the lowest
        // score with everything accepted (gap N·P) unless a candidate is
        // smaller; then the lowest vertex with one class exhausted, only if
        // strictly smaller. |gap| falls then rises down the curve, so its
        // minimum over the candidates is at t2, t1 or an end of their range.
        let range_top = genuine.values()[0].min(impostor.values()[0]);
        let in_range = |v: &RocPoint| v.threshold <= range_top && v.threshold > lowest;
        let midpoint_below = |v: &RocPoint| {
            (c.next_below(v.threshold).expect("in range: a vertex below") + v.threshold) / 2.0
        };
        let range_bottom = c
            .next_above(lowest)
            .filter(|&t| t <= range_top)
            .map(|t| c.at(t));
        let mut best: Option<(u128, f64)> = None;
        for v in [Some(c.at(range_top)), Some(t2), Some(t1), range_bottom]
            .into_iter()
            .flatten()
        {
            if !in_range(&v) {
                continue;
            }
            let g = c.gap(&v).unsigned_abs();
            let better = match best {
                None => true,
                Some((bg, bt)) => g < bg || (g == bg && v.threshold > bt),
            };
            if better {
                best = Some((g, v.threshold));
            }
        }
        let (best_gap, mut bob_threshold) = match best {
            Some((g, t)) if g <= (n as u128) * (p as u128) => (g, midpoint_below(&c.at(t))),
            _ => ((n as u128) * (p as u128), lowest),
        };
        let exhausted = match c.next_above(range_top) {
            Some(t) => {
                let v = c.at(t);
                (c.gap(&v).unsigned_abs(), (range_top + t) / 2.0)
            }
            // Both classes end at the same highest score: the threshold
            // above everything, whose gap N·P never wins.
            None => ((n as u128) * (p as u128), range_top),
        };
        if exhausted.0 < best_gap {
            bob_threshold = exhausted.1;
        }
        let bob_eer = {
            let v = c.at(bob_threshold);
            (fmr(&v) + fnmr(&v)) / 2.0
        };

        Ok(CurveSummary {
            genuine_count: p,
            impostor_count: n,
            auc: area as f64 / (2.0 * n as f64 * p as f64),
            eer: Eer {
                eer: (low + high) / 2.0,
                low,
                high,
                threshold,
                bob_eer,
                bob_threshold,
            },
            roc,
            auc_exact,
            eer_exact,
        })
    }
}

/// Mean and population standard deviation of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    /// Population standard deviation (numpy's `std`, ddof = 0).
    pub std: f64,
}

impl Moments {
    /// Exact for exact counts; for binned impostor counts each score below
    /// the exact tail stands at its bin's lower edge. NaN when empty.
    ///
    /// One pass of sums shifted by a middle value (no cancellation for
    /// scores in [-1, 1]), in fixed chunks summed in order, so the result
    /// does not depend on the threads.
    pub fn of(counts: &ScoreCounts) -> Moments {
        const CHUNK: usize = 1 << 16;
        let values = counts.values();
        let n = counts.total() as f64;
        let shift = values.get(values.len() / 2).copied().unwrap_or(0.0);
        let partial: Vec<(f64, f64)> = (0..values.len().div_ceil(CHUNK))
            .into_par_iter()
            .map(|chunk| {
                let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(values.len());
                let mut before = match range.start {
                    0 => 0,
                    i => counts.at_or_above_index(i - 1),
                };
                let (mut s1, mut s2) = (0.0, 0.0);
                for i in range {
                    let after = counts.at_or_above_index(i);
                    let (c, d) = ((after - before) as f64, values[i] - shift);
                    s1 += c * d;
                    s2 += c * d * d;
                    before = after;
                }
                (s1, s2)
            })
            .collect();
        let (s1, s2) = partial
            .iter()
            .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
        let m = s1 / n;
        Moments {
            count: counts.total(),
            mean: shift + m,
            std: (s2 / n - m * m).max(0.0).sqrt(),
        }
    }
}

/// Decidability d′ = |μg − μi| / sqrt((σg² + σi²) / 2). When both standard
/// deviations are zero it is 1, as in pyeer.
pub fn d_prime(genuine: &Moments, impostor: &Moments) -> f64 {
    if genuine.std == 0.0 && impostor.std == 0.0 {
        return 1.0;
    }
    (genuine.mean - impostor.mean).abs()
        / (0.5 * (genuine.std * genuine.std + impostor.std * impostor.std)).sqrt()
}

/// bob.measure's `far_threshold` on one class of non-mated scores: the
/// lowest score value t with #{s >= t} / N <= `target`, and that count.
/// A target below the rate of the highest score gives `next_up` of the
/// highest score (count 0); a target of 1 (within one ulp) gives `next_down`
/// of the lowest (every score). The rate is compared in floating point
/// exactly as bob does. N is `of`: the scores' total for FMR; for FPIR over
/// the top-1 scores of non-mated searches, every non-mated search, those
/// that returned no candidate (and no score) included.
pub fn far_threshold(
    non_mated: &ScoreCounts,
    of: u64,
    target: f64,
) -> Result<(f64, u64), MetricsError> {
    if !(0.0..=1.0).contains(&target) {
        return Err(MetricsError::Target(target));
    }
    let values = non_mated.values();
    let (Some(&highest), Some(&lowest)) = (values.first(), values.last()) else {
        return Err(MetricsError::NoImpostor);
    };
    debug_assert!(of >= non_mated.total());
    let n = of;
    if target >= 1.0 - f64::EPSILON {
        return Ok((lowest.next_down(), non_mated.total()));
    }
    let k = partition_point_by_index(values.len(), |i| {
        non_mated.at_or_above_index(i) as f64 / n as f64 <= target
    });
    if k == 0 {
        Ok((highest.next_up(), 0))
    } else {
        Ok((values[k - 1], non_mated.at_or_above_index(k - 1)))
    }
}

/// The first index in `0..len` where `pred` turns false (pred must be true
/// then false).
fn partition_point_by_index(len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A note when `target` is below what `n` non-mated comparisons can
/// resolve: under 1/n no false match can be observed, and under 3/n even
/// zero observed errors do not bound the rate below the target at 95%
/// confidence (the rule of 3).
pub(crate) fn resolution_warning(target: f64, n: u64, rate: &str) -> Option<String> {
    let n_f = n as f64;
    if target < 1.0 / n_f {
        Some(format!(
            "{rate} target {target:e} is below 1/{n} (one error in {n} comparisons): threshold set above every score"
        ))
    } else if target < 3.0 / n_f {
        Some(format!(
            "{rate} target {target:e} is below 3/{n}: {n} comparisons cannot show it at 95% confidence (rule of 3)"
        ))
    } else {
        None
    }
}

/// FNMR at a target FMR by the conservative rule ([`far_threshold`]), with
/// the realised FMR and a resolution warning. Intervals are left empty.
pub(crate) fn fmr_point(
    genuine: &ScoreCounts,
    impostor: &ScoreCounts,
    target: f64,
) -> Result<FmrPoint, MetricsError> {
    if genuine.is_empty() {
        return Err(MetricsError::NoGenuine);
    }
    let (threshold, false_matches) = far_threshold(impostor, impostor.total(), target)?;
    let false_non_matches = genuine.below(threshold);
    // The threshold is bob's when the value it derives from (the lowest
    // listed value at or above it; the highest when it lies above all) is a
    // score, and so is the value below it (then no score in between is
    // unseen) or one more false match would already exceed the target.
    let n = impostor.total() as f64;
    let values = impostor.values();
    let i = values.partition_point(|&v| v >= threshold);
    let scored = |v: Option<&f64>| !v.is_some_and(|&v| impostor.collapsed_at(v));
    let exact = match i {
        0 => scored(values.first()),
        _ => {
            scored(values.get(i - 1))
                && ((false_matches + 1) as f64 / n > target || scored(values.get(i)))
        }
    };
    Ok(FmrPoint {
        fmr_target: target,
        threshold,
        threshold_l2: cosine_to_l2(threshold),
        fmr: false_matches as f64 / impostor.total() as f64,
        fnmr: false_non_matches as f64 / genuine.total() as f64,
        false_matches,
        false_non_matches,
        fnmr_ci95: None,
        fmr_ci95: None,
        warning: resolution_warning(target, impostor.total(), "FMR"),
        exact,
    })
}

/// Which tool's nearest-FMR lookup [`nearest_fmr_point`] reproduces.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NearestRule {
    /// pyeer `get_fmr_op` (FMR100, FMR1000, ...): argmin |FMR − x| over
    /// every distinct score, ties to the lowest threshold.
    Pyeer,
    /// insightface IJB: argmin |FPR − x| over scikit-learn's
    /// `roc_curve(drop_intermediate=True)` (with its `inf` vertex), ties to
    /// the lowest threshold (the highest TPR).
    InsightfaceIjb,
}

/// The compatibility lookup "FNMR at the FMR nearest the target", which can
/// overshoot the target; the realised FMR says by how much. The rates are
/// compared in floating point as those tools do.
#[cfg(test)]
pub(crate) fn nearest_fmr_point(
    genuine: &ScoreCounts,
    impostor: &ScoreCounts,
    target: f64,
    rule: NearestRule,
) -> Result<FmrPoint, MetricsError> {
    if genuine.is_empty() {
        return Err(MetricsError::NoGenuine);
    }
    if impostor.is_empty() {
        return Err(MetricsError::NoImpostor);
    }
    if !(0.0..=1.0).contains(&target) {
        return Err(MetricsError::Target(target));
    }
    let n = impostor.total() as f64;
    let distance = |v: &RocPoint| (v.false_matches as f64 / n - target).abs();
    // Walking thresholds downwards, `<=` keeps the lowest threshold on ties.
    let nearest = |points: &mut dyn Iterator<Item = RocPoint>| {
        let mut best: Option<(f64, RocPoint)> = None;
        for v in points {
            let d = distance(&v);
            if best.is_none_or(|(b, _)| d <= b) {
                best = Some((d, v));
            }
        }
        best.map(|(_, v)| v)
    };
    let chosen = match rule {
        NearestRule::Pyeer => nearest(&mut roc_vertices(genuine, impostor).skip(1)),
        NearestRule::InsightfaceIjb => {
            nearest(&mut drop_intermediate(roc_vertices(genuine, impostor)).into_iter())
        }
    }
    .expect("non-empty classes give vertices");
    Ok(FmrPoint {
        fmr_target: target,
        threshold: chosen.threshold,
        threshold_l2: cosine_to_l2(chosen.threshold),
        fmr: chosen.false_matches as f64 / n,
        fnmr: chosen.false_non_matches as f64 / genuine.total() as f64,
        false_matches: chosen.false_matches,
        false_non_matches: chosen.false_non_matches,
        fnmr_ci95: None,
        fmr_ci95: None,
        warning: None,
        exact: impostor.is_exact(),
    })
}

/// Curve vertices as `roc.csv` rows.
pub fn roc_rows(points: &[RocPoint], genuine_count: u64, impostor_count: u64) -> Vec<RocRow> {
    points
        .iter()
        .map(|v| {
            let fnmr = v.false_non_matches as f64 / genuine_count as f64;
            RocRow {
                threshold: v.threshold,
                threshold_l2: cosine_to_l2(v.threshold),
                fmr: v.false_matches as f64 / impostor_count as f64,
                fnmr,
                tar: (genuine_count - v.false_non_matches) as f64 / genuine_count as f64,
                false_matches: v.false_matches,
                false_non_matches: v.false_non_matches,
            }
        })
        .collect()
}

/// Every verification metric and the decimated curve.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationReport {
    /// `summary.json`'s verification block; `kfold_accuracy` and the
    /// intervals are left for the caller (they need pair lists or subjects).
    pub summary: Verification,
    /// The EER with bob.measure's compatibility figure.
    pub eer: Eer,
    /// The curve after [`drop_collinear`], for `roc.csv` ([`roc_rows`]).
    pub roc: Vec<RocPoint>,
}

/// The definition written into `eer_definition`.
pub(crate) const EER_DEFINITION: &str = "FVC2000 (as pyeer) on the exact step curve: the two adjacent vertices \
where FMR - FNMR changes sign, the one with the smaller FMR + FNMR; eer_low/eer_high are its two rates, \
eer their midpoint, eer_threshold its score (accept if score >= threshold); the curve includes the vertex above \
every score (FMR 0, FNMR 1), so it always crosses where pyeer would report 1";

/// All verification metrics: the curve summary, a binary search per FMR
/// target, one pass for the moments.
pub fn verification(
    genuine: &ScoreCounts,
    impostor: &ScoreCounts,
    fmr_targets: &[f64],
) -> Result<VerificationReport, MetricsError> {
    let curve = CurveSummary::compute(genuine, impostor)?;
    let operating_points = fmr_targets
        .iter()
        .map(|&t| fmr_point(genuine, impostor, t))
        .collect::<Result<Vec<_>, _>>()?;
    let g = Moments::of(genuine);
    let i = Moments::of(impostor);
    let summary = Verification {
        genuine_count: curve.genuine_count,
        impostor_count: curve.impostor_count,
        auc: curve.auc,
        eer: curve.eer.eer,
        eer_low: curve.eer.low,
        eer_high: curve.eer.high,
        eer_threshold: curve.eer.threshold,
        eer_threshold_l2: cosine_to_l2(curve.eer.threshold),
        eer_definition: EER_DEFINITION.to_string(),
        d_prime: d_prime(&g, &i),
        genuine_mean: g.mean,
        genuine_std: g.std,
        impostor_mean: i.mean,
        impostor_std: i.std,
        operating_points,
        kfold_accuracy: None,
        auc_exact: curve.auc_exact,
        eer_exact: curve.eer_exact,
    };
    Ok(VerificationReport {
        summary,
        eer: curve.eer,
        roc: curve.roc,
    })
}
