//! `facekit report`: charts (PNG and SVG) and a self-contained HTML page
//! from one or more evaluation directories, for choosing a threshold. It
//! reads what `facekit evaluate` wrote and never recomputes comparisons.
//!
//! [`build`] turns the systems into [`Chart`]s (plain data, what is plotted),
//! [`draw`] renders them, [`html`] writes the page, [`explorer`] its live
//! threshold explorer.

pub mod build;
pub mod chart;
mod draw;
pub mod explorer;
pub mod html;
pub mod system;
mod thumbnail;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub(crate) use build::all_charts;
pub use build::{Options, Unit};
pub use chart::{Body, Chart};
pub use system::{system_names, System};

pub(crate) const INDEX_HTML: &str = "index.html";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chart {id}: {message}")]
    Draw { id: String, message: String },
}

/// What a report run wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub index: PathBuf,
    /// The charts, in page order; each is `<id>.png` and `<id>.svg`.
    pub charts: Vec<Chart>,
}

/// Renders every chart to PNG and SVG and writes them with `index.html`
/// into `out` (created if needed). Each file appears only when complete.
pub fn write_report(
    systems: &[System],
    options: &Options,
    out: &Path,
) -> Result<Written, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let charts = all_charts(systems, options);
    let rendered: Vec<(Vec<u8>, String)> = charts
        .par_iter()
        .map(|c| {
            let draw_err = |message| ReportError::Draw {
                id: c.id.clone(),
                message,
            };
            Ok((
                draw::png(c).map_err(draw_err)?,
                draw::svg(c).map_err(draw_err)?,
            ))
        })
        .collect::<Result<_, ReportError>>()?;
    for (c, (png, svg)) in charts.iter().zip(&rendered) {
        let png_path = out.join(format!("{}.png", c.id));
        crate::output::write_atomic(&png_path, png).map_err(io(&png_path))?;
        let svg_path = out.join(format!("{}.svg", c.id));
        crate::output::write_atomic(&svg_path, svg.as_bytes()).map_err(io(&svg_path))?;
    }
    let index = out.join(INDEX_HTML);
    let page = html::page(systems, &charts, options);
    crate::output::write_atomic(&index, page.as_bytes()).map_err(io(&index))?;
    Ok(Written { index, charts })
}
