//! Metrics over score statistics, as pure functions. Scores are cosine
//! similarities and the decision rule is "accept if score >= threshold"
//! (bob.measure, NIST); every count is an integer until the final division.

mod score_counts;

pub use score_counts::ScoreCounts;
