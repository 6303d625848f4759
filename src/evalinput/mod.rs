//! What `facekit evaluate` reads: embeddings (`.npy`), their label table,
//! score files written by other tools, and verification pair lists. Each
//! reader refuses bad input with an error naming the file and the row.

pub mod labels;
pub mod npy;
pub mod pairs;
pub mod scores;
