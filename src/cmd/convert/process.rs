//! Reading the units: one unit loaded at a time, its selected images
//! decoded, aligned and encoded in parallel, the crops appended to the spool
//! in the unit's file order (so the result does not depend on `--jobs`).

use std::collections::BTreeMap;
use std::path::Path;

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::manifest::{Row, RowSplit, Status};
use super::spool::Spool;
use crate::align::{check_in_image, estimate_norm, face_box_transform, warp_affine};
use crate::imaging::{decode_jpeg, encode_jpeg};
use crate::kface::annotation::{self, AnnotationError};
use crate::kface::landmarks::{self, Annotations, Choice, Crop, Decision, Policy};
use crate::kface::source::{FileKind, LoadedUnit, SourceError, Unit};
use crate::kface::{Attributes, HoldoutPlan, Selection, Split};

/// What every image is converted with.
pub(crate) struct Settings {
    pub selection: Selection,
    pub enroll: Selection,
    pub policy: Policy,
    pub size: u32,
    pub quality: u8,
    pub max_pixels: u64,
    pub plan: HoldoutPlan,
}

fn split_of(split: Split) -> RowSplit {
    match split {
        Split::Train => RowSplit::Train,
        Split::Gallery => RowSplit::Gallery,
        Split::Probe => RowSplit::Probe,
    }
}

/// A read failure as a manifest reason (the row already names the file).
fn read_reason(err: &SourceError) -> String {
    match err {
        SourceError::Io { source, .. } => format!("cannot read: {source}"),
        SourceError::TooLarge { size, limit, .. } => {
            format!("file is {size} bytes, over the {limit}-byte limit")
        }
        other => other.to_string(),
    }
}

/// An encoded crop, and the geometry used when it was rescaled from a
/// larger tier's annotation.
struct Converted {
    jpeg: Vec<u8>,
    rescaled: Option<(f32, Crop)>,
}

/// One image's crop: decode, fit the landmarks to it, align, encode.
fn convert_one(
    unit: &dyn LoadedUnit,
    index: usize,
    choice: &Choice,
    settings: &Settings,
) -> Result<Converted, String> {
    let bytes = unit.read(index).map_err(|e| read_reason(&e))?;
    let image = decode_jpeg(&bytes, settings.max_pixels).map_err(|e| e.to_string())?;
    let fitted = landmarks::fit_to_image(&choice.crop, image.width(), image.height())?;
    let matrix = match fitted.crop {
        Crop::Points(points) => estimate_norm(
            &points.map(|[x, y]| [f64::from(x), f64::from(y)]),
            settings.size,
        ),
        Crop::FaceBox(b) => face_box_transform([b.x, b.y, b.w, b.h].map(f64::from), settings.size),
    }
    .and_then(|m| {
        check_in_image(&m, image.width(), image.height(), settings.size)?;
        Ok(m)
    })
    .map_err(|e| e.to_string())?;
    let aligned = warp_affine(&image, &matrix, settings.size);
    Ok(Converted {
        jpeg: encode_jpeg(&aligned, settings.quality),
        rescaled: fitted.scale.map(|s| (s, fitted.crop)),
    })
}

/// Parses every annotation of a unit (the first file of a condition wins).
fn read_annotations(unit: &dyn LoadedUnit) -> Annotations {
    let mut annotations = Annotations::new();
    for (index, file) in unit.files().iter().enumerate() {
        if let FileKind::Annotation(attrs) = file.kind {
            annotations.entry(attrs).or_insert_with(|| {
                unit.read(index)
                    .map_err(|e| AnnotationError::Unreadable(read_reason(&e)))
                    .and_then(|bytes| annotation::parse_bytes(&bytes, attrs.camera))
            });
        }
    }
    annotations
}

/// Converts one unit, appending its rows and crops. Only the spool and
/// the rows outlive the call; the loaded unit (and what it parked in
/// `scratch`) is dropped at its end.
pub(crate) fn process_unit(
    unit: &dyn Unit,
    scratch: &Path,
    settings: &Settings,
    pool: &rayon::ThreadPool,
    spool: &mut Spool,
    rows: &mut Vec<Row>,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let identity = unit.identity().to_string();
    let loaded = match unit.load(scratch) {
        Ok(loaded) => loaded,
        Err(err) => {
            let row = Row::new(
                unit.origin().to_string(),
                identity,
                None,
                RowSplit::Excluded,
            );
            rows.push(row.with(Status::Failed, err.to_string()));
            progress.inc(unit.image_count().unwrap_or(0));
            return Ok(());
        }
    };
    let loaded: &dyn LoadedUnit = loaded.as_ref();
    let first_row = rows.len();
    let annotations = read_annotations(loaded);
    let mut first_of: BTreeMap<Attributes, &str> = BTreeMap::new();
    // (row index, file index, landmarks) of the images to convert.
    let mut jobs: Vec<(usize, usize, Choice)> = Vec::new();
    for (index, file) in loaded.files().iter().enumerate() {
        let attrs = match &file.kind {
            FileKind::Image(attrs) => *attrs,
            FileKind::Annotation(_) => continue,
            FileKind::Broken(reason) => {
                let row = Row::new(
                    file.source.clone(),
                    identity.clone(),
                    None,
                    RowSplit::Excluded,
                );
                rows.push(row.with(Status::Failed, reason.clone()));
                continue;
            }
        };
        let row = Row::new(
            file.source.clone(),
            identity.clone(),
            Some(attrs),
            RowSplit::Excluded,
        );
        if let Some(first) = first_of.get(&attrs) {
            rows.push(row.with(Status::Skipped, format!("duplicate of {first}")));
            continue;
        }
        first_of.insert(attrs, &file.source);
        if !settings.selection.contains(&attrs) {
            rows.push(row.with(Status::Skipped, "outside --select"));
            continue;
        }
        let mut row = row;
        row.split = split_of(settings.plan.split(&identity, &attrs, &settings.enroll));
        match landmarks::choose(settings.policy, &attrs, &annotations) {
            Decision::Use(choice) => {
                row.landmark_source = Some(choice.source_label());
                if let Crop::Points(points) = choice.crop {
                    row.landmarks = Some(points);
                }
                jobs.push((rows.len(), index, choice));
                rows.push(row);
            }
            Decision::Skip(reason) => rows.push(row.with(Status::Skipped, reason)),
            Decision::Fail(reason) => rows.push(row.with(Status::Failed, reason)),
        }
    }
    // Progress counts every image of the unit; those not converted are done.
    let listed = (rows.len() - first_row) as u64;
    if unit.image_count().is_none() {
        progress.inc_length(listed);
    }
    progress.inc(listed - jobs.len() as u64);
    let crops: Vec<Result<Converted, String>> = pool.install(|| {
        jobs.par_iter()
            .map(|(_, index, choice)| {
                let crop = convert_one(loaded, *index, choice, settings);
                progress.inc(1);
                crop
            })
            .collect()
    });
    for ((row_index, _, _), crop) in jobs.iter().zip(crops) {
        let row = &mut rows[*row_index];
        match crop {
            Ok(converted) => {
                row.crop = Some(spool.append(&converted.jpeg)?);
                row.status = Status::Ok;
                if let Some((scale, crop)) = converted.rescaled {
                    let source = row.landmark_source.take().unwrap_or_default();
                    row.landmark_source = Some(format!("{source} scaled {scale:.4}"));
                    if let Crop::Points(points) = crop {
                        row.landmarks = Some(points);
                    }
                }
            }
            Err(reason) => {
                row.status = Status::Failed;
                row.reason = Some(reason);
            }
        }
    }
    Ok(())
}

/// Rows for the images of a unit whose identity was already read elsewhere.
pub(crate) fn duplicate_rows(unit: &dyn Unit, scratch: &Path, winner: &str, rows: &mut Vec<Row>) {
    let identity = unit.identity().to_string();
    let reason = format!("duplicate identity: already read from {winner}");
    match unit.load(scratch) {
        Ok(loaded) => {
            for file in loaded.files() {
                let attrs = match file.kind {
                    FileKind::Image(attrs) => Some(attrs),
                    FileKind::Broken(_) => None,
                    FileKind::Annotation(_) => continue,
                };
                let row = Row::new(
                    file.source.clone(),
                    identity.clone(),
                    attrs,
                    RowSplit::Excluded,
                );
                rows.push(row.with(Status::Skipped, reason.clone()));
            }
        }
        Err(err) => {
            let row = Row::new(
                unit.origin().to_string(),
                identity,
                None,
                RowSplit::Excluded,
            );
            rows.push(row.with(Status::Skipped, format!("{reason} ({err})")));
        }
    }
}
