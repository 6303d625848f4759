//! Developer tasks: `cargo xtask synth` writes synthetic K-Face data,
//! `cargo xtask bench convert` measures `facekit convert` against a
//! reference Python pipeline, `cargo xtask bench evaluate` measures
//! `facekit evaluate` against its Python anchors, `cargo xtask bench embed`
//! measures `facekit embed` against the Python onnxruntime loop, `cargo
//! xtask bench shard` measures a split `facekit evaluate` and its merge.

mod bench;
mod bench_embed;
mod bench_evaluate;
mod bench_shard;
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
    Bench(Bench),
}

#[derive(Debug, Subcommand)]
enum Bench {
    #[command(flatten)]
    Convert(bench::Bench),
    /// facekit evaluate vs scikit-learn, bob.measure, faiss and numpy (issue 4)
    #[command(
        after_help = "Example:\n  FACEKIT_PYTHON_ANCHORS=/work/venv-anchors/bin/python cargo xtask bench evaluate"
    )]
    Evaluate(bench_evaluate::EvaluateBench),
    /// facekit embed vs the Python onnxruntime loop users write (issue 11)
    #[command(
        after_help = "Example:\n  FACEKIT_PYTHON_ORT=~/.cache/facekit-ci/venv-ort/bin/python cargo xtask bench embed"
    )]
    Embed(bench_embed::EmbedBench),
    /// facekit evaluate whole vs split into parts and merged (issue 12)
    #[command(after_help = "Example:\n  cargo xtask bench shard --runs 3 --parts 4")]
    Shard(bench_shard::ShardBench),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Synth(args) => synth::run(&args),
        Task::Bench(Bench::Convert(bench)) => bench::run(&bench),
        Task::Bench(Bench::Evaluate(args)) => bench_evaluate::run(&args),
        Task::Bench(Bench::Embed(args)) => bench_embed::run(&args),
        Task::Bench(Bench::Shard(args)) => bench_shard::run(&args),
    }
}
