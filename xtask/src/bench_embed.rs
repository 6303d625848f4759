//! `cargo xtask bench embed`: images/s and peak memory of the release
//! `facekit embed` against the Python loop users write
//! (`scripts/bench/embed_loop.py`: PIL decode, batch 32, onnxruntime with 2
//! intra-op threads), on the same aligned crops, the same model file and
//! the same cores, run interleaved (Python, facekit, Python, facekit, ...)
//! so both see the same machine. Models: a random-weight IResNet-50 as
//! torch2onnx exports it and a MobileFaceNet-size network, both built by
//! `scripts/models/make_models.py` into the work folder (never committed).
//! The embeddings of the two sides must agree (cos >= 0.9999 per row).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::Args;
use facekit::evalinput::{labels, npy};
use facekit::imaging::encode_jpeg;

use crate::measure::{self, Measured};

#[derive(Debug, Args)]
pub struct EmbedBench {
    /// Aligned 112x112 crops to embed
    #[arg(long, default_value_t = 2000)]
    pub images: usize,
    /// Runs per side, interleaved; minimum and median are reported
    #[arg(long, default_value_t = 2)]
    pub runs: usize,
    /// Models to run (iresnet50, mobilefacenet)
    #[arg(long, value_delimiter = ',', default_value = "mobilefacenet,iresnet50")]
    pub models: Vec<String>,
    /// Threads on both sides (onnxruntime intra-op; facekit --jobs)
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Work folder for crops, models and outputs
    #[arg(long, default_value = "target/bench-embed")]
    pub work: PathBuf,
}

pub fn run(args: &EmbedBench) -> anyhow::Result<()> {
    let python = std::env::var_os("FACEKIT_PYTHON_ORT").context(
        "set FACEKIT_PYTHON_ORT to a python with onnxruntime, onnx, numpy and pillow \
         (scripts/requirements-ort.txt)",
    )?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let facekit = root.join("target/release/facekit");
    if !facekit.is_file() {
        bail!(
            "{}: build it first (cargo build --release)",
            facekit.display()
        );
    }
    let library = ort_library(&python)?;
    fs::create_dir_all(&args.work)?;
    let crops = args.work.join(format!("crops-{}", args.images));
    if !crops.is_dir() {
        write_crops(&crops, args.images)?;
    }
    println!(
        "{} aligned 112x112 JPEG crops, {} threads, onnxruntime {}",
        args.images,
        args.threads,
        library.display()
    );
    for name in &args.models {
        let model = args.work.join(format!("{name}.onnx"));
        if !model.is_file() {
            let status = Command::new(&python)
                .arg(root.join("scripts/models/make_models.py"))
                .arg(name)
                .arg(&model)
                .status()?;
            if !status.success() {
                bail!("make_models.py {name} failed");
            }
        }
        bench_model(args, &python, &facekit, &library, &model, &crops, &root)?;
    }
    Ok(())
}

/// The onnxruntime library of the bench's Python, so both sides run the
/// same build of the same engine.
fn ort_library(python: &std::ffi::OsStr) -> anyhow::Result<PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import onnxruntime, glob, os; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*')))[-1])",
        ])
        .output()?;
    if !out.status.success() {
        bail!("the bench python has no onnxruntime");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// Face-sized textures as q95 JPEGs, 20 per identity folder.
fn write_crops(dir: &Path, images: usize) -> anyhow::Result<()> {
    let staging = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&staging);
    for i in 0..images {
        let folder = staging.join(format!("{:05}", i / 20));
        fs::create_dir_all(&folder)?;
        let seed = i as u32;
        let image = image::RgbImage::from_fn(112, 112, |x, y| {
            let v = |k: u32| {
                ((x * (3 + k) + y * (5 + seed % 7) + seed * 13 + (x * y) / (9 + k)) % 256) as u8
            };
            image::Rgb([v(0), v(1), v(2)])
        });
        fs::write(folder.join(format!("{i:05}.jpg")), encode_jpeg(&image, 95))?;
    }
    fs::rename(&staging, dir)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn bench_model(
    args: &EmbedBench,
    python: &std::ffi::OsStr,
    facekit: &Path,
    library: &Path,
    model: &Path,
    crops: &Path,
    root: &Path,
) -> anyhow::Result<()> {
    let python_out = args.work.join("python.npy");
    let facekit_out = args.work.join("facekit-emb");
    let (mut py, mut fk): (Vec<Measured>, Vec<Measured>) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        py.push(measure::run(
            Command::new(python)
                .arg(root.join("scripts/bench/embed_loop.py"))
                .arg(model)
                .arg(crops)
                .arg(&python_out)
                .args(["--threads", &args.threads.to_string()]),
        )?);
        fk.push(measure::run(
            Command::new(facekit)
                .args(["embed", "--model"])
                .arg(model)
                .arg(crops)
                .arg("--out")
                .arg(&facekit_out)
                .args(["--batch", "32", "--jobs", &args.threads.to_string()])
                .args(["--device", "cpu", "--force", "--quiet"])
                .env("ORT_DYLIB_PATH", library),
        )?);
    }
    let worst = worst_cosine(&python_out, &facekit_out)?;
    let rate = |m: &[Measured], pick: fn(&[f64]) -> f64| {
        args.images as f64 / pick(&m.iter().map(|r| r.seconds).collect::<Vec<_>>())
    };
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let peak = |m: &[Measured]| m.iter().map(|r| r.peak_tree_rss).max().unwrap_or(0) as f64 / 1e6;
    let name = model.file_stem().unwrap_or_default().to_string_lossy();
    println!("\n{name} ({} runs each, interleaved)", args.runs);
    println!(
        "  python loop   best {:7.1} img/s   median {:7.1} img/s   peak RSS {:6.0} MB",
        rate(&py, min),
        rate(&py, measure::median),
        peak(&py)
    );
    println!(
        "  facekit embed best {:7.1} img/s   median {:7.1} img/s   peak RSS {:6.0} MB",
        rate(&fk, min),
        rate(&fk, measure::median),
        peak(&fk)
    );
    println!(
        "  ratio (facekit / python): best {:.3}x, median {:.3}x;  worst row cosine {worst:.6}",
        rate(&fk, min) / rate(&py, min),
        rate(&fk, measure::median) / rate(&py, measure::median)
    );
    if worst < 0.9999 {
        bail!("{name}: embeddings differ from the Python loop's (worst cosine {worst})");
    }
    Ok(())
}

/// The smallest per-row cosine between the two sides (rows matched by path:
/// both sort the same relative paths).
fn worst_cosine(python_npy: &Path, emb_dir: &Path) -> anyhow::Result<f64> {
    let theirs = npy::read_matrix(python_npy)?;
    let ours = npy::read_matrix(&emb_dir.join("embeddings.npy"))?;
    let paths = labels::read_labels(&emb_dir.join("labels.parquet"))?
        .path
        .context("labels without paths")?;
    let mut sorted: Vec<(usize, &String)> = paths.iter().enumerate().collect();
    sorted.sort_by(|a, b| a.1.cmp(b.1));
    if theirs.rows != ours.rows || theirs.cols != ours.cols {
        bail!(
            "shapes differ: python {}x{}, facekit {}x{}",
            theirs.rows,
            theirs.cols,
            ours.rows,
            ours.cols
        );
    }
    Ok(sorted
        .iter()
        .enumerate()
        .map(|(py_row, &(fk_row, _))| {
            theirs
                .row(py_row)
                .iter()
                .zip(ours.row(fk_row))
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
        })
        .fold(f64::INFINITY, f64::min))
}
