//! The manifest: one row per source image seen, whatever happened to it,
//! and the evaluation set's own manifest (`eval/manifest.parquet`), whose
//! column names `facekit pairs` and `facekit evaluate --labels` rely on.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use polars::prelude::{Column, DataFrame, ParquetWriter};

use super::spool::SpoolRef;
use crate::kface::{Attributes, ImageKey};
use crate::output::AtomicFile;

/// Where a row's image went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RowSplit {
    Train,
    Gallery,
    Probe,
    /// Outside the selection, or a duplicate: not part of the output.
    Excluded,
}

impl RowSplit {
    pub fn as_str(&self) -> &'static str {
        match self {
            RowSplit::Train => "train",
            RowSplit::Gallery => "gallery",
            RowSplit::Probe => "probe",
            RowSplit::Excluded => "excluded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    Failed,
    Skipped,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One source image.
#[derive(Debug, Clone)]
pub struct Row {
    pub source: String,
    /// Empty when even the identity could not be read from the name.
    pub identity: String,
    pub attrs: Option<Attributes>,
    pub split: RowSplit,
    pub status: Status,
    pub reason: Option<String>,
    pub landmark_source: Option<String>,
    /// The five points used, insightface order, source pixels.
    pub landmarks: Option<[[f32; 2]; 5]>,
    /// The encoded crop, for `ok` rows.
    pub crop: Option<SpoolRef>,
    pub label: Option<u32>,
    pub record_key: Option<u64>,
}

impl Row {
    pub fn new(
        source: String,
        identity: String,
        attrs: Option<Attributes>,
        split: RowSplit,
    ) -> Row {
        Row {
            source,
            identity,
            attrs,
            split,
            status: Status::Skipped,
            reason: None,
            landmark_source: None,
            landmarks: None,
            crop: None,
            label: None,
            record_key: None,
        }
    }

    pub fn with(mut self, status: Status, reason: impl Into<String>) -> Row {
        self.status = status;
        self.reason = Some(reason.into());
        self
    }

    /// `19062421/S001/L1/E01/C7.jpg`, the K-Face relative path.
    pub(crate) fn relative_path(&self) -> Option<String> {
        self.attrs.map(|attrs| {
            ImageKey {
                identity: self.identity.clone(),
                attrs,
            }
            .relative_path()
        })
    }

    /// The canonical order: identity, conditions, then source.
    pub(crate) fn sort_key(&self) -> (&str, Option<Attributes>, &str) {
        (&self.identity, self.attrs, &self.source)
    }
}

fn codes(rows: &[Row], code: impl Fn(&Attributes) -> String) -> Vec<Option<String>> {
    rows.iter().map(|r| r.attrs.as_ref().map(&code)).collect()
}

fn write_parquet(path: &Path, columns: Vec<Column>) -> anyhow::Result<()> {
    let mut df = DataFrame::new_infer_height(columns)
        .with_context(|| format!("{}: building the table", path.display()))?;
    let mut file =
        AtomicFile::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    ParquetWriter::new(&mut file)
        .finish(&mut df)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    file.flush()?;
    file.commit()
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// `manifest.parquet`, rows in the order given.
pub(crate) fn write_manifest(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut columns = vec![
        Column::new(
            "source".into(),
            rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "identity".into(),
            rows.iter()
                .map(|r| (!r.identity.is_empty()).then_some(r.identity.as_str()))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "label".into(),
            rows.iter().map(|r| r.label).collect::<Vec<_>>(),
        ),
        Column::new("accessory".into(), codes(rows, Attributes::accessory_code)),
        Column::new("light".into(), codes(rows, Attributes::light_code)),
        Column::new(
            "expression".into(),
            codes(rows, Attributes::expression_code),
        ),
        Column::new("camera".into(), codes(rows, Attributes::camera_code)),
        Column::new(
            "split".into(),
            rows.iter().map(|r| r.split.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "status".into(),
            rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "reason".into(),
            rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>(),
        ),
        Column::new(
            "record_key".into(),
            rows.iter().map(|r| r.record_key).collect::<Vec<_>>(),
        ),
        Column::new(
            "landmark_source".into(),
            rows.iter()
                .map(|r| r.landmark_source.as_deref())
                .collect::<Vec<_>>(),
        ),
    ];
    for point in 0..5 {
        for (axis, name) in ["x", "y"].iter().enumerate() {
            let values: Vec<Option<f32>> = rows
                .iter()
                .map(|r| r.landmarks.map(|p| p[point][axis]))
                .collect();
            columns.push(Column::new(format!("lm_{name}{point}").into(), values));
        }
    }
    write_parquet(path, columns)
}

/// `eval/manifest.parquet`: the `ok` gallery and probe rows, with paths
/// relative to `eval/`.
pub(crate) fn write_eval_manifest(
    path: &Path,
    rows: &[&Row],
    in_db: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let attrs: Vec<Attributes> = rows.iter().filter_map(|r| r.attrs).collect();
    anyhow::ensure!(
        attrs.len() == rows.len(),
        "every evaluation row has its conditions"
    );
    let text = |f: fn(&Attributes) -> String| attrs.iter().map(f).collect::<Vec<_>>();
    let columns = vec![
        Column::new(
            "path".into(),
            rows.iter()
                .map(|r| r.relative_path().unwrap_or_default())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "identity".into(),
            rows.iter().map(|r| r.identity.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "role".into(),
            rows.iter().map(|r| r.split.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "in_db".into(),
            rows.iter().map(|r| in_db(&r.identity)).collect::<Vec<_>>(),
        ),
        Column::new("accessory".into(), text(Attributes::accessory_code)),
        Column::new("light".into(), text(Attributes::light_code)),
        Column::new("expression".into(), text(Attributes::expression_code)),
        Column::new("camera".into(), text(Attributes::camera_code)),
    ];
    write_parquet(path, columns)
}
