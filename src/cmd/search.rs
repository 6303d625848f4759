//! `facekit search --gallery EMB_DIR --probes EMB_DIR`: for each probe the
//! top-k gallery identities (best row per identity) with cosine and
//! distance, and "unknown" when the best score is below the threshold.
//!
//! The threshold is a cosine, or an operating point of an evaluate run
//! (`EVAL_DIR:fpir=0.01`), so that it comes from a measurement. The
//! comparisons run on the comparison engine as probe × gallery tiles; the
//! score matrix is never held whole.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

use crate::cli::{SearchArgs, TableFormat};
use crate::cmd::engine::select_engine;
use crate::compare::{Candidate, CompareJob, Embeddings, Engine, HistogramSpec, Pairing};
use crate::evaldir::{self, cosine_to_l2, Summary};
use crate::evalinput::labels::{self, Labels, Role};
use crate::evalinput::npy;

/// What a probe is called when no candidate reaches the threshold.
const UNKNOWN: &str = "unknown";

pub(crate) fn run(args: &SearchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.top_k >= 1, "--top-k must be at least 1");
    let threshold = args
        .threshold
        .as_deref()
        .map(Threshold::parse)
        .transpose()?;
    let gallery = RoleRows::read(&args.gallery, Role::Gallery)?;
    let probes = RoleRows::read(&args.probes, Role::Probe)?;
    let engine = engine(args)?;
    let found = search(engine.as_ref(), &gallery, &probes, args.top_k).with_context(|| {
        format!(
            "comparing {} with {}",
            args.probes.display(),
            args.gallery.display()
        )
    })?;
    let results = decide(&probes, found.matches, threshold.as_ref());
    let precision_note = found.precision_note;
    if let (Some(note), true) = (&precision_note, io::stderr().is_terminal()) {
        eprintln!("facekit search: {note}");
    }

    let mut out = io::stdout().lock();
    match args.format {
        TableFormat::Table => {
            if threshold.is_none() && io::stderr().is_terminal() {
                eprintln!(
                    "no --threshold: every probe takes its best match; pass one (e.g. EVAL_DIR:fpir=0.01) to get \"unknown\""
                );
            }
            write_table(&mut out, &results, threshold.as_ref())?
        }
        TableFormat::Csv => write_csv(&mut out, &results)?,
        TableFormat::Json => {
            let doc = JsonOutput {
                gallery_dir: args.gallery.display().to_string(),
                gallery_rows: gallery.embeddings.rows(),
                gallery_identities: gallery.identity_count(),
                probes_dir: args.probes.display().to_string(),
                engine: engine.description(),
                precision_note,
                threshold: threshold.as_ref(),
                probes: &results,
            };
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The engine `--device` and `--precision` ask for (whatever the
/// precision, the candidates and their scores are the fp32 engine's); on a
/// terminal, says when `auto` fell back to the CPU (piped output stays
/// clean).
fn engine(args: &SearchArgs) -> anyhow::Result<Box<dyn Engine>> {
    let selected = select_engine(args.device, args.precision)?;
    if let Some(notice) = selected.notice() {
        if io::stderr().is_terminal() || selected.gpu_unusable {
            eprintln!("facekit search: {notice}");
        }
    }
    Ok(selected.engine)
}

/// The decision threshold, as a cosine, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Threshold {
    pub cosine: f64,
    pub distance: f64,
    /// `--threshold 0.4`, or the operating point: `eval:fpir=0.01 (realised FPIR 0.0098)`.
    pub from: String,
}

/// An operating point that an evaluate run measured.
#[derive(Debug, Clone, PartialEq)]
struct OperatingPoint {
    /// "fmr" or "fpir".
    pub kind: &'static str,
    pub target: f64,
    pub threshold: f64,
    pub realised: f64,
}

impl Threshold {
    /// A cosine in [-1, 1], or `EVAL_DIR:fpir=T` / `EVAL_DIR:fmr=T`.
    fn parse(arg: &str) -> anyhow::Result<Threshold> {
        if let Ok(cosine) = arg.trim().parse::<f64>() {
            anyhow::ensure!(
                cosine.is_finite() && (-1.0..=1.0).contains(&cosine),
                "--threshold {arg}: a cosine similarity lies in [-1, 1] (for a distance d, pass 1 - d*d/2)"
            );
            return Ok(Threshold::cosine(cosine, format!("--threshold {arg}")));
        }
        let Some((dir, point)) = arg.rsplit_once(':') else {
            bail!("--threshold {arg}: expected a cosine, EVAL_DIR:fpir=0.01 or EVAL_DIR:fmr=1e-3");
        };
        let (kind, target) = parse_point(point).with_context(|| {
            format!("--threshold {arg}: expected EVAL_DIR:fpir=0.01 or EVAL_DIR:fmr=1e-3")
        })?;
        let summary = evaldir::read_summary(Path::new(dir))?;
        // Embeddings are compared by cosine: a threshold on other scores
        // (an evaluate --scores run) would decide nothing meaningful.
        if summary.score.kind != "cosine" {
            bail!(
                "{}: its thresholds are on {:?} scores read from a file, not cosine similarities of embeddings; pass a cosine, or EVAL_DIR of an evaluate --embeddings run",
                Path::new(dir).join(evaldir::SUMMARY_JSON).display(),
                summary.score.kind
            );
        }
        let points = operating_points(&summary);
        let found = pick(&points, kind, target).ok_or_else(|| {
            let available: Vec<String> = points
                .iter()
                .map(|p| format!("{}={}", p.kind, p.target))
                .collect();
            anyhow::anyhow!(
                "{}: no {kind}={target} operating point; available: {}",
                Path::new(dir).join(evaldir::SUMMARY_JSON).display(),
                if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                }
            )
        })?;
        let rate = found.kind.to_ascii_uppercase();
        Ok(Threshold::cosine(
            found.threshold,
            format!(
                "{dir}:{kind}={target} (realised {rate} {:.3e})",
                found.realised
            ),
        ))
    }

    fn cosine(cosine: f64, from: String) -> Threshold {
        Threshold {
            cosine,
            distance: cosine_to_l2(cosine),
            from,
        }
    }
}

/// `fpir=0.01` → ("fpir", 0.01).
fn parse_point(point: &str) -> anyhow::Result<(&'static str, f64)> {
    let (kind, value) = point.split_once('=').context("no `=`")?;
    let kind = match kind.trim().to_ascii_lowercase().as_str() {
        "fpir" => "fpir",
        "fmr" => "fmr",
        other => bail!("unknown rate {other:?}"),
    };
    let target: f64 = value
        .trim()
        .parse()
        .with_context(|| format!("{value:?} is not a number"))?;
    Ok((kind, target))
}

/// Every operating point of a summary: verification (FMR) and open-set (FPIR).
fn operating_points(summary: &Summary) -> Vec<OperatingPoint> {
    let fmr = summary
        .verification
        .iter()
        .flat_map(|v| &v.operating_points)
        .map(|p| OperatingPoint {
            kind: "fmr",
            target: p.fmr_target,
            threshold: p.threshold,
            realised: p.fmr,
        });
    let fpir = summary
        .identification
        .iter()
        .flat_map(|i| &i.operating_points)
        .map(|p| OperatingPoint {
            kind: "fpir",
            target: p.fpir_target,
            threshold: p.threshold,
            realised: p.fpir,
        });
    fmr.chain(fpir).collect()
}

/// The point of this kind whose target equals `target` (to rounding: `1e-3`
/// and `0.001` name the same target).
fn pick<'a>(points: &'a [OperatingPoint], kind: &str, target: f64) -> Option<&'a OperatingPoint> {
    points
        .iter()
        .find(|p| p.kind == kind && evaldir::same_target(p.target, target))
}

/// The rows of one embeddings directory that play one role.
#[derive(Debug)]
struct RoleRows {
    pub embeddings: Embeddings,
    pub identity: Vec<String>,
    /// The `path` cell, or `row N`.
    pub name: Vec<String>,
    /// Row numbers in the directory's files.
    pub row: Vec<usize>,
}

impl RoleRows {
    /// Reads `embeddings.npy` and `labels.csv` (or `labels.parquet`) and keeps
    /// the rows of `role`; every row when the labels have no role column.
    fn read(dir: &Path, role: Role) -> anyhow::Result<RoleRows> {
        let npy_path = dir.join("embeddings.npy");
        if !npy_path.is_file() {
            if dir.join("manifest.parquet").is_file() {
                bail!(
                    "{}: a converted eval/ set holds images, not embeddings; embed its images with your model \
                     into embeddings.npy + labels.csv (its manifest.parquet can serve as the labels)",
                    dir.display()
                );
            }
            bail!(
                "{}: no embeddings.npy; search reads an embeddings directory (embeddings.npy + labels.csv)",
                dir.display()
            );
        }
        let labels_path = labels_file(dir)?;
        let matrix = npy::read_matrix(&npy_path)?;
        let labels = labels::read_labels(&labels_path)?;
        if labels.len() != matrix.rows {
            bail!(
                "{}: {} label rows for the {} embeddings of {}",
                labels_path.display(),
                labels.len(),
                matrix.rows,
                npy_path.display()
            );
        }
        let rows = rows_of_role(&labels, role);
        if rows.is_empty() {
            bail!(
                "{}: no row has role {}",
                labels_path.display(),
                role_name(role)
            );
        }
        let all = Embeddings::normalized(matrix.data, matrix.cols)
            .with_context(|| npy_path.display().to_string())?;
        Ok(RoleRows {
            embeddings: all.select(&rows),
            identity: rows.iter().map(|&i| labels.identity[i].clone()).collect(),
            name: rows
                .iter()
                .map(|&i| match &labels.path {
                    Some(paths) if !paths[i].is_empty() => paths[i].clone(),
                    _ => format!("row {i}"),
                })
                .collect(),
            row: rows,
        })
    }

    fn identity_count(&self) -> usize {
        let mut names: Vec<&str> = self.identity.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

fn labels_file(dir: &Path) -> anyhow::Result<PathBuf> {
    ["labels.csv", "labels.parquet"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{}: no labels.csv or labels.parquet beside embeddings.npy",
                dir.display()
            )
        })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Gallery => "gallery",
        Role::Probe => "probe",
    }
}

/// The rows playing `role`, or all rows when the labels give no roles.
fn rows_of_role(labels: &Labels, role: Role) -> Vec<usize> {
    match &labels.role {
        Some(roles) => (0..labels.len()).filter(|&i| roles[i] == role).collect(),
        None => (0..labels.len()).collect(),
    }
}

/// One candidate identity of a probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct IdentityMatch {
    pub rank: usize,
    pub identity: String,
    pub cosine: f64,
    pub distance: f64,
}

/// What a search found: per probe, its best identities; and why the job
/// ran in another precision than asked for, when it did.
struct Found {
    pub matches: Vec<Vec<IdentityMatch>>,
    pub precision_note: Option<String>,
}

/// Runs the probe × gallery comparison and returns, per probe, its best
/// `top_k` identities (each identity scored by its best gallery row).
fn search(
    engine: &dyn Engine,
    gallery: &RoleRows,
    probes: &RoleRows,
    top_k: usize,
) -> anyhow::Result<Found> {
    // Dense labels over both sides, so that the engine can tell mates apart.
    let mut index: BTreeMap<&str, u32> = BTreeMap::new();
    for name in gallery.identity.iter().chain(&probes.identity) {
        let next = index.len() as u32;
        index.entry(name.as_str()).or_insert(next);
    }
    let gallery_labels: Vec<u32> = gallery.identity.iter().map(|n| index[n.as_str()]).collect();
    let probe_labels: Vec<u32> = probes.identity.iter().map(|n| index[n.as_str()]).collect();
    let job = CompareJob {
        probes: probes.embeddings.view(),
        probe_labels: &probe_labels,
        gallery: gallery.embeddings.view(),
        gallery_labels: &gallery_labels,
        pairing: Pairing::ProbeGallery,
        top_k: rows_needed(top_k, &gallery_labels),
        // Search needs no score distribution: one bin, no exact tail.
        histogram: HistogramSpec { bins: 1 },
        tail_capacity: 0,
        examples: 0,
        bands: &[],
        mates_elsewhere: None,
    };
    job.validate()?;
    let result = engine.compare(&job)?;
    Ok(Found {
        matches: result
            .probes
            .iter()
            .map(|p| best_identities(&p.top, &gallery.identity, top_k))
            .collect(),
        precision_note: result.precision_note,
    })
}

/// How many gallery rows a probe's list must hold to contain its best `k`
/// identities: when the best `(k-1)·m + 1` rows (m = most rows of one
/// identity) held fewer than k identities, k-1 identities would fill
/// more than (k-1)·m rows.
fn rows_needed(k: usize, gallery_labels: &[u32]) -> usize {
    let mut per_identity: BTreeMap<u32, usize> = BTreeMap::new();
    for &l in gallery_labels {
        *per_identity.entry(l).or_default() += 1;
    }
    let most = per_identity.values().copied().max().unwrap_or(0);
    ((k - 1) * most + 1).min(gallery_labels.len())
}

/// Collapses a probe's best rows (score descending) into its best `k`
/// identities, each at the score of its best row.
fn best_identities(top: &[Candidate], gallery_identity: &[String], k: usize) -> Vec<IdentityMatch> {
    let mut seen: Vec<&str> = Vec::with_capacity(k);
    let mut out = Vec::with_capacity(k);
    for c in top {
        let identity = gallery_identity[c.index as usize].as_str();
        if seen.contains(&identity) {
            continue;
        }
        seen.push(identity);
        let cosine = c.score as f64;
        out.push(IdentityMatch {
            rank: out.len() + 1,
            identity: identity.to_string(),
            cosine,
            distance: cosine_to_l2(cosine),
        });
        if out.len() == k {
            break;
        }
    }
    out
}

/// One probe's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ProbeResult {
    /// Its `path`, or `row N`.
    pub probe: String,
    /// Its row in the probes directory.
    pub row: usize,
    /// Its `identity` label (ground truth when known).
    pub label: String,
    /// The best identity when it reaches the threshold, otherwise "unknown";
    /// the best identity when no threshold is given.
    pub decision: String,
    pub candidates: Vec<IdentityMatch>,
}

fn decide(
    probes: &RoleRows,
    matches: Vec<Vec<IdentityMatch>>,
    threshold: Option<&Threshold>,
) -> Vec<ProbeResult> {
    matches
        .into_iter()
        .enumerate()
        .map(|(i, candidates)| ProbeResult {
            probe: probes.name[i].clone(),
            row: probes.row[i],
            label: probes.identity[i].clone(),
            decision: decision(&candidates, threshold.map(|t| t.cosine)),
            candidates,
        })
        .collect()
}

/// Accept if score >= threshold (the evaluate convention).
fn decision(candidates: &[IdentityMatch], threshold: Option<f64>) -> String {
    match (candidates.first(), threshold) {
        (Some(best), Some(t)) if best.cosine < t => UNKNOWN.to_string(),
        (Some(best), _) => best.identity.clone(),
        (None, _) => UNKNOWN.to_string(),
    }
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    gallery_dir: String,
    gallery_rows: usize,
    gallery_identities: usize,
    probes_dir: String,
    engine: String,
    /// Why the products ran in another precision than asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    precision_note: Option<String>,
    threshold: Option<&'a Threshold>,
    probes: &'a [ProbeResult],
}

/// One line per candidate; the probe, its label and the decision on its
/// first line only, so each probe reads as a block.
fn write_table(
    out: &mut impl Write,
    results: &[ProbeResult],
    threshold: Option<&Threshold>,
) -> io::Result<()> {
    if let Some(t) = threshold {
        writeln!(
            out,
            "threshold: cosine {:.4} = distance {:.4}, from {} (accept if cosine >= threshold)",
            t.cosine, t.distance, t.from
        )?;
    }
    let header = [
        "probe", "label", "rank", "identity", "cosine", "distance", "decision",
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    for r in results {
        for (j, c) in r.candidates.iter().enumerate() {
            let first = j == 0;
            rows.push([
                if first {
                    r.probe.clone()
                } else {
                    String::new()
                },
                if first {
                    r.label.clone()
                } else {
                    String::new()
                },
                c.rank.to_string(),
                c.identity.clone(),
                format!("{:.4}", c.cosine),
                // 3 decimals: float32 rounding puts identical faces at ~3e-4.
                format!("{:.3}", c.distance),
                if first {
                    r.decision.clone()
                } else {
                    String::new()
                },
            ]);
        }
    }
    let right = [false, false, true, false, true, true, false];
    let mut widths = header.map(UnicodeWidthStr::width);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    write_row(out, &header.map(String::from), &widths, &right)?;
    for row in &rows {
        write_row(out, row, &widths, &right)?;
    }
    Ok(())
}

fn write_row(
    out: &mut impl Write,
    cells: &[String; 7],
    widths: &[usize; 7],
    right: &[bool; 7],
) -> io::Result<()> {
    let line: Vec<String> = cells
        .iter()
        .zip(widths)
        .zip(right)
        .map(|((cell, &w), &r)| pad(cell, w, r))
        .collect();
    writeln!(out, "{}", line.join("  ").trim_end())
}

/// Pads to `width` terminal columns (a Hangul syllable takes two).
fn pad(text: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(text.width()));
    if right {
        format!("{fill}{text}")
    } else {
        format!("{text}{fill}")
    }
}

/// One row per candidate, every column filled.
fn write_csv(out: &mut impl Write, results: &[ProbeResult]) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record([
        "probe", "row", "label", "rank", "identity", "cosine", "distance", "decision",
    ])?;
    for r in results {
        for c in &r.candidates {
            csv.write_record([
                r.probe.clone(),
                r.row.to_string(),
                r.label.clone(),
                c.rank.to_string(),
                c.identity.clone(),
                c.cosine.to_string(),
                c.distance.to_string(),
                r.decision.clone(),
            ])?;
        }
    }
    csv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn identities_take_their_best_row_and_enough_rows_are_asked() {
        let gallery = names(&["김민준", "김민준", "이서연", "박지호"]);
        let top = [
            Candidate {
                index: 1,
                score: 0.9,
            },
            Candidate {
                index: 0,
                score: 0.8,
            },
            Candidate {
                index: 3,
                score: 0.5,
            },
            Candidate {
                index: 2,
                score: 0.4,
            },
        ];
        let best = best_identities(&top, &gallery, 2);
        assert_eq!(best.len(), 2);
        assert_eq!((best[0].rank, best[0].identity.as_str()), (1, "김민준"));
        assert!((best[0].cosine - 0.9).abs() < 1e-6);
        assert_eq!((best[1].rank, best[1].identity.as_str()), (2, "박지호"));
        assert!((best[1].distance - cosine_to_l2(0.5)).abs() < 1e-6);
        // Two rows of one identity: 2 identities need 3 rows, 3 need 5 (capped at 4).
        assert_eq!(rows_needed(2, &[0, 0, 1, 2]), 3);
        assert_eq!(rows_needed(3, &[0, 0, 1, 2]), 4);
        assert_eq!(rows_needed(1, &[0, 0, 1, 2]), 1);
    }

    /// bf16 search answers as fp32 does (identities, ranks, scores) on rows
    /// built to stress the rescoring band: near-tied best scores, exact and
    /// near duplicates, several rows per identity.
    #[test]
    fn bf16_search_equals_fp32_on_near_ties_and_duplicates() {
        use crate::compare::cpu::{band_stress_rows, bf16, CpuEngine, CpuPrecision};
        if !bf16::testable() {
            return;
        }
        let (gallery, gallery_labels, probes, probe_labels) = band_stress_rows(300, 120, 64);
        let rows = |embeddings: Embeddings, labels: &[u32]| RoleRows {
            identity: labels.iter().map(|l| format!("id{l}")).collect(),
            name: (0..labels.len()).map(|i| format!("row {i}")).collect(),
            row: (0..labels.len()).collect(),
            embeddings,
        };
        let (gallery, probes) = (rows(gallery, &gallery_labels), rows(probes, &probe_labels));
        let fp32 = search(&CpuEngine::new(), &gallery, &probes, 10)
            .unwrap()
            .matches;
        let engine = CpuEngine::with_precision(CpuPrecision::Bf16).unwrap();
        let bf16 = search(&engine, &gallery, &probes, 10).unwrap();
        assert_eq!(bf16.precision_note, None, "bf16 products ran");
        assert_eq!(bf16.matches, fp32);
    }

    #[test]
    fn below_the_threshold_is_unknown() {
        let c = vec![IdentityMatch {
            rank: 1,
            identity: "최유나".into(),
            cosine: 0.31,
            distance: cosine_to_l2(0.31),
        }];
        assert_eq!(decision(&c, Some(0.4)), UNKNOWN);
        assert_eq!(decision(&c, Some(0.31)), "최유나");
        assert_eq!(decision(&c, None), "최유나");
        assert_eq!(decision(&[], None), UNKNOWN);
    }

    #[test]
    fn thresholds_parse_and_operating_points_match_their_target() {
        let t = Threshold::parse("0.4").unwrap();
        assert_eq!(t.cosine, 0.4);
        assert!((t.distance - cosine_to_l2(0.4)).abs() < 1e-12);
        assert!(Threshold::parse("1.5").is_err());
        assert!(Threshold::parse("nowhere").is_err());
        assert_eq!(parse_point("fpir=1e-2").unwrap(), ("fpir", 0.01));
        assert_eq!(parse_point("FMR = 0.001").unwrap(), ("fmr", 0.001));
        assert!(parse_point("far=0.1").is_err());
        let points = vec![
            OperatingPoint {
                kind: "fmr",
                target: 1e-3,
                threshold: 0.35,
                realised: 9e-4,
            },
            OperatingPoint {
                kind: "fpir",
                target: 0.01,
                threshold: 0.41,
                realised: 0.0098,
            },
        ];
        assert_eq!(pick(&points, "fpir", 1e-2).map(|p| p.threshold), Some(0.41));
        assert_eq!(pick(&points, "fmr", 0.001).map(|p| p.threshold), Some(0.35));
        assert!(pick(&points, "fmr", 0.01).is_none());
        assert!(pick(&points, "fpir", 1e-3).is_none());
    }

    #[test]
    fn hangul_pads_by_display_width() {
        assert_eq!(pad("홍길동", 8, false), "홍길동  ");
        assert_eq!(pad("abc", 8, false), "abc     ");
        assert_eq!(pad("0.5", 5, true), "  0.5");
        assert_eq!(
            pad("홍길동", 6, false).width(),
            pad("abcdef", 6, false).width()
        );
    }
}
