//! `index.html`: one self-contained page (inline CSS and script, no network),
//! with the metric tables, the threshold table in both units, the threshold
//! explorer, the charts (referenced by relative file name) and how to read
//! each. Everything but the explorer reads without JavaScript.

use std::fmt::Write;

use crate::evaldir::{cosine_to_l2, ProbeRow};

use super::build::{
    described, rate_text, recommended_fpir_point, roc_at, target_tag, Options, Unit,
};
use super::chart::Chart;
use super::system::System;
use crate::output::thousands;
use crate::text::percent;

/// How many probes each probe table lists.
const PROBE_ROWS: usize = 10;

const STYLE: &str = "
body { font-family: 'DejaVu Sans', 'Noto Sans', 'Noto Sans KR', 'Malgun Gothic', 'Apple SD Gothic Neo',
       Arial, sans-serif; margin: 0 auto; max-width: 1080px; padding: 16px 24px 48px; color: #1d1d1f;
       line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 9px; text-align: right; vertical-align: top; }
th { background: #f1f3f5; }
td.l, th.l { text-align: left; }
.banner { background: #fff3cd; border: 2px solid #d39e00; color: #5c4400; padding: 12px 16px;
          margin: 12px 0; font-weight: bold; border-radius: 4px; }
.choice { background: #eef6ee; border-left: 5px solid #2c9f2c; padding: 8px 16px; margin: 12px 0; }
.warn { color: #a14400; }
figure { margin: 1em 0 2.2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { margin-top: 0.4em; }
.notes { color: #333; font-size: 0.95em; }
.muted { color: #666; font-size: 0.9em; }
";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn f4(v: f64) -> String {
    format!("{v:.4}")
}

fn interval(ci: Option<[f64; 2]>) -> String {
    ci.map(|[a, b]| format!("[{}, {}]", percent(a), percent(b)))
        .unwrap_or_else(|| "–".into())
}

pub fn page(systems: &[System], charts: &[Chart], options: &Options) -> String {
    let mut h = String::new();
    let names: Vec<String> = systems.iter().map(|s| escape(&s.name)).collect();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>facekit report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        names.join(", ")
    );
    let _ = writeln!(h, "<h1>Face recognition evaluation report</h1>");
    let _ = writeln!(
        h,
        "<p class=\"muted\">facekit {} · scores are cosine similarities, accept if score ≥ threshold · \
         distance d = √(2 − 2·cos), the Euclidean distance of unit-length embeddings, accept if d ≤ threshold</p>",
        crate::VERSION
    );
    for s in systems {
        if let Some(note) = &s.summary.synthetic_note {
            let _ = writeln!(
                h,
                "<div class=\"banner\">Demo data — {}: {}</div>",
                escape(&s.name),
                escape(note)
            );
        }
    }
    systems_table(&mut h, systems);
    choice(&mut h, systems, options);
    metrics_tables(&mut h, systems);
    threshold_tables(&mut h, systems, options);
    super::explorer::section(&mut h, systems);
    charts_sections(&mut h, charts);
    probe_tables(&mut h, systems);
    let _ = writeln!(h, "</body>\n</html>");
    h
}

fn systems_table(h: &mut String, systems: &[System]) {
    let _ = writeln!(h, "<h2>Systems</h2>\n<table>\n<tr><th class=\"l\">system</th><th class=\"l\">directory</th><th class=\"l\">protocol</th><th>embeddings</th><th>dim</th><th>identities</th><th class=\"l\">engine</th><th class=\"l\">not found</th></tr>");
    for s in systems {
        let e = &s.summary.engine;
        let mut engine = format!("{} ({})", escape(&e.description), escape(&e.precision));
        if let Some(why) = &e.fallback_reason {
            let _ = write!(engine, "<br><span class=\"muted\">{}</span>", escape(why));
        }
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{engine}</td><td class=\"l\">{}</td></tr>",
            escape(&s.name),
            escape(&s.dir.display().to_string()),
            escape(&s.summary.inputs.protocol),
            thousands(s.summary.inputs.rows),
            s.summary.inputs.dim.map(|d| d.to_string()).unwrap_or_else(|| "–".into()),
            thousands(s.summary.inputs.identities),
            if s.missing.is_empty() { "–".to_string() } else { escape(&s.missing.join(", ")) }
        );
    }
    let _ = writeln!(h, "</table>");
}

/// The answer to "at which distance is a face nobody in the DB", first.
fn choice(h: &mut String, systems: &[System], options: &Options) {
    let _ = writeln!(h, "<h2>Choosing a threshold</h2>");
    for s in systems {
        let mut lines = Vec::new();
        if let (Some(p), Some(id)) = (recommended_fpir_point(s), &s.summary.identification) {
            lines.push(format!(
                "<b>Recommended for open-set search: accept if {} (cos ≥ {})</b>, the threshold for \
                 FPIR ≤ {}. At it, {} of {} out-of-DB probes are taken for someone in the DB (FPIR) \
                 and {} of {} in-DB probes are missed (FNIR; 95% interval {}).",
                escape(&Unit::Distance.rule(p.threshold)),
                f4(p.threshold),
                target_tag(p.fpir_target),
                percent(p.fpir),
                thousands(id.non_mated_count),
                percent(p.fnir),
                thousands(id.mated_count),
                interval(p.fnir_ci95)
            ));
        }
        if let Some(t) = options.user_threshold {
            let curve = s.open_set();
            let mut cost = format!(
                "<b>Your threshold: accept if d ≤ {} (cos ≥ {})</b>.",
                f4(cosine_to_l2(t)),
                f4(t)
            );
            if !curve.is_empty() {
                let _ = write!(cost, " Open-set: {}.", described(&curve.at(t)));
            }
            if let Some(r) = roc_at(&s.roc, t) {
                let _ = write!(
                    cost,
                    " Verification: FMR ≈ {}, FNMR ≈ {}.",
                    percent(r.fmr),
                    percent(r.fnmr)
                );
            }
            lines.push(cost);
        }
        if !lines.is_empty() {
            let _ = writeln!(h, "<div class=\"choice\"><p><b>{}</b></p>", escape(&s.name));
            for l in lines {
                let _ = writeln!(h, "<p>{l}</p>");
            }
            let _ = writeln!(h, "</div>");
        }
    }
    let _ = writeln!(
        h,
        "<p>A threshold picked by eye (say d = 1.5) typically lets most strangers match someone. \
         Pick it from the FPIR you can afford: the share of people <i>not</i> in the DB who would be \
         taken for someone who is. Then read what it costs in FNIR, the share of enrolled people \
         turned away or misidentified. The threshold table below lists both units for every target; \
         <code>facekit report … --threshold T</code> (cosine) shows the cost of your own.</p>"
    );
}

fn metrics_tables(h: &mut String, systems: &[System]) {
    let header = |h: &mut String, title: &str| {
        let _ = write!(
            h,
            "<h3>{title}</h3>\n<table>\n<tr><th class=\"l\">metric</th>"
        );
        for s in systems {
            let _ = write!(h, "<th>{}</th>", escape(&s.name));
        }
        let _ = writeln!(h, "</tr>");
    };
    let row = |h: &mut String, name: &str, cells: Vec<String>| {
        let _ = write!(h, "<tr><td class=\"l\">{name}</td>");
        for c in cells {
            let _ = write!(h, "<td>{c}</td>");
        }
        let _ = writeln!(h, "</tr>");
    };
    let _ = writeln!(h, "<h2>Metrics</h2>");
    if systems.iter().any(|s| s.summary.verification.is_some()) {
        header(h, "Verification (1:1)");
        let v = |f: &dyn Fn(&crate::evaldir::Verification) -> String| -> Vec<String> {
            systems
                .iter()
                .map(|s| {
                    s.summary
                        .verification
                        .as_ref()
                        .map(f)
                        .unwrap_or_else(|| "–".into())
                })
                .collect()
        };
        row(h, "genuine comparisons", v(&|v| thousands(v.genuine_count)));
        row(
            h,
            "impostor comparisons",
            v(&|v| thousands(v.impostor_count)),
        );
        row(h, "AUC", v(&|v| format!("{:.6}", v.auc)));
        row(
            h,
            "EER [low, high]",
            v(&|v| {
                format!(
                    "{} [{}, {}]",
                    percent(v.eer),
                    percent(v.eer_low),
                    percent(v.eer_high)
                )
            }),
        );
        row(
            h,
            "EER threshold (cos / d)",
            v(&|v| format!("{} / {}", f4(v.eer_threshold), f4(v.eer_threshold_l2))),
        );
        row(h, "d′ (decidability)", v(&|v| format!("{:.3}", v.d_prime)));
        row(
            h,
            "genuine score mean ± std",
            v(&|v| format!("{:.4} ± {:.4}", v.genuine_mean, v.genuine_std)),
        );
        row(
            h,
            "impostor score mean ± std",
            v(&|v| format!("{:.4} ± {:.4}", v.impostor_mean, v.impostor_std)),
        );
        let fmr_targets = sorted_targets(
            systems
                .iter()
                .flat_map(|s| s.points("fmr").map(|p| p.target)),
        );
        for t in fmr_targets {
            row(
                h,
                &format!("FNMR @ FMR ≤ {} (realised FMR)", target_tag(t)),
                v(&|v| {
                    v.operating_points
                        .iter()
                        .find(|p| p.fmr_target == t)
                        .map(|p| format!("{} ({})", percent(p.fnmr), percent(p.fmr)))
                        .unwrap_or_else(|| "–".into())
                }),
            );
        }
        row(
            h,
            "10-fold accuracy (insightface protocol)",
            v(&|v| {
                v.kfold_accuracy
                    .as_ref()
                    .map(|k| format!("{} ± {}", percent(k.mean), percent(k.std)))
                    .unwrap_or_else(|| "–".into())
            }),
        );
        let _ = writeln!(h, "</table>");
        if let Some(def) = systems.iter().find_map(|s| {
            s.summary
                .verification
                .as_ref()
                .map(|v| v.eer_definition.clone())
        }) {
            let _ = writeln!(h, "<p class=\"muted\">EER: {}</p>", escape(&def));
        }
    }
    if systems.iter().any(|s| s.summary.identification.is_some()) {
        header(h, "Identification (1:N) and open-set search");
        let v = |f: &dyn Fn(&crate::evaldir::Identification) -> String| -> Vec<String> {
            systems
                .iter()
                .map(|s| {
                    s.summary
                        .identification
                        .as_ref()
                        .map(f)
                        .unwrap_or_else(|| "–".into())
                })
                .collect()
        };
        row(h, "gallery images", v(&|i| thousands(i.gallery_count)));
        row(
            h,
            "gallery identities",
            v(&|i| thousands(i.gallery_identities)),
        );
        row(h, "in-DB (mated) probes", v(&|i| thousands(i.mated_count)));
        row(
            h,
            "out-of-DB (non-mated) probes",
            v(&|i| thousands(i.non_mated_count)),
        );
        row(h, "rank-1 identification rate", v(&|i| percent(i.rank1)));
        for r in [5usize, 10] {
            row(
                h,
                &format!("rank-{r} identification rate"),
                v(&|i| {
                    i.cmc
                        .get(r - 1)
                        .map(|&c| percent(c))
                        .unwrap_or_else(|| "–".into())
                }),
            );
        }
        let fpir_targets = sorted_targets(
            systems
                .iter()
                .flat_map(|s| s.points("fpir").map(|p| p.target)),
        );
        for t in fpir_targets {
            row(
                h,
                &format!("FNIR @ FPIR ≤ {} (realised FPIR)", target_tag(t)),
                v(&|i| {
                    i.operating_points
                        .iter()
                        .find(|p| p.fpir_target == t)
                        .map(|p| format!("{} ({})", percent(p.fnir), percent(p.fpir)))
                        .unwrap_or_else(|| "–".into())
                }),
            );
        }
        let _ = writeln!(h, "</table>");
    }
}

fn sorted_targets(targets: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut t: Vec<f64> = targets.collect();
    t.sort_by(f64::total_cmp);
    t.dedup();
    t
}

fn threshold_tables(h: &mut String, systems: &[System], options: &Options) {
    let _ = writeln!(
        h,
        "<h2>Thresholds</h2>\n<p>Each row is one target rate. The threshold is the lowest score whose \
         rate does not exceed the target (the conservative rule), given as a cosine similarity and as \
         the Euclidean distance of unit vectors; the realised rate is what that threshold actually \
         gives on this data, with the other error rate and its 95% interval.</p>"
    );
    for s in systems {
        if s.operating_points.is_empty() && options.user_threshold.is_none() {
            continue;
        }
        let _ = writeln!(
            h,
            "<h3>{}</h3>\n<table>\n<tr><th class=\"l\">target</th><th>accept if cos ≥</th><th>accept if d ≤</th>\
             <th>realised rate</th><th>95% interval</th><th>other rate</th><th>95% interval</th><th class=\"l\">note</th></tr>",
            escape(&s.name)
        );
        for p in &s.operating_points {
            let (rate, other) = match p.kind.as_str() {
                "fmr" => ("FMR", "FNMR"),
                "fpir" => ("FPIR", "FNIR"),
                _ => ("rate", "other"),
            };
            let summary_ci = match p.kind.as_str() {
                "fmr" => s
                    .summary
                    .verification
                    .as_ref()
                    .and_then(|v| v.operating_points.iter().find(|q| q.fmr_target == p.target))
                    .map(|q| (q.fmr_ci95, q.warning.clone())),
                _ => s
                    .summary
                    .identification
                    .as_ref()
                    .and_then(|i| {
                        i.operating_points
                            .iter()
                            .find(|q| q.fpir_target == p.target)
                    })
                    .map(|q| (None, q.warning.clone())),
            };
            let (rate_ci, warning) = summary_ci.unwrap_or((None, None));
            let other_ci = match (p.other_ci_low, p.other_ci_high) {
                (Some(a), Some(b)) => Some([a, b]),
                _ => None,
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{rate} ≤ {}</td><td>{}</td><td>{}</td><td>{rate} {}</td><td>{}</td>\
                 <td>{other} {}</td><td>{}</td><td class=\"l warn\">{}</td></tr>",
                target_tag(p.target),
                f4(p.threshold),
                f4(p.threshold_l2),
                percent(p.rate),
                interval(rate_ci),
                percent(p.other_rate),
                interval(other_ci),
                warning.map(|w| escape(&w)).unwrap_or_default()
            );
        }
        if let Some(t) = options.user_threshold {
            let curve = s.open_set();
            let mut realised = Vec::new();
            if let Some(r) = roc_at(&s.roc, t) {
                realised.push(format!(
                    "FMR ≈ {}, FNMR ≈ {}",
                    percent(r.fmr),
                    percent(r.fnmr)
                ));
            }
            if !curve.is_empty() {
                let r = curve.at(t);
                realised.push(format!(
                    "FPIR {}, FNIR {}",
                    rate_text(r.fpir()),
                    rate_text(r.fnir())
                ));
            }
            let _ = writeln!(
                h,
                "<tr><td class=\"l\"><b>your threshold</b></td><td>{}</td><td>{}</td><td colspan=\"5\" class=\"l\">{}</td></tr>",
                f4(t),
                f4(cosine_to_l2(t)),
                realised.join("; ")
            );
        }
        let _ = writeln!(h, "</table>");
    }
}

fn section_of(id: &str) -> &'static str {
    if id.starts_with("open-set") || id == "tuning-identification" || id == "cmc" {
        "Open-set search: in-DB vs out-of-DB"
    } else if id.starts_with("fnmr-") {
        "Per-condition breakdown"
    } else {
        "Verification"
    }
}

fn charts_sections(h: &mut String, charts: &[Chart]) {
    let mut current = "";
    for c in charts {
        let section = section_of(&c.id);
        if section != current {
            let _ = writeln!(h, "<h2>{section}</h2>");
            current = section;
        }
        let id = escape(&c.id);
        let _ = writeln!(
            h,
            "<figure id=\"{id}\">\n<h3>{}</h3>\n<img src=\"{id}.png\" width=\"{}\" height=\"{}\" alt=\"{}\">\n<figcaption>\n<p>{}</p>",
            escape(&c.title),
            c.size.0,
            c.size.1,
            escape(&c.title),
            escape(&c.about)
        );
        for n in &c.notes {
            let _ = writeln!(h, "<p class=\"notes\">{}</p>", escape(n));
        }
        let _ = writeln!(h, "<p class=\"muted\">Vector version: <a href=\"{id}.svg\">{id}.svg</a></p>\n</figcaption>\n</figure>");
    }
}

fn probe_tables(h: &mut String, systems: &[System]) {
    for s in systems {
        let Some(p) = recommended_fpir_point(s) else {
            continue;
        };
        if s.probes.is_empty() {
            continue;
        }
        let t = p.threshold;
        let mut strangers: Vec<&ProbeRow> = s
            .probes
            .iter()
            .filter(|r| !r.mated && r.top1_score.is_some())
            .collect();
        strangers.sort_by(|a, b| {
            b.top1_score
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&a.top1_score.unwrap_or(f64::NEG_INFINITY))
        });
        let mut missed: Vec<&ProbeRow> = s
            .probes
            .iter()
            .filter(|r| {
                r.mated && !(r.mate_rank == Some(1) && r.mate_score.is_some_and(|m| m >= t))
            })
            .collect();
        missed.sort_by(|a, b| {
            a.mate_score
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&b.mate_score.unwrap_or(f64::NEG_INFINITY))
        });
        let _ = writeln!(
            h,
            "<h2>Probes: {}</h2>\n<p>At the recommended threshold ({}, cos ≥ {}). Names are the \
             identities of the labels file.</p>",
            escape(&s.name),
            escape(&Unit::Distance.rule(t)),
            f4(t)
        );
        let _ = writeln!(
            h,
            "<h3>Out-of-DB probes most like someone in the DB</h3>\n<table>\n<tr><th class=\"l\">probe identity</th>\
             <th class=\"l\">image</th><th class=\"l\">nearest gallery identity</th><th>cos</th><th>d</th><th class=\"l\">accepted?</th></tr>"
        );
        for r in strangers.iter().take(PROBE_ROWS) {
            let score = r.top1_score.unwrap_or(f64::NEG_INFINITY);
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                escape(&r.identity),
                escape(r.path.as_deref().unwrap_or("–")),
                escape(r.top1_identity.as_deref().unwrap_or("–")),
                f4(score),
                f4(cosine_to_l2(score)),
                if score >= t { "yes: false positive" } else { "no" }
            );
        }
        let _ = writeln!(h, "</table>");
        let _ = writeln!(
            h,
            "<h3>In-DB probes missed ({} of {})</h3>\n<table>\n<tr><th class=\"l\">probe identity</th><th class=\"l\">image</th>\
             <th class=\"l\">nearest gallery identity</th><th>nearest cos</th><th>mate rank</th><th>mate cos</th><th>mate d</th></tr>",
            thousands(missed.len() as u64),
            thousands(s.probes.iter().filter(|r| r.mated).count() as u64)
        );
        for r in missed.iter().take(PROBE_ROWS) {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.identity),
                escape(r.path.as_deref().unwrap_or("–")),
                escape(r.top1_identity.as_deref().unwrap_or("–")),
                r.top1_score.map(f4).unwrap_or_else(|| "–".into()),
                r.mate_rank.map(|k| k.to_string()).unwrap_or_else(|| "–".into()),
                r.mate_score.map(f4).unwrap_or_else(|| "–".into()),
                r.mate_score.map(|m| f4(cosine_to_l2(m))).unwrap_or_else(|| "–".into())
            );
        }
        let _ = writeln!(h, "</table>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_keeps_hangul() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(escape("홍길동"), "홍길동");
    }
}
