//! Metrics over score statistics (filled in by the evaluate work).
