//! Command-line definitions and the one place that maps outcomes to exit
//! codes: 0 success, 1 a user error (one line naming the file and the
//! problem), 2 bad arguments (clap's own code).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "facekit",
    version,
    about = "Convert K-Face to arcface_torch shards, evaluate face embeddings, choose thresholds",
    long_about = "facekit turns the AI Hub Korean face dataset (K-Face) into aligned 112x112 \
arcface_torch training shards, compares face embeddings on the CPU or a CUDA GPU, and reports \
the verification, identification and open-set metrics that a decision threshold is chosen by.",
    after_help = "Start with `facekit demo`: it runs the whole path on bundled sample data."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert the AI Hub K-Face tree (folders or zips) into aligned, labeled training shards
    #[command(
        after_help = "Example:\n  facekit convert \"한국인 안면 이미지/Middle_Resolution\" --out kface112 \\\n      --select \"S1-2 L1-6,8-30 E1-3 C4-10\" --holdout kface30\n\nMemory: one zip member (at most 64 MiB) and one source image per worker, crops of at most 512x512; the crops, and an inner <ID>.zip the tier zip deflated, wait on disk."
    )]
    Convert(ConvertArgs),
    /// Write seeded verification pairs (pairs.txt and the arcface_torch .bin) from a converted eval set
    #[command(
        after_help = "Example:\n  facekit pairs kface112 --out kface112 --positives 500 --negatives 500"
    )]
    Pairs(PairsArgs),
    /// Count and check every record of a converted directory, a .rec or a verification .bin
    #[command(
        after_help = "Example:\n  facekit inspect kface112\n  facekit inspect kface112/kface.bin\n\nMemory: a batch of records; for a .bin, the file and at most 4 GiB of images it refers to."
    )]
    Inspect(InspectArgs),
    /// Run your exported ONNX face model over aligned crops: embeddings.npy + labels for evaluate and search
    #[command(
        after_help = "Example:\n  facekit embed --model r50.onnx kface112/eval --out emb\n  facekit embed --model r50.onnx kface112/kface.bin --flip --out emb_bin\n  facekit embed --model r50.onnx kface112/eval --shard 0/4 --out parts/emb-0   (then 1/4 .. 3/4, then facekit merge)\n\n\
onnxruntime is loaded at run time: --onnxruntime PATH, else ORT_DYLIB_PATH, else the `onnxruntime` \
package of the active Python environment (VIRTUAL_ENV, CONDA_PREFIX, python3 on PATH), else the \
system library path. Get it with `pip install onnxruntime` (`onnxruntime-gpu` for CUDA).\n\n\
Memory: the model, the input list, and two batches of prepared images (batch x 3 x size^2 floats, \
twice with --flip), plus the embeddings (N x D floats)."
    )]
    Embed(EmbedArgs),
    /// Compare embeddings (or read scores) and compute verification, identification and open-set metrics
    #[command(
        after_help = "Exactness: up to --exact-budget impostor comparisons (default 268,435,456 = 2^28; about \
10 bytes each at the peak, 2.7 GB) every impostor score is held exactly, so every threshold, rate, EER and \
AUC is what the exact scores give. Beyond it every --fmr operating point stays exact: the highest scores are \
held down to the targets that need at most 2^18 of them, and around each other target's threshold every \
score of a narrow band (placed from a seeded sample of the rows) is counted by its value; the rest are \
counted in bins of 3.05e-5. summary.json and summary.md mark each figure read in the bins.\n\n\
Example:\n  facekit evaluate --embeddings emb/embeddings.npy --labels emb/labels.csv --out eval\n  facekit evaluate --scores scores.parquet --out eval\n\nMemory: the embeddings (N x D x 4 bytes) or scores, the exact impostor store above, one tile of comparisons per thread, at most 100000 bootstrap replicates."
    )]
    Evaluate(EvaluateArgs),
    /// Combine the parts of a job split with --shard (embed or evaluate) into the one-machine result
    #[command(
        after_help = "Example:\n  facekit merge parts/eval-0 parts/eval-1 parts/eval-2 parts/eval-3 --out eval\n  facekit merge parts/emb-* --out emb"
    )]
    Merge(MergeArgs),
    /// Search probe faces in a gallery: top-k identities, or "unknown" below a threshold
    #[command(
        after_help = "Example:\n  facekit search --gallery gallery_emb --probes probe_emb --threshold eval:fpir=0.01"
    )]
    Search(SearchArgs),
    /// Draw the threshold-tuning charts and the HTML report of one or more evaluate runs
    #[command(
        after_help = "Example:\n  facekit report eval --out report\n  facekit report before/ after/ --out compare"
    )]
    Report(ReportArgs),
    /// Run the whole path on bundled sample data and write reports/demo/index.html
    #[command(after_help = "Example:\n  facekit demo")]
    Demo(DemoArgs),
}

/// Flags shared by commands that print a summary.
#[derive(Debug, Clone, Args)]
pub struct OutputFlags {
    /// No progress bar and no summary on standard output
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardFormat {
    /// MXNet RecordIO train.rec + train.idx (insightface flat layout)
    Rec,
    /// An ImageFolder tree, one folder per class, names sorting in label order
    Folder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LandmarkPolicy {
    /// Own annotation, else the nearest-light annotated S001 image of the same identity, camera and expression
    Sibling,
    /// Only images with their own annotation file
    Annotation,
    /// Square face-box crop without rotation
    Bbox,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Tier folders, tier zips, per-identity zips, or folders holding any of these
    #[arg(required = true, value_name = "SRC")]
    pub sources: Vec<PathBuf>,
    /// Output directory
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Selection in the K-Face notation, e.g. "S1-2 L1-6,8-30 E1-3 C4-10" (default: all but L7)
    #[arg(long, value_name = "SPEC")]
    pub select: Option<String>,
    /// Identities kept out of training: a file of IDs, `kface30`, or a count chosen by seed
    #[arg(long, value_name = "FILE|N")]
    pub holdout: Option<String>,
    /// Enrolment images of in-DB held-out identities, in the select notation
    #[arg(long, value_name = "SPEC", default_value = "S1 L1 E1 C7")]
    pub enroll: String,
    /// Share of held-out identities left out of the gallery (out-of-DB)
    #[arg(long, value_name = "SHARE", default_value_t = 0.5)]
    pub out_of_db_share: f64,
    /// Side of the square aligned crop (a multiple of 112 or 128, at most 512: memory follows its square)
    #[arg(long, default_value_t = 112, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub size: u32,
    /// Shard format
    #[arg(long, value_enum, default_value_t = ShardFormat::Rec)]
    pub format: ShardFormat,
    /// Where landmarks of unannotated images come from
    #[arg(long, value_enum, default_value_t = LandmarkPolicy::Sibling)]
    pub landmarks: LandmarkPolicy,
    /// JPEG quality of the stored crops
    #[arg(long, default_value_t = 95, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Seed of the record shuffle and of every random choice
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores)
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Replace a finished output in DIR
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: OutputFlags,
}

#[derive(Debug, Args)]
pub struct PairsArgs {
    /// A directory written by `facekit convert --holdout`
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where pairs.txt and kface.bin go
    #[arg(long, value_name = "PAIRS_DIR")]
    pub out: PathBuf,
    /// Number of genuine pairs
    #[arg(long, default_value_t = 500)]
    pub positives: usize,
    /// Number of impostor pairs
    #[arg(long, default_value_t = 500)]
    pub negatives: usize,
    /// Attributes of the first image of each pair, in the select notation
    #[arg(long, value_name = "SPEC")]
    pub first: Option<String>,
    /// Attributes of the second image of each pair, in the select notation
    #[arg(long, value_name = "SPEC")]
    pub second: Option<String>,
    /// Name of the .bin (arcface_torch val_targets entry)
    #[arg(long, default_value = "kface")]
    pub name: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub output: OutputFlags,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A converted directory, a train.rec, or a verification .bin
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub output: OutputFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// CUDA when a driver and GPU are present, the CPU otherwise
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The exported model (arcface_torch's torch2onnx.py output, or any [N,3,H,W] -> [N,D] ONNX model)
    #[arg(long, value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// convert's eval/ directory, a folder of <identity>/<crop>.jpg, a train.rec, or a verification .bin
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output embeddings directory (embeddings.npy, labels.parquet/.csv, failed.csv, embed.json)
    #[arg(long, value_name = "EMB_DIR")]
    pub out: PathBuf,
    /// Add the embedding of each image's horizontal mirror before normalising (insightface's test-time flip)
    #[arg(long)]
    pub flip: bool,
    /// Images per model call (a model whose batch size is fixed runs in pieces of that size)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: u32,
    /// Where the model runs: the CUDA execution provider when the loaded onnxruntime has it and it starts
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Pixel normalisation: arcface ((x-127.5)/127.5), raw (0-255) or MEAN,STD (default: raw when the model normalises itself, else arcface)
    #[arg(long, value_name = "arcface|raw|MEAN,STD")]
    pub input_norm: Option<crate::embed::preprocess::Normalisation>,
    /// Feed channels in BGR order (default RGB, as arcface_torch trains)
    #[arg(long)]
    pub bgr: bool,
    /// The onnxruntime shared library to load (libonnxruntime.so)
    #[arg(long, value_name = "PATH")]
    pub onnxruntime: Option<PathBuf>,
    /// Threads for the model and for decoding (default: all cores)
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Replace an embeddings directory an earlier `facekit embed` wrote
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub shard: ShardArgs,
    #[command(flatten)]
    pub output: OutputFlags,
}

/// Which part of a split job this run does (Slurm / Kubernetes array tasks).
#[derive(Debug, Clone, Copy, Args)]
pub struct ShardArgs {
    /// Do part I of N (0 <= I < N) and write a partial result for `facekit merge` (default: from SLURM_ARRAY_TASK_ID/_COUNT, or JOB_COMPLETION_INDEX with --shard-count; else the whole job)
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::partition::ShardSpec>,
    /// N for a Kubernetes Indexed Job, whose tasks see only JOB_COMPLETION_INDEX (the Job's completions)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub shard_count: Option<u32>,
}

impl ShardArgs {
    /// The part this run does: the flags, else the scheduler's environment.
    pub(crate) fn resolve(
        &self,
    ) -> Result<crate::partition::Shard, crate::partition::PartitionError> {
        crate::partition::from_environment(self.shard, self.shard_count)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    Fp32,
    Tf32,
    Bf16,
    Fp16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Every distinct pair of embeddings (verification), gallery vs probes when roles are given (identification)
    AllPairs,
    /// Probes against the gallery only
    ProbeGallery,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Embeddings, float32 or float16 .npy [N, D] in C order
    #[arg(
        long,
        value_name = "E.npy",
        requires = "labels",
        conflicts_with = "scores"
    )]
    pub embeddings: Option<PathBuf>,
    /// One row per embedding: identity, optional role (gallery/probe), path, attribute columns
    #[arg(long, value_name = "L.csv|L.parquet")]
    pub labels: Option<PathBuf>,
    /// Scores already computed: CSV/Parquet with `score`,`genuine`, or bob's 2-, 4- or 5-column text (4 and 5 columns also give identification)
    #[arg(
        long,
        value_name = "S.csv|S.parquet|S.txt",
        required_unless_present = "embeddings"
    )]
    pub scores: Option<PathBuf>,
    /// Score only the pairs listed (K-Face/LFW line format `path1 path2 1|0`)
    #[arg(long, value_name = "PAIRS.txt")]
    pub pairs: Option<PathBuf>,
    /// Which comparisons make up the verification set
    #[arg(long, value_enum, default_value_t = Protocol::AllPairs)]
    pub protocol: Protocol,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of the products: the CPU engine does fp32 and bf16 (AVX-512 BF16), the GPU all four; reduced precisions report their score error
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Target false match rates
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "1e-1,1e-2,1e-3,1e-4,1e-5,1e-6"
    )]
    pub fmr: Vec<f64>,
    /// Target false positive identification rates
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "1e-1,1e-2,1e-3"
    )]
    pub fpir: Vec<f64>,
    /// Length of each probe's candidate list
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// R of the open-set FNIR(N, R, T): a mated search is a hit when its mate is within the first R and scores at least T
    #[arg(long, value_name = "R", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub rank: u64,
    /// FNMR and FMR per value of this label column at the global thresholds (repeatable)
    #[arg(long, value_name = "COL")]
    pub group_by: Vec<String>,
    /// Bootstrap replicates of the 95% intervals (0 turns them off; at most 100000)
    #[arg(long, default_value_t = 200, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=100_000))]
    pub bootstrap: usize,
    /// Impostor comparisons whose scores are all held exactly (about 10 bytes each at the peak); beyond it the highest and those near each --fmr target
    #[arg(long, value_name = "N", default_value_t = 1 << 28, value_parser = clap::value_parser!(u64).range(1..=1 << 32))]
    pub exact_budget: u64,
    /// Split the gallery too: part I of --shard I/N compares probe block I / G with gallery block I % G (N a multiple of G; probe × gallery on the CPU engine), so a part holds 1/G of the gallery
    #[arg(long, value_name = "G", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub gallery_blocks: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory
    #[arg(long, value_name = "EVAL_DIR", default_value = "eval")]
    pub out: PathBuf,
    /// Worker threads (default: all cores)
    #[arg(long, short)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub shard: ShardArgs,
    #[command(flatten)]
    pub output: OutputFlags,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Every part of one job: the output folders of `facekit embed --shard I/N` or `facekit evaluate --shard I/N`
    #[arg(required = true, value_name = "PART")]
    pub parts: Vec<PathBuf>,
    /// The merged EMB_DIR or EVAL_DIR
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a folder an earlier facekit run of the same command wrote
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: OutputFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Gallery: an embeddings directory (embeddings.npy + labels.csv/.parquet; its `gallery` rows when it has a role column)
    #[arg(long, value_name = "EMB_DIR")]
    pub gallery: PathBuf,
    /// Probes: an embeddings directory (its `probe` rows when it has a role column)
    #[arg(long, value_name = "EMB_DIR")]
    pub probes: PathBuf,
    /// Candidates listed per probe
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// A cosine threshold, or an operating point of an evaluate run: EVAL_DIR:fpir=0.01 or EVAL_DIR:fmr=1e-3
    #[arg(long, value_name = "T")]
    pub threshold: Option<String>,
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of the products, as for evaluate: on the CPU, bf16 (AVX-512 BF16) gives the same candidates and scores as fp32, faster
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// One or more directories written by `facekit evaluate` (several are overlaid as systems)
    #[arg(required = true, value_name = "EVAL_DIR")]
    pub eval_dirs: Vec<PathBuf>,
    /// Output directory for index.html and the charts
    #[arg(long, value_name = "REPORT_DIR")]
    pub out: PathBuf,
    /// A threshold of your own (cosine), whose cost the in-DB vs out-of-DB chart shows
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,
    /// The folder the labels' image paths are relative to, for the explorer's faces (default: the labels file's folder)
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputFlags,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo writes its data, evaluation and report
    #[arg(long, value_name = "DIR", default_value = "reports/demo")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub output: OutputFlags,
}

/// Parses the arguments, runs one pipeline and turns its outcome into an
/// exit code. A closed pipe (`facekit … | head`) ends quietly.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    match try_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("facekit: {}", one_line(&err));
            ExitCode::from(1)
        }
    }
}

fn try_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Convert(args) => cmd::convert::run(&args),
        Command::Pairs(args) => cmd::pairs::run(&args),
        Command::Inspect(args) => cmd::inspect::run(&args),
        Command::Embed(args) => cmd::embed::run(&args),
        Command::Evaluate(args) => cmd::evaluate::run(&args),
        Command::Merge(args) => cmd::merge::run(&args),
        Command::Search(args) => cmd::search::run(&args),
        Command::Report(args) => cmd::report::run(&args),
        Command::Demo(args) => cmd::demo::run(&args),
    }
}

/// The error and its causes on one line, each cause once: library errors
/// often quote their source already ("x.npy: No such file or directory").
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_names_each_cause_once() {
        let io = io::Error::new(io::ErrorKind::NotFound, "No such file or directory");
        let quoted = anyhow::Error::from(crate::evalinput::npy::NpyError::Io {
            path: "x.npy".into(),
            source: io,
        });
        assert_eq!(one_line(&quoted), "x.npy: No such file or directory");
        let chained = anyhow::anyhow!("disk full").context("writing eval/roc.csv");
        assert_eq!(one_line(&chained), "writing eval/roc.csv: disk full");
    }
}
