//! What a chart shows, as plain data: axes with their scales and ticks,
//! curves, marked points, threshold lines, heatmap cells and bars. The
//! builders in `build` fill it from the evaluation outputs (so tests can
//! check what is plotted), and `draw` renders it with plotters.

use crate::text::percent;

/// A colour, 8-bit RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// Tableau 10: distinct, colour-blind-friendly enough, and printable.
pub(crate) const PALETTE: [Rgb; 10] = [
    Rgb(31, 119, 180),
    Rgb(255, 127, 14),
    Rgb(44, 160, 44),
    Rgb(214, 39, 40),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(127, 127, 127),
    Rgb(188, 189, 34),
    Rgb(23, 190, 207),
];
pub(crate) const BLACK: Rgb = Rgb(0, 0, 0);
/// The user's own threshold: a colour no series uses.
pub(crate) const USER: Rgb = Rgb(0, 120, 100);

pub fn palette(i: usize) -> Rgb {
    PALETTE[i % PALETTE.len()]
}

/// One chart: written as `<id>.png` and `<id>.svg`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub id: String,
    pub title: String,
    /// One paragraph for the page: how to read the chart.
    pub about: String,
    pub body: Body,
    /// Lines written under the plot (rates at the chosen thresholds).
    pub notes: Vec<String>,
    pub size: (u32, u32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Xy(XyPlot),
    Heatmap(Heatmap),
    Bars(Bars),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log10,
    /// The standard normal deviate of a probability (DET axes).
    Probit,
}

impl Scale {
    /// Maps a data value to the plotted coordinate. Values the scale cannot
    /// show (0 on a log axis, 0 or 1 on a probit axis) become infinities,
    /// which the renderer clamps to the plot's edge.
    pub(crate) fn apply(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log10 if v > 0.0 => v.log10(),
            Scale::Log10 => f64::NEG_INFINITY,
            Scale::Probit => probit(v),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    /// The range shown, in data units.
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<Tick>,
}

impl Axis {
    /// The position of `v` along the axis: 0 at `lo`, 1 at `hi`.
    pub(crate) fn fraction(&self, v: f64) -> f64 {
        let (lo, hi) = (self.scale.apply(self.lo), self.scale.apply(self.hi));
        (self.scale.apply(v) - lo) / (hi - lo)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    Solid,
    Dashed,
    /// A step outline filled down to zero, translucent (histograms).
    Filled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub color: Rgb,
    pub stroke: Stroke,
    /// Data units, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A marked point, drawn as a dot with a short tag beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub tag: String,
    pub color: Rgb,
    pub x: f64,
    pub y: f64,
}

/// A vertical threshold line, named in the legend.
#[derive(Debug, Clone, PartialEq)]
pub struct VLine {
    pub label: String,
    pub color: Rgb,
    pub x: f64,
    pub stroke: Stroke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    UpperLeft,
    UpperRight,
    LowerLeft,
    LowerRight,
}

/// The upper corner whose side holds the least of the series' upper part
/// (how far points in the outer 40% of that side rise above 60% of the
/// highest point), so that a legend there covers no peak.
pub(crate) fn clear_upper_corner(series: &[Series], lo: f64, hi: f64) -> Corner {
    let points = || series.iter().flat_map(|s| &s.points);
    let band = 0.6 * points().fold(0.0f64, |m, &(_, y)| m.max(y));
    let outer = 0.4 * (hi - lo);
    let crowding = |inside: &dyn Fn(f64) -> bool| {
        points()
            .filter(|&&(x, _)| inside(x))
            .map(|&(_, y)| (y - band).max(0.0))
            .sum::<f64>()
    };
    if crowding(&|x| x >= hi - outer) <= crowding(&|x| x <= lo + outer) {
        Corner::UpperRight
    } else {
        Corner::UpperLeft
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct XyPlot {
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    pub vlines: Vec<VLine>,
    pub legend: Corner,
}

/// Values per (row, column) category, e.g. FNMR by light × camera.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub x_label: String,
    pub y_label: String,
    pub x_categories: Vec<String>,
    pub y_categories: Vec<String>,
    /// `cells[y][x]`; `None` where the data has no such combination.
    pub cells: Vec<Vec<Option<f64>>>,
    /// What a cell holds, e.g. "FNMR".
    pub value_label: String,
    /// The value of the darkest colour.
    pub max: f64,
}

/// Grouped bars: one group per category, one bar per system.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub groups: Vec<BarGroup>,
    pub y_max: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    pub label: String,
    pub color: Rgb,
    /// One per category; `None` where the system has no such category.
    pub values: Vec<Option<f64>>,
}

/// Keeps the points of a curve that move it visibly: a point is dropped when
/// it lies within `1/resolution` of the plot's size (in plotted coordinates)
/// of the last kept one, unless `keep(i)` says it is a marked point. The
/// first and last points are always kept. A curve of millions of vertices
/// thus draws as a few thousand segments and stays exact where it is marked.
pub(crate) fn decimate(
    points: &[(f64, f64)],
    x: &Axis,
    y: &Axis,
    resolution: f64,
    keep: impl Fn(usize) -> bool,
) -> Vec<(f64, f64)> {
    let step = 1.0 / resolution;
    // Far outside the plot all points look alike; clamp so they collapse.
    let at = |&(px, py): &(f64, f64)| {
        (
            x.fraction(px).clamp(-0.05, 1.05),
            y.fraction(py).clamp(-0.05, 1.05),
        )
    };
    let mut kept: Vec<(f64, f64)> = Vec::new();
    let mut last: Option<(f64, f64)> = None;
    for (i, p) in points.iter().enumerate() {
        let q = at(p);
        let far = match last {
            None => true,
            Some(l) => (q.0 - l.0).abs() + (q.1 - l.1).abs() >= step,
        };
        if far || keep(i) || i + 1 == points.len() {
            kept.push(*p);
            last = Some(q);
        }
    }
    kept
}

/// The standard normal quantile (inverse CDF), Wichura's AS 241 (PPND16),
/// accurate to about 1e-16. `probit(0) = -inf`, `probit(1) = inf`.
pub(crate) fn probit(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        let num = ((((((r * 2509.0809287301226727 + 33430.575583588128105) * r
            + 67265.770927008700853)
            * r
            + 45921.953931549871457)
            * r
            + 13731.693765509461125)
            * r
            + 1971.5909503065514427)
            * r
            + 133.14166789178437745)
            * r
            + 3.387132872796366608;
        let den = ((((((r * 5226.495278852545925 + 28729.085735721942674) * r
            + 39307.89580009271061)
            * r
            + 21213.794301586595867)
            * r
            + 5394.1960214247511077)
            * r
            + 687.1870074920579083)
            * r
            + 42.313330701600911252)
            * r
            + 1.0;
        return q * num / den;
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let value = if r <= 5.0 {
        let r = r - 1.6;
        let num = ((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r
            + 0.24178072517745061177)
            * r
            + 1.27045825245236838258)
            * r
            + 3.64784832476320460504)
            * r
            + 5.7694972214606914055)
            * r
            + 4.6303378461565452959)
            * r
            + 1.42343711074968357734;
        let den = ((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r
            + 0.0151986665636164571966)
            * r
            + 0.14810397642748007459)
            * r
            + 0.68976733498510000455)
            * r
            + 1.6763848301838038494)
            * r
            + 2.05319162663775882187)
            * r
            + 1.0;
        num / den
    } else {
        let r = r - 5.0;
        let num = ((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r
            + 0.0012426609473880784386)
            * r
            + 0.026532189526576123093)
            * r
            + 0.29656057182850489123)
            * r
            + 1.7848265399172913358)
            * r
            + 5.4637849111641143699)
            * r
            + 6.6579046435011037772;
        let den = ((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r
            + 1.8463183175100546818e-5)
            * r
            + 7.868691311456132591e-4)
            * r
            + 0.0148753612908506148525)
            * r
            + 0.13692988092273580531)
            * r
            + 0.59983220655588793769)
            * r
            + 1.0;
        num / den
    };
    if q < 0.0 {
        -value
    } else {
        value
    }
}

/// "10⁻³" for k = -3; "1" for 0; "10" for 1.
pub(crate) fn pow10_label(k: i32) -> String {
    match k {
        0 => "1".into(),
        1 => "10".into(),
        _ => {
            const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
            let mut s = String::from("10");
            if k < 0 {
                s.push('⁻');
            }
            for d in k.unsigned_abs().to_string().bytes() {
                s.push(SUP[(d - b'0') as usize]);
            }
            s
        }
    }
}

/// Decade ticks covering `[lo, hi]` (both > 0).
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<Tick> {
    let (a, b) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
    (a..=b)
        .map(|k| Tick {
            value: 10f64.powi(k),
            label: pow10_label(k),
        })
        .collect()
}

/// The DET ticks of NIST and bob.measure (0.001 %, 0.002 %, …, 40 %, …),
/// within `[lo, hi]`; only decades when the range spans many of them.
pub(crate) fn probit_ticks(lo: f64, hi: f64) -> Vec<Tick> {
    let decades = (hi / lo).log10();
    let mut values = Vec::new();
    for k in -9..=-2 {
        let base = 10f64.powi(k);
        for m in [1.0, 2.0, 5.0] {
            if m == 1.0 || decades <= 4.0 {
                values.push(m * base);
            }
        }
    }
    values.extend([0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99]);
    values
        .into_iter()
        .filter(|&v| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9))
        .map(|v| Tick {
            value: v,
            label: percent(v),
        })
        .collect()
}

/// About `count` round-numbered ticks covering `[lo, hi]`, labelled by
/// `label`.
pub(crate) fn linear_ticks(
    lo: f64,
    hi: f64,
    count: usize,
    label: impl Fn(f64, usize) -> String,
) -> Vec<Tick> {
    let span = hi - lo;
    if !(span > 0.0) {
        return vec![Tick {
            value: lo,
            label: label(lo, 2),
        }];
    }
    // The round step (1, 2 or 5 times a power of ten) nearest the raw one.
    let raw = span / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .min_by(|a, b| (a / raw).ln().abs().total_cmp(&(b / raw).ln().abs()))
        .unwrap_or(magnitude);
    let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|i| {
            let v = i as f64 * step;
            // Avoid "-0.0".
            let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
            Tick {
                value: v,
                label: label(v, decimals),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_matches_known_quantiles() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959963984540054),
            (0.025, -1.959963984540054),
            (0.8413447460685429, 1.0),
            (1e-3, -3.090232306167813),
            (1e-6, -4.753424308822899),
        ] {
            assert!(
                (probit(p) - z).abs() < 1e-9,
                "probit({p}) = {} not {z}",
                probit(p)
            );
        }
        assert_eq!(probit(0.0), f64::NEG_INFINITY);
        assert_eq!(probit(1.0), f64::INFINITY);
    }

    #[test]
    fn legends_go_where_the_series_are_low() {
        let hump = |at: f64, height: f64, width: f64| Series {
            label: String::new(),
            color: Rgb(0, 0, 0),
            stroke: Stroke::Filled,
            points: (0..=40)
                .map(|i| {
                    let x = i as f64 / 20.0;
                    (x, height * (-((x - at) / width).powi(2)).exp())
                })
                .collect(),
        };
        // A broad low in-DB hump and a tall narrow out-of-DB one: distances
        // put the out-of-DB peak on the right, cosines on the left.
        let (in_db, out_of_db) = (hump(0.7, 0.6, 0.4), hump(1.4, 1.0, 0.15));
        assert_eq!(
            clear_upper_corner(&[out_of_db.clone(), in_db.clone()], 0.0, 2.0),
            Corner::UpperLeft
        );
        let mirror = |s: Series| Series {
            points: s.points.iter().map(|&(x, y)| (2.0 - x, y)).collect(),
            ..s
        };
        assert_eq!(
            clear_upper_corner(&[mirror(out_of_db), mirror(in_db)], 0.0, 2.0),
            Corner::UpperRight
        );
    }

    #[test]
    fn labels_read_like_a_person_writes_them() {
        assert_eq!(pow10_label(-3), "10⁻³");
        assert_eq!(pow10_label(-12), "10⁻¹²");
        assert_eq!(pow10_label(0), "1");
        let det: Vec<String> = probit_ticks(1e-3, 0.5)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(
            det,
            ["0.1%", "0.2%", "0.5%", "1%", "2%", "5%", "10%", "20%", "40%"]
        );
        let wide: Vec<String> = probit_ticks(1e-6, 0.5)
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(
            wide,
            ["0.0001%", "0.001%", "0.01%", "0.1%", "1%", "10%", "20%", "40%"]
        );
        let lin: Vec<String> = linear_ticks(-0.2, 0.9, 5, |v, d| format!("{v:.d$}"))
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(lin, ["-0.2", "0.0", "0.2", "0.4", "0.6", "0.8"]);
    }

    #[test]
    fn decimation_bounds_the_points_and_keeps_marks() {
        let axis = |scale, lo, hi| Axis {
            label: String::new(),
            scale,
            lo,
            hi,
            ticks: vec![],
        };
        let (x, y) = (axis(Scale::Log10, 1e-7, 1.0), axis(Scale::Linear, 0.0, 1.0));
        // A million-vertex ROC-like curve.
        let n = 1_000_000;
        let pts: Vec<(f64, f64)> = (1..=n)
            .map(|i| {
                let f = i as f64 / n as f64;
                (f, f.powf(0.05))
            })
            .collect();
        let marked = 123_457;
        let kept = decimate(&pts, &x, &y, 1000.0, |i| i == marked);
        assert!(kept.len() < 3000, "{} points kept", kept.len());
        assert!(kept.contains(&pts[marked]));
        assert_eq!(kept.first(), pts.first());
        assert_eq!(kept.last(), pts.last());
    }
}
