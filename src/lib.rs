//! facekit: convert the AI Hub K-Face dataset into arcface_torch training
//! shards, compare face embeddings on the CPU or a CUDA GPU, and report the
//! verification, identification and open-set metrics a threshold is chosen by.
//!
//! The library holds the pieces; `src/cmd/` wires one pipeline per
//! subcommand; `src/main.rs` only parses arguments and maps outcomes to exit
//! codes.

pub mod align;
pub mod cli;
pub mod cmd;
pub mod compare;
pub mod embed;
pub mod evaldir;
pub mod evalinput;
pub mod imaging;
pub mod kface;
pub mod metrics;
pub mod output;
pub mod pairs;
pub mod partition;
pub mod report;
pub mod shard;
pub mod synth;
pub mod synthetic_model;
pub mod text;

/// The skip rule of the tests that need a tool outside cargo, shared with
/// the integration tests.
#[cfg(test)]
#[path = "../tests/require/mod.rs"]
mod require;

/// The version written into every output that records one.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
