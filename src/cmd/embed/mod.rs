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
//!   partial.json     only in a part of a split job (`--shard I/N`): which
//!                    part, and the job's fingerprint for `facekit merge`
//!
//! A part is an EMB_DIR of its share of the faces (usable on its own);
//! `merge` joins the parts into exactly what one run writes. The directory
//! is owned through `output::OutputDir`: staged, swapped in whole, and
//! `--force` replaces only what an earlier `embed` wrote there.

mod embdir;
pub(crate) mod merge;
mod pairs;
mod record;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use crate::cli::{DeviceChoice, EmbedArgs, OutputFlags};
use crate::embed::model::{self, Device, Model};
use crate::embed::modelfile::{hex, ModelFile};
use crate::embed::pipeline::{self, Outcome};
use crate::embed::preprocess::{Normalisation, Preprocess};
use crate::embed::runtime::{self, SearchPlaces};
use crate::embed::source::{Face, Faces, ImageRef};
use crate::evalinput::npy;
use crate::output::{self, Marker, OutputDir};
use crate::partition::{self, PartHeader, PartKind, ShardSource};

use embdir::{EmbDir, Table};
use record::{
    Counts, DeviceRecord, InputRecord, ModelRecord, OutputRecord, PartNote, PreprocessRecord,
    ProviderRecord, Record, RuntimeRecord, Seconds, SourceRecord, ONE_MACHINE,
};

pub(crate) fn run(args: &EmbedArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let shard = args.shard.resolve().context("embed")?;
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
    let mut out = OutputDir::begin(&args.out, "embed", args.force)?;
    out.check_free(&embdir::FILES)?;
    let faces = Faces::collect(&args.inputs)?;
    if faces.faces.is_empty() {
        bail!(
            "no faces to embed in {}",
            crate::text::path_list(&args.inputs)
        );
    }
    if let Some(dataset) = args.inputs.iter().find_map(|i| dataset_of(i)) {
        out.derived_from(&dataset, "convert")?;
    }
    let part = shard.spec.range(faces.faces.len());
    // `--shard 0/1` or an array of one task is a part too, for its merge;
    // only a run outside any split job writes a plain EMB_DIR.
    let is_part = shard.source != ShardSource::Whole;
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
    let progress = output::progress(part.len() as u64, "embed", args.output.quiet);
    let outcome = pipeline::run(
        &faces.faces[part.clone()],
        &mut model,
        &pre,
        args.flip,
        args.batch as usize,
        &pool,
        &progress,
    )?;
    progress.finish_and_clear();
    // A part may lose all its faces; the whole job may not.
    if outcome.embedded.is_empty() && !is_part {
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
    let mut embedded = vec![false; part.len()];
    for &face in &outcome.embedded {
        embedded[face] = true;
    }
    let pairs = pairs::of_part(&faces, part.clone(), &embedded);
    let record = Record {
        facekit_version: crate::VERSION.to_string(),
        model: ModelRecord::of(&model_file),
        input: InputRecord::of(&input),
        output: OutputRecord {
            name: model.output_name.clone(),
            dim: outcome.dim,
        },
        preprocessing: PreprocessRecord {
            channel_order: if args.bgr { "BGR" } else { "RGB" }.into(),
            channel_order_reason: if args.bgr {
                "--bgr"
            } else {
                "arcface_torch trains on RGB"
            }
            .into(),
            normalisation: norm,
            normalisation_rule: "(x - mean) / std on 0-255 pixels".into(),
            normalisation_reason: norm_reason.into(),
            resize: "none: a crop of another size is a failed row".into(),
        },
        flip: args.flip,
        flip_rule: args.flip.then(|| {
            "embedding(x) + embedding(mirror(x)), then L2-normalised (insightface)".into()
        }),
        device: DeviceRecord {
            requested: format!("{:?}", args.device).to_lowercase(),
            provider: ProviderRecord::of(&model.provider),
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
            faces: part.len(),
            embedded: outcome.embedded.len(),
            failed: outcome.failed.len(),
            pairs: pairs.as_ref().map(|p| p.written),
            pairs_dropped: pairs.as_ref().map(|p| p.dropped),
        },
        seconds: Seconds {
            total: started.elapsed().as_secs_f64(),
            model: outcome.model_seconds,
        },
        shards: if is_part {
            format!("part {} ({})", shard.spec, shard.source.describe())
        } else {
            ONE_MACHINE.to_string()
        },
        part: is_part.then(|| PartNote {
            faces: [part.start, part.end],
            open_pairs: pairs.as_ref().map_or_else(Vec::new, |p| p.open.clone()),
            second_images: pairs.as_ref().map_or_else(Vec::new, |p| p.seconds.clone()),
        }),
    };
    let path = out.stage().join(embdir::EMBEDDINGS);
    npy::write_f32(
        &path,
        outcome.embedded.len(),
        outcome.dim,
        &outcome.embeddings,
    )
    .with_context(|| format!("{}: cannot write", path.display()))?;
    let (labels, failed) = tables(&faces.columns, &faces.faces[part], &outcome);
    let emb = EmbDir {
        labels,
        failed,
        pairs: pairs.map(|p| p.text),
        record,
    };
    emb.write(out.stage())?;
    if is_part {
        let path = out.stage().join(partition::PART_FILE);
        PartHeader::new(
            PartKind::Embed,
            shard,
            fingerprint(args, &model_file, norm, &faces),
        )
        .write(out.stage())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    out.commit()?;
    report(&args.out, &args.output, &emb.record)?;
    Ok(())
}

/// The label rows of the embedded faces and the failed ones (`outcome`'s
/// indices are into `faces`).
fn tables(columns: &[String], faces: &[Face], outcome: &Outcome) -> (Table, Table) {
    let labels = columns
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let values = outcome
                .embedded
                .iter()
                .map(|&f| faces[f].values[c].clone())
                .collect();
            (name.clone(), values)
        })
        .collect();
    let failed = vec![
        (
            "path".into(),
            outcome
                .failed
                .iter()
                .map(|(f, _)| faces[*f].values[0].clone())
                .collect(),
        ),
        (
            "reason".into(),
            outcome.failed.iter().map(|(_, r)| r.clone()).collect(),
        ),
    ];
    (labels, failed)
}

/// What makes the rows of a job what they are, the same in every part:
/// the model's bytes, every flag that changes a row or the record, and
/// the input list (each face's label row and where its bytes are). A merge
/// refuses parts whose fingerprints differ.
fn fingerprint(args: &EmbedArgs, model: &ModelFile, norm: Normalisation, faces: &Faces) -> String {
    let mut h = Sha256::new();
    let mut put = |text: &str| {
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    };
    put(&model.sha256);
    put(&format!(
        "flip {} bgr {} norm {} {} device {:?} batch {}",
        args.flip, args.bgr, norm.mean, norm.std, args.device, args.batch
    ));
    for (path, kind, count) in &faces.inputs {
        put(&format!("{} {kind:?} {count}", path.display()));
    }
    put(&faces.columns.join("\t"));
    for face in &faces.faces {
        match &face.image {
            ImageRef::File(path) => put(&path.display().to_string()),
            ImageRef::Record { rec, offset } => put(&format!("{}@{offset}", rec.display())),
            ImageRef::Bin { images, index } => put(&format!(
                "{index}:{}",
                hex(&Sha256::digest(&images[*index]))
            )),
        }
        for value in &face.values {
            put(value);
        }
    }
    for pair in &faces.pairs {
        put(&format!("{} {} {}", pair.first, pair.second, pair.same));
    }
    hex(&h.finalize())
}

/// The converted dataset an input was made from: convert's `DIR/eval`,
/// `DIR/train.rec`, pairs' `DIR/kface.bin` all sit in the folder that holds
/// convert's marker.
fn dataset_of(input: &Path) -> Option<PathBuf> {
    let parent = match input.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    [input.to_path_buf(), parent]
        .into_iter()
        .find(|dir| matches!(Marker::read(dir, "convert"), Ok(Some(_))))
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

/// The summary of an embeddings directory written at `out` (by `embed` or
/// `merge`): JSON, a few lines, or with `--quiet` only a loss.
fn report(out: &Path, flags: &OutputFlags, record: &Record) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if flags.json {
        serde_json::to_writer_pretty(&mut stdout, record)?;
        writeln!(stdout)?;
        return Ok(());
    }
    let c = &record.counts;
    let lost = if c.failed > 0 {
        format!(
            "; {} failed, listed in {}",
            c.failed,
            out.join(embdir::FAILED).display()
        )
    } else {
        String::new()
    };
    // A run that lost faces says so even with --quiet.
    if flags.quiet {
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
        out.display(),
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
    let part = record.part.as_ref();
    if let (Some(written), Some(dropped)) = (c.pairs, c.pairs_dropped) {
        let mut notes = Vec::new();
        if dropped > 0 {
            notes.push(format!("{dropped} dropped: an image failed"));
        }
        if let Some(open) = part.map(|p| p.open_pairs.len()).filter(|&n| n > 0) {
            notes.push(format!("{open} reaching into the next part, for merge"));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        writeln!(stdout, "  pairs      {written} in pairs.txt{notes}")?;
    }
    match part {
        Some(p) => {
            let total: usize = record.inputs.iter().map(|i| i.faces).sum();
            writeln!(
                stdout,
                "  shards     {}: faces {}..{} of {total}; `facekit merge` joins the parts",
                record.shards, p.faces[0], p.faces[1]
            )?;
        }
        None if record.shards != ONE_MACHINE => writeln!(stdout, "  shards     {}", record.shards)?,
        None => {}
    }
    Ok(())
}
