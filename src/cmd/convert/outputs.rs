//! Writing the stage of DIR: the training shards, the evaluation set, the
//! tables and the preview.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use image::{ImageEncoder, RgbImage};

use super::assign::Assignment;
use super::manifest::{self, Row, RowSplit, Status};
use super::spool::Spool;
use crate::imaging::decode_jpeg;
use crate::output::{write_atomic, AtomicFile};
use crate::shard::recordio::{pack, write_index, IndexEntry, RecordWriter};
use crate::shard::FolderLayout;

fn crop_of(spool: &mut Spool, row: &Row) -> anyhow::Result<Vec<u8>> {
    let at = row
        .crop
        .with_context(|| format!("{}: converted row without a crop", row.source))?;
    spool.read(at).context("reading back the spooled crops")
}

/// `train.rec` and `train.idx`: records in key order, flag 0, scalar label,
/// id = key.
pub(crate) fn write_rec(
    dir: &Path,
    rows: &[Row],
    assignment: &Assignment,
    spool: &mut Spool,
) -> anyhow::Result<()> {
    let rec_path = dir.join("train.rec");
    let err = |path: &Path| format!("{}: cannot write", path.display());
    let mut rec = AtomicFile::create(&rec_path).with_context(|| err(&rec_path))?;
    let mut writer = RecordWriter::new(&mut rec);
    let mut index = Vec::with_capacity(assignment.order.len());
    for (key, &i) in assignment.order.iter().enumerate() {
        let row = &rows[i];
        let label = row
            .label
            .with_context(|| format!("{}: training record without a label", row.source))?;
        let jpeg = crop_of(spool, row)?;
        let offset = writer
            .write(&pack(label as f32, key as u64, &jpeg))
            .with_context(|| err(&rec_path))?;
        index.push(IndexEntry {
            key: key as u64,
            offset,
        });
    }
    drop(writer);
    rec.flush().with_context(|| err(&rec_path))?;
    let idx_path = dir.join("train.idx");
    let mut idx = AtomicFile::create(&idx_path).with_context(|| err(&idx_path))?;
    write_index(&mut idx, &index).with_context(|| err(&idx_path))?;
    rec.commit().with_context(|| err(&rec_path))?;
    idx.commit().with_context(|| err(&idx_path))
}

/// `--format folder`: the training crops as `<label>_<ID>/S001_L1_E01_C7.jpg`
/// under `root`, class folders sorting in label order.
pub(crate) fn write_folder(
    root: &Path,
    rows: &[Row],
    assignment: &Assignment,
    spool: &mut Spool,
) -> anyhow::Result<()> {
    let layout = FolderLayout::new(root, assignment.classes.len() as u64);
    for &i in &assignment.order {
        let row = &rows[i];
        let (Some(label), Some(attrs)) = (row.label, row.attrs) else {
            bail!("{}: training record without a label", row.source);
        };
        let name = format!("{}.jpg", attrs.relative_stem().replace('/', "_"));
        let jpeg = crop_of(spool, row)?;
        layout
            .write_image(u64::from(label), &row.identity, &name, &jpeg)
            .with_context(|| {
                format!(
                    "{}: cannot write",
                    layout.class_dir(u64::from(label), &row.identity).display()
                )
            })?;
    }
    Ok(())
}

/// The evaluation set in `dir` (`eval/` of the stage): the held-out crops as
/// `<ID>/S001/L1/E01/C7.jpg` and `manifest.parquet`.
pub fn write_eval(
    dir: &Path,
    rows: &[&Row],
    out_of_db: &BTreeSet<String>,
    spool: &mut Spool,
) -> anyhow::Result<()> {
    for row in rows {
        let rel = row
            .relative_path()
            .with_context(|| format!("{}: evaluation row without conditions", row.source))?;
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        let jpeg = crop_of(spool, row)?;
        fs::write(&path, &jpeg).with_context(|| format!("{}: cannot write", path.display()))?;
    }
    manifest::write_eval_manifest(&dir.join("manifest.parquet"), rows, |id| {
        !out_of_db.contains(id)
    })
}

/// `identities.csv`: label, identity, converted training images.
pub(crate) fn write_identities(path: &Path, assignment: &Assignment) -> anyhow::Result<()> {
    let err = || format!("{}: cannot write", path.display());
    let mut file = AtomicFile::create(path).with_context(err)?;
    {
        let mut csv = csv::Writer::from_writer(&mut file);
        csv.write_record(["label", "identity", "images"])
            .with_context(err)?;
        for (identity, (label, images)) in &assignment.classes {
            csv.write_record([label.to_string(), identity.clone(), images.to_string()])
                .with_context(err)?;
        }
        csv.flush().with_context(err)?;
    }
    file.commit().with_context(err)
}

/// Tiles of the contact sheet: at most this many, this many per line.
const PREVIEW_TILES: usize = 64;
const PREVIEW_COLUMNS: usize = 8;

/// `preview.png`: a contact sheet of converted crops spread evenly over the
/// sorted rows, to see at a glance that alignment is right.
pub(crate) fn write_preview(
    path: &Path,
    rows: &[Row],
    size: u32,
    spool: &mut Spool,
) -> anyhow::Result<()> {
    let ok: Vec<&Row> = rows.iter().filter(|r| r.status == Status::Ok).collect();
    let n = ok.len().min(PREVIEW_TILES);
    if n == 0 {
        return Ok(());
    }
    let columns = n.min(PREVIEW_COLUMNS);
    let lines = n.div_ceil(columns);
    let mut sheet = RgbImage::new(size * columns as u32, size * lines as u32);
    for t in 0..n {
        let row = ok[t * ok.len() / n];
        let tile = decode_jpeg(&crop_of(spool, row)?, u64::from(size) * u64::from(size))
            .with_context(|| format!("{}: the encoded crop does not decode", row.source))?;
        let (x, y) = ((t % columns) as u32 * size, (t / columns) as u32 * size);
        image::imageops::replace(&mut sheet, &tile, i64::from(x), i64::from(y));
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            sheet.as_raw(),
            sheet.width(),
            sheet.height(),
            image::ExtendedColorType::Rgb8,
        )
        .context("encoding preview.png")?;
    write_atomic(path, &png).with_context(|| format!("{}: cannot write", path.display()))
}

/// The rows of the evaluation set: converted gallery and probe images.
pub(crate) fn eval_rows(rows: &[Row]) -> Vec<&Row> {
    rows.iter()
        .filter(|r| {
            r.status == Status::Ok && matches!(r.split, RowSplit::Gallery | RowSplit::Probe)
        })
        .collect()
}
