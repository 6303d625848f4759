//! The threshold explorer of `index.html`: a slider over a grid of
//! thresholds with, at each, the exact error counts `evaluate` recorded,
//! the per-condition FNMR and the faces that fail. The page embeds the data
//! as JSON and `explorer.js` (hand-written, no network, no build step)
//! draws it; without JavaScript the rest of the page stays as it was.
//!
//! **Exact at every grid threshold.** The grid is made of lower edges of
//! `scores.parquet`'s bins (2^16 bins over the cosine range, width about
//! 3e-5): at an edge, the impostor scores at or above it and the genuine
//! scores below it are sums of whole bins, so the counts are the ones
//! `evaluate` counted. FPIR and FNIR come from `probes.csv` (NIST, rank 1)
//! and each group's FNMR from `group_scores.csv`, at the same edges.
//!
//! **Bounded.** Of all edges, the grid keeps one wherever a rate moves by
//! 1/[`LEVELS_PER_DECADE`] of a decade (walking down from the top), plus
//! the edges that meet each FMR / FPIR target: at most about
//! 4 × (50 · log10 N + 2) thresholds for N comparisons (about 2,000 for
//! N = 10^10). The faces are capped at [`FACES_PER_KIND`] per kind, shown
//! [`PAGE_FACES`] at a time as 64-pixel JPEG thumbnails.

use std::collections::BTreeMap;
use std::fmt::Write;

use rayon::prelude::*;
use serde::Serialize;

use crate::evaldir::{
    ExampleRow, HistogramRow, EXAMPLE_KINDS, HIST_GENUINE, HIST_IMPOSTOR, HIST_MATED_TOP1,
    HIST_NON_MATED_TOP1,
};
use crate::metrics::bootstrap::clopper_pearson;

use super::build::{recommended_fpir_point, PREFERRED_FMR};
use super::html::escape;
use super::system::System;
use super::thumbnail;
use crate::text::natural_cmp;

/// Grid resolution: a rate moving by a 50th of a decade (about 4.7%)
/// gets a new threshold.
pub(crate) const LEVELS_PER_DECADE: f64 = 50.0;
/// The most faces of each kind the page embeds.
pub(crate) const FACES_PER_KIND: usize = 60;
/// Faces shown per page of a panel.
pub const PAGE_FACES: usize = 12;
/// Bins of the in-DB vs out-of-DB distribution drawn by the explorer.
const DISTRIBUTION_BINS: usize = 60;

const SCRIPT: &str = include_str!("explorer.js");
const STYLE: &str = include_str!("explorer.css");

/// The error counts at one threshold: accept if score >= threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Impostor comparisons at or above the threshold.
    pub false_matches: u64,
    /// Genuine comparisons below it.
    pub false_non_matches: u64,
    /// Non-mated probes whose nearest gallery score is at or above it.
    pub false_positives: u64,
    /// Mated probes whose mate is not first at or above it.
    pub misses: u64,
}

/// What each count is out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub impostor: u64,
    pub genuine: u64,
    pub non_mated: u64,
    pub mated: u64,
}

impl Totals {
    fn of(&self, c: &Counts) -> [(u64, u64); 4] {
        [
            (c.false_matches, self.impostor),
            (c.false_non_matches, self.genuine),
            (c.false_positives, self.non_mated),
            (c.misses, self.mated),
        ]
    }
}

/// The explorer's thresholds (ascending cosines) and the counts at each.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub totals: Totals,
    pub thresholds: Vec<f64>,
    pub counts: Vec<Counts>,
}

/// The grid of a system: `None` without genuine and impostor histograms.
pub fn grid(system: &System) -> Option<Grid> {
    let genuine = sorted_bins(system.bins(HIST_GENUINE));
    let impostor = sorted_bins(system.bins(HIST_IMPOSTOR));
    if genuine.is_empty() || impostor.is_empty() {
        return None;
    }
    let mut edges: Vec<f64> = [
        HIST_GENUINE,
        HIST_IMPOSTOR,
        HIST_MATED_TOP1,
        HIST_NON_MATED_TOP1,
    ]
    .iter()
    .flat_map(|k| system.bins(k))
    .map(|r| r.bin_low)
    .collect();
    // Above every score: nothing accepted.
    edges.extend(
        genuine
            .iter()
            .chain(&impostor)
            .map(|r| r.bin_high)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
    );
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    let curve = system.open_set();
    let below = |bins: &[&HistogramRow], t: f64| -> u64 {
        let k = bins.partition_point(|r| r.bin_low < t);
        bins[..k].iter().map(|r| r.count).sum()
    };
    let (g_total, i_total) = (
        below(&genuine, f64::INFINITY),
        below(&impostor, f64::INFINITY),
    );
    let open = curve.at(f64::INFINITY);
    let totals = Totals {
        impostor: i_total,
        genuine: g_total,
        non_mated: open.non_mated,
        mated: open.mated,
    };
    let counts: Vec<Counts> = edges
        .par_iter()
        .map(|&t| {
            let o = curve.at(t);
            Counts {
                false_matches: i_total - below(&impostor, t),
                false_non_matches: below(&genuine, t),
                false_positives: o.false_positives,
                misses: o.misses,
            }
        })
        .collect();
    let targets: Vec<(usize, f64)> = system
        .points("fmr")
        .map(|p| (0, p.target))
        .chain(system.points("fpir").map(|p| (2, p.target)))
        .collect();
    let keep = thin(&totals, &counts, &targets);
    Some(Grid {
        totals,
        thresholds: keep.iter().map(|&i| edges[i]).collect(),
        counts: keep.iter().map(|&i| counts[i]).collect(),
    })
}

fn sorted_bins(mut bins: Vec<&HistogramRow>) -> Vec<&HistogramRow> {
    bins.sort_by(|a, b| a.bin_low.total_cmp(&b.bin_low));
    bins
}

/// A rate's level: which 1/[`LEVELS_PER_DECADE`] of a decade it lies in.
fn level(count: u64, total: u64) -> i64 {
    if count == 0 || total == 0 {
        i64::MIN
    } else {
        (LEVELS_PER_DECADE * (count as f64 / total as f64).log10()).floor() as i64
    }
}

/// The indices (ascending) of the thresholds kept: walking down from the
/// top, each one at which a rate's level differs from the last kept; the
/// lowest; and for each `(rate, target)` (rate 0 = FMR, 2 = FPIR) the
/// lowest threshold whose rate is at most the target (bob.measure's rule).
fn thin(totals: &Totals, counts: &[Counts], targets: &[(usize, f64)]) -> Vec<usize> {
    let levels = |c: &Counts| totals.of(c).map(|(n, of)| level(n, of));
    let mut keep = Vec::new();
    let mut last = None;
    for i in (0..counts.len()).rev() {
        let now = levels(&counts[i]);
        if last != Some(now) || i == 0 {
            keep.push(i);
            last = Some(now);
        }
    }
    for &(rate, target) in targets {
        let first = counts.partition_point(|c| {
            let (n, of) = totals.of(c)[rate];
            of > 0 && n as f64 / of as f64 > target
        });
        if first < counts.len() {
            keep.push(first);
        }
    }
    keep.sort_unstable();
    keep.dedup();
    keep
}

/// One system's data for `explorer.js`.
#[derive(Debug, Serialize)]
struct SystemData {
    name: String,
    totals: Totals,
    thresholds: Vec<f64>,
    counts: Vec<[u64; 4]>,
    /// 95% Clopper–Pearson interval of each rate: [low, high] × 4.
    intervals: Vec<[f64; 8]>,
    /// The fragment the page starts at without one of its own.
    start: String,
    distribution: Option<Distribution>,
    groups: Vec<Breakdown>,
    faces: Vec<Face>,
    images: Vec<String>,
    image_root: String,
    search: String,
}

/// Shares of the in-DB and out-of-DB nearest-gallery cosines per bin.
#[derive(Debug, Serialize)]
struct Distribution {
    lo: f64,
    hi: f64,
    mated: Vec<f64>,
    non_mated: Vec<f64>,
}

/// One `--group-by` breakdown: its cells and their genuine counts.
#[derive(Debug, Serialize)]
struct Breakdown {
    columns: Vec<String>,
    /// Values of the first column (rows) and of the second (columns).
    rows: Vec<String>,
    cols: Vec<String>,
    cells: Vec<Cell>,
}

#[derive(Debug, Serialize)]
struct Cell {
    values: Vec<String>,
    genuine: u64,
    /// `[j, n]`: n genuine scores lie below every grid threshold from the
    /// j-th on (and at or above the ones before).
    steps: Vec<[u64; 2]>,
}

#[derive(Debug, Serialize)]
struct Face {
    /// One of `evaldir::EXAMPLE_KINDS`: which panel shows it, and by
    /// which rule (see explorer.js).
    kind: String,
    identity: String,
    path: String,
    image: Option<usize>,
    gallery_identity: String,
    gallery_path: String,
    gallery_image: Option<usize>,
    score: f64,
    mate_rank: Option<u64>,
    top1_identity: Option<String>,
}

fn system_data(system: &System, grid: Grid) -> SystemData {
    let totals = grid.totals;
    let intervals = grid
        .counts
        .par_iter()
        .map(|c| {
            let mut out = [f64::NAN; 8];
            for (k, (n, of)) in totals.of(c).into_iter().enumerate() {
                let [lo, hi] = clopper_pearson(n, of, 0.95);
                out[2 * k] = round6(lo);
                out[2 * k + 1] = round6(hi);
            }
            out
        })
        .collect();
    let start = match (
        recommended_fpir_point(system),
        system.summary.verification.as_ref(),
    ) {
        (Some(p), _) => format!("fpir={}", p.fpir_target),
        (None, Some(v)) => v
            .operating_points
            .iter()
            .map(|p| p.fmr_target)
            .min_by(|a, b| {
                let d = |t: f64| (t.log10() - PREFERRED_FMR.log10()).abs();
                d(*a).total_cmp(&d(*b))
            })
            .map(|t| format!("fmr={t}"))
            .unwrap_or_else(|| format!("threshold={}", v.eer_threshold)),
        (None, None) => String::new(),
    };
    let (faces, images) = faces(system);
    let embeddings = system
        .summary
        .inputs
        .embeddings
        .as_deref()
        .and_then(|e| std::path::Path::new(e).parent())
        .map(|d| d.display().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "EMB_DIR".into());
    SystemData {
        name: system.name.clone(),
        totals,
        counts: grid
            .counts
            .iter()
            .map(|c| {
                [
                    c.false_matches,
                    c.false_non_matches,
                    c.false_positives,
                    c.misses,
                ]
            })
            .collect(),
        intervals,
        start,
        distribution: distribution(system),
        groups: breakdowns(system, &grid.thresholds),
        faces,
        images,
        image_root: system.images.display().to_string(),
        search: format!(
            "facekit search --gallery {0} --probes {0} --threshold",
            shell_word(&embeddings)
        ),
        thresholds: grid.thresholds,
    }
}

/// Six significant digits: the page prints two, the JSON stays small.
fn round6(v: f64) -> f64 {
    if v.is_finite() && v != 0.0 {
        format!("{v:.5e}").parse().unwrap_or(v)
    } else {
        v
    }
}

/// A word as a POSIX shell reads it back: quoted when it needs to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn distribution(system: &System) -> Option<Distribution> {
    let top1 = |mated: bool| -> Vec<f64> {
        system
            .probes
            .iter()
            .filter(|p| p.mated == mated)
            .filter_map(|p| p.top1_score)
            .collect()
    };
    let (mated, non_mated) = (top1(true), top1(false));
    let all = mated.iter().chain(&non_mated);
    let lo = all.clone().copied().fold(f64::INFINITY, f64::min);
    let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return None;
    }
    let (lo, hi) = (
        (lo / 0.05).floor() * 0.05,
        ((hi / 0.05).ceil() * 0.05).max(lo + 0.05),
    );
    let shares = |scores: &[f64]| {
        let mut bins = vec![0.0; DISTRIBUTION_BINS];
        for s in scores {
            let at = ((s - lo) / (hi - lo) * DISTRIBUTION_BINS as f64).floor() as usize;
            bins[at.min(DISTRIBUTION_BINS - 1)] += 1.0 / scores.len() as f64;
        }
        bins.into_iter().map(round6).collect()
    };
    Some(Distribution {
        lo,
        hi,
        mated: shares(&mated),
        non_mated: shares(&non_mated),
    })
}

/// Each breakdown's cells with their genuine counts on the grid, from
/// `group_scores.csv`. A bin counts below grid threshold t when its lower
/// edge is below t (t is an edge of the same bins).
fn breakdowns(system: &System, thresholds: &[f64]) -> Vec<Breakdown> {
    let mut by_columns: BTreeMap<&str, BTreeMap<&str, BTreeMap<usize, u64>>> = BTreeMap::new();
    for r in &system.group_scores {
        let j = thresholds.partition_point(|&t| t <= r.bin_low);
        *by_columns
            .entry(&r.columns)
            .or_default()
            .entry(&r.values)
            .or_default()
            .entry(j)
            .or_default() += r.count;
    }
    system
        .summary
        .groups
        .iter()
        .filter_map(|g| {
            let cells_of = by_columns.get(g.columns.join("+").as_str())?;
            let mut cells: Vec<Cell> = cells_of
                .iter()
                .filter_map(|(values, steps)| {
                    let values: Vec<String> = serde_json::from_str(values).ok()?;
                    Some(Cell {
                        values,
                        genuine: steps.values().sum(),
                        steps: steps.iter().map(|(&j, &n)| [j as u64, n]).collect(),
                    })
                })
                .collect();
            cells.sort_by(|a, b| {
                a.values
                    .iter()
                    .zip(&b.values)
                    .map(|(x, y)| natural_cmp(x, y))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            let axis = |k: usize| {
                let mut v: Vec<String> = cells
                    .iter()
                    .filter_map(|c| c.values.get(k).cloned())
                    .collect();
                v.sort_by(|a, b| natural_cmp(a, b));
                v.dedup();
                v
            };
            Some(Breakdown {
                columns: g.columns.clone(),
                rows: axis(0),
                cols: axis(1),
                cells,
            })
        })
        .collect()
}

/// The faces of `examples.csv` (at most [`FACES_PER_KIND`] of each kind)
/// and their thumbnails, each image once.
fn faces(system: &System) -> (Vec<Face>, Vec<String>) {
    let mut chosen: Vec<&ExampleRow> = Vec::new();
    for kind in EXAMPLE_KINDS {
        chosen.extend(
            system
                .examples
                .iter()
                .filter(|e| e.kind == kind)
                .take(FACES_PER_KIND),
        );
    }
    let mut paths: Vec<&str> = chosen
        .iter()
        .flat_map(|e| [e.path.as_deref(), e.gallery_path.as_deref()])
        .flatten()
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let uris: Vec<Option<String>> = paths
        .par_iter()
        .map(|p| thumbnail::data_uri(&system.images.join(p)))
        .collect();
    let mut images = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (p, uri) in paths.iter().zip(uris) {
        if let Some(uri) = uri {
            index.insert(p, images.len());
            images.push(uri);
        }
    }
    let image = |p: Option<&str>| p.and_then(|p| index.get(p).copied());
    let faces = chosen
        .iter()
        .map(|e| Face {
            kind: e.kind.clone(),
            identity: e.identity.clone(),
            path: e.path.clone().unwrap_or_default(),
            image: image(e.path.as_deref()),
            gallery_identity: e.gallery_identity.clone(),
            gallery_path: e.gallery_path.clone().unwrap_or_default(),
            gallery_image: image(e.gallery_path.as_deref()),
            score: e.score,
            mate_rank: e.mate_rank,
            top1_identity: e.top1_identity.clone(),
        })
        .collect();
    (faces, images)
}

/// The explorer section of the page: one explorer per system with a grid,
/// the data as JSON and the script. Empty when no system has a grid.
pub(crate) fn section(h: &mut String, systems: &[System]) {
    let data: Vec<SystemData> = systems
        .iter()
        .filter_map(|s| grid(s).map(|g| system_data(s, g)))
        .collect();
    if data.is_empty() {
        return;
    }
    let json = serde_json::to_string(&data)
        .expect("explorer data serialises")
        // Inside <script>, "</" would end the element.
        .replace("</", "<\\/");
    let _ = writeln!(
        h,
        "<h2 id=\"explorer\">Threshold explorer</h2>\n<style>{STYLE}</style>\n\
         <p>Move the threshold and read what it costs: the error rates with their counts and 95% \
         intervals (Clopper–Pearson), the per-condition FNMR and the faces that fail. The thresholds \
         are the edges of the score histograms that <code>facekit evaluate</code> recorded, so every \
         count is exact there (the slider steps where a rate moves by about 5%). Share a choice as a \
         link: <code>index.html#threshold=0.35</code>, <code>#distance=1.1</code>, \
         <code>#fpir=0.01</code> or <code>#fmr=1e-3</code> (the lowest threshold meeting the target). \
         Faces: at most {FACES_PER_KIND} of each kind, {PAGE_FACES} a page.</p>\n\
         <noscript><p class=\"warn\">The explorer needs JavaScript; the tables and charts above give \
         the same numbers at the operating points.</p></noscript>"
    );
    for (i, d) in data.iter().enumerate() {
        let _ = writeln!(
            h,
            "<div class=\"fx\" data-system=\"{i}\" data-page=\"{PAGE_FACES}\"><h3>{}</h3></div>",
            escape(&d.name)
        );
    }
    let _ = writeln!(
        h,
        "<script type=\"application/json\" id=\"fx-data\">{json}</script>\n<script>{SCRIPT}</script>"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(fm: u64, fnm: u64) -> Counts {
        Counts {
            false_matches: fm,
            false_non_matches: fnm,
            ..Counts::default()
        }
    }

    #[test]
    fn thinning_keeps_level_changes_targets_and_both_ends() {
        let totals = Totals {
            impostor: 1000,
            genuine: 10,
            non_mated: 0,
            mated: 0,
        };
        // Ascending thresholds: FMR falls, FNMR rises.
        let c = vec![
            counts(1000, 0),
            counts(999, 0),
            counts(998, 0),
            counts(500, 1),
            counts(10, 5),
            counts(2, 9),
            counts(1, 10),
            counts(0, 10),
        ];
        // Walking down, 998 opens FMR's level just below 1 and 999 shares
        // it (dropped); 1000 stays as the lowest threshold.
        let kept = thin(&totals, &c, &[]);
        assert_eq!(kept, [0, 2, 3, 4, 5, 6, 7]);
        // FMR <= 0.5 first holds at index 3; FMR <= 0.999 at index 1.
        assert_eq!(thin(&totals, &c, &[(0, 0.999)]), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(level(0, 10), i64::MIN);
        assert_eq!(level(10, 10), 0);
        assert_eq!(level(1, 10), -50);
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("runs/emb"), "runs/emb");
        assert_eq!(shell_word("my emb"), "'my emb'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
