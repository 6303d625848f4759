//! `cargo xtask bench convert`: images/s and peak memory of the release
//! `facekit convert` on a synthetic Middle-tier tree, against a reference
//! Python pipeline doing the same work (cv2 decode, skimage Umeyama,
//! cv2.warpAffine, cv2.imencode q95, mxnet RecordIO, 2 worker processes);
//! with `--zip`, also convert from `Middle_Resolution.zip` against the
//! extracted tree (issue 3).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use facekit::synth::{self, Config, Summary, Tier};

use crate::measure::{self, Measured};

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// facekit convert vs the reference Python pipeline (and the zip path with --zip)
    #[command(
        after_help = "Example:\n  FACEKIT_PYTHON_INTEROP=/work/venv-interop/bin/python cargo xtask bench convert --zip"
    )]
    Convert(ConvertBench),
}

#[derive(Debug, Args)]
pub struct ConvertBench {
    /// At least this many images (whole identities of 324 images each)
    #[arg(long, default_value_t = 5000)]
    pub images: u64,
    /// Runs per tool; the median is reported
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also convert from Middle_Resolution.zip and compare with the tree
    #[arg(long)]
    pub zip: bool,
    /// Worker threads of facekit (passed as --jobs; default: all cores)
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Worker processes of the Python pipeline
    #[arg(long, default_value_t = 2)]
    pub python_workers: usize,
    /// Skip the Python pipeline
    #[arg(long)]
    pub no_python: bool,
}

/// The images of every bench identity: annotated (S001 L1/L3/L6) and
/// unannotated ones (L2, S002, S003) that take sibling landmarks, nine
/// cameras from +60° to -60°. No L7, so facekit's default selection takes
/// every image.
const SELECTION: &str = "S1-3 L1-3,6 E1-3 C3-11";
const PER_IDENTITY: u64 = 3 * 4 * 3 * 9;

pub fn run(bench: &Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Convert(args) => convert(args),
    }
}

/// One tool's runs.
struct Row {
    tool: String,
    /// Source images offered; rates are per source image.
    images: u64,
    /// Records the tool wrote (last run).
    records: u64,
    runs: Vec<Measured>,
}

impl Row {
    fn rate(&self) -> f64 {
        let rates: Vec<f64> = self
            .runs
            .iter()
            .map(|m| self.images as f64 / m.seconds)
            .collect();
        measure::median(&rates)
    }

    fn rate_per_cpu_second(&self) -> f64 {
        let rates: Vec<f64> = self
            .runs
            .iter()
            .map(|m| self.images as f64 / m.cpu_seconds)
            .collect();
        measure::median(&rates)
    }

    fn peak_rss(&self) -> u64 {
        self.runs
            .iter()
            .map(|m| m.peak_tree_rss.max(m.peak_process_rss))
            .max()
            .unwrap_or(0)
    }
}

fn convert(args: &ConvertBench) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask sits in the workspace")?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    build_facekit(root)?;
    let facekit = target.join("release/facekit");
    let work = target.join("bench-convert");
    let data = synthetic_data(&work, args.images)?;
    let tree = data
        .tree_root
        .clone()
        .context("the bench data has a tree")?;
    println!(
        "data: {} synthetic Middle images ({} identities, {SELECTION}) in {}",
        data.images,
        data.identities.len(),
        tree.display()
    );

    let mut rows = vec![facekit_row(
        "facekit convert (tree)",
        &facekit,
        &tree,
        &work.join("out-facekit"),
        &data,
        args,
    )?];
    if args.zip {
        let zip = data.zip_path.clone().context("the bench data has a zip")?;
        let out = work.join("out-facekit-zip");
        rows.push(facekit_row(
            "facekit convert (Middle_Resolution.zip)",
            &facekit,
            &zip,
            &out,
            &data,
            args,
        )?);
        // Issue 3: converting the zips gives the same records as the tree.
        let same = ["train.rec", "train.idx"].iter().all(|f| {
            let (a, b) = (
                fs::read(work.join("out-facekit").join(f)),
                fs::read(out.join(f)),
            );
            matches!((a, b), (Ok(a), Ok(b)) if a == b)
        });
        println!(
            "train.rec and train.idx from the zip and from the tree are byte-identical: {same}"
        );
    }
    let note = if args.no_python {
        "Python reference skipped (--no-python)".to_string()
    } else if let Some(python) = std::env::var_os("FACEKIT_PYTHON_INTEROP") {
        let (row, inner_rate) = python_row(
            Path::new(&python),
            root,
            &tree,
            &work.join("out-python"),
            &data,
            args,
        )?;
        rows.push(row);
        format!(
            "Python: {} worker processes, peak RSS summed over its processes; \
             {inner_rate:.0} images/s after its imports",
            args.python_workers
        )
    } else {
        "Python reference skipped: set FACEKIT_PYTHON_INTEROP to the interop venv's python \
         (numpy<1.24, mxnet 1.9.1, opencv-python-headless, scikit-image)"
            .to_string()
    };
    print_table(&rows, args);
    println!("{note}");
    Ok(())
}

/// Builds the release binary in one invocation with xtask, so both share
/// one feature set and one cached build.
fn build_facekit(root: &Path) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["build", "--release", "--workspace", "--bins", "--quiet"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    Ok(())
}

/// The bench tree and zip, written once and reused while their
/// `synth.json` matches.
fn synthetic_data(work: &Path, images: u64) -> anyhow::Result<Summary> {
    let identities = images.div_ceil(PER_IDENTITY).max(1) as usize;
    let config = Config {
        identities,
        tier: Tier::Middle,
        selection: SELECTION.parse()?,
        seed: 0,
        faults: false,
        tree: true,
        zip: true,
        korean_parent: false,
        extra_nesting: false,
    };
    let dir = work.join(format!("data-{identities}"));
    let stamp = dir.join("synth.json");
    let existing = fs::read_to_string(&stamp)
        .ok()
        .and_then(|t| serde_json::from_str::<Summary>(&t).ok());
    if let Some(existing) = existing {
        let same = existing.identities.len() == identities
            && existing.selection == config.selection.to_string()
            && existing.seed == config.seed
            && existing.tree_root.is_some()
            && existing.zip_path.is_some();
        if same {
            return Ok(existing);
        }
    }
    fresh(&dir)?;
    eprintln!(
        "writing {} synthetic images to {}",
        identities as u64 * PER_IDENTITY,
        dir.display()
    );
    let start = std::time::Instant::now();
    let summary = synth::generate(&config, &dir)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "wrote them in {secs:.1} s ({:.0} images/s, tree and zip)",
        summary.images as f64 / secs
    );
    facekit::output::write_atomic(&stamp, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

fn facekit_row(
    tool: &str,
    facekit: &Path,
    src: &Path,
    out: &Path,
    data: &Summary,
    args: &ConvertBench,
) -> anyhow::Result<Row> {
    let mut runs = Vec::new();
    let mut records = 0;
    for _ in 0..args.runs {
        if out.exists() {
            fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
        }
        let mut cmd = Command::new(facekit);
        cmd.arg("convert")
            .arg(src)
            .arg("--out")
            .arg(out)
            .arg("--quiet");
        if let Some(jobs) = args.jobs {
            cmd.args(["--jobs", &jobs.to_string()]);
        }
        runs.push(measure::run(&mut cmd)?);
        let dataset = out.join("dataset.json");
        let text = fs::read_to_string(&dataset)
            .with_context(|| format!("reading {}", dataset.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", dataset.display()))?;
        records = json["num_image"]
            .as_u64()
            .with_context(|| format!("{}: no num_image", dataset.display()))?;
    }
    Ok(Row {
        tool: tool.to_string(),
        images: data.images,
        records,
        runs,
    })
}

/// The reference pipeline's runs, and its own median rate after imports.
fn python_row(
    python: &Path,
    root: &Path,
    tree: &Path,
    out: &Path,
    data: &Summary,
    args: &ConvertBench,
) -> anyhow::Result<(Row, f64)> {
    let script = root.join("scripts/bench/convert_reference.py");
    let mut runs = Vec::new();
    let mut records = 0;
    let mut inner_rates = Vec::new();
    for _ in 0..args.runs {
        fresh(out)?;
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg(tree)
            .arg(out)
            .args(["--workers", &args.python_workers.to_string()]);
        let m = measure::run(&mut cmd)?;
        let report: serde_json::Value = serde_json::from_str(m.stdout.trim())
            .with_context(|| format!("reading the Python pipeline's report {:?}", m.stdout))?;
        records = report["images"]
            .as_u64()
            .context("the Python report has no image count")?;
        inner_rates.push(report["images_per_s"].as_f64().unwrap_or(0.0));
        runs.push(m);
    }
    let tool = format!("Python reference ({} workers)", args.python_workers);
    Ok((
        Row {
            tool,
            images: data.images,
            records,
            runs,
        },
        measure::median(&inner_rates),
    ))
}

fn fresh(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn print_table(rows: &[Row], args: &ConvertBench) {
    let python = rows.iter().find(|r| r.tool.starts_with("Python"));
    let ratio = |mine: f64, theirs: Option<f64>| {
        theirs.map_or("-".to_string(), |p| format!("{:.2}x", mine / p))
    };
    println!();
    println!(
        "| tool | records | images/s (median of {}) | ratio to Python | images per CPU-second | ratio | peak RSS |",
        args.runs
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let rss = row.peak_rss() as f64 / (1u64 << 20) as f64;
        println!(
            "| {} | {} | {:.0} | {} | {:.0} | {} | {rss:.0} MiB |",
            row.tool,
            row.records,
            row.rate(),
            ratio(row.rate(), python.map(Row::rate)),
            row.rate_per_cpu_second(),
            ratio(
                row.rate_per_cpu_second(),
                python.map(Row::rate_per_cpu_second)
            ),
        );
    }
    if let [tree, zip, ..] = rows {
        if zip.tool.contains(".zip") {
            println!(
                "zip / tree throughput: {:.3} (target >= 0.9)",
                zip.rate() / tree.rate()
            );
        }
    }
    if rows.iter().any(|r| r.records != rows[0].records) {
        println!("note: the tools wrote different record counts; images/s counts source images");
    }
}
