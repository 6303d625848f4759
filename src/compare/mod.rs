//! The comparison engines (filled in by the evaluate work).
