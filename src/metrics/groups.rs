//! FNMR and FMR per group (camera, light, ...) at the global thresholds, as
//! NIST's demographic reports do: the threshold is fixed on all comparisons
//! and each group's rates are read at it. Which comparisons belong to a
//! group is the caller's decision.

use super::ScoreCounts;
use crate::evaldir::{FmrPoint, GroupRow};

/// The scores of one group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupScores {
    /// One value per grouping column, e.g. ["C4"] or ["C4", "L1"].
    pub values: Vec<String>,
    pub genuine: ScoreCounts,
    pub impostor: ScoreCounts,
}

/// One row per group and global operating point, groups in the given
/// order. A group without genuine (impostor) scores gets a NaN FNMR (FMR)
/// and a zero count.
pub(crate) fn group_rows(groups: &[GroupScores], points: &[FmrPoint]) -> Vec<GroupRow> {
    let mut rows = Vec::with_capacity(groups.len() * points.len());
    for g in groups {
        for p in points {
            rows.push(GroupRow {
                values: g.values.clone(),
                fmr_target: p.fmr_target,
                threshold: p.threshold,
                genuine_count: g.genuine.total(),
                impostor_count: g.impostor.total(),
                fnmr: g.genuine.below(p.threshold) as f64 / g.genuine.total() as f64,
                fmr: g.impostor.at_or_above(p.threshold) as f64 / g.impostor.total() as f64,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_is_read_at_the_global_threshold() {
        let point = FmrPoint {
            fmr_target: 0.1,
            threshold: 0.5,
            threshold_l2: 1.0,
            fmr: 0.1,
            fnmr: 0.2,
            false_matches: 1,
            false_non_matches: 2,
            fnmr_ci95: None,
            fmr_ci95: None,
            warning: None,
            exact: true,
        };
        let groups = [
            GroupScores {
                values: vec!["C4".into()],
                genuine: ScoreCounts::from_scores(vec![0.9, 0.4, 0.6, 0.5]),
                impostor: ScoreCounts::from_scores(vec![0.1, 0.5, 0.2, 0.3]),
            },
            GroupScores {
                values: vec!["C5".into()],
                genuine: ScoreCounts::from_scores(vec![0.3]),
                impostor: ScoreCounts::default(),
            },
        ];
        let rows = group_rows(&groups, &[point]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].fnmr, rows[0].fmr), (0.25, 0.25));
        assert_eq!((rows[0].genuine_count, rows[0].impostor_count), (4, 4));
        assert_eq!(rows[1].fnmr, 1.0);
        assert!(rows[1].fmr.is_nan());
    }
}
