//! Open-set identification rates (NIST FRTE, accept iff score >= T): the
//! one implementation that `evaluate`'s summary and the report's charts,
//! notes and threshold explorer all read.
//!
//! * **FPIR(T)**: the share of non-mated searches whose top-1 score is >= T.
//! * **FNIR(R, T)**: the share of mated searches whose mate is not among the
//!   first R or scores below T (NIST's FNIR(N, R, T)).
//!
//! Two rules, decided here once:
//! * A search that returned no candidate answers "nobody" at every
//!   threshold: a non-mated one is counted (in FPIR's denominator) and never
//!   a false positive, a mated one is a miss. This is how NIST scores an
//!   empty candidate list; refusing it instead would lose the other searches'
//!   rates, and leaving it out would make FPIR look worse than it is.
//! * A rate over no searches (no out-of-DB or no in-DB probe) is undefined:
//!   `None`. Not 0, which reads as a perfect system, and not NaN, which
//!   prints as a number or turns into JSON `null` without a word; callers
//!   say which probes are missing.

use super::verification::{far_threshold, resolution_warning};
use super::{MetricsError, ScoreCounts};
use crate::compare::ProbeResult;
use crate::evaldir::{cosine_to_l2, FpirPoint, ProbeRow};

/// One search, as the open-set rates see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Search {
    /// A mated search: its mate's score when the mate ranks within R,
    /// `None` (a miss at every threshold) otherwise.
    Mated(Option<f32>),
    /// A non-mated search: its top-1 score, `None` when it returned no
    /// candidate (never a false positive).
    NonMated(Option<f32>),
}

impl Search {
    /// An engine's search result, FNIR at rank `rank` (at least 1).
    pub(crate) fn of_result(probe: &ProbeResult, rank: u64) -> Search {
        match (probe.mate_rank, probe.mate_score) {
            (Some(r), Some(s)) => Search::Mated((r <= rank.max(1)).then_some(s)),
            (Some(_), None) => Search::Mated(None),
            (None, _) => Search::NonMated(probe.top.first().map(|c| c.score)),
        }
    }

    /// A row of `probes.csv`, FNIR at rank `rank` (at least 1). Its scores
    /// were the engine's f32s, so they are compared as such.
    pub(crate) fn of_row(row: &ProbeRow, rank: u64) -> Search {
        if row.mated {
            Search::Mated(match (row.mate_rank, row.mate_score) {
                (Some(r), Some(s)) if r <= rank.max(1) => Some(s as f32),
                _ => None,
            })
        } else {
            Search::NonMated(row.top1_score.map(|s| s as f32))
        }
    }
}

/// The open-set step functions of a set of searches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpenSet {
    mated: u64,
    /// Mate scores of mated searches whose mate's rank is at most R.
    mated_within: ScoreCounts,
    non_mated: u64,
    /// Top-1 scores of the non-mated searches that returned a candidate.
    non_mated_top1: ScoreCounts,
}

/// Open-set counts at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenSetRates {
    /// Cosine.
    pub threshold: f64,
    pub non_mated: u64,
    /// Non-mated (out-of-DB) searches whose top-1 score is >= the
    /// threshold: they would be taken for someone in the DB.
    pub false_positives: u64,
    pub mated: u64,
    /// Mated (in-DB) searches whose mate is not within rank R or scores
    /// below the threshold.
    pub misses: u64,
}

impl OpenSetRates {
    /// FPIR; `None` without non-mated searches.
    pub fn fpir(&self) -> Option<f64> {
        rate(self.false_positives, self.non_mated)
    }
    /// FNIR(R, T); `None` without mated searches.
    pub fn fnir(&self) -> Option<f64> {
        rate(self.misses, self.mated)
    }
}

fn rate(count: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| count as f64 / of as f64)
}

impl OpenSet {
    pub fn new(searches: impl IntoIterator<Item = Search>) -> OpenSet {
        let (mut mated, mut non_mated) = (0u64, 0u64);
        let (mut within, mut top1) = (Vec::new(), Vec::new());
        for search in searches {
            match search {
                Search::Mated(score) => {
                    mated += 1;
                    within.extend(score);
                }
                Search::NonMated(score) => {
                    non_mated += 1;
                    top1.extend(score);
                }
            }
        }
        OpenSet {
            mated,
            mated_within: ScoreCounts::from_scores(within),
            non_mated,
            non_mated_top1: ScoreCounts::from_scores(top1),
        }
    }

    /// The open set of an engine's results, FNIR at rank `fnir_rank`.
    pub(crate) fn of_results(probes: &[ProbeResult], fnir_rank: u64) -> OpenSet {
        OpenSet::new(probes.iter().map(|p| Search::of_result(p, fnir_rank)))
    }

    pub fn mated_count(&self) -> u64 {
        self.mated
    }
    pub fn non_mated_count(&self) -> u64 {
        self.non_mated
    }
    /// Top-1 scores of the non-mated searches that returned a candidate.
    pub(crate) fn non_mated_top1(&self) -> &ScoreCounts {
        &self.non_mated_top1
    }
    /// Whether there is no search at all.
    pub fn is_empty(&self) -> bool {
        self.mated == 0 && self.non_mated == 0
    }

    /// The counts at `threshold`.
    pub fn at(&self, threshold: f64) -> OpenSetRates {
        OpenSetRates {
            threshold,
            non_mated: self.non_mated,
            false_positives: self.non_mated_top1.at_or_above(threshold),
            mated: self.mated,
            misses: self.mated - self.mated_within.at_or_above(threshold),
        }
    }

    /// The thresholds where a rate changes, ascending.
    pub(crate) fn steps(&self) -> Vec<f64> {
        let mut steps: Vec<f64> = self
            .non_mated_top1
            .values()
            .iter()
            .chain(self.mated_within.values())
            .copied()
            .filter(|s| s.is_finite())
            .collect();
        steps.sort_by(f64::total_cmp);
        steps.dedup();
        steps
    }

    /// The lowest threshold at which FPIR no longer exceeds FNIR, where the
    /// two curves cross; `None` unless both rates are defined.
    pub fn crossing(&self) -> Option<OpenSetRates> {
        if self.mated == 0 || self.non_mated == 0 {
            return None;
        }
        let steps = self.steps();
        let first = steps.partition_point(|&t| {
            let r = self.at(t);
            r.fpir() > r.fnir()
        });
        steps.get(first).map(|&t| self.at(t))
    }

    /// The threshold for an FPIR target (the lowest non-mated top-1 score
    /// with FPIR <= target, bob.measure's rule as for FMR), the realised
    /// FPIR and FNIR(R, T) there.
    pub(crate) fn fpir_point(&self, target: f64) -> Result<FpirPoint, MetricsError> {
        if self.mated == 0 {
            return Err(MetricsError::NoMatedProbes);
        }
        let (threshold, false_positives) =
            far_threshold(&self.non_mated_top1, self.non_mated, target)?;
        let at = self.at(threshold);
        Ok(FpirPoint {
            fpir_target: target,
            threshold,
            threshold_l2: cosine_to_l2(threshold),
            fpir: false_positives as f64 / self.non_mated as f64,
            fnir: at.misses as f64 / at.mated as f64,
            fnir_ci95: None,
            warning: resolution_warning(target, self.non_mated, "FPIR"),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn probe(top: &[(u32, f32)], mate: Option<(f32, u64)>) -> ProbeResult {
        ProbeResult::of(top, mate)
    }

    /// Three mated searches (ranks 1, 2, 1) and two non-mated ones.
    pub(crate) fn hand_made_search() -> [ProbeResult; 5] {
        [
            probe(&[(0, 0.9), (1, 0.2)], Some((0.9, 1))),
            probe(&[(2, 0.6), (0, 0.5)], Some((0.5, 2))),
            probe(&[(1, 0.4), (0, 0.1)], Some((0.4, 1))),
            probe(&[(1, 0.7), (2, 0.3)], None),
            probe(&[(0, 0.3), (2, 0.1)], None),
        ]
    }

    #[test]
    fn nist_conventions_on_a_hand_made_search() {
        let probes = hand_made_search();
        let open = OpenSet::of_results(&probes, 1);
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
        assert_eq!(open.at(0.3).fnir(), Some(1.0 / 3.0));
        // FNIR(R = 2, T): the second probe's mate, second at 0.5, is a hit
        // from T = 0.5 down (a score on T is accepted), a miss above it.
        let within_two = OpenSet::of_results(&probes, 2);
        assert_eq!(within_two.at(0.3).fnir(), Some(0.0));
        assert_eq!(within_two.at(0.5f32 as f64).fnir(), Some(1.0 / 3.0));
        assert_eq!(open.at(0.5f32 as f64).fnir(), Some(2.0 / 3.0));
        assert_eq!(within_two.at(0.6).fnir(), Some(2.0 / 3.0));
        // FPIR and FNIR cross where FPIR first stops exceeding FNIR: at
        // 0.4 FPIR 1/2 > FNIR 1/3; at 0.7 FPIR 1/2 <= FNIR 2/3.
        let c = open.crossing().unwrap();
        assert_eq!(c.threshold, 0.7f32 as f64);
        assert_eq!(open.steps().len(), 4);
    }

    #[test]
    fn a_search_without_candidates_answers_nobody_at_every_threshold() {
        let probes = [
            probe(&[(0, 0.9)], Some((0.9, 1))),
            probe(&[(1, 0.7)], None),
            probe(&[], None),
            probe(&[], None),
        ];
        let open = OpenSet::of_results(&probes, 1);
        assert_eq!(open.non_mated_count(), 3);
        for t in [f64::NEG_INFINITY, -1.0, 0.0, 0.7f32 as f64] {
            let r = open.at(t);
            assert_eq!((r.false_positives, r.non_mated), (1, 3), "at {t}");
        }
        // The FPIR target's threshold is over all three searches: 1/3 is
        // reached at the one top-1 score.
        let p = open.fpir_point(0.34).unwrap();
        assert_eq!((p.threshold, p.fpir), (0.7f32 as f64, 1.0 / 3.0));
        let p = open.fpir_point(1.0).unwrap();
        assert_eq!(p.fpir, 1.0 / 3.0);
        // A mated search without its mate in the list is a miss.
        let missed = OpenSet::new([Search::Mated(None), Search::Mated(Some(0.5))]);
        assert_eq!(missed.at(f64::NEG_INFINITY).fnir(), Some(0.5));
    }

    #[test]
    fn a_rate_over_no_searches_is_undefined() {
        let only_mated = OpenSet::new([Search::Mated(Some(0.5))]);
        let r = only_mated.at(0.0);
        assert_eq!((r.fpir(), r.fnir()), (None, Some(0.0)));
        assert_eq!(only_mated.crossing(), None);
        let only_non_mated = OpenSet::new([Search::NonMated(Some(0.5))]);
        assert_eq!(only_non_mated.at(0.0).fnir(), None);
        assert_eq!(
            only_non_mated.fpir_point(0.1),
            Err(MetricsError::NoMatedProbes)
        );
        assert!(OpenSet::new([]).is_empty());
        assert_eq!(OpenSet::new([]).at(0.0).fpir(), None);
    }

    #[test]
    fn rows_of_probes_csv_read_as_the_engine_results_they_came_from() {
        let row = |mated: bool, top1: Option<f64>, mate: Option<(u64, f64)>| ProbeRow {
            probe: 0,
            identity: "a".into(),
            path: None,
            mated,
            top1_identity: None,
            top1_score: top1,
            top1_distance: None,
            mate_rank: mate.map(|m| m.0),
            mate_score: mate.map(|m| m.1),
            decision: "unknown".into(),
            decision_threshold: 0.0,
        };
        let third = 0.1f32 + 0.2f32;
        assert_eq!(
            Search::of_row(&row(false, Some(third as f64), None), 1),
            Search::of_result(&probe(&[(3, third)], None), 1)
        );
        assert_eq!(
            Search::of_row(&row(false, None, None), 1),
            Search::NonMated(None)
        );
        for rank in [1, 2, 3] {
            assert_eq!(
                Search::of_row(&row(true, Some(0.9), Some((2, third as f64))), rank),
                Search::of_result(&probe(&[(1, 0.9), (0, third)], Some((third, 2))), rank)
            );
        }
        assert_eq!(
            Search::of_row(&row(true, Some(0.9), Some((2, 0.5))), 1),
            Search::Mated(None)
        );
    }
}
