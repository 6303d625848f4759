//! Metrics over score statistics, as pure functions. Scores are cosine
//! similarities and the decision rule is "accept if score >= threshold"
//! (bob.measure, NIST); every count is an integer until the final division.
//!
//! | module | what it computes |
//! |---|---|
//! | [`verification`] | the exact ROC/DET step curve, AUC, EER, FNMR at FMR targets, d′ |
//! | [`identification`] | closed-set CMC and rank-1; the identification block of `summary.json` |
//! | [`open_set`] | open-set FPIR / FNIR (NIST) at any threshold, for evaluate and the report |
//! | [`bootstrap`] | 95% intervals: subject bootstrap, Clopper–Pearson |
//! | [`kfold`] | insightface's 10-fold verification accuracy |
//! | [`groups`] | FNMR and FMR per group at global thresholds |

pub mod bootstrap;
pub mod groups;
pub mod identification;
pub mod kfold;
pub mod open_set;
mod score_counts;
pub mod verification;

pub use score_counts::ScoreCounts;

/// Why a metric cannot be computed from the given statistics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("no genuine (mated) scores")]
    NoGenuine,
    #[error("no impostor (non-mated) scores")]
    NoImpostor,
    #[error("no mated probes (no probe's identity is in the gallery)")]
    NoMatedProbes,
    #[error("target rate {0} is not in [0, 1]")]
    Target(f64),
    #[error("{scores} scores but {labels} same/different labels")]
    PairLabels { scores: usize, labels: usize },
    #[error("{pairs} pairs cannot be split into {folds} folds")]
    Folds { pairs: usize, folds: usize },
}

#[cfg(test)]
mod anchor_tests;
#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod speed_tests;
