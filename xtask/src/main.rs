//! Developer tasks: `cargo xtask bench evaluate` measures `facekit
//! evaluate` against its Python anchors.

mod bench_evaluate;
mod measure;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "facekit developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Benchmarks
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// facekit evaluate vs scikit-learn, bob.measure, faiss and numpy (issue 4)
    #[command(
        after_help = "Example:\n  FACEKIT_PYTHON_ANCHORS=/work/venv-anchors/bin/python cargo xtask bench evaluate"
    )]
    Evaluate(bench_evaluate::EvaluateBench),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Bench(Bench::Evaluate(args)) => bench_evaluate::run(&args),
    }
}
