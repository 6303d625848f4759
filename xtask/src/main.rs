//! Developer tasks: `cargo xtask synth` writes synthetic K-Face data,
//! `cargo xtask bench convert` measures `facekit convert` against a
//! reference Python pipeline.

mod bench;
mod measure;
mod synth;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "facekit developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write a synthetic K-Face tree (and optionally the AI Hub zip form)
    #[command(
        after_help = "Example:\n  cargo xtask synth --out data/kface-sample --identities 5 --select \"S1-2 L1,3 E1-3 C4-10\""
    )]
    Synth(synth::SynthArgs),
    /// Benchmarks
    #[command(subcommand)]
    Bench(bench::Bench),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Synth(args) => synth::run(&args),
        Task::Bench(bench) => bench::run(&bench),
    }
}
