//! One pipeline per subcommand, wiring the library modules together. I/O and
//! user-facing messages live here; the maths stays in the modules.

pub mod convert;
pub mod demo;
pub mod embed;
pub mod engine;
pub mod evaluate;
pub mod inspect;
pub(crate) mod inspect_bin;
pub mod merge;
pub mod pairs;
pub mod report;
pub mod search;
