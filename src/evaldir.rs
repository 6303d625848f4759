//! The evaluation directory that `facekit evaluate` writes and `facekit
//! report` and `facekit search` read: its file names, the `summary.json`
//! schema and the rows of its tables. One module owns the format so writer
//! and readers cannot drift apart.
//!
//! | file | content |
//! |---|---|
//! | `summary.json` | [`Summary`], every metric |
//! | `summary.md` | the same as tables a person reads |
//! | `roc.csv` | [`RocRow`]s along the exact curve |
//! | `operating_points.csv` | [`OperatingPointRow`]s, one per FMR / FPIR target |
//! | `scores.parquet` | [`HistogramRow`]s: fine-binned score distributions |
//! | `probes.csv` | [`ProbeRow`]s, one per probe |
//! | `examples.csv` | [`ExampleRow`]s: the hardest probes, bounded, with their images |
//! | `group_scores.csv` | [`GroupScoreRow`]s: each group's genuine score histogram |
//!
//! Thresholds are cosine similarities with the rule "accept if score >=
//! threshold"; every `*_l2` twin is the Euclidean distance of unit vectors,
//! `sqrt(2 - 2 cos)` (accept if distance <= it).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::output::AtomicFile;

pub const SCHEMA: u32 = 1;
pub const SUMMARY_JSON: &str = "summary.json";
pub const SUMMARY_MD: &str = "summary.md";
pub const ROC_CSV: &str = "roc.csv";
pub const OPERATING_POINTS_CSV: &str = "operating_points.csv";
pub const SCORES_PARQUET: &str = "scores.parquet";
pub const PROBES_CSV: &str = "probes.csv";
pub const EXAMPLES_CSV: &str = "examples.csv";
pub const GROUP_SCORES_CSV: &str = "group_scores.csv";

pub const DECISION: &str = "accept if score >= threshold";

/// The Euclidean distance of two unit vectors whose cosine is `cos`.
pub fn cosine_to_l2(cos: f64) -> f64 {
    (2.0 - 2.0 * cos).max(0.0).sqrt()
}

/// Whether two rate targets name the same operating point (to rounding:
/// `1e-3` and `0.001` are the same target).
pub(crate) fn same_target(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema: u32,
    pub facekit_version: String,
    pub engine: EngineInfo,
    pub inputs: Inputs,
    pub score: ScoreInfo,
    pub verification: Option<Verification>,
    pub identification: Option<Identification>,
    #[serde(default)]
    pub groups: Vec<GroupBreakdown>,
    /// Set when the scores do not come from a real model (the demo's
    /// synthetic embeddings): says so in words.
    #[serde(default)]
    pub synthetic_note: Option<String>,
    /// Where the comparisons ran: "one machine", or "merged from N parts"
    /// (`facekit merge`); with timings, all that may differ between the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<String>,
}

/// Which engine made the comparisons, as `summary.json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Cpu,
    Cuda,
    /// No engine: the scores were read from a file.
    #[serde(rename = "none")]
    ScoreFile,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub kind: EngineKind,
    /// What ran it, e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H200".
    pub description: String,
    /// fp32, tf32, bf16 or fp16.
    pub precision: String,
    /// Why `--device auto` chose the CPU, when it did.
    #[serde(default)]
    pub fallback_reason: Option<String>,
    /// The sampled score error against fp32 for reduced precisions.
    #[serde(default)]
    pub max_abs_score_error: Option<f64>,
    /// Why a comparison ran in another precision than `precision` (bf16
    /// where it would be slower than fp32), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub embeddings: Option<String>,
    pub labels: Option<String>,
    pub scores: Option<String>,
    pub pairs: Option<String>,
    /// all-pairs, probe-gallery, pairs-file or scores.
    pub protocol: String,
    pub rows: u64,
    pub dim: Option<u64>,
    pub identities: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreInfo {
    /// "cosine".
    pub kind: String,
    /// [`DECISION`].
    pub decision: String,
    /// How the `*_l2` thresholds relate to the cosine ones.
    pub distance: String,
    /// 0 when every impostor score is held exactly; otherwise the
    /// histogram bin width below the exact impostor tail (the run's
    /// impostor comparisons exceed the exact budget, `exact_budget`).
    pub resolution: f64,
    /// Impostor scores at or above this cosine are exact; absent when all
    /// are.
    #[serde(default)]
    pub exact_from: Option<f64>,
    /// The cosine ranges `[low, high)`, descending, whose impostor scores
    /// are counted in bins; outside them every score is held exactly (the
    /// exact tail above `exact_from`, and the score bands around the FMR
    /// targets below it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binned: Vec<[f64; 2]>,
    /// Impostor comparisons held exactly whole (`evaluate --help`).
    #[serde(default)]
    pub exact_budget: Option<u64>,
}

/// `true`, for figures that summaries written before they said so had
/// exact.
fn exact() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub genuine_count: u64,
    pub impostor_count: u64,
    pub auc: f64,
    /// The EER as the midpoint of `eer_low` and `eer_high`.
    pub eer: f64,
    pub eer_low: f64,
    pub eer_high: f64,
    pub eer_threshold: f64,
    pub eer_threshold_l2: f64,
    /// Which definition `eer` follows, in words.
    pub eer_definition: String,
    pub d_prime: f64,
    pub genuine_mean: f64,
    pub genuine_std: f64,
    pub impostor_mean: f64,
    pub impostor_std: f64,
    pub operating_points: Vec<FmrPoint>,
    pub kfold_accuracy: Option<KFoldAccuracy>,
    /// Whether `auc` is what the exact scores give; false only when
    /// impostor scores below the exact tail share a bin with genuine ones.
    #[serde(default = "exact")]
    pub auc_exact: bool,
    /// Whether the EER, its interval and threshold are what the exact
    /// scores give.
    #[serde(default = "exact")]
    pub eer_exact: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FmrPoint {
    pub fmr_target: f64,
    /// The lowest threshold whose FMR is <= the target (bob.measure's
    /// `far_threshold`: the conservative rule, the largest FMR not above it).
    pub threshold: f64,
    pub threshold_l2: f64,
    /// The realised FMR at the threshold.
    pub fmr: f64,
    pub fnmr: f64,
    pub false_matches: u64,
    pub false_non_matches: u64,
    /// 95% interval of the FNMR (subject bootstrap), when computed.
    #[serde(default)]
    pub fnmr_ci95: Option<[f64; 2]>,
    /// 95% Clopper–Pearson interval of the FMR, when computed (per-subject
    /// impostor counts are not kept, so it ignores subject correlation and
    /// is narrower than a subject bootstrap would be).
    #[serde(default)]
    pub fmr_ci95: Option<[f64; 2]>,
    /// Set when the target is below what the impostor count can resolve.
    #[serde(default)]
    pub warning: Option<String>,
    /// Whether the threshold and rates are bob.measure's on the exact
    /// scores; false when the target lies below the exact impostor tail,
    /// where the threshold is a bin edge (conservative by under a bin).
    #[serde(default = "exact")]
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KFoldAccuracy {
    pub mean: f64,
    pub std: f64,
    pub folds: u32,
    /// Per-fold best thresholds, as squared L2 distance (insightface's unit).
    pub thresholds_squared_l2: Vec<f64>,
    /// The rule, in words: insightface's 10-fold protocol.
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identification {
    pub gallery_count: u64,
    pub gallery_identities: u64,
    pub mated_count: u64,
    pub non_mated_count: u64,
    pub rank1: f64,
    /// `cmc[r-1]` = share of mated probes whose mate is at rank <= r.
    pub cmc: Vec<f64>,
    pub operating_points: Vec<FpirPoint>,
    /// R of every FNIR(N, R, T) in `operating_points` (`--rank`).
    #[serde(default = "rank_one")]
    pub fnir_rank: u64,
}

fn rank_one() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FpirPoint {
    pub fpir_target: f64,
    /// The lowest threshold whose FPIR is <= the target.
    pub threshold: f64,
    pub threshold_l2: f64,
    pub fpir: f64,
    /// FNIR at rank `fnir_rank` and this threshold (NIST): mate not within
    /// that rank or below the threshold.
    pub fnir: f64,
    #[serde(default)]
    pub fnir_ci95: Option<[f64; 2]>,
    #[serde(default)]
    pub warning: Option<String>,
}

/// FNMR and FMR per value of one or more label columns, at the global
/// thresholds of the FMR targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupBreakdown {
    /// e.g. ["camera"] or ["camera", "light"].
    pub columns: Vec<String>,
    pub rows: Vec<GroupRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    /// One value per column.
    pub values: Vec<String>,
    pub fmr_target: f64,
    pub threshold: f64,
    pub genuine_count: u64,
    pub impostor_count: u64,
    /// NaN (JSON null) when the group has no genuine comparisons.
    #[serde(deserialize_with = "nan_from_null")]
    pub fnmr: f64,
    /// NaN (JSON null) when the group has no impostor comparisons.
    #[serde(deserialize_with = "nan_from_null")]
    pub fmr: f64,
}

/// serde_json writes a NaN rate as `null`; read it back as NaN.
fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One vertex of the exact ROC / DET step curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocRow {
    pub threshold: f64,
    pub threshold_l2: f64,
    pub fmr: f64,
    pub fnmr: f64,
    pub tar: f64,
    pub false_matches: u64,
    pub false_non_matches: u64,
}

/// One target of `operating_points.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPointRow {
    /// "fmr" (verification) or "fpir" (open-set identification).
    pub kind: String,
    pub target: f64,
    pub threshold: f64,
    pub threshold_l2: f64,
    /// The realised FMR or FPIR.
    pub rate: f64,
    /// FNMR (for fmr rows) or FNIR (for fpir rows).
    pub other_rate: f64,
    pub other_ci_low: Option<f64>,
    pub other_ci_high: Option<f64>,
}

/// One probe of `probes.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRow {
    pub probe: u64,
    pub identity: String,
    pub path: Option<String>,
    /// Whether the probe's identity is in the gallery (in-DB).
    pub mated: bool,
    pub top1_identity: Option<String>,
    pub top1_score: Option<f64>,
    pub top1_distance: Option<f64>,
    pub mate_rank: Option<u64>,
    pub mate_score: Option<f64>,
    /// The identity accepted at the decision threshold, or "unknown".
    pub decision: String,
    /// The threshold `decision` used (cosine).
    pub decision_threshold: f64,
}

/// `examples.csv`: a non-mated (out-of-DB) probe, a false accept when its
/// `score` (the nearest gallery face) is >= the threshold.
pub const EXAMPLE_NON_MATED: &str = "non_mated_probe";
/// `examples.csv`: a mated (in-DB) probe, missed unless its mate comes first
/// (`mate_rank` 1) with a `score` >= the threshold.
pub(crate) const EXAMPLE_MATED: &str = "mated_probe";
/// `examples.csv`: an impostor pair (two identities), a false match when
/// its `score` is >= the threshold.
pub const EXAMPLE_IMPOSTOR: &str = "impostor_pair";
/// `examples.csv`: a genuine pair (one identity), a false non-match when
/// its `score` is below the threshold.
pub const EXAMPLE_GENUINE: &str = "genuine_pair";
/// Every kind of `examples.csv`, in the order of its rows.
pub(crate) const EXAMPLE_KINDS: [&str; 4] = [
    EXAMPLE_NON_MATED,
    EXAMPLE_MATED,
    EXAMPLE_IMPOSTOR,
    EXAMPLE_GENUINE,
];

/// One of the hardest examples of `examples.csv`: the non-mated probes with
/// the highest nearest-gallery scores and the mated probes most easily
/// missed, each with the gallery face it is shown against; the impostor
/// pairs with the highest scores and the genuine pairs with the lowest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleRow {
    /// One of [`EXAMPLE_KINDS`].
    pub kind: String,
    /// The probe's row in the labels (a pair's first row).
    pub probe: u64,
    pub identity: String,
    pub path: Option<String>,
    /// Non-mated: the nearest gallery face's identity; mated: the mate's;
    /// a pair: its second row's.
    pub gallery_identity: String,
    pub gallery_path: Option<String>,
    /// Cosine: the nearest gallery score (non-mated), the mate score, or
    /// the pair's score.
    pub score: f64,
    pub mate_rank: Option<u64>,
    /// Who the search returned first.
    pub top1_identity: Option<String>,
    pub top1_score: Option<f64>,
}

/// One non-empty bin of a group's genuine scores (`group_scores.csv`):
/// `count` genuine comparisons of the group lie in `[bin_low, bin_high)`.
/// The group is a row of `summary.json`'s breakdown over `columns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScoreRow {
    /// The grouping columns joined by `+`, as `--group-by` names them.
    pub columns: String,
    /// The group's values, a JSON array of strings (values may hold `+`).
    pub values: String,
    pub bin_low: f64,
    pub bin_high: f64,
    pub count: u64,
}

/// Which distribution a histogram row belongs to.
pub const HIST_GENUINE: &str = "genuine";
pub const HIST_IMPOSTOR: &str = "impostor";
/// Nearest-gallery (top-1) scores of mated (in-DB) probes.
pub const HIST_MATED_TOP1: &str = "mated_top1";
/// Nearest-gallery (top-1) scores of non-mated (out-of-DB) probes.
pub const HIST_NON_MATED_TOP1: &str = "non_mated_top1";

/// One non-empty bin of `scores.parquet`: `count` scores of `kind` lie in
/// `[bin_low, bin_high)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramRow {
    pub kind: String,
    pub bin_low: f64,
    pub bin_high: f64,
    pub count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: {source}")]
    Parquet { path: PathBuf, source: PolarsError },
    #[error("{path}: schema {found}, this facekit reads schema {SCHEMA}")]
    Schema { path: PathBuf, found: u32 },
    #[error("{path}: {message}")]
    Content { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EvalDirError + '_ {
    move |source| EvalDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn write_summary(dir: &Path, summary: &Summary) -> Result<(), EvalDirError> {
    let path = dir.join(SUMMARY_JSON);
    let mut bytes = serde_json::to_vec_pretty(summary).map_err(|source| EvalDirError::Json {
        path: path.clone(),
        source,
    })?;
    bytes.push(b'\n');
    crate::output::write_atomic(&path, &bytes).map_err(io_err(&path))
}

pub fn read_summary(dir: &Path) -> Result<Summary, EvalDirError> {
    let path = dir.join(SUMMARY_JSON);
    let file = File::open(&path).map_err(io_err(&path))?;
    let value: serde_json::Value =
        serde_json::from_reader(BufReader::new(file)).map_err(|source| EvalDirError::Json {
            path: path.clone(),
            source,
        })?;
    let found = value.get("schema").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    if found != SCHEMA {
        return Err(EvalDirError::Schema { path, found });
    }
    serde_json::from_value(value).map_err(|source| EvalDirError::Json { path, source })
}

/// Writes rows as a CSV table with a header.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), EvalDirError> {
    let csv_err = |source| EvalDirError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let file = AtomicFile::create(path).map_err(io_err(path))?;
    let mut writer = csv::Writer::from_writer(file);
    for row in rows {
        writer.serialize(row).map_err(csv_err)?;
    }
    let mut file = writer
        .into_inner()
        .map_err(|e| io_err(path)(e.into_error()))?;
    file.flush().map_err(io_err(path))?;
    file.commit().map_err(io_err(path))
}

pub fn read_csv<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, EvalDirError> {
    let csv_err = |source| EvalDirError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_err)?;
    reader
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(csv_err)
}

pub fn write_histograms(path: &Path, rows: &[HistogramRow]) -> Result<(), EvalDirError> {
    let pq_err = |source| EvalDirError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let mut df = DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "kind".into(),
                rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "bin_low".into(),
                rows.iter().map(|r| r.bin_low).collect::<Vec<_>>(),
            ),
            Column::new(
                "bin_high".into(),
                rows.iter().map(|r| r.bin_high).collect::<Vec<_>>(),
            ),
            Column::new(
                "count".into(),
                rows.iter().map(|r| r.count).collect::<Vec<_>>(),
            ),
        ],
    )
    .map_err(pq_err)?;
    let mut file = AtomicFile::create(path).map_err(io_err(path))?;
    ParquetWriter::new(&mut file)
        .finish(&mut df)
        .map_err(pq_err)?;
    file.commit().map_err(io_err(path))
}

pub fn read_histograms(path: &Path) -> Result<Vec<HistogramRow>, EvalDirError> {
    let pq_err = |source| EvalDirError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err(path))?;
    let df = ParquetReader::new(file).finish().map_err(pq_err)?;
    let kind = df
        .column("kind")
        .and_then(|c| c.str().cloned())
        .map_err(pq_err)?;
    let low = df
        .column("bin_low")
        .and_then(|c| c.f64().cloned())
        .map_err(pq_err)?;
    let high = df
        .column("bin_high")
        .and_then(|c| c.f64().cloned())
        .map_err(pq_err)?;
    let count = df
        .column("count")
        .and_then(|c| c.u64().cloned())
        .map_err(pq_err)?;
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        match (kind.get(i), low.get(i), high.get(i), count.get(i)) {
            (Some(k), Some(l), Some(h), Some(c)) => rows.push(HistogramRow {
                kind: k.to_string(),
                bin_low: l,
                bin_high: h,
                count: c,
            }),
            _ => {
                return Err(EvalDirError::Content {
                    path: path.to_path_buf(),
                    message: format!("row {i} has an empty cell"),
                })
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_cosine_convert_both_ways() {
        assert!((cosine_to_l2(0.0) - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(cosine_to_l2(1.0), 0.0);
        assert_eq!(cosine_to_l2(-1.0), 2.0);
        for c in [-0.9, -0.2, 0.1, 0.38, 0.77] {
            let d = cosine_to_l2(c);
            assert!((1.0 - d * d / 2.0 - c).abs() < 1e-12);
        }
    }

    #[test]
    fn thresholds_read_back_from_json_are_the_ones_written() {
        // serde_json without float_roundtrip read this one 1 ulp off, so the
        // report drew a threshold beside the one operating_points.csv holds.
        for t in [0.434_430_718_421_936_04_f64, f64::from(0.1f32), 1.0 / 3.0] {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<f64>(&json).unwrap(), t, "{json}");
        }
    }

    #[test]
    fn engine_kinds_are_named_as_before_they_were_an_enum() {
        for (kind, name) in [
            (EngineKind::Cpu, "cpu"),
            (EngineKind::Cuda, "cuda"),
            (EngineKind::ScoreFile, "none"),
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<EngineKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn empty_group_rates_survive_json() {
        let row = GroupRow {
            values: vec!["C1".into()],
            fmr_target: 1e-3,
            threshold: 0.4,
            genuine_count: 0,
            impostor_count: 10,
            fnmr: f64::NAN,
            fmr: 0.1,
        };
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains("\"fnmr\":null"), "{json}");
        let back: GroupRow = serde_json::from_str(&json).unwrap();
        assert!(back.fnmr.is_nan());
        assert_eq!(back.fmr, 0.1);
    }

    #[test]
    fn tables_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            HistogramRow {
                kind: HIST_GENUINE.into(),
                bin_low: 0.5,
                bin_high: 0.50003,
                count: 3,
            },
            HistogramRow {
                kind: HIST_IMPOSTOR.into(),
                bin_low: -0.1,
                bin_high: -0.09997,
                count: 12,
            },
        ];
        let pq = dir.path().join(SCORES_PARQUET);
        write_histograms(&pq, &rows).unwrap();
        assert_eq!(read_histograms(&pq).unwrap(), rows);

        let probes = vec![ProbeRow {
            probe: 0,
            identity: "홍길동".into(),
            path: Some("19062421/S001/L1/E01/C4.jpg".into()),
            mated: true,
            top1_identity: Some("홍길동".into()),
            top1_score: Some(0.8),
            top1_distance: Some(cosine_to_l2(0.8)),
            mate_rank: Some(1),
            mate_score: Some(0.8),
            decision: "홍길동".into(),
            decision_threshold: 0.4,
        }];
        let csv_path = dir.path().join(PROBES_CSV);
        write_csv(&csv_path, &probes).unwrap();
        assert_eq!(read_csv::<ProbeRow>(&csv_path).unwrap(), probes);
    }
}
