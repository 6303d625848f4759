//! The evaluate output directory format (filled in by the evaluate work).
