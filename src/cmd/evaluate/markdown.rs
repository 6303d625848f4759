//! The summary as people read it: `summary.md` (Markdown tables) and the
//! few lines printed on the terminal.

use std::fmt::Write;
use std::path::Path;

use crate::evaldir::{EngineKind, Summary, Verification};
use crate::output::thousands;
use crate::text::percent as pct;

/// Marks a figure read where impostor scores are binned.
const INEXACT: &str = "†";

fn mark(exact: bool) -> &'static str {
    if exact {
        ""
    } else {
        INEXACT
    }
}

fn interval(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(
        || "–".into(),
        |[lo, hi]| format!("{} – {}", pct(lo), pct(hi)),
    )
}

pub(crate) fn summary_md(s: &Summary) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# facekit evaluate\n");
    let i = &s.inputs;
    let source = match (&i.embeddings, &i.scores) {
        (Some(e), _) => format!(
            "`{e}` ({} rows × {}, {} identities)",
            thousands(i.rows),
            i.dim.unwrap_or(0),
            thousands(i.identities)
        ),
        (None, Some(sc)) => format!("`{sc}` ({} scores)", thousands(i.rows)),
        _ => String::new(),
    };
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| input | {source} |");
    if let Some(l) = &i.labels {
        let _ = writeln!(md, "| labels | `{l}` |");
    }
    if let Some(p) = &i.pairs {
        let _ = writeln!(md, "| pairs | `{p}` |");
    }
    let _ = writeln!(md, "| protocol | {} |", i.protocol);
    let _ = writeln!(md, "| engine | {} |", s.engine.description);
    if let Some(error) = s.engine.max_abs_score_error {
        let _ = writeln!(
            md,
            "| score error | {} products: the largest sampled \\|score − float64 dot product\\| is {error:.1e} |",
            s.engine.precision
        );
    }
    if let Some(reason) = &s.engine.fallback_reason {
        let _ = writeln!(md, "| device | CPU: {reason} |");
    }
    if let Some(note) = &s.engine.precision_note {
        let _ = writeln!(md, "| precision | {note} |");
    }
    let _ = writeln!(md, "| score | {}; {} |", s.score.kind, s.score.decision);
    let budget = s
        .score
        .exact_budget
        .map_or(String::new(), |b| format!(" (budget {})", thousands(b)));
    let resolution = match s.score.exact_from {
        None => {
            format!("every impostor score is held exactly{budget}: every figure is the exact one")
        }
        Some(from) => {
            let ranges: Vec<String> = s
                .score
                .binned
                .iter()
                .map(|[l, h]| format!("[{l:.5}, {h:.5})"))
                .collect();
            let ranges = if ranges.len() > 1 {
                format!(
                    " (cos {}; every other score is held exactly)",
                    ranges.join(", ")
                )
            } else {
                String::new()
            };
            format!(
                "the impostor comparisons exceed the exact budget{budget}: scores below cos {from:.5}{ranges} are \
                 counted in bins of width {:.2e}, and figures marked {INEXACT} are read there (a threshold is then \
                 a bin edge, conservative by under one bin)",
                s.score.resolution
            )
        }
    };
    let _ = writeln!(md, "| resolution | {resolution} |");
    let _ = writeln!(
        md,
        "| facekit | {} (schema {}) |\n",
        s.facekit_version, s.schema
    );
    if let Some(note) = &s.synthetic_note {
        let _ = writeln!(md, "> {note}\n");
    }
    if let Some(v) = &s.verification {
        verification_md(&mut md, v);
    }
    if let Some(id) = &s.identification {
        let _ = writeln!(md, "## Identification\n");
        let _ = writeln!(
            md,
            "Gallery: {} images of {} identities. Probes: {} mated (in the gallery), {} non-mated.\n",
            thousands(id.gallery_count),
            thousands(id.gallery_identities),
            thousands(id.mated_count),
            thousands(id.non_mated_count)
        );
        let ranks: Vec<String> = id
            .cmc
            .iter()
            .take(10)
            .enumerate()
            .map(|(r, c)| format!("{}: {}", r + 1, pct(*c)))
            .collect();
        let _ = writeln!(
            md,
            "Rank-1: **{}**. CMC (closed set, mated probes): {}.\n",
            pct(id.rank1),
            ranks.join(", ")
        );
        if !id.operating_points.is_empty() {
            let _ = writeln!(md, "| FPIR target | threshold (cos) | threshold (L2) | FPIR | FNIR (rank {}) | FNIR 95% | note |", id.fnir_rank);
            let _ = writeln!(md, "|---|---|---|---|---|---|---|");
            for p in &id.operating_points {
                let _ = writeln!(
                    md,
                    "| {:e} | {:.5} | {:.5} | {} | {} | {} | {} |",
                    p.fpir_target,
                    p.threshold,
                    p.threshold_l2,
                    pct(p.fpir),
                    pct(p.fnir),
                    interval(p.fnir_ci95),
                    p.warning.as_deref().unwrap_or("")
                );
            }
            let _ = writeln!(md);
        }
    }
    for g in &s.groups {
        let _ = writeln!(md, "## By {}\n", g.columns.join(" × "));
        let _ = writeln!(md, "At the global thresholds.\n");
        let _ = writeln!(
            md,
            "| {} | FMR target | threshold | genuine | impostor | FNMR | FMR |",
            g.columns.join(" | ")
        );
        let _ = writeln!(
            md,
            "|{}---|---|---|---|---|---|",
            "---|".repeat(g.columns.len())
        );
        for r in &g.rows {
            let _ = writeln!(
                md,
                "| {} | {:e} | {:.5} | {} | {} | {} | {} |",
                r.values.join(" | "),
                r.fmr_target,
                r.threshold,
                thousands(r.genuine_count),
                thousands(r.impostor_count),
                pct(r.fnmr),
                pct(r.fmr)
            );
        }
        let _ = writeln!(md);
    }
    md
}

fn verification_md(md: &mut String, v: &Verification) {
    let _ = writeln!(md, "## Verification\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(
        md,
        "| genuine comparisons | {} |",
        thousands(v.genuine_count)
    );
    let _ = writeln!(
        md,
        "| impostor comparisons | {} |",
        thousands(v.impostor_count)
    );
    let _ = writeln!(md, "| AUC | {:.6}{} |", v.auc, mark(v.auc_exact));
    let _ = writeln!(
        md,
        "| EER | **{}** (between {} and {}) at cos {:.5} / L2 {:.5}{} |",
        pct(v.eer),
        pct(v.eer_low),
        pct(v.eer_high),
        v.eer_threshold,
        v.eer_threshold_l2,
        mark(v.eer_exact)
    );
    let _ = writeln!(md, "| d′ | {:.4} |", v.d_prime);
    let _ = writeln!(
        md,
        "| genuine mean ± sd | {:.4} ± {:.4} |",
        v.genuine_mean, v.genuine_std
    );
    let _ = writeln!(
        md,
        "| impostor mean ± sd | {:.4} ± {:.4} |",
        v.impostor_mean, v.impostor_std
    );
    if let Some(k) = &v.kfold_accuracy {
        let _ = writeln!(
            md,
            "| {}-fold accuracy (insightface) | {:.4} ± {:.4} |",
            k.folds, k.mean, k.std
        );
    }
    let _ = writeln!(md, "\nEER definition: {}\n", v.eer_definition);
    let _ = writeln!(md, "| FMR target | threshold (cos) | threshold (L2) | FMR | FNMR | FNMR 95% | FMR 95% | note |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for p in &v.operating_points {
        let _ = writeln!(
            md,
            "| {:e} | {:.5}{} | {:.5} | {} | {} | {} | {} | {} |",
            p.fmr_target,
            p.threshold,
            mark(p.exact),
            p.threshold_l2,
            pct(p.fmr),
            pct(p.fnmr),
            interval(p.fnmr_ci95),
            interval(p.fmr_ci95),
            p.warning.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(md);
}

/// The lines printed after a run, hyperfine-like: what ran, how fast, the
/// headline numbers, where they went.
pub fn console(s: &Summary, comparisons: u64, threads: usize, seconds: f64, out: &Path) -> String {
    let mut t = String::new();
    let i = &s.inputs;
    let what = match i.dim {
        Some(d) => format!(
            "{} embeddings × {d}, {} identities",
            thousands(i.rows),
            thousands(i.identities)
        ),
        None => format!("{} scores", thousands(i.rows)),
    };
    let _ = writeln!(t, "facekit evaluate: {what} · {}", i.protocol);
    let engine = if s.engine.kind == EngineKind::Cpu && s.engine.precision != "fp32" {
        format!("cpu {} ({threads} threads)", s.engine.precision)
    } else if s.engine.kind == EngineKind::Cpu {
        format!("cpu ({threads} threads)")
    } else {
        s.engine.description.clone()
    };
    let _ = writeln!(
        t,
        "  Time:      {seconds:.3} s · {} comparisons on {engine} ({:.1} M/s)",
        thousands(comparisons),
        comparisons as f64 / seconds / 1e6
    );
    if let Some(v) = &s.verification {
        let _ = writeln!(
            t,
            "  Verify:    AUC {:.5} · EER {} at cos {:.4} (L2 {:.4}) · d′ {:.3}",
            v.auc,
            pct(v.eer),
            v.eer_threshold,
            v.eer_threshold_l2,
            v.d_prime
        );
        let points: Vec<String> = v
            .operating_points
            .iter()
            .map(|p| {
                format!(
                    "{:e}: {} (FMR {:.2e}, cos {:.4})",
                    p.fmr_target,
                    pct(p.fnmr),
                    p.fmr,
                    p.threshold
                )
            })
            .collect();
        let _ = writeln!(t, "  FNMR@FMR:  {}", points.join(" · "));
        if let Some(k) = &v.kfold_accuracy {
            let _ = writeln!(
                t,
                "  10-fold:   {:.4} ± {:.4} (insightface rule)",
                k.mean, k.std
            );
        }
    }
    if let Some(id) = &s.identification {
        let points: Vec<String> = id
            .operating_points
            .iter()
            .map(|p| {
                format!(
                    "FNIR@FPIR {:e}: {} (cos {:.4})",
                    p.fpir_target,
                    pct(p.fnir),
                    p.threshold
                )
            })
            .collect();
        let _ = writeln!(
            t,
            "  Identify:  rank-1 {} · {} mated, {} non-mated · {}",
            pct(id.rank1),
            thousands(id.mated_count),
            thousands(id.non_mated_count),
            points.join(" · ")
        );
    }
    let _ = writeln!(t, "  Wrote:     {}/ (summary.json, summary.md, roc.csv, operating_points.csv, scores.parquet, probes.csv)", out.display());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(199_990_000), "199,990,000");
    }
}
