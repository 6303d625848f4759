//! `group_scores.csv`: each group's genuine scores as histogram counts, so
//! the report can recompute a group's FNMR at any bin edge, not only at the
//! global thresholds `summary.json` lists. Impostor scores are left out:
//! per group they would be a histogram per group of up to every bin.

use crate::evaldir::{GroupScoreRow, HistogramRow};
use crate::metrics::groups::GroupScores;

use super::tables::Bins;

/// The non-empty bins of each group's genuine scores, groups in order.
pub(crate) fn group_score_rows(
    columns: &[String],
    groups: &[GroupScores],
    bins: Bins,
) -> Vec<GroupScoreRow> {
    let columns = columns.join("+");
    groups
        .iter()
        .flat_map(|g| {
            let scores = g
                .genuine
                .values()
                .iter()
                .zip(g.genuine.counts())
                .flat_map(|(&v, n)| std::iter::repeat_n(v as f32, n as usize));
            let values = serde_json::to_string(&g.values).expect("strings serialise");
            let columns = columns.clone();
            bins.rows("", scores).into_iter().map(
                move |HistogramRow {
                          bin_low,
                          bin_high,
                          count,
                          ..
                      }| GroupScoreRow {
                    columns: columns.clone(),
                    values: values.clone(),
                    bin_low,
                    bin_high,
                    count,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ScoreCounts;

    #[test]
    fn each_group_keeps_its_genuine_counts() {
        let group = |values: &[&str], genuine: Vec<f32>| GroupScores {
            values: values.iter().map(|s| s.to_string()).collect(),
            genuine: ScoreCounts::from_scores(genuine),
            impostor: ScoreCounts::from_scores(vec![0.0]),
        };
        let groups = [
            group(&["C4", "L+1"], vec![0.6, 0.7, 0.6, -0.6]),
            group(&["C7", "L1"], vec![]),
        ];
        let bins = Bins {
            low: -1.0,
            high: 1.0,
            count: 4,
        };
        let rows = group_score_rows(&["camera".into(), "light".into()], &groups, bins);
        let got: Vec<(&str, &str, f64, u64)> = rows
            .iter()
            .map(|r| (r.columns.as_str(), r.values.as_str(), r.bin_low, r.count))
            .collect();
        assert_eq!(
            got,
            [
                ("camera+light", r#"["C4","L+1"]"#, -1.0, 1),
                ("camera+light", r#"["C4","L+1"]"#, 0.5, 3),
            ]
        );
    }
}
