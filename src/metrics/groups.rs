//! FNMR and FMR per group (camera, light, ...) at the global thresholds, as
//! NIST's demographic reports do: the threshold is fixed on all comparisons
//! and each group's rates are read at it. Which comparisons belong to a
//! group is the caller's decision.

use super::ScoreCounts;
use crate::evaldir::{FmrPoint, GroupRow};

/// The scores of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupScores {
    /// One value per grouping column, e.g. ["C4"] or ["C4", "L1"].
    pub values: Vec<String>,
    pub genuine: ScoreCounts,
    pub impostor: ScoreCounts,
}

/// One row per group and global operating point, groups in the given
/// order. A group without genuine (impostor) scores gets a NaN FNMR (FMR)
/// and a zero count.
pub fn group_rows(groups: &[GroupScores], points: &[FmrPoint]) -> Vec<GroupRow> {
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
