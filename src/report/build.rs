//! The charts of a report, built from the evaluated systems as plain data.
//! Pure functions: tests read what a chart plots without drawing it.

use crate::evaldir::{
    cosine_to_l2, FpirPoint, GroupBreakdown, HistogramRow, RocRow, HIST_GENUINE, HIST_IMPOSTOR,
    HIST_MATED_TOP1, HIST_NON_MATED_TOP1,
};

use super::chart::{
    clear_upper_corner, decimate, linear_ticks, log_ticks, palette, pow10_label, probit_ticks,
    Axis, BarGroup, Bars, Body, Chart, Corner, Heatmap, Marker, Scale, Series, Stroke, VLine,
    XyPlot, BLACK, USER,
};
use super::system::System;
use crate::metrics::open_set::{OpenSet, OpenSetRates};
use crate::output::thousands;
use crate::text::{natural_cmp, percent};

/// Pixel size of the curve charts.
pub(crate) const SIZE: (u32, u32) = (1000, 640);
/// Curves keep a point per 1/1500 of the plot's size.
const RESOLUTION: f64 = 1500.0;
/// Display bins of the score distributions.
const DISPLAY_BINS: usize = 120;
/// The FMR target whose threshold is the "global threshold" of the
/// per-condition breakdowns, when present (else the nearest).
pub(crate) const PREFERRED_FMR: f64 = 1e-3;
/// The FPIR target whose threshold is recommended for "nobody in the DB".
pub(crate) const PREFERRED_FPIR: f64 = 1e-2;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Options {
    /// The user's own threshold (cosine), from `--threshold`.
    pub user_threshold: Option<f64>,
}

/// Every chart the systems have data for, in page order.
pub(crate) fn all_charts(systems: &[System], options: &Options) -> Vec<Chart> {
    let mut charts = Vec::new();
    charts.extend(roc_chart(systems));
    charts.extend(det_chart(systems));
    charts.extend(verification_tuning_chart(systems, options.user_threshold));
    for (i, s) in systems.iter().enumerate() {
        charts.extend(score_histogram_chart(s, i, options.user_threshold));
    }
    for (i, s) in systems.iter().enumerate() {
        for unit in [Unit::Distance, Unit::Cosine] {
            charts.extend(open_set_chart(s, i, unit, options.user_threshold));
        }
    }
    charts.extend(identification_tuning_chart(systems, options.user_threshold));
    charts.extend(cmc_chart(systems));
    charts.extend(group_charts(systems));
    charts
}

/// A target rate as a short tag: "10⁻³" for powers of ten, "0.3%" otherwise.
pub(crate) fn target_tag(target: f64) -> String {
    let k = target.log10().round();
    if target > 0.0 && (10f64.powf(k) - target).abs() <= target * 1e-9 {
        pow10_label(k as i32)
    } else {
        percent(target)
    }
}

fn percent_ticks(lo: f64, hi: f64, count: usize) -> Vec<super::chart::Tick> {
    linear_ticks(lo, hi, count, |v, d| {
        format!("{:.*}%", d.saturating_sub(2), v * 100.0)
    })
}

fn decimal_ticks(lo: f64, hi: f64, count: usize) -> Vec<super::chart::Tick> {
    linear_ticks(lo, hi, count, |v, d| format!("{v:.d$}"))
}

/// The largest power of ten not above `v` (clamped to [1e-12, 0.1]).
fn decade_floor(v: f64) -> f64 {
    10f64.powf(v.clamp(1e-12, 0.1).log10().floor())
}

/// The nearest target to `preferred` on a log scale.
fn nearest_target(targets: impl Iterator<Item = f64>, preferred: f64) -> Option<f64> {
    targets.filter(|t| *t > 0.0).min_by(|a, b| {
        let da = (a.log10() - preferred.log10()).abs();
        let db = (b.log10() - preferred.log10()).abs();
        da.total_cmp(&db).then(a.total_cmp(b))
    })
}

/// The recommended open-set threshold: the FPIR operating point at 1e-2, or
/// the nearest target evaluated.
pub(crate) fn recommended_fpir_point(system: &System) -> Option<&FpirPoint> {
    let ident = system.summary.identification.as_ref()?;
    let target = nearest_target(
        ident.operating_points.iter().map(|p| p.fpir_target),
        PREFERRED_FPIR,
    )?;
    ident
        .operating_points
        .iter()
        .find(|p| p.fpir_target == target)
}

fn verification_systems(systems: &[System]) -> Vec<(usize, &System)> {
    systems
        .iter()
        .enumerate()
        .filter(|(_, s)| s.summary.verification.is_some() && !s.roc.is_empty())
        .collect()
}

/// A system's ROC rows ordered by FMR (then TAR), and the indices of the
/// rows at its operating-point thresholds.
fn roc_by_fmr(system: &System) -> (Vec<(f64, f64, f64)>, Vec<f64>) {
    let mut rows: Vec<(f64, f64, f64)> = system
        .roc
        .iter()
        .map(|r| (r.fmr, r.fnmr, r.threshold))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let marked = system.points("fmr").map(|p| p.threshold).collect();
    (rows, marked)
}

/// The decade below the smallest non-zero FMR any system reaches (at most
/// 0.1): where the ROC and DET FMR axes start.
fn fmr_axis_floor(with: &[(usize, &System)]) -> f64 {
    let min_fmr = with
        .iter()
        .flat_map(|(_, s)| {
            s.roc
                .iter()
                .map(|r| r.fmr)
                .chain(s.points("fmr").map(|p| p.rate))
        })
        .filter(|f| *f > 0.0)
        .fold(0.1, f64::min);
    decade_floor(min_fmr)
}

pub fn roc_chart(systems: &[System]) -> Option<Chart> {
    let with = verification_systems(systems);
    if with.is_empty() {
        return None;
    }
    let x_lo = fmr_axis_floor(&with);
    let min_tar = with
        .iter()
        .flat_map(|(_, s)| s.roc.iter().filter(|r| r.fmr >= x_lo).map(|r| r.tar))
        .fold(1.0, f64::min);
    let y_lo = ((min_tar * 20.0).floor() / 20.0).clamp(0.0, 0.95);
    let x = Axis {
        label: "FMR (false match rate, log scale)".into(),
        scale: Scale::Log10,
        lo: x_lo,
        hi: 1.0,
        ticks: log_ticks(x_lo, 1.0),
    };
    let y = Axis {
        label: "TAR = 1 − FNMR (true accept rate)".into(),
        scale: Scale::Linear,
        lo: y_lo,
        hi: 1.0,
        ticks: percent_ticks(y_lo, 1.0, 8),
    };
    let (series, markers) = fmr_curves(&with, &x, &y, |_| true, |fnmr| 1.0 - fnmr);
    Some(Chart {
        id: "roc".into(),
        title: "ROC: true accepts against false matches".into(),
        about: "Each curve is one system. Moving right lowers the threshold: more impostors are \
                falsely matched (FMR, log scale) and more genuine pairs are accepted (TAR). Higher \
                and further left is better. Dots mark the operating points of the FMR targets \
                (tag = target); their thresholds and realised rates are in the threshold table."
            .into(),
        body: Body::Xy(XyPlot {
            x,
            y,
            series,
            markers,
            vlines: vec![],
            legend: Corner::LowerRight,
        }),
        notes: vec![],
        size: SIZE,
    })
}

/// Each system's curve against FMR (rates of 0 left out), decimated for
/// the axes, with `y` of FNMR as the ordinate, among the points with
/// `keep(fnmr)`; and a marker at each FMR target's operating point.
fn fmr_curves(
    with: &[(usize, &System)],
    x: &Axis,
    y: &Axis,
    keep: fn(f64) -> bool,
    y_of: fn(f64) -> f64,
) -> (Vec<Series>, Vec<Marker>) {
    let mut series = Vec::new();
    let mut markers = Vec::new();
    for &(i, s) in with {
        let (rows, marked) = roc_by_fmr(s);
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| r.0 > 0.0 && keep(r.1))
            .collect();
        let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.0, y_of(r.1))).collect();
        let points = decimate(&pts, x, y, RESOLUTION, |k| marked.contains(&rows[k].2));
        series.push(Series {
            label: s.name.clone(),
            color: palette(i),
            stroke: Stroke::Solid,
            points,
        });
        markers.extend(s.points("fmr").map(|p| Marker {
            tag: target_tag(p.target),
            color: palette(i),
            x: p.rate,
            y: y_of(p.other_rate),
        }));
    }
    (series, markers)
}

pub fn det_chart(systems: &[System]) -> Option<Chart> {
    let with = verification_systems(systems);
    if with.is_empty() {
        return None;
    }
    let x_lo = fmr_axis_floor(&with);
    let plotted = || {
        with.iter()
            .flat_map(|(_, s)| s.roc.iter().filter(|r| r.fmr >= x_lo && r.fmr <= 0.5))
    };
    let min_fnmr = plotted()
        .map(|r| r.fnmr)
        .filter(|f| *f > 0.0)
        .fold(0.1, f64::min);
    let max_fnmr = plotted().map(|r| r.fnmr).fold(0.0, f64::max);
    let y_lo = decade_floor(min_fnmr);
    let y_hi = match max_fnmr {
        m if m <= 0.5 => 0.5,
        m if m <= 0.9 => 0.9,
        _ => 0.99,
    };
    let x = Axis {
        label: "FMR (false match rate, normal-deviate scale)".into(),
        scale: Scale::Probit,
        lo: x_lo,
        hi: 0.5,
        ticks: probit_ticks(x_lo, 0.5),
    };
    let y = Axis {
        label: "FNMR (false non-match rate, normal-deviate scale)".into(),
        scale: Scale::Probit,
        lo: y_lo,
        hi: y_hi,
        ticks: probit_ticks(y_lo, y_hi),
    };
    // Rates of 0 lie at minus infinity on probit axes: not drawn.
    let (series, mut markers) = fmr_curves(&with, &x, &y, |fnmr| fnmr > 0.0, |fnmr| fnmr);
    for &(i, s) in &with {
        if let Some(v) = &s.summary.verification {
            markers.push(Marker {
                tag: "EER".into(),
                color: palette(i),
                x: v.eer,
                y: v.eer,
            });
        }
    }
    Some(Chart {
        id: "det".into(),
        title: "DET: false non-matches against false matches".into(),
        about: "The error trade-off as NIST plots it: both error rates on normal-deviate axes, \
                where Gaussian score distributions give straight lines. Lower-left is better; \
                a curve lower by a constant factor is a uniformly better system. Dots mark the \
                FMR targets' operating points and the equal error rate (EER), where the curve \
                crosses FMR = FNMR."
            .into(),
        body: Body::Xy(XyPlot {
            x,
            y,
            series,
            markers,
            vlines: vec![],
            legend: Corner::UpperRight,
        }),
        notes: vec![],
        size: SIZE,
    })
}

pub fn verification_tuning_chart(systems: &[System], user_threshold: Option<f64>) -> Option<Chart> {
    let with = verification_systems(systems);
    if with.is_empty() {
        return None;
    }
    // From the impostor median (FMR 1/2) to the genuine median (FNMR 1/2),
    // widened to show every marked threshold.
    let lowest = |s: &System, keep: &dyn Fn(&crate::evaldir::RocRow) -> bool| {
        s.roc
            .iter()
            .filter(|r| keep(r))
            .map(|r| r.threshold)
            .fold(f64::INFINITY, f64::min)
    };
    let marked = || {
        with.iter()
            .flat_map(|(_, s)| {
                s.points("fmr")
                    .map(|p| p.threshold)
                    .chain(s.summary.verification.iter().map(|v| v.eer_threshold))
            })
            .chain(user_threshold)
    };
    let x_lo = with
        .iter()
        .map(|(_, s)| lowest(s, &|r| r.fmr <= 0.5))
        .chain(marked())
        .fold(f64::INFINITY, f64::min);
    let x_hi = with
        .iter()
        .map(|(_, s)| lowest(s, &|r| r.fnmr >= 0.5))
        .filter(|t| t.is_finite())
        .chain(marked())
        .fold(f64::NEG_INFINITY, f64::max);
    let (x_lo, x_hi) = padded(x_lo, x_hi);
    let min_rate = with
        .iter()
        .flat_map(|(_, s)| {
            s.roc
                .iter()
                .filter(|r| r.threshold >= x_lo && r.threshold <= x_hi)
                .flat_map(|r| [r.fmr, r.fnmr])
        })
        .filter(|r| *r > 0.0)
        .fold(0.1, f64::min);
    let y_lo = decade_floor(min_rate);
    let (x, y) = tuning_axes(
        "threshold (cosine similarity; accept if score ≥ threshold)",
        (x_lo, x_hi),
        y_lo,
    );
    let mut series = Vec::new();
    let mut markers = Vec::new();
    for &(i, s) in &with {
        let mut rows: Vec<(f64, f64, f64)> =
            s.roc.iter().map(|r| (r.threshold, r.fmr, r.fnmr)).collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let marked: Vec<f64> = s.points("fmr").map(|p| p.threshold).collect();
        for (k, (label, stroke)) in [("FNMR", Stroke::Solid), ("FMR", Stroke::Dashed)]
            .into_iter()
            .enumerate()
        {
            let kept: Vec<&(f64, f64, f64)> = rows
                .iter()
                .filter(|r| if k == 0 { r.2 > 0.0 } else { r.1 > 0.0 })
                .collect();
            let pts: Vec<(f64, f64)> = kept
                .iter()
                .map(|r| (r.0, if k == 0 { r.2 } else { r.1 }))
                .collect();
            let points = decimate(&pts, &x, &y, RESOLUTION, |j| marked.contains(&kept[j].0));
            series.push(Series {
                label: format!("{label} ({})", s.name),
                color: palette(2 * i + k),
                stroke,
                points,
            });
        }
        for p in s.points("fmr") {
            let tag = target_tag(p.target);
            markers.push(Marker {
                tag: tag.clone(),
                color: palette(2 * i + 1),
                x: p.threshold,
                y: p.rate,
            });
            markers.push(Marker {
                tag,
                color: palette(2 * i),
                x: p.threshold,
                y: p.other_rate,
            });
        }
        if let Some(v) = &s.summary.verification {
            markers.push(Marker {
                tag: "EER".into(),
                color: BLACK,
                x: v.eer_threshold,
                y: v.eer,
            });
        }
    }
    Some(Chart {
        id: "tuning-verification".into(),
        title: "Threshold tuning, verification: FMR and FNMR against the threshold".into(),
        about: "Read a threshold off the x axis and both error rates it gives on the y axis \
                (log scale). Raising the threshold lowers FMR (dashed: impostors accepted) and \
                raises FNMR (solid: genuine pairs rejected). The curves cross at the EER. Dots \
                mark the operating points of the FMR targets, tagged with the target: pick the \
                lowest threshold whose FMR your application can afford."
            .into(),
        body: Body::Xy(XyPlot {
            x,
            y,
            series,
            markers,
            vlines: user_threshold.map(user_line).into_iter().collect(),
            legend: Corner::LowerLeft,
        }),
        notes: vec![],
        size: SIZE,
    })
}

/// The user's threshold as a line on a cosine axis.
fn user_line(t: f64) -> VLine {
    VLine {
        label: format!("your threshold: {}", Unit::Cosine.rule(t)),
        color: USER,
        x: t,
        stroke: Stroke::Solid,
    }
}

/// The vertex of the ROC curve at the lowest listed threshold at or above
/// `t`: the rates of accepting at `t` (exact where `roc.csv` lists every
/// distinct score, approximate where collinear vertices were dropped).
pub(crate) fn roc_at(roc: &[RocRow], t: f64) -> Option<&RocRow> {
    roc.iter()
        .filter(|r| r.threshold >= t)
        .min_by(|a, b| a.threshold.total_cmp(&b.threshold))
}

/// `lo..hi` widened by 8% each side; a unit-wide window when empty.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        let mid = if lo.is_finite() {
            lo
        } else if hi.is_finite() {
            hi
        } else {
            0.5
        };
        return ((mid - 0.5).max(-1.0), (mid + 0.5).min(1.0));
    }
    let pad = (hi - lo) * 0.08;
    ((lo - pad).max(-1.0), (hi + pad).min(1.0))
}

/// Fine histogram bins regrouped into `bins` equal display bins over
/// `[lo, hi]` of `map(score)`, as each bin's share of the total.
fn rebin(
    rows: &[&HistogramRow],
    lo: f64,
    hi: f64,
    bins: usize,
    map: impl Fn(f64) -> f64,
) -> Vec<f64> {
    let mut counts = vec![0u64; bins];
    let mut total = 0u64;
    for r in rows {
        let v = map((r.bin_low + r.bin_high) / 2.0);
        let at = (((v - lo) / (hi - lo)) * bins as f64).floor();
        let at = if at.is_finite() {
            (at.max(0.0) as usize).min(bins - 1)
        } else {
            0
        };
        counts[at] += r.count;
        total += r.count;
    }
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}

/// A step outline of display bins, closed down to zero.
fn step_outline(shares: &[f64], lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let width = (hi - lo) / shares.len() as f64;
    let mut pts = vec![(lo, 0.0)];
    for (i, &s) in shares.iter().enumerate() {
        let a = lo + i as f64 * width;
        pts.push((a, s));
        pts.push((a + width, s));
    }
    pts.push((hi, 0.0));
    pts
}

/// The range of `map(score)` over the bins, rounded outwards to `step`.
fn value_range(rows: &[&HistogramRow], map: impl Fn(f64) -> f64, step: f64) -> Option<(f64, f64)> {
    let (lo, hi) = rows
        .iter()
        .flat_map(|r| [map(r.bin_low), map(r.bin_high)])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !(lo.is_finite() && hi.is_finite()) {
        return None;
    }
    let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    Some(if hi > lo {
        (lo, hi)
    } else {
        (lo - step, hi + step)
    })
}

fn share_axis(max_share: f64) -> Axis {
    let hi = (max_share * 1.12).max(1e-3);
    Axis {
        label: "share of the distribution per bin".into(),
        scale: Scale::Linear,
        lo: 0.0,
        hi,
        ticks: percent_ticks(0.0, hi, 6),
    }
}

pub(crate) fn score_histogram_chart(
    system: &System,
    index: usize,
    user_threshold: Option<f64>,
) -> Option<Chart> {
    let v = system.summary.verification.as_ref()?;
    let genuine = system.bins(HIST_GENUINE);
    let impostor = system.bins(HIST_IMPOSTOR);
    if genuine.is_empty() || impostor.is_empty() {
        return None;
    }
    let all: Vec<&HistogramRow> = genuine.iter().chain(impostor.iter()).copied().collect();
    let (lo, hi) = value_range(&all, |s| s, 0.05)?;
    let (lo, hi) = match user_threshold {
        Some(t) => (
            lo.min((t / 0.05).floor() * 0.05),
            hi.max((t / 0.05).ceil() * 0.05),
        ),
        None => (lo, hi),
    };
    let (lo, hi) = (lo.max(-1.0), hi.min(1.0));
    let g = rebin(&genuine, lo, hi, DISPLAY_BINS, |s| s);
    let im = rebin(&impostor, lo, hi, DISPLAY_BINS, |s| s);
    let max_share = g.iter().chain(im.iter()).fold(0.0f64, |m, &v| m.max(v));
    let series = vec![
        Series {
            label: "impostor (different people)".into(),
            color: palette(3),
            stroke: Stroke::Filled,
            points: step_outline(&im, lo, hi),
        },
        Series {
            label: "genuine (same person)".into(),
            color: palette(2),
            stroke: Stroke::Filled,
            points: step_outline(&g, lo, hi),
        },
    ];
    let mut vlines: Vec<VLine> = system
        .points("fmr")
        .enumerate()
        .map(|(k, p)| VLine {
            label: format!(
                "FMR {}: cos ≥ {:.4} (d ≤ {:.4})",
                target_tag(p.target),
                p.threshold,
                p.threshold_l2
            ),
            color: palette(4 + k),
            x: p.threshold,
            stroke: Stroke::Dashed,
        })
        .collect();
    vlines.push(VLine {
        label: format!("EER {}: cos ≥ {:.4}", percent(v.eer), v.eer_threshold),
        color: BLACK,
        x: v.eer_threshold,
        stroke: Stroke::Dashed,
    });
    let mut notes = vec![format!(
        "genuine: {} comparisons, mean {:.3} ± {:.3}   impostor: {} comparisons, mean {:.3} ± {:.3}   d′ = {:.2}",
        thousands(v.genuine_count),
        v.genuine_mean,
        v.genuine_std,
        thousands(v.impostor_count),
        v.impostor_mean,
        v.impostor_std,
        v.d_prime
    )];
    if let Some(t) = user_threshold {
        vlines.push(user_line(t));
        if let Some(r) = roc_at(&system.roc, t) {
            notes.push(format!(
                "Your threshold {} ({}): FMR ≈ {} ({} impostor comparisons accepted), FNMR ≈ {} ({} genuine rejected).",
                Unit::Cosine.rule(t),
                Unit::Distance.rule(t),
                percent(r.fmr),
                thousands(r.false_matches),
                percent(r.fnmr),
                thousands(r.false_non_matches)
            ));
        }
    }
    Some(Chart {
        id: format!("scores-{}", index + 1),
        title: format!("Genuine and impostor scores: {}", system.name),
        about: "How the comparison scores of the same person (genuine) and of different people \
                (impostor) are distributed, each normalised to its own total so both show. The \
                further apart and narrower the two hills, the better (d′ summarises it). Dashed \
                lines are the thresholds of the FMR targets: impostors right of a line are false \
                matches, genuine pairs left of it are false non-matches. The far tail of the \
                impostor hill, which decides low-FMR thresholds, is too thin to see here: read \
                it on the threshold-tuning chart."
            .into(),
        body: Body::Xy(XyPlot {
            x: Axis {
                label: "score (cosine similarity)".into(),
                scale: Scale::Linear,
                lo,
                hi,
                ticks: decimal_ticks(lo, hi, 10),
            },
            y: share_axis(max_share),
            series,
            markers: vec![],
            vlines,
            legend: Corner::UpperLeft,
        }),
        notes,
        size: SIZE,
    })
}

/// The unit a threshold is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Euclidean distance of unit vectors: accept if distance ≤ threshold.
    Distance,
    /// Cosine similarity: accept if score ≥ threshold.
    Cosine,
}

impl Unit {
    fn of(self, cosine: f64) -> f64 {
        match self {
            Unit::Distance => cosine_to_l2(cosine),
            Unit::Cosine => cosine,
        }
    }
    /// "d ≤ 1.032" or "cos ≥ 0.467".
    pub fn rule(self, cosine: f64) -> String {
        match self {
            Unit::Distance => format!("d ≤ {:.4}", cosine_to_l2(cosine)),
            Unit::Cosine => format!("cos ≥ {cosine:.4}"),
        }
    }
}

/// "FPIR 1.2% (3 of 250 out-of-DB probes match someone), FNIR …", for a
/// threshold the user chose.
pub(crate) fn described(r: &OpenSetRates) -> String {
    format!(
        "FPIR {} ({} of {} out-of-DB probes match someone), FNIR {} ({} of {} in-DB probes missed)",
        rate_text(r.fpir()),
        thousands(r.false_positives),
        thousands(r.non_mated),
        rate_text(r.fnir()),
        thousands(r.misses),
        thousands(r.mated)
    )
}

/// A rate as a percentage, or "n/a" where there is nothing to count.
pub(crate) fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_string(), percent)
}

/// The mated / non-mated nearest-gallery score bins of a system: from
/// `scores.parquet`, else from each probe's top-1 score.
fn top1_bins(system: &System) -> (Vec<HistogramRow>, Vec<HistogramRow>) {
    let from_parquet = |kind| system.bins(kind).into_iter().cloned().collect::<Vec<_>>();
    let (mated, non_mated) = (
        from_parquet(HIST_MATED_TOP1),
        from_parquet(HIST_NON_MATED_TOP1),
    );
    if !mated.is_empty() || !non_mated.is_empty() {
        return (mated, non_mated);
    }
    let from_probes = |want: bool| {
        system
            .probes
            .iter()
            .filter(|p| p.mated == want)
            .filter_map(|p| p.top1_score)
            .map(|s| HistogramRow {
                kind: String::new(),
                bin_low: s,
                bin_high: s,
                count: 1,
            })
            .collect()
    };
    (from_probes(true), from_probes(false))
}

pub fn open_set_chart(
    system: &System,
    index: usize,
    unit: Unit,
    user_threshold: Option<f64>,
) -> Option<Chart> {
    let ident = system.summary.identification.as_ref()?;
    let (mated, non_mated) = top1_bins(system);
    if mated.is_empty() && non_mated.is_empty() {
        return None;
    }
    let all: Vec<&HistogramRow> = mated.iter().chain(non_mated.iter()).collect();
    let (lo, hi) = match unit {
        Unit::Distance => {
            let (lo, hi) = value_range(&all, cosine_to_l2, 0.05)?;
            (lo.max(0.0), hi.min(2.0))
        }
        Unit::Cosine => {
            let (lo, hi) = value_range(&all, |s| s, 0.05)?;
            (lo.max(-1.0), hi.min(1.0))
        }
    };
    // Widened to show the user's threshold wherever it lies.
    let (lo, hi) = match user_threshold.map(|t| unit.of(t)) {
        Some(u) => (
            (lo.min((u / 0.05).floor() * 0.05)),
            hi.max((u / 0.05).ceil() * 0.05),
        ),
        None => (lo, hi),
    };
    let map = |s: f64| unit.of(s);
    let m = rebin(&mated.iter().collect::<Vec<_>>(), lo, hi, DISPLAY_BINS, map);
    let n = rebin(
        &non_mated.iter().collect::<Vec<_>>(),
        lo,
        hi,
        DISPLAY_BINS,
        map,
    );
    let max_share = m.iter().chain(n.iter()).fold(0.0f64, |a, &b| a.max(b));
    let series = vec![
        Series {
            label: format!(
                "out-of-DB probes (not enrolled), n = {}",
                thousands(ident.non_mated_count)
            ),
            color: palette(1),
            stroke: Stroke::Filled,
            points: step_outline(&n, lo, hi),
        },
        Series {
            label: format!(
                "in-DB probes (enrolled), n = {}",
                thousands(ident.mated_count)
            ),
            color: palette(0),
            stroke: Stroke::Filled,
            points: step_outline(&m, lo, hi),
        },
    ];
    let recommended = recommended_fpir_point(system);
    let mut vlines = Vec::new();
    let mut notes = Vec::new();
    for (k, p) in ident.operating_points.iter().enumerate() {
        let chosen = recommended.is_some_and(|r| r.fpir_target == p.fpir_target);
        vlines.push(VLine {
            label: format!(
                "{}FPIR {}: {}",
                if chosen { "recommended, " } else { "" },
                target_tag(p.fpir_target),
                unit.rule(p.threshold)
            ),
            color: if chosen { BLACK } else { palette(4 + k) },
            x: unit.of(p.threshold),
            stroke: if chosen {
                Stroke::Solid
            } else {
                Stroke::Dashed
            },
        });
    }
    if let Some(p) = recommended {
        notes.push(format!(
            "Recommended: accept if {} ({}), set for FPIR ≤ {}: FPIR {} of {} out-of-DB probes match someone; FNIR {} of {} in-DB probes are missed.",
            unit.rule(p.threshold),
            other_unit(unit).rule(p.threshold),
            target_tag(p.fpir_target),
            percent(p.fpir),
            thousands(ident.non_mated_count),
            percent(p.fnir),
            thousands(ident.mated_count)
        ));
    }
    let curve = system.open_set();
    if let Some(t) = user_threshold {
        vlines.push(VLine {
            label: format!("your threshold: {}", unit.rule(t)),
            color: USER,
            x: unit.of(t),
            stroke: Stroke::Solid,
        });
        notes.push(if curve.is_empty() {
            format!(
                "Your threshold {}: no probes.csv to measure it on.",
                unit.rule(t)
            )
        } else {
            format!(
                "Your threshold: accept if {} ({}): {}.",
                unit.rule(t),
                other_unit(unit).rule(t),
                described(&curve.at(t))
            )
        });
    }
    let legend = clear_upper_corner(&series, lo, hi);
    let (id, title, x_label, about) = match unit {
        Unit::Distance => (
            format!("open-set-distance-{}", index + 1),
            format!(
                "In-DB vs out-of-DB: nearest-gallery distance, {}",
                system.name
            ),
            "distance to the nearest gallery face (Euclidean, unit vectors; accept if ≤ threshold)",
            "For every probe face, the distance to its nearest face in the gallery (DB): blue for \
             people who are in the DB, orange for people who are not. A search answers \"nobody\" \
             when the nearest distance is above the threshold, so orange area left of the line is \
             strangers taken for someone (FPIR) and blue area right of it is enrolled people \
             turned away (FNIR; a blue probe whose nearest face is the wrong person also counts). \
             The black line is the recommended threshold; the rates it gives are written under \
             the chart.",
        ),
        Unit::Cosine => (
            format!("open-set-cosine-{}", index + 1),
            format!(
                "In-DB vs out-of-DB: nearest-gallery cosine score, {}",
                system.name
            ),
            "cosine similarity to the nearest gallery face (accept if ≥ threshold)",
            "The same distributions as the distance chart, as cosine similarity (the unit of the \
             evaluation tables; distance = √(2 − 2·cos)). Here acceptance is to the right of a \
             line: orange area right of the threshold is false positives, blue area left of it \
             is misses.",
        ),
    };
    Some(Chart {
        id,
        title,
        about: about.into(),
        body: Body::Xy(XyPlot {
            x: Axis {
                label: x_label.into(),
                scale: Scale::Linear,
                lo,
                hi,
                ticks: decimal_ticks(lo, hi, 10),
            },
            y: share_axis(max_share),
            series,
            markers: vec![],
            vlines,
            legend,
        }),
        notes,
        size: SIZE,
    })
}

fn other_unit(unit: Unit) -> Unit {
    match unit {
        Unit::Distance => Unit::Cosine,
        Unit::Cosine => Unit::Distance,
    }
}

pub fn identification_tuning_chart(
    systems: &[System],
    user_threshold: Option<f64>,
) -> Option<Chart> {
    // A curve needs both rates: in-DB and out-of-DB probes.
    let with: Vec<(usize, &System, OpenSet)> = systems
        .iter()
        .enumerate()
        .filter(|(_, s)| s.summary.identification.is_some())
        .map(|(i, s)| (i, s, s.open_set()))
        .filter(|(_, _, c)| c.mated_count() > 0 && c.non_mated_count() > 0)
        .collect();
    if with.is_empty() {
        return None;
    }
    let curves: Vec<(usize, &System, Vec<OpenSetRates>)> = with
        .iter()
        .map(|(i, s, c)| (*i, *s, c.steps().into_iter().map(|t| c.at(t)).collect()))
        .collect();
    // From where FPIR falls to 1/2 to where FNIR reaches 1/2, widened to show
    // every marked threshold.
    let lowest = |rates: &[OpenSetRates], keep: &dyn Fn(&OpenSetRates) -> bool| {
        rates.iter().find(|r| keep(r)).map(|r| r.threshold)
    };
    let marked: Vec<f64> = with
        .iter()
        .flat_map(|(_, s, _)| s.points("fpir").map(|p| p.threshold))
        .chain(user_threshold)
        .collect();
    let x_lo = curves
        .iter()
        .filter_map(|(_, _, r)| lowest(r, &|r| r.fpir().is_some_and(|v| v <= 0.5)))
        .chain(marked.iter().copied())
        .fold(f64::INFINITY, f64::min);
    let x_hi = curves
        .iter()
        .filter_map(|(_, _, r)| lowest(r, &|r| r.fnir().is_some_and(|v| v >= 0.5)))
        .chain(marked.iter().copied())
        .fold(f64::NEG_INFINITY, f64::max);
    let (x_lo, x_hi) = padded(x_lo, x_hi);
    let min_rate = curves
        .iter()
        .flat_map(|(_, _, r)| r.iter().flat_map(|r| [r.fpir(), r.fnir()]))
        .flatten()
        .filter(|r| *r > 0.0)
        .fold(0.1, f64::min);
    let y_lo = decade_floor(min_rate);
    let (x, y) = tuning_axes(
        "threshold (cosine similarity to the nearest gallery face)",
        (x_lo, x_hi),
        y_lo,
    );
    let mut series = Vec::new();
    let mut markers = Vec::new();
    let mut vlines = Vec::new();
    let mut notes = Vec::new();
    for ((i, s, rates), (_, _, curve)) in curves.iter().zip(with.iter()) {
        let marked: Vec<f64> = s.points("fpir").map(|p| p.threshold).collect();
        for (k, (label, stroke)) in [("FNIR", Stroke::Solid), ("FPIR", Stroke::Dashed)]
            .into_iter()
            .enumerate()
        {
            // Both rates are defined on these curves (filtered above).
            let value = |r: &OpenSetRates| if k == 0 { r.fnir() } else { r.fpir() }.unwrap_or(0.0);
            let kept: Vec<&OpenSetRates> = rates.iter().filter(|r| value(r) > 0.0).collect();
            let pts: Vec<(f64, f64)> = kept.iter().map(|r| (r.threshold, value(r))).collect();
            let points = decimate(&pts, &x, &y, RESOLUTION, |j| {
                marked.contains(&kept[j].threshold)
            });
            series.push(Series {
                label: format!("{label} ({})", s.name),
                color: palette(2 * i + k),
                stroke,
                points,
            });
        }
        if let Some(ident) = &s.summary.identification {
            for p in &ident.operating_points {
                let tag = target_tag(p.fpir_target);
                markers.push(Marker {
                    tag: tag.clone(),
                    color: palette(2 * i + 1),
                    x: p.threshold,
                    y: p.fpir,
                });
                markers.push(Marker {
                    tag,
                    color: palette(2 * i),
                    x: p.threshold,
                    y: p.fnir,
                });
            }
        }
        if let Some(c) = curve.crossing() {
            markers.push(Marker {
                tag: "FPIR = FNIR".into(),
                color: BLACK,
                x: c.threshold,
                y: c.fpir().zip(c.fnir()).map_or(0.0, |(p, n)| p.max(n)),
            });
            notes.push(format!(
                "{}: FPIR and FNIR cross at {} ({}): FPIR {}, FNIR {}.",
                s.name,
                Unit::Cosine.rule(c.threshold),
                Unit::Distance.rule(c.threshold),
                rate_text(c.fpir()),
                rate_text(c.fnir())
            ));
        }
        if let Some(p) = recommended_fpir_point(s) {
            notes.push(format!(
                "{}: recommended {} ({}) for FPIR ≤ {}: FPIR {}, FNIR {}.",
                s.name,
                Unit::Cosine.rule(p.threshold),
                Unit::Distance.rule(p.threshold),
                target_tag(p.fpir_target),
                percent(p.fpir),
                percent(p.fnir)
            ));
            vlines.push(VLine {
                label: format!(
                    "recommended ({}): {}",
                    s.name,
                    Unit::Cosine.rule(p.threshold)
                ),
                color: if with.len() == 1 {
                    BLACK
                } else {
                    palette(2 * i)
                },
                x: p.threshold,
                stroke: Stroke::Solid,
            });
        }
    }
    vlines.extend(user_threshold.map(user_line));
    Some(Chart {
        id: "tuning-identification".into(),
        title: "Threshold tuning, open-set search: FPIR and FNIR against the threshold".into(),
        about: "The open-set version of the tuning chart, from every probe's search. FPIR \
                (dashed) is the share of out-of-DB people whose nearest gallery face scores at or \
                above the threshold, so they would be taken for someone enrolled; FNIR (solid) is \
                the share of enrolled people who are not returned first at or above it. Dots mark \
                the FPIR targets' thresholds; the black dot is where the two rates cross. The \
                recommended threshold (FPIR 1%, or the nearest target evaluated) and its rates \
                are written under the chart."
            .into(),
        body: Body::Xy(XyPlot {
            x,
            y,
            series,
            markers,
            vlines,
            legend: Corner::LowerLeft,
        }),
        notes,
        size: SIZE,
    })
}

pub(crate) fn cmc_chart(systems: &[System]) -> Option<Chart> {
    let with: Vec<(usize, &System, &Vec<f64>)> = systems
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.summary.identification.as_ref().map(|id| (i, s, &id.cmc)))
        .filter(|(_, _, cmc)| !cmc.is_empty())
        .collect();
    if with.is_empty() {
        return None;
    }
    let ranks = with
        .iter()
        .map(|(_, _, c)| c.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let min_rate = with
        .iter()
        .flat_map(|(_, _, c)| c.iter().copied())
        .fold(1.0, f64::min);
    let y_lo = ((min_rate * 20.0).floor() / 20.0).clamp(0.0, 0.95);
    let x_hi = ranks as f64;
    let x = Axis {
        label: "rank".into(),
        scale: Scale::Linear,
        lo: 1.0,
        hi: x_hi,
        ticks: linear_ticks(1.0, x_hi, 10, |v, _| format!("{v:.0}"))
            .into_iter()
            .filter(|t| t.value.fract() == 0.0)
            .collect(),
    };
    let y = Axis {
        label: "identification rate (mate within rank)".into(),
        scale: Scale::Linear,
        lo: y_lo,
        hi: 1.0,
        ticks: percent_ticks(y_lo, 1.0, 8),
    };
    let mut series = Vec::new();
    let mut markers = Vec::new();
    for (i, s, cmc) in &with {
        let points = cmc
            .iter()
            .enumerate()
            .map(|(r, &v)| ((r + 1) as f64, v))
            .collect();
        series.push(Series {
            label: s.name.clone(),
            color: palette(*i),
            stroke: Stroke::Solid,
            points,
        });
        if let Some(id) = &s.summary.identification {
            markers.push(Marker {
                tag: format!("rank 1: {}", percent(id.rank1)),
                color: palette(*i),
                x: 1.0,
                y: id.rank1,
            });
        }
    }
    Some(Chart {
        id: "cmc".into(),
        title: "CMC: share of in-DB probes whose mate is within rank r".into(),
        about: "Closed-set identification: for every probe whose person is in the gallery, the \
                rank of the first gallery face of that person in the search results, with no \
                threshold. The curve at rank r is the share found within the top r; rank 1 is the \
                headline accuracy. It says nothing about strangers: use the in-DB vs out-of-DB \
                charts for that."
            .into(),
        body: Body::Xy(XyPlot {
            x,
            y,
            series,
            markers,
            vlines: vec![],
            legend: Corner::LowerRight,
        }),
        notes: vec![],
        size: SIZE,
    })
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The FMR target used for a breakdown's "global threshold".
fn breakdown_target(group: &GroupBreakdown) -> Option<f64> {
    nearest_target(group.rows.iter().map(|r| r.fmr_target), PREFERRED_FMR)
}

/// One heatmap per system and two-column breakdown (camera × light), and
/// one bar chart per one-column breakdown (accessory, expression, …) with
/// the systems side by side.
pub fn group_charts(systems: &[System]) -> Vec<Chart> {
    let mut charts = Vec::new();
    for (i, s) in systems.iter().enumerate() {
        for g in s.summary.groups.iter().filter(|g| g.columns.len() == 2) {
            charts.extend(heatmap_chart(s, i, g));
        }
    }
    let mut columns: Vec<&String> = systems
        .iter()
        .flat_map(|s| {
            s.summary
                .groups
                .iter()
                .filter(|g| g.columns.len() == 1)
                .map(|g| &g.columns[0])
        })
        .collect();
    columns.sort();
    columns.dedup();
    for column in columns {
        charts.extend(bars_chart(systems, column));
    }
    charts
}

fn sorted_values(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = values.collect();
    v.sort_by(|a, b| natural_cmp(a, b));
    v.dedup();
    v
}

fn heatmap_chart(system: &System, index: usize, group: &GroupBreakdown) -> Option<Chart> {
    let target = breakdown_target(group)?;
    let rows: Vec<_> = group
        .rows
        .iter()
        .filter(|r| r.fmr_target == target && r.values.len() == 2)
        .collect();
    let threshold = rows.first()?.threshold;
    let a = sorted_values(rows.iter().map(|r| r.values[0].clone()));
    let b = sorted_values(rows.iter().map(|r| r.values[1].clone()));
    // The column with more values runs along the wide x axis.
    let (xi, yi) = if b.len() >= a.len() { (1, 0) } else { (0, 1) };
    let (xs, ys) = if xi == 1 { (b, a) } else { (a, b) };
    let mut cells = vec![vec![None; xs.len()]; ys.len()];
    for r in &rows {
        let x = xs.iter().position(|v| *v == r.values[xi]);
        let y = ys.iter().position(|v| *v == r.values[yi]);
        if let (Some(x), Some(y)) = (x, y) {
            cells[y][x] = Some(r.fnmr);
        }
    }
    let max = rows.iter().map(|r| r.fnmr).fold(0.0, f64::max);
    let (cx, cy) = (&group.columns[xi], &group.columns[yi]);
    Some(Chart {
        id: format!(
            "fnmr-{}-{}-{}",
            slug(&group.columns[0]),
            slug(&group.columns[1]),
            index + 1
        ),
        title: format!(
            "FNMR by {cy} × {cx} at the global threshold: {}",
            system.name
        ),
        about: format!(
            "The false non-match rate of each {cy} × {cx} condition at one global threshold, set \
             for FMR {} over all impostor comparisons (as NIST does for demographic effects). \
             Darker cells are conditions where genuine pairs fail more often at that threshold; \
             grey cells have no comparisons.",
            target_tag(target)
        ),
        body: Body::Heatmap(Heatmap {
            x_label: cx.clone(),
            y_label: cy.clone(),
            x_categories: xs,
            y_categories: ys,
            cells,
            value_label: "FNMR".into(),
            max,
        }),
        notes: vec![format!(
            "Global threshold {} ({}), set for FMR ≤ {}. Darkest = {}.",
            Unit::Cosine.rule(threshold),
            Unit::Distance.rule(threshold),
            target_tag(target),
            percent(max)
        )],
        size: SIZE,
    })
}

fn bars_chart(systems: &[System], column: &str) -> Option<Chart> {
    let mut groups = Vec::new();
    let mut notes = Vec::new();
    let mut chosen: Vec<(usize, &System, f64, Vec<(String, f64)>)> = Vec::new();
    for (i, s) in systems.iter().enumerate() {
        let Some(g) = s
            .summary
            .groups
            .iter()
            .find(|g| g.columns.len() == 1 && g.columns[0] == column)
        else {
            continue;
        };
        let Some(target) = breakdown_target(g) else {
            continue;
        };
        let rows: Vec<_> = g
            .rows
            .iter()
            .filter(|r| r.fmr_target == target && r.values.len() == 1)
            .collect();
        let Some(first) = rows.first() else { continue };
        notes.push(format!(
            "{}: global threshold {} ({}), set for FMR ≤ {}.",
            s.name,
            Unit::Cosine.rule(first.threshold),
            Unit::Distance.rule(first.threshold),
            target_tag(target)
        ));
        chosen.push((
            i,
            s,
            target,
            rows.iter().map(|r| (r.values[0].clone(), r.fnmr)).collect(),
        ));
    }
    if chosen.is_empty() {
        return None;
    }
    let categories = sorted_values(
        chosen
            .iter()
            .flat_map(|(_, _, _, v)| v.iter().map(|(c, _)| c.clone())),
    );
    let mut y_max: f64 = 0.0;
    for (i, s, _, values) in &chosen {
        let per: Vec<Option<f64>> = categories
            .iter()
            .map(|c| values.iter().find(|(v, _)| v == c).map(|(_, f)| *f))
            .collect();
        y_max = per.iter().flatten().fold(y_max, |m, &v| m.max(v));
        groups.push(BarGroup {
            label: s.name.clone(),
            color: palette(*i),
            values: per,
        });
    }
    let target = chosen[0].2;
    Some(Chart {
        id: format!("fnmr-{}", slug(column)),
        title: format!("FNMR by {column} at the global threshold"),
        about: format!(
            "The false non-match rate of each {column} value at one global threshold per system, \
             set for FMR {} over all impostor comparisons. Taller bars are conditions in which \
             genuine pairs fail more often; compare them to decide what your enrolment and \
             capture should avoid.",
            target_tag(target)
        ),
        body: Body::Bars(Bars {
            x_label: column.to_string(),
            y_label: "FNMR".into(),
            categories,
            groups,
            y_max: (y_max * 1.3).max(1e-3),
        }),
        notes,
        size: SIZE,
    })
}

/// The axes of a threshold-tuning chart: thresholds (cosine) across, error
/// rates on a log scale up.
fn tuning_axes(x_label: &str, (x_lo, x_hi): (f64, f64), y_lo: f64) -> (Axis, Axis) {
    let x = Axis {
        label: x_label.into(),
        scale: Scale::Linear,
        lo: x_lo,
        hi: x_hi,
        ticks: decimal_ticks(x_lo, x_hi, 10),
    };
    let y = Axis {
        label: "error rate (log scale)".into(),
        scale: Scale::Log10,
        lo: y_lo,
        hi: 1.0,
        ticks: log_ticks(y_lo, 1.0),
    };
    (x, y)
}
