//! insightface's 10-fold verification accuracy (arcface_torch
//! `eval/verification.py` `evaluate` → `calculate_roc`), reproduced as a
//! compatibility figure with its own rule, not facekit's:
//! * the distance is the squared L2 of unit vectors, `2 − 2 cos`;
//! * the pair is called "same" iff `distance < threshold` (strict);
//! * thresholds are `i * 0.01` for i in 0..400 (`np.arange(0, 4, 0.01)`);
//! * folds are contiguous (`KFold(n_splits, shuffle=False)`: the first
//!   `P % k` folds get one extra pair);
//! * per fold the threshold with the best accuracy on the other folds is
//!   chosen (the first, i.e. the lowest, on ties) and the accuracy is
//!   measured on the fold;
//! * the result is the mean and the population standard deviation (ddof 0)
//!   of the fold accuracies.

use super::MetricsError;
use crate::evaldir::KFoldAccuracy;

/// insightface's threshold grid size and step.
const GRID: usize = 400;
const STEP: f64 = 0.01;

/// The rule, in words, for `KFoldAccuracy::rule`.
pub(crate) const KFOLD_RULE: &str = "insightface verification.py: squared L2 = 2 - 2cos, same iff distance < threshold, \
thresholds i*0.01 for i < 400, contiguous folds, best training-fold threshold (first on ties) applied to the \
test fold; mean and population std of the fold accuracies";

/// insightface's distance for a cosine score.
pub(crate) fn squared_l2_of_cosine(cos: f64) -> f64 {
    2.0 - 2.0 * cos
}

/// The k-fold accuracy over pairs given as squared L2 distances with their
/// same-identity labels, in the pair list's order.
pub(crate) fn insightface_kfold(
    squared_l2: &[f64],
    same: &[bool],
    folds: usize,
) -> Result<KFoldAccuracy, MetricsError> {
    if squared_l2.len() != same.len() {
        return Err(MetricsError::PairLabels {
            scores: squared_l2.len(),
            labels: same.len(),
        });
    }
    let pairs = squared_l2.len();
    if folds < 2 || pairs < folds {
        return Err(MetricsError::Folds { pairs, folds });
    }
    let grid: Vec<f64> = (0..GRID).map(|i| i as f64 * STEP).collect();
    // first[p] = the first grid index whose threshold calls pair p "same"
    // (GRID: none does; a NaN distance is never "same").
    let first: Vec<usize> = squared_l2
        .iter()
        .map(|&d| {
            if d.is_nan() {
                GRID
            } else {
                grid.partition_point(|&t| t <= d)
            }
        })
        .collect();

    // Per fold: how many same / different pairs first turn "same" at each
    // grid index.
    let mut bounds = Vec::with_capacity(folds + 1);
    bounds.push(0);
    for f in 0..folds {
        let size = pairs / folds + usize::from(f < pairs % folds);
        bounds.push(bounds[f] + size);
    }
    let histogram = |range: std::ops::Range<usize>| {
        let mut same_at = vec![0u64; GRID + 1];
        let mut diff_at = vec![0u64; GRID + 1];
        for p in range {
            if same[p] {
                same_at[first[p]] += 1;
            } else {
                diff_at[first[p]] += 1;
            }
        }
        (same_at, diff_at)
    };
    let (all_same, all_diff) = histogram(0..pairs);
    // Correct calls at each threshold: same pairs called same (first <= i)
    // plus different pairs called different (first > i).
    let correct = |same_at: &[u64], diff_at: &[u64]| {
        let mut tp = 0u64;
        let mut tn: u64 = diff_at.iter().sum();
        (0..GRID)
            .map(|i| {
                tp += same_at[i];
                tn -= diff_at[i];
                tp + tn
            })
            .collect::<Vec<u64>>()
    };

    let mut accuracies = Vec::with_capacity(folds);
    let mut thresholds = Vec::with_capacity(folds);
    for f in 0..folds {
        let (test_same, test_diff) = histogram(bounds[f]..bounds[f + 1]);
        let train_same: Vec<u64> = all_same
            .iter()
            .zip(&test_same)
            .map(|(a, t)| a - t)
            .collect();
        let train_diff: Vec<u64> = all_diff
            .iter()
            .zip(&test_diff)
            .map(|(a, t)| a - t)
            .collect();
        let train = correct(&train_same, &train_diff);
        let best = (0..GRID).fold(0, |b, i| if train[i] > train[b] { i } else { b });
        let test = correct(&test_same, &test_diff);
        accuracies.push(test[best] as f64 / (bounds[f + 1] - bounds[f]) as f64);
        thresholds.push(grid[best]);
    }
    let mean = accuracies.iter().sum::<f64>() / folds as f64;
    let std = (accuracies
        .iter()
        .map(|a| (a - mean) * (a - mean))
        .sum::<f64>()
        / folds as f64)
        .sqrt();
    Ok(KFoldAccuracy {
        mean,
        std,
        folds: folds as u32,
        thresholds_squared_l2: thresholds,
        rule: KFOLD_RULE.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_rule_on_grid_points_and_contiguous_folds() {
        // 20 pairs, 2 per fold: same pairs at distance 1.0, different pairs
        // at exactly 1.2. Training picks the first threshold above 1.0
        // (1.01 separates perfectly); "same" needs distance < threshold.
        let dist: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { 1.0 } else { 1.2 })
            .collect();
        let same: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
        let k = insightface_kfold(&dist, &same, 10).unwrap();
        assert_eq!((k.mean, k.std), (1.0, 0.0));
        assert!(k.thresholds_squared_l2.iter().all(|&t| t == 101.0 * 0.01));
        assert_eq!(squared_l2_of_cosine(0.5), 1.0);
        assert_eq!(
            insightface_kfold(&dist[..5], &same[..5], 10),
            Err(MetricsError::Folds {
                pairs: 5,
                folds: 10
            })
        );
        assert_eq!(
            insightface_kfold(&dist, &same[..3], 10),
            Err(MetricsError::PairLabels {
                scores: 20,
                labels: 3
            })
        );
    }
}
