//! `facekit embed`: the user's exported model over aligned crops, into an
//! embeddings directory that `evaluate` and `search` read as written.
//!
//! EMB_DIR/
//!   embeddings.npy   float32 [N, D], L2-normalised, row i = label row i
//!   labels.parquet   path, identity, (role, in_db, conditions, label ...)
//!   labels.csv       the same table, for people
//!   failed.csv       path, reason: images that could not be embedded
//!   pairs.txt        the pairs of .bin inputs, `path1 path2 1|0`, in order
//!   embed.json       model and sha256, input, preprocessing and why,
//!                    flip, provider, runtime, counts, seconds
//!
//! The directory is built aside (`.EMB_DIR.partial-PID`) and renamed into
//! place when complete; `--force` replaces only a directory `embed` wrote.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cli::{DeviceChoice, EmbedArgs};
use crate::embed::model::{self, Device, InputSpec, Model, Provider};
use crate::embed::modelfile::ModelFile;
use crate::embed::pipeline::{self, Outcome};
use crate::embed::preprocess::{Layout, Normalisation, Preprocess};
use crate::embed::runtime::{self, Runtime, SearchPlaces};
use crate::embed::source::{Faces, InputKind};
use crate::evalinput::{labels, npy};
use crate::output;

/// The file that marks a directory as `embed`'s own.
const MARKER: &str = "embed.json";

pub fn run(args: &EmbedArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let model_file = ModelFile::read(&args.model)?;
    let input = model::input_spec(&model_file)
        .map_err(|message| anyhow::anyhow!("{}: {message}", args.model.display()))?;
    let (norm, norm_reason) = normalisation(args, &model_file);
    let pre = Preprocess {
        size: input.size,
        layout: input.layout,
        bgr: args.bgr,
        norm,
    };
    check_out(&args.out, args.force)?;
    let faces = Faces::collect(&args.inputs)?;
    if faces.faces.is_empty() {
        bail!("no faces to embed in {}", describe_inputs(&args.inputs));
    }
    let runtime = runtime::load(&SearchPlaces::of_process(args.onnxruntime.as_deref()))?;
    let threads = match args.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let device = match args.device {
        DeviceChoice::Auto => Device::Auto,
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Cuda => Device::Cuda,
    };
    let mut model = Model::open(&model_file, input.clone(), device, threads)?;
    let pool = output::thread_pool(Some(threads))?;
    let progress = output::progress(faces.faces.len() as u64, "embed", args.output.quiet);
    let outcome = pipeline::run(
        &faces.faces,
        &mut model,
        &pre,
        args.flip,
        args.batch as usize,
        &pool,
        &progress,
    )?;
    progress.finish_and_clear();
    if outcome.embedded.is_empty() {
        let first = outcome
            .failed
            .first()
            .map(|(face, reason)| format!(" (first: {}: {reason})", faces.faces[*face].values[0]))
            .unwrap_or_default();
        bail!(
            "none of the {} faces could be embedded{first}",
            faces.faces.len()
        );
    }
    let pairs = pair_lines(&faces, &outcome);
    let record = Record {
        facekit_version: crate::VERSION,
        model: ModelRecord::of(&model_file),
        input: InputRecord::of(&input),
        output: OutputRecord {
            name: model.output_name.clone(),
            dim: outcome.dim,
        },
        preprocessing: PreprocessRecord {
            channel_order: if args.bgr { "BGR" } else { "RGB" },
            channel_order_reason: if args.bgr {
                "--bgr"
            } else {
                "arcface_torch trains on RGB"
            },
            normalisation: norm,
            normalisation_rule: "(x - mean) / std on 0-255 pixels",
            normalisation_reason: norm_reason,
            resize: "none: a crop of another size is a failed row",
        },
        flip: args.flip,
        flip_rule: args
            .flip
            .then_some("embedding(x) + embedding(mirror(x)), then L2-normalised (insightface)"),
        device: DeviceRecord {
            requested: format!("{:?}", args.device).to_lowercase(),
            provider: model.provider.clone(),
        },
        runtime: RuntimeRecord::of(&runtime),
        batch: args.batch,
        threads,
        inputs: faces
            .inputs
            .iter()
            .map(|(path, kind, count)| SourceRecord {
                path: path.display().to_string(),
                kind: *kind,
                faces: *count,
            })
            .collect(),
        counts: Counts {
            faces: faces.faces.len(),
            embedded: outcome.embedded.len(),
            failed: outcome.failed.len(),
            pairs: pairs.as_ref().map(|p| p.written),
            pairs_dropped: pairs.as_ref().map(|p| p.dropped),
        },
        seconds: Seconds {
            total: started.elapsed().as_secs_f64(),
            model: outcome.model_seconds,
        },
    };
    write_dir(&args.out, &faces, &outcome, pairs.as_ref(), &record)?;
    report(args, &record)?;
    Ok(())
}

/// The normalisation to use and why: the flag, else insightface's rule.
fn normalisation(args: &EmbedArgs, model: &ModelFile) -> (Normalisation, &'static str) {
    match args.input_norm {
        Some(norm) => (norm, "--input-norm"),
        None if model.normalises_itself() => (
            Normalisation::RAW,
            "the model normalises itself (a Sub and a Mul among its first nodes, insightface's rule): raw 0-255",
        ),
        None => (
            Normalisation::ARCFACE,
            "default: arcface_torch trains on (x - 127.5) / 127.5 and torch2onnx bakes no normalisation in",
        ),
    }
}

fn describe_inputs(inputs: &[PathBuf]) -> String {
    inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses to overwrite what `embed` did not write, or its own earlier
/// result without `--force`.
fn check_out(out: &Path, force: bool) -> anyhow::Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("{}: exists and is not a directory", out.display());
    }
    if out.join(MARKER).is_file() {
        if !force {
            bail!(
                "{}: already holds embeddings (embed.json); pass --force to replace them",
                out.display()
            );
        }
        return Ok(());
    }
    let empty = fs::read_dir(out)
        .with_context(|| format!("{}: cannot read", out.display()))?
        .next()
        .is_none();
    if !empty {
        bail!(
            "{}: not empty and not written by `facekit embed`; choose another --out",
            out.display()
        );
    }
    Ok(())
}

/// The pair list of `.bin` inputs, keeping the pairs whose two images were
/// both embedded (in file order, so arcface_torch's ten folds stay).
struct PairLines {
    text: String,
    written: usize,
    dropped: usize,
}

fn pair_lines(faces: &Faces, outcome: &Outcome) -> Option<PairLines> {
    if faces.pairs.is_empty() {
        return None;
    }
    let mut embedded = vec![false; faces.faces.len()];
    for &face in &outcome.embedded {
        embedded[face] = true;
    }
    let mut lines = PairLines {
        text: String::new(),
        written: 0,
        dropped: 0,
    };
    for pair in &faces.pairs {
        if !(embedded[pair.first] && embedded[pair.second]) {
            lines.dropped += 1;
            continue;
        }
        let (a, b) = (
            &faces.faces[pair.first].values[0],
            &faces.faces[pair.second].values[0],
        );
        // Tabs when a path has a space: the pair reader splits on tabs then.
        let sep = if a.contains(' ') || b.contains(' ') {
            '\t'
        } else {
            ' '
        };
        lines
            .text
            .push_str(&format!("{a}{sep}{b}{sep}{}\n", u8::from(pair.same)));
        lines.written += 1;
    }
    Some(lines)
}

fn write_dir(
    out: &Path,
    faces: &Faces,
    outcome: &Outcome,
    pairs: Option<&PairLines>,
    record: &Record,
) -> anyhow::Result<()> {
    let name = out
        .file_name()
        .with_context(|| format!("{}: --out needs a directory name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let filled = fill(&staging, faces, outcome, pairs, record);
    if let Err(e) = filled {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    // The old result stays whole until the new one is complete.
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if out.exists() {
        fs::rename(out, &old).with_context(|| format!("{}: cannot replace", out.display()))?;
    }
    if let Err(e) = fs::rename(&staging, out) {
        if old.exists() {
            let _ = fs::rename(&old, out);
        }
        let _ = fs::remove_dir_all(&staging);
        return Err(e).with_context(|| format!("{}: cannot write", out.display()));
    }
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("{}: cannot remove", old.display()))?;
    }
    Ok(())
}

fn fill(
    dir: &Path,
    faces: &Faces,
    outcome: &Outcome,
    pairs: Option<&PairLines>,
    record: &Record,
) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let npy_path = dir.join("embeddings.npy");
    npy::write_f32(
        &npy_path,
        outcome.embedded.len(),
        outcome.dim,
        &outcome.embeddings,
    )
    .with_context(|| format!("{}: cannot write", npy_path.display()))?;
    let columns: Vec<(String, Vec<String>)> = faces
        .columns
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let values = outcome
                .embedded
                .iter()
                .map(|&face| faces.faces[face].values[c].clone())
                .collect();
            (name.clone(), values)
        })
        .collect();
    labels::write_table(&dir.join("labels.parquet"), &columns)?;
    labels::write_table(&dir.join("labels.csv"), &columns)?;
    let failed: Vec<(String, Vec<String>)> = vec![
        (
            "path".into(),
            outcome
                .failed
                .iter()
                .map(|(face, _)| faces.faces[*face].values[0].clone())
                .collect(),
        ),
        (
            "reason".into(),
            outcome.failed.iter().map(|(_, r)| r.clone()).collect(),
        ),
    ];
    labels::write_table(&dir.join("failed.csv"), &failed)?;
    if let Some(pairs) = pairs {
        let path = dir.join("pairs.txt");
        output::write_atomic(&path, pairs.text.as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    let path = dir.join(MARKER);
    let json = serde_json::to_vec_pretty(record)?;
    output::write_atomic(&path, &json).with_context(|| format!("{}: cannot write", path.display()))
}

fn report(args: &EmbedArgs, record: &Record) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if args.output.json {
        serde_json::to_writer_pretty(&mut stdout, record)?;
        writeln!(stdout)?;
        return Ok(());
    }
    let c = &record.counts;
    let lost = if c.failed > 0 {
        format!(
            "; {} failed, listed in {}",
            c.failed,
            args.out.join("failed.csv").display()
        )
    } else {
        String::new()
    };
    // A run that lost faces says so even with --quiet.
    if args.output.quiet {
        if c.failed > 0 {
            eprintln!(
                "facekit embed: {} of {} faces failed{lost}",
                c.failed, c.faces
            );
        }
        return Ok(());
    }
    let rate = c.embedded as f64 / record.seconds.total.max(1e-9);
    writeln!(
        stdout,
        "embedded {} of {} faces into {} ({}-d, {:.1} faces/s, {:.1} s){lost}",
        c.embedded,
        c.faces,
        args.out.display(),
        record.output.dim,
        rate,
        record.seconds.total
    )?;
    writeln!(
        stdout,
        "  model      {} (input {:?} {}, {})",
        record.model.path,
        record.input.name,
        record.input.declared_shape.join("x"),
        record.input.layout_name()
    )?;
    writeln!(
        stdout,
        "  pixels     {} {}: {}",
        record.preprocessing.channel_order,
        record.preprocessing.normalisation,
        record.preprocessing.normalisation_reason
    )?;
    writeln!(
        stdout,
        "  device     {} ({})",
        record.device.provider.name, record.device.provider.reason
    )?;
    writeln!(
        stdout,
        "  runtime    onnxruntime {} from {} ({})",
        record.runtime.version, record.runtime.path, record.runtime.found_by
    )?;
    if let (Some(written), Some(dropped)) = (c.pairs, c.pairs_dropped) {
        writeln!(
            stdout,
            "  pairs      {written} in pairs.txt{}",
            if dropped > 0 {
                format!(" ({dropped} dropped: an image failed)")
            } else {
                String::new()
            }
        )?;
    }
    Ok(())
}

/// `embed.json`.
#[derive(Debug, Serialize)]
struct Record {
    facekit_version: &'static str,
    model: ModelRecord,
    input: InputRecord,
    output: OutputRecord,
    preprocessing: PreprocessRecord,
    flip: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    flip_rule: Option<&'static str>,
    device: DeviceRecord,
    runtime: RuntimeRecord,
    batch: u32,
    threads: usize,
    inputs: Vec<SourceRecord>,
    counts: Counts,
    seconds: Seconds,
}

#[derive(Debug, Serialize)]
struct ModelRecord {
    path: String,
    sha256: String,
    bytes: u64,
    producer: String,
    opset: Option<i64>,
}

impl ModelRecord {
    fn of(m: &ModelFile) -> ModelRecord {
        ModelRecord {
            path: m.path.display().to_string(),
            sha256: m.sha256.clone(),
            bytes: m.bytes,
            producer: m.producer.clone(),
            opset: m.opset,
        }
    }
}

#[derive(Debug, Serialize)]
struct InputRecord {
    name: String,
    declared_shape: Vec<String>,
    layout: Layout,
    size: u32,
    fixed_batch: Option<usize>,
}

impl InputRecord {
    fn of(i: &InputSpec) -> InputRecord {
        InputRecord {
            name: i.name.clone(),
            declared_shape: i.declared.clone(),
            layout: i.layout,
            size: i.size,
            fixed_batch: i.fixed_batch,
        }
    }

    fn layout_name(&self) -> &'static str {
        match self.layout {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        }
    }
}

#[derive(Debug, Serialize)]
struct OutputRecord {
    name: String,
    dim: usize,
}

#[derive(Debug, Serialize)]
struct PreprocessRecord {
    channel_order: &'static str,
    channel_order_reason: &'static str,
    normalisation: Normalisation,
    normalisation_rule: &'static str,
    normalisation_reason: &'static str,
    resize: &'static str,
}

#[derive(Debug, Serialize)]
struct DeviceRecord {
    requested: String,
    provider: Provider,
}

#[derive(Debug, Serialize)]
struct RuntimeRecord {
    path: String,
    found_by: &'static str,
    version: String,
}

impl RuntimeRecord {
    fn of(r: &Runtime) -> RuntimeRecord {
        RuntimeRecord {
            path: r.path.display().to_string(),
            found_by: r.source,
            version: r.version.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct SourceRecord {
    path: String,
    kind: InputKind,
    faces: usize,
}

#[derive(Debug, Serialize)]
struct Counts {
    faces: usize,
    embedded: usize,
    failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs_dropped: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Seconds {
    total: f64,
    model: f64,
}
