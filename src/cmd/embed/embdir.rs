//! The tables of an embeddings directory (labels, failed rows, pairs, the
//! record), written into a stage by `embed` and read back from parts and
//! concatenated by `merge`: one writer, so a merged directory is byte for
//! byte what one run writes. `embeddings.npy` is written beside them by
//! `npy::write_f32`, or joined from the parts' by `npy::concat_f32`.

use std::path::Path;

use anyhow::Context;

use super::record::Record;
use crate::evalinput::{labels, npy};
use crate::output;

pub(crate) const EMBEDDINGS: &str = "embeddings.npy";
const LABELS_PARQUET: &str = "labels.parquet";
const LABELS_CSV: &str = "labels.csv";
pub(crate) const FAILED: &str = "failed.csv";
const PAIRS: &str = "pairs.txt";
const RECORD: &str = "embed.json";

/// Every file `embed` writes, `partial.json` of a part included.
pub(crate) const FILES: [&str; 7] = [
    EMBEDDINGS,
    LABELS_PARQUET,
    LABELS_CSV,
    FAILED,
    PAIRS,
    RECORD,
    crate::partition::PART_FILE,
];

/// A text table: named columns of equal length.
pub(crate) type Table = Vec<(String, Vec<String>)>;

/// What an embeddings directory holds but the embeddings.
#[derive(Debug, Clone)]
pub(crate) struct EmbDir {
    /// One row per embedding.
    pub labels: Table,
    /// `path`, `reason`.
    pub failed: Table,
    /// `pairs.txt`, when the inputs have pairs.
    pub pairs: Option<String>,
    pub record: Record,
}

impl EmbDir {
    fn rows(&self) -> usize {
        self.labels.first().map_or(0, |(_, v)| v.len())
    }

    /// Writes every file but the embeddings into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        labels::write_table(&dir.join(LABELS_PARQUET), &self.labels)?;
        labels::write_table(&dir.join(LABELS_CSV), &self.labels)?;
        labels::write_table(&dir.join(FAILED), &self.failed)?;
        if let Some(pairs) = &self.pairs {
            let path = dir.join(PAIRS);
            output::write_atomic(&path, pairs.as_bytes())
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
        let path = dir.join(RECORD);
        let json = serde_json::to_vec_pretty(&self.record)?;
        output::write_atomic(&path, &json)
            .with_context(|| format!("{}: cannot write", path.display()))
    }

    /// Reads the directory `embed` wrote at `dir`, checking that its files
    /// (the embeddings' shape included) agree with each other.
    pub(crate) fn read(dir: &Path) -> anyhow::Result<EmbDir> {
        let path = dir.join(RECORD);
        let text =
            std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let record: Record = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not an embed record", path.display()))?;
        let matrix = npy::shape(&dir.join(EMBEDDINGS))?;
        let labels = labels::read_table(&dir.join(LABELS_PARQUET))?;
        let failed = labels::read_table(&dir.join(FAILED))?;
        let pairs = record
            .counts
            .pairs
            .map(|_| {
                let path = dir.join(PAIRS);
                std::fs::read_to_string(&path)
                    .with_context(|| format!("{}: cannot read", path.display()))
            })
            .transpose()?;
        let emb = EmbDir {
            labels,
            failed,
            pairs,
            record,
        };
        let c = &emb.record.counts;
        let failed_rows = emb.failed.first().map_or(0, |(_, v)| v.len());
        anyhow::ensure!(
            matrix.rows == emb.rows() && c.embedded == emb.rows() && c.failed == failed_rows,
            "{}: {} embeddings, {} label rows and {} failed rows, but embed.json counts {} and {}",
            dir.display(),
            matrix.rows,
            emb.rows(),
            failed_rows,
            c.embedded,
            c.failed
        );
        Ok(emb)
    }
}
