//! Renders a [`Chart`] with plotters, to PNG (drawn into a buffer, encoded
//! with `image`) and to SVG. Text uses the embedded DejaVu Sans, so nothing
//! is looked up on the machine.

use std::sync::Once;

use image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};
use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{linear_ticks, Axis, Bars, Body, Chart, Corner, Heatmap, Rgb, Stroke, XyPlot};

use crate::text::percent;

const FONT: &str = "sans-serif";
/// Notes are wrapped to this many characters a line.
const NOTE_WIDTH: usize = 118;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu is a valid font; registration cannot fail on it.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

type Drawn = Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// The chart as a PNG file's bytes.
pub fn png(chart: &Chart) -> Result<Vec<u8>, String> {
    register_font();
    let (w, h) = chart.size;
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(chart, &root)?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(&rgb, w, h, ExtendedColorType::Rgb8)
        .map_err(err)?;
    Ok(out)
}

/// The chart as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, chart.size).into_drawing_area();
        draw(chart, &root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Splits text into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn draw<DB: DrawingBackend>(chart: &Chart, root: &DrawingArea<DB, Shift>) -> Drawn {
    root.fill(&WHITE).map_err(err)?;
    let lines: Vec<String> = chart
        .notes
        .iter()
        .flat_map(|n| wrap(n, NOTE_WIDTH))
        .collect();
    let notes_height = if lines.is_empty() {
        0
    } else {
        12 + 19 * lines.len() as u32
    };
    let (_, h) = root.dim_in_pixel();
    let (main, notes) = root.split_vertically(h.saturating_sub(notes_height));
    for (i, line) in lines.iter().enumerate() {
        notes
            .draw(&Text::new(
                line.as_str(),
                (16, 4 + 19 * i as i32),
                (FONT, 14).into_font().color(&BLACK),
            ))
            .map_err(err)?;
    }
    match &chart.body {
        Body::Xy(plot) => draw_xy(&main, &chart.title, plot),
        Body::Heatmap(map) => draw_heatmap(&main, &chart.title, map),
        Body::Bars(bars) => draw_bars(&main, &chart.title, bars),
    }
}

/// A linear coordinate over plotted values with given tick positions
/// (plotters' own `WithKeyPoints` over f64 has no label formatter).
struct Ticked {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span == 0.0 {
            return (limit.0 + limit.1) / 2;
        }
        let f = (v - self.range.start) / span;
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

fn ticked(axis: &Axis) -> Ticked {
    let (lo, hi) = span(axis);
    Ticked {
        range: lo..hi,
        ticks: key_points(axis),
    }
}

/// The plotted range of an axis.
fn span(axis: &Axis) -> (f64, f64) {
    (axis.scale.apply(axis.lo), axis.scale.apply(axis.hi))
}

/// The label of the tick nearest to plotted coordinate `v`.
fn tick_label(axis: &Axis, v: f64) -> String {
    axis.ticks
        .iter()
        .min_by(|a, b| {
            let da = (axis.scale.apply(a.value) - v).abs();
            let db = (axis.scale.apply(b.value) - v).abs();
            da.total_cmp(&db)
        })
        .map(|t| t.label.clone())
        .unwrap_or_default()
}

fn key_points(axis: &Axis) -> Vec<f64> {
    let (lo, hi) = span(axis);
    axis.ticks
        .iter()
        .map(|t| axis.scale.apply(t.value))
        .filter(|v| *v >= lo.min(hi) - 1e-12 && *v <= hi.max(lo) + 1e-12)
        .collect()
}

fn position(corner: Corner) -> SeriesLabelPosition {
    match corner {
        Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
        Corner::UpperRight => SeriesLabelPosition::UpperRight,
        Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
        Corner::LowerRight => SeriesLabelPosition::LowerRight,
    }
}

fn draw_xy<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, plot: &XyPlot) -> Drawn {
    let (x0, x1) = span(&plot.x);
    let (y0, y1) = span(&plot.y);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 21))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(ticked(&plot.x), ticked(&plot.y))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(plot.x.label.as_str())
        .y_desc(plot.y.label.as_str())
        .x_label_formatter(&|v| tick_label(&plot.x, *v))
        .y_label_formatter(&|v| tick_label(&plot.y, *v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .bold_line_style(RGBColor(200, 200, 200).mix(0.6))
        .draw()
        .map_err(err)?;
    // Clamped into the plot: values a scale cannot show (FMR 0 on a log
    // axis) sit on the edge instead of escaping the frame.
    let to = |&(x, y): &(f64, f64)| -> Option<(f64, f64)> {
        let (px, py) = (plot.x.scale.apply(x), plot.y.scale.apply(y));
        if px.is_nan() || py.is_nan() {
            return None;
        }
        Some((
            px.clamp(x0.min(x1), x0.max(x1)),
            py.clamp(y0.min(y1), y0.max(y1)),
        ))
    };
    for s in &plot.series {
        let pts: Vec<(f64, f64)> = s.points.iter().filter_map(to).collect();
        let c = color(s.color);
        let style = c.stroke_width(2);
        let drawn = match s.stroke {
            Stroke::Solid => chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(err)?,
            Stroke::Dashed => chart
                .draw_series(DashedLineSeries::new(pts, 9, 6, style))
                .map_err(err)?,
            Stroke::Filled => {
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        pts.clone(),
                        c.mix(0.28).filled(),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(LineSeries::new(pts, c.stroke_width(1)))
                    .map_err(err)?
            }
        };
        if !s.label.is_empty() {
            let width = if s.stroke == Stroke::Filled { 8 } else { 2 };
            drawn.label(s.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(width))
            });
        }
    }
    for v in &plot.vlines {
        let Some((x, _)) = to(&(v.x, plot.y.lo)) else {
            continue;
        };
        let c = color(v.color);
        let style = c.stroke_width(2);
        let pts = vec![(x, y0), (x, y1)];
        let drawn = match v.stroke {
            Stroke::Dashed => chart
                .draw_series(DashedLineSeries::new(pts, 7, 5, style))
                .map_err(err)?,
            _ => chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(err)?,
        };
        drawn
            .label(v.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
    }
    for m in &plot.markers {
        let Some(p) = to(&(m.x, m.y)) else { continue };
        let c = color(m.color);
        // Tags go above the dot, or below it at the top of the plot.
        let tag_at = if plot.y.fraction(m.y) > 0.93 {
            (8, 3)
        } else {
            (8, -18)
        };
        let dot = EmptyElement::at(p)
            + Circle::new((0, 0), 5, c.filled())
            + Circle::new((0, 0), 5, BLACK.stroke_width(1))
            + Text::new(m.tag.clone(), tag_at, (FONT, 13).into_font().color(&BLACK));
        chart.draw_series(std::iter::once(dot)).map_err(err)?;
    }
    if plot.series.iter().any(|s| !s.label.is_empty()) || !plot.vlines.is_empty() {
        legend(&mut chart, position(plot.legend))?;
    }
    Ok(())
}

/// The series labels, in one style for every chart.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(at)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.88))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(err)
}

/// Yellow → orange → dark red (ColorBrewer YlOrRd), `t` in [0, 1].
pub fn heat(t: f64) -> Rgb {
    const STOPS: [(f64, f64, f64); 5] = [
        (255.0, 255.0, 204.0),
        (254.0, 217.0, 118.0),
        (253.0, 141.0, 60.0),
        (227.0, 26.0, 28.0),
        (128.0, 0.0, 38.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let at = t * (STOPS.len() - 1) as f64;
    let i = (at.floor() as usize).min(STOPS.len() - 2);
    let f = at - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Category key points at the middle of each unit-wide cell.
fn category_axis(n: usize) -> (Range<f64>, Vec<f64>) {
    (
        0.0..n.max(1) as f64,
        (0..n).map(|i| i as f64 + 0.5).collect(),
    )
}

fn category_label(names: &[String], v: f64) -> String {
    let i = v.floor();
    if i >= 0.0 && (i as usize) < names.len() {
        names[i as usize].clone()
    } else {
        String::new()
    }
}

fn draw_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    map: &Heatmap,
) -> Drawn {
    let (w, _) = area.dim_in_pixel();
    let (plot_area, bar_area) = area.split_horizontally(w.saturating_sub(120));
    let (nx, ny) = (map.x_categories.len(), map.y_categories.len());
    let (xr, xk) = category_axis(nx);
    let (yr, yk) = category_axis(ny);
    // Rows run top to bottom in category order.
    let y_names: Vec<String> = map.y_categories.iter().rev().cloned().collect();
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, (FONT, 21))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            Ticked {
                range: xr,
                ticks: xk,
            },
            Ticked {
                range: yr,
                ticks: yk,
            },
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(map.x_label.as_str())
        .y_desc(map.y_label.as_str())
        .x_label_formatter(&|v| category_label(&map.x_categories, *v))
        .y_label_formatter(&|v| category_label(&y_names, *v))
        .label_style((FONT, if nx > 20 { 11 } else { 13 }))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    let max = if map.max > 0.0 { map.max } else { 1.0 };
    let write_values = nx * ny <= 120;
    for (yi, row) in map.cells.iter().enumerate() {
        let y = (ny - 1 - yi) as f64;
        for (xi, cell) in row.iter().enumerate() {
            let x = xi as f64;
            let fill = match cell {
                Some(v) => color(heat(v / max)),
                None => RGBColor(215, 215, 215),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    fill.filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    WHITE.stroke_width(1),
                )))
                .map_err(err)?;
            if let (Some(v), true) = (cell, write_values) {
                let ink = if v / max > 0.6 { WHITE } else { BLACK };
                let text = EmptyElement::at((x + 0.5, y + 0.5))
                    + Text::new(percent(*v), (-18, -7), (FONT, 12).into_font().color(&ink));
                chart.draw_series(std::iter::once(text)).map_err(err)?;
            }
        }
    }
    // The colour scale: 0 at the bottom, the maximum at the top.
    let (_, bh) = bar_area.dim_in_pixel();
    let (top, bottom) = (70i32, bh as i32 - 70);
    let steps = 100;
    for k in 0..steps {
        let t = k as f64 / (steps - 1) as f64;
        let y = bottom - ((bottom - top) as f64 * (k + 1) as f64 / steps as f64) as i32;
        let y_next = bottom - ((bottom - top) as f64 * k as f64 / steps as f64) as i32;
        bar_area
            .draw(&Rectangle::new(
                [(20, y), (44, y_next)],
                color(heat(t)).filled(),
            ))
            .map_err(err)?;
    }
    let label = (FONT, 13).into_font().color(&BLACK);
    bar_area
        .draw(&Text::new(
            map.value_label.as_str(),
            (14, top - 30),
            label.clone(),
        ))
        .map_err(err)?;
    bar_area
        .draw(&Text::new(percent(map.max), (50, top - 6), label.clone()))
        .map_err(err)?;
    bar_area
        .draw(&Text::new("0%", (50, bottom - 8), label))
        .map_err(err)?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, bars: &Bars) -> Drawn {
    let n = bars.categories.len();
    let (xr, xk) = category_axis(n);
    let ticks = linear_ticks(0.0, bars.y_max, 6, |v, d| {
        format!("{:.*}%", d.saturating_sub(2), v * 100.0)
    });
    let y_axis = Axis {
        label: bars.y_label.clone(),
        scale: super::chart::Scale::Linear,
        lo: 0.0,
        hi: bars.y_max,
        ticks,
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 21))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            Ticked {
                range: xr,
                ticks: xk,
            },
            ticked(&y_axis),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(bars.x_label.as_str())
        .y_desc(bars.y_label.as_str())
        .x_label_formatter(&|v| category_label(&bars.categories, *v))
        .y_label_formatter(&|v| tick_label(&y_axis, *v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .bold_line_style(RGBColor(200, 200, 200).mix(0.6))
        .draw()
        .map_err(err)?;
    let groups = bars.groups.len().max(1);
    let width = 0.8 / groups as f64;
    let write_values = n * groups <= 40;
    for (k, g) in bars.groups.iter().enumerate() {
        let c = color(g.color);
        let rects = g.values.iter().enumerate().filter_map(|(i, v)| {
            v.map(|v| {
                let a = i as f64 + 0.1 + k as f64 * width;
                Rectangle::new([(a, 0.0), (a + width, v.min(bars.y_max))], c.filled())
            })
        });
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(g.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        if write_values {
            let texts = g.values.iter().enumerate().filter_map(|(i, v)| {
                v.map(|v| {
                    let a = i as f64 + 0.1 + (k as f64 + 0.5) * width;
                    EmptyElement::at((a, v.min(bars.y_max)))
                        + Text::new(percent(v), (-14, -16), (FONT, 12).into_font().color(&BLACK))
                })
            });
            chart.draw_series(texts).map_err(err)?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_wrap_at_spaces() {
        let lines = wrap("aa bb cc dd", 5);
        assert_eq!(lines, ["aa bb", "cc dd"]);
        assert_eq!(heat(0.0), Rgb(255, 255, 204));
        assert_eq!(heat(1.0), Rgb(128, 0, 38));
    }
}
