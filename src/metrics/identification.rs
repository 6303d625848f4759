//! Identification (1:N) metrics from per-probe search results, with NIST
//! FRTE's conventions (accept iff score >= threshold):
//! * a probe is **mated** when its identity is in the gallery (the engine
//!   then gives its mate score and rank, ties counted against the probe:
//!   rank = 1 + #{non-mate gallery rows scoring >= the mate}), **non-mated**
//!   otherwise;
//! * closed-set **CMC** over mated probes: `cmc[r-1]` = share with rank <= r;
//!   rank-1 = `cmc[0]`;
//! * open-set **FPIR(T)** = share of non-mated searches whose top-1 score is
//!   >= T; **FNIR(R, T)** = share of mated searches whose mate is not among
//!   the first R or scores below T (NIST's FNIR(N, R, T); R = 1 by default). The threshold for an FPIR target follows the
//!   same conservative rule as FMR ([`far_threshold`] over the non-mated
//!   top-1 scores): the lowest such score with FPIR <= target.

use super::verification::{far_threshold, resolution_warning};
use super::{MetricsError, ScoreCounts};
use crate::compare::{Candidate, ProbeResult};
use crate::evaldir::{cosine_to_l2, FpirPoint, Identification};

/// One comparison of a search with a gallery model, from a score file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The search (probe), numbered from 0.
    pub probe: u32,
    /// The gallery model, numbered from 0.
    pub model: u32,
    pub score: f32,
    /// Whether the model is of the probe's identity.
    pub mated: bool,
}

/// What an engine would give for each search of `comparisons`, by the same
/// definitions: the `top_k` models by score (ties by lower number), the best
/// mated score and its rank, 1 + the non-mated models scoring at least it
/// (bob.measure's rank: ties count against the probe).
pub fn search_results(comparisons: &[Comparison], top_k: usize) -> Vec<ProbeResult> {
    let probes = comparisons
        .iter()
        .map(|c| c.probe as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_probe: Vec<Vec<Comparison>> = vec![Vec::new(); probes];
    for &c in comparisons {
        by_probe[c.probe as usize].push(c);
    }
    by_probe
        .into_iter()
        .map(|mut rows| {
            let mate_score = rows
                .iter()
                .filter(|c| c.mated)
                .map(|c| c.score)
                .reduce(f32::max);
            let mate_rank = mate_score
                .map(|m| 1 + rows.iter().filter(|c| !c.mated && c.score >= m).count() as u64);
            rows.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.model.cmp(&b.model)));
            ProbeResult {
                top: rows
                    .iter()
                    .take(top_k)
                    .map(|c| Candidate {
                        index: c.model,
                        score: c.score,
                    })
                    .collect(),
                mate_score,
                mate_rank,
            }
        })
        .collect()
}

/// Closed-set CMC over the mated probes, ranks 1..=`max_rank`.
pub fn cmc(probes: &[ProbeResult], max_rank: usize) -> Result<Vec<f64>, MetricsError> {
    let mut at_rank = vec![0u64; max_rank];
    let mut mated = 0u64;
    for rank in probes.iter().filter_map(|p| p.mate_rank) {
        mated += 1;
        if rank >= 1 && rank <= max_rank as u64 {
            at_rank[rank as usize - 1] += 1;
        }
    }
    if mated == 0 {
        return Err(MetricsError::NoMatedProbes);
    }
    let mut cumulative = 0u64;
    Ok(at_rank
        .into_iter()
        .map(|c| {
            cumulative += c;
            cumulative as f64 / mated as f64
        })
        .collect())
}

/// The score a mated probe stands at for FNIR(R, T): its mate score when
/// the mate's rank is at most `rank`, minus infinity otherwise (a miss at
/// every threshold); `None` for a non-mated probe. FNIR(R, T) is the share
/// of these below T, which is how [`crate::metrics::bootstrap`] resamples it.
pub fn mate_score_within(probe: &ProbeResult, rank: u64) -> Option<f64> {
    match (probe.mate_rank, probe.mate_score) {
        (Some(r), Some(s)) if r <= rank => Some(s as f64),
        (Some(_), _) => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// The open-set statistics: mate scores of mated searches whose mate is
/// within rank R, and top-1 scores of non-mated searches.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSet {
    mated: u64,
    /// Mate scores of mated searches whose mate's rank is at most R.
    mated_within: ScoreCounts,
    /// Top-1 scores of non-mated searches.
    non_mated_top1: ScoreCounts,
}

impl OpenSet {
    /// FNIR at rank `rank` (at least 1). Non-mated probes need at least one
    /// candidate.
    pub fn new(probes: &[ProbeResult], fnir_rank: u64) -> Result<OpenSet, MetricsError> {
        let mut mated = 0u64;
        let mut within = Vec::new();
        let mut top1 = Vec::new();
        for (i, p) in probes.iter().enumerate() {
            match (p.mate_rank, p.mate_score) {
                (Some(rank), Some(score)) => {
                    mated += 1;
                    if rank <= fnir_rank.max(1) {
                        within.push(score);
                    }
                }
                _ => top1.push(
                    p.top
                        .first()
                        .ok_or(MetricsError::NoCandidates { probe: i })?
                        .score,
                ),
            }
        }
        Ok(OpenSet {
            mated,
            mated_within: ScoreCounts::from_scores(within),
            non_mated_top1: ScoreCounts::from_scores(top1),
        })
    }

    pub fn mated_count(&self) -> u64 {
        self.mated
    }
    pub fn non_mated_count(&self) -> u64 {
        self.non_mated_top1.total()
    }
    /// Top-1 scores of the non-mated searches.
    pub fn non_mated_top1(&self) -> &ScoreCounts {
        &self.non_mated_top1
    }

    /// FPIR(T): non-mated searches with a top-1 score >= T (NaN if none).
    pub fn fpir(&self, threshold: f64) -> f64 {
        self.non_mated_top1.at_or_above(threshold) as f64 / self.non_mated_count() as f64
    }

    /// FNIR(R, T): mated searches whose mate is not within rank R or is
    /// below T (NaN if none).
    pub fn fnir(&self, threshold: f64) -> f64 {
        (self.mated - self.mated_within.at_or_above(threshold)) as f64 / self.mated as f64
    }

    /// The threshold for an FPIR target (lowest non-mated top-1 score with
    /// FPIR <= target), the realised FPIR and FNIR(R, T) there.
    pub fn fpir_point(&self, target: f64) -> Result<FpirPoint, MetricsError> {
        if self.mated == 0 {
            return Err(MetricsError::NoMatedProbes);
        }
        let (threshold, false_positives) = far_threshold(&self.non_mated_top1, target)?;
        Ok(FpirPoint {
            fpir_target: target,
            threshold,
            threshold_l2: cosine_to_l2(threshold),
            fpir: false_positives as f64 / self.non_mated_count() as f64,
            fnir: self.fnir(threshold),
            fnir_ci95: None,
            warning: resolution_warning(target, self.non_mated_count(), "FPIR"),
        })
    }
}

/// `summary.json`'s identification block: CMC to `max_rank` (at least 1),
/// rank-1, and an operating point per FPIR target (none when there are no
/// non-mated probes). Intervals are left for the caller.
pub fn identification(
    probes: &[ProbeResult],
    gallery_count: u64,
    gallery_identities: u64,
    fpir_targets: &[f64],
    max_rank: usize,
    fnir_rank: u64,
) -> Result<Identification, MetricsError> {
    let cmc = cmc(probes, max_rank.max(1))?;
    let open = OpenSet::new(probes, fnir_rank)?;
    let operating_points = if open.non_mated_count() == 0 {
        Vec::new()
    } else {
        fpir_targets
            .iter()
            .map(|&t| open.fpir_point(t))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(Identification {
        gallery_count,
        gallery_identities,
        mated_count: open.mated_count(),
        non_mated_count: open.non_mated_count(),
        rank1: cmc[0],
        cmc,
        operating_points,
        fnir_rank: fnir_rank.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(top: &[(u32, f32)], mate: Option<(f32, u64)>) -> ProbeResult {
        ProbeResult::of(top, mate)
    }

    #[test]
    fn nist_conventions_on_a_hand_made_search() {
        let probes = [
            probe(&[(0, 0.9), (1, 0.2)], Some((0.9, 1))),
            probe(&[(2, 0.6), (0, 0.5)], Some((0.5, 2))),
            probe(&[(1, 0.4), (0, 0.1)], Some((0.4, 1))),
            probe(&[(1, 0.7), (2, 0.3)], None),
            probe(&[(0, 0.3), (2, 0.1)], None),
        ];
        assert_eq!(cmc(&probes, 3).unwrap(), [2.0 / 3.0, 1.0, 1.0]);
        let open = OpenSet::new(&probes, 1).unwrap();
        assert_eq!((open.mated_count(), open.non_mated_count()), (3, 2));
        // FPIR 0.5: the lowest non-mated top-1 score with FPIR <= 0.5 is 0.7.
        let p = open.fpir_point(0.5).unwrap();
        assert_eq!((p.threshold, p.fpir), (0.7f32 as f64, 0.5));
        // At 0.7 only the first probe's mate (rank 1, 0.9) is found.
        assert_eq!(p.fnir, 2.0 / 3.0);
        // Below 1/2 no non-mated search may pass: just above 0.7.
        let p = open.fpir_point(0.1).unwrap();
        assert_eq!(p.fpir, 0.0);
        assert!(p.threshold > 0.7f32 as f64 && p.warning.is_some());
        assert_eq!(open.fnir(0.3), 1.0 / 3.0);
        // FNIR(R = 2, T): the second probe's mate, second at 0.5, is a hit
        // from T = 0.5 down (a score on T is accepted), a miss above it.
        let within_two = OpenSet::new(&probes, 2).unwrap();
        assert_eq!(within_two.fnir(0.3), 0.0);
        assert_eq!(within_two.fnir(0.5f32 as f64), 1.0 / 3.0);
        assert_eq!(open.fnir(0.5f32 as f64), 2.0 / 3.0);
        assert_eq!(within_two.fnir(0.6), 2.0 / 3.0);
        let id = identification(&probes, 3, 3, &[0.5], 2, 2).unwrap();
        assert_eq!(id.rank1, 2.0 / 3.0);
        assert_eq!(id.fnir_rank, 2);
        assert_eq!(id.operating_points.len(), 1);
        // At 0.7 the second probe's mate (0.5) is below T whatever R.
        assert_eq!(id.operating_points[0].fnir, 2.0 / 3.0);
        assert!(matches!(
            OpenSet::new(&[probe(&[], None)], 1),
            Err(MetricsError::NoCandidates { probe: 0 })
        ));
        assert_eq!(cmc(&probes[3..], 1), Err(MetricsError::NoMatedProbes));
    }

    #[test]
    fn a_mate_below_rank_r_misses_at_every_threshold() {
        assert_eq!(
            mate_score_within(&probe(&[], Some((0.8, 1))), 1),
            Some(0.8f32 as f64)
        );
        assert_eq!(
            mate_score_within(&probe(&[], Some((0.8, 3))), 1),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(
            mate_score_within(&probe(&[], Some((0.8, 3))), 3),
            Some(0.8f32 as f64)
        );
        assert_eq!(mate_score_within(&probe(&[(0, 0.5)], None), 1), None);
    }
}
