//! Joins the parts of a split `embed` into the embeddings directory one run
//! writes: rows, labels and failed rows concatenated in part order, the
//! pairs that reach across parts decided, counts summed. Memory: the
//! label tables; the embeddings stream from the parts' files to the
//! merged one a buffer at a time.

use anyhow::{bail, Context};

use std::path::PathBuf;

use super::embdir::{self, EmbDir};
use super::pairs::{self, PartPairs};
use super::record::{Counts, Seconds};
use crate::cli::MergeArgs;
use crate::evalinput::npy;
use crate::output::{Marker, OutputDir};
use crate::partition::Part;

/// `parts` come from `partition::gather`: every part of one embed job, in
/// order.
pub(crate) fn run(args: &MergeArgs, parts: &[Part]) -> anyhow::Result<()> {
    let mut out = OutputDir::begin(&args.out, "embed", args.force)?;
    out.check_free(&embdir::FILES)?;
    let read: Vec<EmbDir> = parts
        .iter()
        .map(|p| EmbDir::read(&p.dir))
        .collect::<anyhow::Result<_>>()?;
    let mut merged = join(parts, read)?;
    let npys: Vec<PathBuf> = parts
        .iter()
        .map(|p| p.dir.join(embdir::EMBEDDINGS))
        .collect();
    merged.record.output.dim = npy::concat_f32(&out.stage().join(embdir::EMBEDDINGS), &npys)?.cols;
    // The dataset the parts were made from, as it was then.
    let source = Marker::read(&parts[0].dir, "embed")?.and_then(|m| m.derived_from);
    out.keep_source(source);
    merged.write(out.stage())?;
    out.commit()?;
    super::report(&args.out, &args.output, &merged.record)
}

fn join(parts: &[Part], dirs: Vec<EmbDir>) -> anyhow::Result<EmbDir> {
    let mut dirs = dirs.into_iter().zip(parts);
    let (first, first_part) = dirs.next().context("no parts to merge")?;
    let mut pair_parts = vec![part_pairs(&first)];
    let mut merged = first;
    let name = |p: &Part| p.dir.display().to_string();
    let columns = |d: &EmbDir| d.labels.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    for (dir, part) in dirs {
        if columns(&dir) != columns(&merged) {
            bail!(
                "{}: label columns {:?} differ from {}'s {:?}",
                name(part),
                columns(&dir),
                name(first_part),
                columns(&merged)
            );
        }
        pair_parts.push(part_pairs(&dir));
        append(&mut merged.labels, dir.labels);
        append(&mut merged.failed, dir.failed);
        let (c, s) = (&mut merged.record.counts, &mut merged.record.seconds);
        add_counts(c, &dir.record.counts);
        *s = Seconds {
            total: s.total + dir.record.seconds.total,
            model: s.model + dir.record.seconds.model,
        };
    }
    if merged.record.counts.embedded == 0 {
        bail!(
            "none of the {} faces could be embedded (see the parts' failed.csv)",
            merged.record.counts.faces
        );
    }
    if merged.pairs.is_some() {
        let joined = pairs::join(&pair_parts).map_err(|face| {
            anyhow::anyhow!("no part says whether face {face} was embedded, which a pair needs")
        })?;
        merged.pairs = Some(joined.text);
        merged.record.counts.pairs = Some(joined.written);
        merged.record.counts.pairs_dropped = Some(joined.dropped);
    }
    merged.record.shards = format!("merged from {} parts", parts.len());
    merged.record.part = None;
    Ok(merged)
}

/// A part's pairs as `pairs::join` takes them.
fn part_pairs(dir: &EmbDir) -> PartPairs {
    let note = dir.record.part.as_ref();
    PartPairs {
        text: dir.pairs.clone().unwrap_or_default(),
        written: dir.record.counts.pairs.unwrap_or(0),
        dropped: dir.record.counts.pairs_dropped.unwrap_or(0),
        open: note.map_or_else(Vec::new, |n| n.open_pairs.clone()),
        seconds: note.map_or_else(Vec::new, |n| n.second_images.clone()),
    }
}

fn append(table: &mut embdir::Table, more: embdir::Table) {
    for ((_, values), (_, extra)) in table.iter_mut().zip(more) {
        values.extend(extra);
    }
}

fn add_counts(sum: &mut Counts, part: &Counts) {
    sum.faces += part.faces;
    sum.embedded += part.embedded;
    sum.failed += part.failed;
}
