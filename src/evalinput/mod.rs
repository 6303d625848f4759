//! What `facekit evaluate` reads: embeddings (`.npy`), their label table,
//! score files written by other tools, and verification pair lists. Each
//! reader refuses bad input with an error naming the file and the row.

pub mod labels;
pub mod npy;
pub mod pairs;
pub mod scores;

/// An error of another library as one line (polars' messages can carry
/// hints on further lines; facekit prints one line per error).
pub(crate) fn one_line(e: &impl ToString) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
