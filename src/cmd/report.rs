//! `facekit report EVAL_DIR… --out REPORT_DIR [--threshold T]`: reads the
//! evaluation directories, writes the charts and index.html, and prints the
//! recommended threshold of each system.

use std::io::Write;

use anyhow::Context;

use crate::cli::ReportArgs;
use crate::output::OutputDir;
use crate::report::build::recommended_fpir_point;
use crate::report::{system_names, write_report, Options, System, INDEX_HTML};

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    if let Some(t) = args.threshold {
        anyhow::ensure!(
            t.is_finite() && (-1.0..=1.0).contains(&t),
            "--threshold {t}: expected a cosine similarity in [-1, 1] (for a distance d, pass 1 - d*d/2)"
        );
    }
    let names = system_names(&args.eval_dirs);
    // Load errors name the file and the problem already.
    let mut systems = args
        .eval_dirs
        .iter()
        .zip(names)
        .map(|(dir, name)| System::load(dir, name))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(images) = &args.images {
        for s in &mut systems {
            s.images = images.clone();
        }
    }
    let options = Options {
        user_threshold: args.threshold,
    };
    let out = OutputDir::begin(&args.out, "report", true)?;
    let written = write_report(&systems, &options, out.stage())
        .with_context(|| format!("writing the report into {}", args.out.display()))?;
    out.commit()?;
    let index = args.out.join(INDEX_HTML);

    let recommended: Vec<serde_json::Value> = systems
        .iter()
        .map(|s| {
            let point = recommended_fpir_point(s).map(|p| {
                serde_json::json!({
                    "fpir_target": p.fpir_target,
                    "threshold": p.threshold,
                    "threshold_l2": p.threshold_l2,
                    "fpir": p.fpir,
                    "fnir": p.fnir,
                })
            });
            serde_json::json!({ "system": s.name, "dir": s.dir, "recommended": point })
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    if args.output.json {
        let value = serde_json::json!({
            "index": index,
            "charts": written.charts.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            "systems": recommended,
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
    } else if !args.output.quiet {
        writeln!(
            stdout,
            "wrote {} and {} charts (PNG and SVG)",
            index.display(),
            written.charts.len()
        )?;
        for s in &systems {
            if let Some(p) = recommended_fpir_point(s) {
                writeln!(
                    stdout,
                    "{}: recommended threshold d <= {:.4} (cos >= {:.4}) for FPIR <= {}: FPIR {:.4}, FNIR {:.4}",
                    s.name, p.threshold_l2, p.threshold, p.fpir_target, p.fpir, p.fnir
                )?;
            }
        }
    }
    Ok(())
}
