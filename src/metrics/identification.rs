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
//!   the first R or scores below T (NIST's FNIR(N, R, T); R = 1 by
//!   default), computed in [`super::open_set`], which also says how a
//!   search without candidates and an empty set of searches count. The
//!   threshold for an FPIR target follows the same conservative rule as
//!   FMR: the lowest non-mated top-1 score with FPIR <= target.

use super::open_set::OpenSet;
use super::MetricsError;
use crate::compare::{Candidate, ProbeResult};
use crate::evaldir::Identification;

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
pub(crate) fn search_results(comparisons: &[Comparison], top_k: usize) -> Vec<ProbeResult> {
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
pub(crate) fn mate_score_within(probe: &ProbeResult, rank: u64) -> Option<f64> {
    match (probe.mate_rank, probe.mate_score) {
        (Some(r), Some(s)) if r <= rank => Some(s as f64),
        (Some(_), _) => Some(f64::NEG_INFINITY),
        _ => None,
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
    let open = OpenSet::of_results(probes, fnir_rank);
    // FPIR targets need a top-1 score to set a threshold at.
    let operating_points = if open.non_mated_top1().is_empty() {
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
    fn cmc_and_the_identification_block_on_a_hand_made_search() {
        let probes = crate::metrics::open_set::tests::hand_made_search();
        assert_eq!(cmc(&probes, 3).unwrap(), [2.0 / 3.0, 1.0, 1.0]);
        let id = identification(&probes, 3, 3, &[0.5], 2, 2).unwrap();
        assert_eq!(id.rank1, 2.0 / 3.0);
        assert_eq!(id.fnir_rank, 2);
        assert_eq!((id.mated_count, id.non_mated_count), (3, 2));
        assert_eq!(id.operating_points.len(), 1);
        // At 0.7 the second probe's mate (0.5) is below T whatever R.
        assert_eq!(id.operating_points[0].threshold, 0.7f32 as f64);
        assert_eq!(id.operating_points[0].fnir, 2.0 / 3.0);
        assert_eq!(cmc(&probes[3..], 1), Err(MetricsError::NoMatedProbes));
        // Non-mated searches that returned nobody give no threshold to set.
        let blind = [probes[0].clone(), probe(&[], None)];
        let id = identification(&blind, 3, 3, &[0.5], 1, 1).unwrap();
        assert_eq!(id.non_mated_count, 1);
        assert!(id.operating_points.is_empty());
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
