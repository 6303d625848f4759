//! The rows of `scores.parquet`, `probes.csv` and `operating_points.csv`,
//! built from the engine's results and the metrics.

use crate::compare::{HistogramSpec, ProbeResult};
use crate::evaldir::{
    cosine_to_l2, FmrPoint, FpirPoint, HistogramRow, OperatingPointRow, ProbeRow, HIST_MATED_TOP1,
    HIST_NON_MATED_TOP1,
};

/// Equal-width bins over `[low, high]`: the engine's cosine bins, or the
/// range of scores read from a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bins {
    pub low: f64,
    pub high: f64,
    pub count: usize,
}

impl Bins {
    /// The engine's bins over [-1, 1].
    pub fn cosine(spec: HistogramSpec) -> Bins {
        Bins {
            low: -1.0,
            high: 1.0,
            count: spec.bins as usize,
        }
    }

    /// Cosine bins when every score lies in [-1, 1] (so file scores and
    /// engine scores chart alike), else bins over the scores' own range.
    pub(crate) fn covering(spec: HistogramSpec, scores: &[&[f32]]) -> Bins {
        let (lo, hi) = scores
            .iter()
            .flat_map(|s| s.iter())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| {
                (lo.min(s), hi.max(s))
            });
        if lo >= -1.0 && hi <= 1.0 || lo > hi {
            Bins::cosine(spec)
        } else if lo == hi {
            Bins {
                low: lo as f64,
                high: lo as f64 + 1.0,
                count: 1,
            }
        } else {
            Bins {
                low: lo as f64,
                high: hi as f64,
                count: spec.bins as usize,
            }
        }
    }

    fn width(&self) -> f64 {
        (self.high - self.low) / self.count as f64
    }

    fn edge(&self, i: usize) -> f64 {
        if i == self.count {
            self.high
        } else {
            self.low + i as f64 * self.width()
        }
    }

    fn index(&self, s: f32) -> usize {
        let i = ((s as f64 - self.low) / self.width()).floor();
        (i.max(0.0) as usize).min(self.count - 1)
    }

    /// The non-empty bins of `scores`, as rows of `kind`.
    pub fn rows(&self, kind: &str, scores: impl IntoIterator<Item = f32>) -> Vec<HistogramRow> {
        let mut counts = vec![0u64; self.count];
        for s in scores {
            counts[self.index(s)] += 1;
        }
        self.count_rows(kind, &counts)
    }

    /// Rows of counts already binned with these bins.
    pub(crate) fn count_rows(&self, kind: &str, counts: &[u64]) -> Vec<HistogramRow> {
        counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| HistogramRow {
                kind: kind.to_string(),
                bin_low: self.edge(i),
                bin_high: self.edge(i + 1),
                count: n,
            })
            .collect()
    }
}

/// Top-1 score histograms of mated and non-mated probes.
pub(crate) fn top1_histograms(bins: Bins, probes: &[ProbeResult]) -> Vec<HistogramRow> {
    let top1 = |mated: bool| {
        probes
            .iter()
            .filter(move |p| p.mate_score.is_some() == mated)
            .filter_map(|p| p.top.first().map(|c| c.score))
    };
    let mut rows = bins.rows(HIST_MATED_TOP1, top1(true));
    rows.extend(bins.rows(HIST_NON_MATED_TOP1, top1(false)));
    rows
}

/// `operating_points.csv`: one row per FMR target, then one per FPIR target.
pub fn operating_points(fmr: &[FmrPoint], fpir: &[FpirPoint]) -> Vec<OperatingPointRow> {
    let fmr_rows = fmr.iter().map(|p| OperatingPointRow {
        kind: "fmr".into(),
        target: p.fmr_target,
        threshold: p.threshold,
        threshold_l2: p.threshold_l2,
        rate: p.fmr,
        other_rate: p.fnmr,
        other_ci_low: p.fnmr_ci95.map(|c| c[0]),
        other_ci_high: p.fnmr_ci95.map(|c| c[1]),
    });
    let fpir_rows = fpir.iter().map(|p| OperatingPointRow {
        kind: "fpir".into(),
        target: p.fpir_target,
        threshold: p.threshold,
        threshold_l2: p.threshold_l2,
        rate: p.fpir,
        other_rate: p.fnir,
        other_ci_low: p.fnir_ci95.map(|c| c[0]),
        other_ci_high: p.fnir_ci95.map(|c| c[1]),
    });
    fmr_rows.chain(fpir_rows).collect()
}

/// The threshold `probes.csv` decides at: the FPIR target closest to 1e-2
/// (on a log scale; the smaller on a tie), else the EER threshold.
pub fn decision_threshold(fpir: &[FpirPoint], eer_threshold: Option<f64>) -> Option<f64> {
    fpir.iter()
        .filter(|p| p.fpir_target > 0.0)
        .min_by(|a, b| {
            let d = |p: &FpirPoint| (p.fpir_target.log10() + 2.0).abs();
            d(a).total_cmp(&d(b))
                .then(a.fpir_target.total_cmp(&b.fpir_target))
        })
        .map(|p| p.threshold)
        .or(eer_threshold)
}

/// Where each probe sits in the labels and in the gallery's identity names.
pub(crate) struct ProbeContext<'a> {
    /// Label row of each probe.
    pub rows: &'a [usize],
    /// Label row of each gallery row.
    pub gallery_rows: &'a [usize],
    pub identity: &'a [String],
    pub path: Option<&'a [String]>,
}

/// `probes.csv`: one row per probe, deciding "top-1 identity if its score
/// is >= threshold, else unknown".
pub(crate) fn probe_rows(
    results: &[ProbeResult],
    ctx: &ProbeContext<'_>,
    threshold: f64,
) -> Vec<ProbeRow> {
    results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let row = ctx.rows[i];
            let top1 = r.top.first();
            let top1_identity =
                top1.map(|c| ctx.identity[ctx.gallery_rows[c.index as usize]].clone());
            let accepted = top1.filter(|c| c.score as f64 >= threshold);
            ProbeRow {
                probe: row as u64,
                identity: ctx.identity[row].clone(),
                path: ctx.path.map(|p| p[row].clone()),
                mated: r.mate_score.is_some(),
                top1_identity: top1_identity.clone(),
                top1_score: top1.map(|c| c.score as f64),
                top1_distance: top1.map(|c| cosine_to_l2(c.score as f64)),
                mate_rank: r.mate_rank,
                mate_score: r.mate_score.map(f64::from),
                decision: match accepted {
                    Some(_) => top1_identity.unwrap_or_default(),
                    None => "unknown".into(),
                },
                decision_threshold: threshold,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Candidate;

    #[test]
    fn bins_cover_scores_and_skip_empty_ones() {
        let bins = Bins {
            low: -1.0,
            high: 1.0,
            count: 4,
        };
        let rows = bins.rows("genuine", [0.9f32, 0.6, -1.0, 1.0]);
        let got: Vec<(f64, f64, u64)> = rows
            .iter()
            .map(|r| (r.bin_low, r.bin_high, r.count))
            .collect();
        assert_eq!(got, [(-1.0, -0.5, 1), (0.5, 1.0, 3)]);
        let wide = Bins::covering(HistogramSpec { bins: 10 }, &[&[0.5, 3.0], &[-2.0]]);
        assert_eq!((wide.low, wide.high, wide.count), (-2.0, 3.0, 10));
        assert_eq!(
            Bins::covering(HistogramSpec { bins: 8 }, &[&[0.5, -0.3]]),
            Bins::cosine(HistogramSpec { bins: 8 })
        );
    }

    #[test]
    fn decisions_follow_the_threshold() {
        let fp = |t: f64, thr: f64| FpirPoint {
            fpir_target: t,
            threshold: thr,
            threshold_l2: 0.0,
            fpir: t,
            fnir: 0.0,
            fnir_ci95: None,
            warning: None,
        };
        assert_eq!(
            decision_threshold(&[fp(1e-1, 0.3), fp(1e-2, 0.4), fp(1e-3, 0.5)], Some(0.1)),
            Some(0.4)
        );
        // Equally far on a log scale: the smaller (stricter) target.
        assert_eq!(
            decision_threshold(&[fp(1e-1, 0.3), fp(1e-3, 0.5)], None),
            Some(0.5)
        );
        assert_eq!(decision_threshold(&[], Some(0.1)), Some(0.1));

        let identity: Vec<String> = ["a", "b", "a", "c"].iter().map(|s| s.to_string()).collect();
        let results = vec![
            ProbeResult {
                top: vec![Candidate {
                    index: 0,
                    score: 0.8,
                }],
                mate_score: Some(0.8),
                mate_rank: Some(1),
            },
            ProbeResult {
                top: vec![Candidate {
                    index: 1,
                    score: 0.2,
                }],
                mate_score: None,
                mate_rank: None,
            },
        ];
        let ctx = ProbeContext {
            rows: &[2, 3],
            gallery_rows: &[0, 1],
            identity: &identity,
            path: None,
        };
        let rows = probe_rows(&results, &ctx, 0.5);
        assert_eq!(
            (
                rows[0].identity.as_str(),
                rows[0].decision.as_str(),
                rows[0].mated
            ),
            ("a", "a", true)
        );
        assert_eq!(
            (rows[1].identity.as_str(), rows[1].decision.as_str()),
            ("c", "unknown")
        );
        assert_eq!(rows[1].top1_identity.as_deref(), Some("b"));
    }
}
