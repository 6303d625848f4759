//! `facekit report` end to end: evaluation directories are generated here
//! (Gaussian-like genuine and impostor scores, mated and non-mated probes,
//! K-Face attribute breakdowns) and written with `evaldir`'s writers; the
//! report is checked file by file, chart data against the evaluation
//! tables, and the page in headless Chromium when it is installed.

mod chromium;
mod require;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chacha20::ChaCha8Rng;
use facekit::evaldir::{
    self, cosine_to_l2, EngineInfo, EngineKind, FmrPoint, FpirPoint, GroupBreakdown, GroupRow,
    HistogramRow, Identification, Inputs, OperatingPointRow, ProbeRow, RocRow, ScoreInfo, Summary,
    Verification,
};
use facekit::report::build::{self, Unit};
use facekit::report::chart::{Body, XyPlot};
use facekit::report::{system_names, write_report, Options, System};
use rand::{RngExt, SeedableRng};

// ---------------------------------------------------------------------------
// A realistic evaluation directory.

const BINS: usize = 1 << 16;

fn bin_of(s: f64) -> usize {
    (((s + 1.0) / 2.0 * BINS as f64) as usize).min(BINS - 1)
}

fn bin_low(i: usize) -> f64 {
    -1.0 + 2.0 * i as f64 / BINS as f64
}

/// A score as an engine reports it: an f32 cosine in [-1, 1].
fn normal(rng: &mut ChaCha8Rng, mean: f64, std: f64) -> f64 {
    let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
    (mean + std * z).clamp(-1.0, 1.0) as f32 as f64
}

struct Params {
    seed: u64,
    genuine: usize,
    impostor: usize,
    mated: usize,
    non_mated: usize,
    /// Added to the genuine and mate means: a better model.
    quality: f64,
    synthetic: bool,
}

const SURNAMES: [&str; 10] = ["김", "이", "박", "최", "정", "강", "조", "윤", "장", "임"];
const OUTSIDERS: [&str; 5] = ["한", "오", "서", "신", "권"];
const GIVEN: [&str; 10] = [
    "민준", "서연", "도윤", "하은", "지호", "서윤", "예준", "지우", "시우", "하린",
];

fn histogram_rows(kind: &str, counts: &[u64]) -> Vec<HistogramRow> {
    counts
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c > 0)
        .map(|(i, &c)| HistogramRow {
            kind: kind.into(),
            bin_low: bin_low(i),
            bin_high: bin_low(i + 1),
            count: c,
        })
        .collect()
}

fn mean_std(sum: f64, sum_sq: f64, n: usize) -> (f64, f64) {
    let mean = sum / n as f64;
    (mean, (sum_sq / n as f64 - mean * mean).max(0.0).sqrt())
}

/// The exact step curve of exact genuine scores and binned impostor scores
/// (each at its bin's lower edge), highest threshold first.
fn roc_rows(genuine: &[f64], impostor_hist: &[u64]) -> Vec<RocRow> {
    let (g_total, i_total) = (genuine.len() as u64, impostor_hist.iter().sum::<u64>());
    let mut gen = genuine.to_vec();
    gen.sort_by(|a, b| b.total_cmp(a));
    let mut values: Vec<f64> = gen.clone();
    values.extend(
        impostor_hist
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, _)| bin_low(i)),
    );
    values.sort_by(|a, b| b.total_cmp(a));
    values.dedup();
    let mut rows = Vec::with_capacity(values.len());
    let (mut gi, mut bin, mut gen_ge, mut imp_ge) = (0usize, BINS, 0u64, 0u64);
    for t in values {
        while gi < gen.len() && gen[gi] >= t {
            gen_ge += 1;
            gi += 1;
        }
        while bin > 0 && bin_low(bin - 1) >= t {
            bin -= 1;
            imp_ge += impostor_hist[bin];
        }
        rows.push(RocRow {
            threshold: t,
            threshold_l2: cosine_to_l2(t),
            fmr: imp_ge as f64 / i_total as f64,
            fnmr: (g_total - gen_ge) as f64 / g_total as f64,
            tar: gen_ge as f64 / g_total as f64,
            false_matches: imp_ge,
            false_non_matches: g_total - gen_ge,
        });
    }
    rows
}

fn wald(p: f64, n: u64) -> [f64; 2] {
    let half = 1.96 * (p * (1.0 - p) / n.max(1) as f64).sqrt();
    [(p - half).max(0.0), (p + half).min(1.0)]
}

/// Writes an EVAL_DIR as `facekit evaluate` would, and returns its summary.
fn make_eval_dir(dir: &Path, p: &Params) -> Summary {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);

    // Verification: exact genuine scores, binned impostor scores.
    let genuine: Vec<f64> = (0..p.genuine)
        .map(|_| normal(&mut rng, 0.55 + p.quality, 0.12))
        .collect();
    let mut impostor_hist = vec![0u64; BINS];
    let (mut is, mut iss) = (0.0, 0.0);
    for _ in 0..p.impostor {
        let s = normal(&mut rng, 0.02, 0.085);
        impostor_hist[bin_of(s)] += 1;
        is += s;
        iss += s * s;
    }
    let mut gen_hist = vec![0u64; BINS];
    for &s in &genuine {
        gen_hist[bin_of(s)] += 1;
    }
    let roc = roc_rows(&genuine, &impostor_hist);
    let mut ascending = roc.clone();
    ascending.sort_by(|a, b| a.threshold.total_cmp(&b.threshold));
    let fmr_points: Vec<FmrPoint> = [1e-2, 1e-3, 1e-4, 1e-5]
        .into_iter()
        .filter_map(|target| {
            let r = ascending.iter().find(|r| r.fmr <= target)?;
            Some(FmrPoint {
                fmr_target: target,
                threshold: r.threshold,
                threshold_l2: r.threshold_l2,
                fmr: r.fmr,
                fnmr: r.fnmr,
                false_matches: r.false_matches,
                false_non_matches: r.false_non_matches,
                fnmr_ci95: Some(wald(r.fnmr, p.genuine as u64)),
                fmr_ci95: Some(wald(r.fmr, p.impostor as u64)),
                warning: (target * (p.impostor as f64) < 10.0)
                    .then(|| "fewer than 10 false matches expected at this target".to_string()),
                exact: false,
            })
        })
        .collect();
    let eer_row = ascending
        .iter()
        .find(|r| r.fnmr >= r.fmr)
        .unwrap_or(&ascending[0]);
    let (gs, gss) = genuine
        .iter()
        .fold((0.0, 0.0), |(a, b), s| (a + s, b + s * s));
    let (gm, gsd) = mean_std(gs, gss, p.genuine);
    let (im, isd) = mean_std(is, iss, p.impostor);
    let mut by_fmr = roc.clone();
    by_fmr.sort_by(|a, b| a.fmr.total_cmp(&b.fmr));
    let auc = by_fmr
        .windows(2)
        .map(|w| (w[1].fmr - w[0].fmr) * (w[1].tar + w[0].tar) / 2.0)
        .sum::<f64>();
    let verification = Verification {
        genuine_count: p.genuine as u64,
        impostor_count: p.impostor as u64,
        auc,
        eer: (eer_row.fmr + eer_row.fnmr) / 2.0,
        eer_low: eer_row.fmr.min(eer_row.fnmr),
        eer_high: eer_row.fmr.max(eer_row.fnmr),
        eer_threshold: eer_row.threshold,
        eer_threshold_l2: eer_row.threshold_l2,
        eer_definition: "midpoint of FMR and FNMR where they first cross".into(),
        d_prime: (gm - im).abs() / ((gsd * gsd + isd * isd) / 2.0).sqrt(),
        genuine_mean: gm,
        genuine_std: gsd,
        impostor_mean: im,
        impostor_std: isd,
        operating_points: fmr_points.clone(),
        kfold_accuracy: None,
        auc_exact: false,
        eer_exact: false,
    };

    // Open-set search: 100 enrolled people, strangers from other families.
    let gallery: Vec<String> = SURNAMES
        .iter()
        .flat_map(|s| GIVEN.iter().map(move |g| format!("{s}{g}")))
        .collect();
    let outsiders: Vec<String> = OUTSIDERS
        .iter()
        .flat_map(|s| GIVEN.iter().map(move |g| format!("{s}{g}")))
        .collect();
    let mut probes = Vec::new();
    for i in 0..p.mated {
        let identity = gallery[i % gallery.len()].clone();
        let mate = normal(&mut rng, 0.5 + p.quality, 0.13);
        let other = normal(&mut rng, 0.3, 0.05);
        let (rank, top1, top1_identity) = if mate >= other {
            (1, mate, identity.clone())
        } else {
            (
                2 + rng.random_range(0..4u64),
                other,
                gallery[(i + 7) % gallery.len()].clone(),
            )
        };
        probes.push(ProbeRow {
            probe: probes.len() as u64,
            identity,
            path: Some(format!(
                "{:08}/S001/L{}/E0{}/C{}.jpg",
                19062400 + i % 100,
                1 + i % 6,
                1 + i % 3,
                4 + i % 7
            )),
            mated: true,
            top1_identity: Some(top1_identity),
            top1_score: Some(top1),
            top1_distance: Some(cosine_to_l2(top1)),
            mate_rank: Some(rank),
            mate_score: Some(mate),
            decision: String::new(),
            decision_threshold: 0.0,
        });
    }
    for i in 0..p.non_mated {
        let top1 = normal(&mut rng, 0.3, 0.06);
        probes.push(ProbeRow {
            probe: probes.len() as u64,
            identity: outsiders[i % outsiders.len()].clone(),
            path: Some(format!("{:08}/S001/L1/E01/C7.jpg", 19070000 + i % 50)),
            mated: false,
            top1_identity: Some(gallery[(i * 13) % gallery.len()].clone()),
            top1_score: Some(top1),
            top1_distance: Some(cosine_to_l2(top1)),
            mate_rank: None,
            mate_score: None,
            decision: String::new(),
            decision_threshold: 0.0,
        });
    }
    let mut non_mated_desc: Vec<f64> = probes
        .iter()
        .filter(|r| !r.mated)
        .filter_map(|r| r.top1_score)
        .collect();
    non_mated_desc.sort_by(|a, b| b.total_cmp(a));
    let fnir_at = |t: f64| {
        probes
            .iter()
            .filter(|r| r.mated && !(r.mate_rank == Some(1) && r.mate_score.unwrap() >= t))
            .count() as f64
            / p.mated as f64
    };
    let fpir_at =
        |t: f64| non_mated_desc.iter().filter(|&&s| s >= t).count() as f64 / p.non_mated as f64;
    let fpir_points: Vec<FpirPoint> = [1e-1, 1e-2, 1e-3]
        .into_iter()
        .map(|target| {
            let allowed = (target * p.non_mated as f64).floor() as usize;
            // The lowest threshold with at most `allowed` strangers at or above it.
            let t = match non_mated_desc.get(allowed) {
                None => *non_mated_desc.last().unwrap(),
                Some(&s) => non_mated_desc[..allowed]
                    .iter()
                    .rev()
                    .copied()
                    .find(|&v| v > s)
                    .unwrap_or(s + 1e-6),
            };
            let fnir = fnir_at(t);
            FpirPoint {
                fpir_target: target,
                threshold: t,
                threshold_l2: cosine_to_l2(t),
                fpir: fpir_at(t),
                fnir,
                fnir_ci95: Some(wald(fnir, p.mated as u64)),
                warning: None,
            }
        })
        .collect();
    let recommended = fpir_points[1].threshold;
    for r in &mut probes {
        r.decision_threshold = recommended;
        r.decision = match (&r.top1_identity, r.top1_score) {
            (Some(id), Some(s)) if s >= recommended => id.clone(),
            _ => "unknown".into(),
        };
    }
    let cmc: Vec<f64> = (1..=20u64)
        .map(|k| {
            probes
                .iter()
                .filter(|r| r.mated && r.mate_rank.unwrap() <= k)
                .count() as f64
                / p.mated as f64
        })
        .collect();
    let identification = Identification {
        gallery_count: gallery.len() as u64 * 3,
        gallery_identities: gallery.len() as u64,
        mated_count: p.mated as u64,
        non_mated_count: p.non_mated as u64,
        rank1: cmc[0],
        cmc,
        operating_points: fpir_points.clone(),
        fnir_rank: 1,
    };
    let mut top1_mated = vec![0u64; BINS];
    let mut top1_non_mated = vec![0u64; BINS];
    for r in &probes {
        let h = if r.mated {
            &mut top1_mated
        } else {
            &mut top1_non_mated
        };
        h[bin_of(r.top1_score.unwrap())] += 1;
    }

    // K-Face conditions at the global thresholds of FMR 1e-2 and 1e-3.
    let mut groups = vec![
        GroupBreakdown {
            columns: vec!["camera".into(), "light".into()],
            rows: vec![],
        },
        GroupBreakdown {
            columns: vec!["accessory".into()],
            rows: vec![],
        },
        GroupBreakdown {
            columns: vec!["expression".into()],
            rows: vec![],
        },
    ];
    for op in fmr_points.iter().filter(|o| o.fmr_target >= 1e-3) {
        let row = |values: Vec<String>, factor: f64| GroupRow {
            values,
            fmr_target: op.fmr_target,
            threshold: op.threshold,
            genuine_count: 400,
            impostor_count: 40_000,
            fnmr: (op.fnmr * factor).min(1.0),
            fmr: op.fmr,
        };
        for c in 4..=10 {
            for l in 1..=10 {
                let factor = (1.0 + (c as f64 - 7.0).abs() * 0.5) * (1.0 + (l - 1) as f64 * 0.3);
                groups[0]
                    .rows
                    .push(row(vec![format!("C{c}"), format!("L{l}")], factor));
            }
        }
        for (k, s) in ["S001", "S002", "S003", "S004", "S005", "S006"]
            .into_iter()
            .enumerate()
        {
            groups[1]
                .rows
                .push(row(vec![s.into()], 1.0 + k as f64 * 0.4));
        }
        for (k, e) in ["E01", "E02", "E03"].into_iter().enumerate() {
            groups[2]
                .rows
                .push(row(vec![e.into()], 1.0 + k as f64 * 0.2));
        }
    }

    let summary = Summary {
        schema: evaldir::SCHEMA,
        facekit_version: facekit::VERSION.into(),
        engine: EngineInfo {
            kind: EngineKind::Cpu,
            description: "cpu (2 threads)".into(),
            precision: "fp32".into(),
            fallback_reason: None,
            max_abs_score_error: None,
            precision_note: None,
        },
        inputs: Inputs {
            embeddings: Some("embeddings.npy".into()),
            labels: Some("labels.csv".into()),
            scores: None,
            pairs: None,
            protocol: "probe-gallery".into(),
            rows: (p.mated + p.non_mated + 300) as u64,
            dim: Some(512),
            identities: 150,
        },
        score: ScoreInfo {
            kind: "cosine".into(),
            decision: evaldir::DECISION.into(),
            distance: "threshold_l2 = sqrt(2 - 2 * threshold)".into(),
            resolution: 2.0 / BINS as f64,
            exact_from: Some(-1.0),
            binned: Vec::new(),
            exact_budget: None,
        },
        verification: Some(verification),
        identification: Some(identification),
        groups,
        synthetic_note: p
            .synthetic
            .then(|| "Scores drawn by the report test generator.".to_string()),
        shards: None,
    };
    let mut ops: Vec<OperatingPointRow> = fmr_points
        .iter()
        .map(|o| OperatingPointRow {
            kind: "fmr".into(),
            target: o.fmr_target,
            threshold: o.threshold,
            threshold_l2: o.threshold_l2,
            rate: o.fmr,
            other_rate: o.fnmr,
            other_ci_low: o.fnmr_ci95.map(|c| c[0]),
            other_ci_high: o.fnmr_ci95.map(|c| c[1]),
        })
        .collect();
    ops.extend(fpir_points.iter().map(|o| OperatingPointRow {
        kind: "fpir".into(),
        target: o.fpir_target,
        threshold: o.threshold,
        threshold_l2: o.threshold_l2,
        rate: o.fpir,
        other_rate: o.fnir,
        other_ci_low: o.fnir_ci95.map(|c| c[0]),
        other_ci_high: o.fnir_ci95.map(|c| c[1]),
    }));
    let mut hist = histogram_rows(evaldir::HIST_GENUINE, &gen_hist);
    hist.extend(histogram_rows(evaldir::HIST_IMPOSTOR, &impostor_hist));
    hist.extend(histogram_rows(evaldir::HIST_MATED_TOP1, &top1_mated));
    hist.extend(histogram_rows(
        evaldir::HIST_NON_MATED_TOP1,
        &top1_non_mated,
    ));

    evaldir::write_summary(dir, &summary).unwrap();
    evaldir::write_csv(&dir.join(evaldir::ROC_CSV), &roc).unwrap();
    evaldir::write_csv(&dir.join(evaldir::OPERATING_POINTS_CSV), &ops).unwrap();
    evaldir::write_csv(&dir.join(evaldir::PROBES_CSV), &probes).unwrap();
    evaldir::write_histograms(&dir.join(evaldir::SCORES_PARQUET), &hist).unwrap();
    summary
}

fn small(seed: u64, quality: f64, synthetic: bool) -> Params {
    Params {
        seed,
        genuine: 3_000,
        impostor: 200_000,
        mated: 800,
        non_mated: 600,
        quality,
        synthetic,
    }
}

/// Two systems, "baseline" and "finetuned", loaded as the command does.
fn two_systems(root: &Path) -> Vec<System> {
    let dirs = [root.join("baseline"), root.join("finetuned")];
    make_eval_dir(&dirs[0], &small(1, 0.0, true));
    make_eval_dir(&dirs[1], &small(2, 0.12, false));
    let names = system_names(&dirs);
    dirs.iter()
        .zip(names)
        .map(|(d, n)| System::load(d, n).unwrap())
        .collect()
}

fn xy(chart: &facekit::report::Chart) -> &XyPlot {
    match &chart.body {
        Body::Xy(p) => p,
        other => panic!("{} is not an x-y chart: {other:?}", chart.id),
    }
}

// ---------------------------------------------------------------------------
// Structural checks of the written report.

fn assert_png_drawn(path: &Path, size: (u32, u32)) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let colours: BTreeSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let share = non_white as f64 / (size.0 * size.1) as f64;
    assert!(
        share > 0.02,
        "{}: only {:.2}% of pixels drawn",
        path.display(),
        share * 100.0
    );
    assert!(
        colours.len() > 20,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
}

fn assert_well_formed_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut elements = 0;
    let mut texts = 0;
    let mut root = None;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(e)) | Ok(quick_xml::events::Event::Empty(e)) => {
                elements += 1;
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name == "text" {
                    texts += 1;
                }
                root.get_or_insert(name);
            }
            Ok(_) => {}
            Err(e) => panic!(
                "{}: not well-formed XML at byte {}: {e}",
                path.display(),
                reader.buffer_position()
            ),
        }
    }
    assert_eq!(root.as_deref(), Some("svg"), "{}", path.display());
    assert!(
        elements > 20 && texts > 3,
        "{}: {elements} elements, {texts} texts",
        path.display()
    );
}

/// The `src` and `href` values of the page.
fn references(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').expect("closed attribute");
            refs.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    refs
}

#[test]
fn report_draws_every_chart_and_a_page_that_only_references_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    // FACEKIT_KEEP_REPORT=DIR keeps the report there to look at.
    let root = std::env::var_os("FACEKIT_KEEP_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let systems = two_systems(&root);
    let out = root.join("report");
    let written = write_report(
        &systems,
        &Options {
            user_threshold: Some(0.25),
        },
        &out,
    )
    .unwrap();

    let ids: BTreeSet<&str> = written.charts.iter().map(|c| c.id.as_str()).collect();
    for id in [
        "roc",
        "det",
        "tuning-verification",
        "scores-1",
        "scores-2",
        "open-set-distance-1",
        "open-set-cosine-1",
        "open-set-distance-2",
        "open-set-cosine-2",
        "tuning-identification",
        "cmc",
        "fnmr-camera-light-1",
        "fnmr-camera-light-2",
        "fnmr-accessory",
        "fnmr-expression",
    ] {
        assert!(ids.contains(id), "chart {id} missing from {ids:?}");
    }
    assert_eq!(ids.len(), written.charts.len(), "chart ids are unique");
    for c in &written.charts {
        assert_png_drawn(&out.join(format!("{}.png", c.id)), c.size);
        assert_well_formed_svg(&out.join(format!("{}.svg", c.id)));
    }

    let html = std::fs::read_to_string(&written.index).unwrap();
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "page must be offline"
    );
    let refs = references(&html);
    assert!(
        refs.len() >= 2 * written.charts.len(),
        "every chart is shown and linked"
    );
    for r in &refs {
        assert!(
            !r.starts_with('/') && !r.contains(".."),
            "reference {r} leaves the report"
        );
        assert!(
            out.join(r).is_file(),
            "index.html references {r}, which was not written"
        );
    }
    for c in &written.charts {
        assert!(
            html.contains(&format!("src=\"{}.png\"", c.id)),
            "{} not on the page",
            c.id
        );
    }
    // Korean identity names, both systems' names, the demo banner only for the synthetic one.
    let nearest_stranger = systems[0]
        .probes
        .iter()
        .filter(|p| !p.mated)
        .max_by(|a, b| a.top1_score.unwrap().total_cmp(&b.top1_score.unwrap()))
        .unwrap();
    for name in [
        &nearest_stranger.identity,
        nearest_stranger.top1_identity.as_ref().unwrap(),
    ] {
        assert!(name.chars().any(|c| ('가'..='힣').contains(&c)));
        assert!(
            html.contains(name.as_str()),
            "identity {name} not on the page"
        );
    }
    assert!(html.contains("baseline") && html.contains("finetuned"));
    assert_eq!(html.matches("class=\"banner\"").count(), 1);
    assert!(html.contains("Scores drawn by the report test generator."));
    // The threshold table in both units, with the user's threshold.
    let op = &systems[1].operating_points[0];
    assert!(
        html.contains(&format!("{:.4}", op.threshold))
            && html.contains(&format!("{:.4}", op.threshold_l2))
    );
    assert!(
        html.contains("your threshold") && html.contains(&format!("{:.4}", cosine_to_l2(0.25)))
    );
}

#[test]
fn plotted_operating_points_are_those_of_operating_points_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let systems = two_systems(tmp.path());
    for (i, s) in systems.iter().enumerate() {
        // Read independently of System::load.
        let csv: Vec<OperatingPointRow> =
            evaldir::read_csv(&s.dir.join(evaldir::OPERATING_POINTS_CSV)).unwrap();
        let fmr: Vec<&OperatingPointRow> = csv.iter().filter(|r| r.kind == "fmr").collect();
        let fpir: Vec<&OperatingPointRow> = csv.iter().filter(|r| r.kind == "fpir").collect();
        assert!(fmr.len() >= 3 && fpir.len() == 3);
        let colour = facekit::report::chart::palette(i);

        let roc = build::roc_chart(&systems).unwrap();
        let roc = xy(&roc);
        let marks: Vec<(f64, f64)> = roc
            .markers
            .iter()
            .filter(|m| m.color == colour)
            .map(|m| (m.x, m.y))
            .collect();
        let expected: Vec<(f64, f64)> = fmr.iter().map(|r| (r.rate, 1.0 - r.other_rate)).collect();
        assert_eq!(marks, expected, "ROC markers of {}", s.name);
        // The drawn curve passes exactly through each marked point.
        let curve = &roc.series[i].points;
        assert!(
            curve.len() < 4_000,
            "ROC of {} drawn with {} points",
            s.name,
            curve.len()
        );
        for m in expected.iter().filter(|m| m.0 > 0.0) {
            assert!(
                curve.contains(m),
                "ROC of {} misses its operating point {m:?}",
                s.name
            );
        }

        let det = build::det_chart(&systems).unwrap();
        let marks: Vec<(f64, f64)> = xy(&det)
            .markers
            .iter()
            .filter(|m| m.color == colour && m.tag != "EER")
            .map(|m| (m.x, m.y))
            .collect();
        assert_eq!(
            marks,
            fmr.iter()
                .map(|r| (r.rate, r.other_rate))
                .collect::<Vec<_>>()
        );

        let tuning = build::verification_tuning_chart(&systems, None).unwrap();
        let tuning = xy(&tuning);
        for r in &fmr {
            assert!(tuning
                .markers
                .iter()
                .any(|m| m.x == r.threshold && m.y == r.rate));
            assert!(tuning
                .markers
                .iter()
                .any(|m| m.x == r.threshold && m.y == r.other_rate));
        }

        // The recommended open-set threshold: the FPIR 1e-2 row, in both units.
        let rec = fpir.iter().find(|r| r.target == 1e-2).unwrap();
        let dist = build::open_set_chart(s, i, Unit::Distance, None).unwrap();
        let line = xy(&dist)
            .vlines
            .iter()
            .find(|v| v.label.starts_with("recommended"))
            .unwrap();
        assert!(
            (line.x - rec.threshold_l2).abs() < 1e-12,
            "{} vs {}",
            line.x,
            rec.threshold_l2
        );
        assert!(dist.notes[0].contains(&format!("d ≤ {:.4}", rec.threshold_l2)));
        let cos = build::open_set_chart(s, i, Unit::Cosine, None).unwrap();
        let line = xy(&cos)
            .vlines
            .iter()
            .find(|v| v.label.starts_with("recommended"))
            .unwrap();
        assert_eq!(line.x, rec.threshold);

        let ident = build::identification_tuning_chart(&systems, None).unwrap();
        for r in &fpir {
            assert!(xy(&ident)
                .markers
                .iter()
                .any(|m| m.x == r.threshold && m.y == r.rate));
            assert!(xy(&ident)
                .markers
                .iter()
                .any(|m| m.x == r.threshold && m.y == r.other_rate));
        }
    }
}

#[test]
fn open_set_rates_at_any_threshold_count_the_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let systems = two_systems(tmp.path());
    let s = &systems[0];
    let probes: Vec<ProbeRow> = evaldir::read_csv(&s.dir.join(evaldir::PROBES_CSV)).unwrap();
    let curve = s.open_set();
    for t in [-0.2, 0.2, 0.31, 0.4, 0.55, 0.9] {
        let r = curve.at(t);
        let fp = probes
            .iter()
            .filter(|p| !p.mated && p.top1_score.unwrap() >= t)
            .count() as u64;
        let miss = probes
            .iter()
            .filter(|p| p.mated && !(p.mate_rank == Some(1) && p.mate_score.unwrap() >= t))
            .count() as u64;
        assert_eq!((r.false_positives, r.misses), (fp, miss), "at {t}");
        assert_eq!((r.non_mated, r.mated), (600, 800));
    }
    // The curve's rates agree with the evaluation's own at its thresholds.
    for p in &s.summary.identification.as_ref().unwrap().operating_points {
        let r = curve.at(p.threshold);
        assert_eq!((r.fpir(), r.fnir()), (Some(p.fpir), Some(p.fnir)));
    }
    // Below the crossing (at the next lower score) FPIR still exceeds FNIR.
    let c = curve.crossing().unwrap();
    let lower = probes
        .iter()
        .filter_map(|p| {
            if p.mated {
                p.mate_score.filter(|_| p.mate_rank == Some(1))
            } else {
                p.top1_score
            }
        })
        .filter(|&v| v < c.threshold)
        .fold(f64::NEG_INFINITY, f64::max);
    let below = curve.at(lower);
    assert!(c.fpir() <= c.fnir() && below.fpir() > below.fnir());

    // The user's threshold: a line on the chart and its cost in the notes.
    let chart = build::open_set_chart(s, 0, Unit::Distance, Some(0.25)).unwrap();
    let line = xy(&chart)
        .vlines
        .iter()
        .find(|v| v.label.starts_with("your threshold"))
        .unwrap();
    assert_eq!(line.x, cosine_to_l2(0.25));
    let r = curve.at(0.25);
    let note = chart
        .notes
        .iter()
        .find(|n| n.starts_with("Your threshold"))
        .unwrap();
    assert!(
        note.contains(&format!("{} of 600 out-of-DB", r.false_positives)),
        "{note}"
    );
}

#[test]
fn breakdowns_use_the_global_threshold_nearest_fmr_1e3() {
    let tmp = tempfile::tempdir().unwrap();
    let systems = two_systems(tmp.path());
    let charts = build::group_charts(&systems);
    let heat = charts
        .iter()
        .find(|c| c.id == "fnmr-camera-light-1")
        .unwrap();
    let Body::Heatmap(map) = &heat.body else {
        panic!("not a heatmap")
    };
    assert_eq!(
        map.y_categories,
        ["C4", "C5", "C6", "C7", "C8", "C9", "C10"]
    );
    assert_eq!(
        map.x_categories,
        ["L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8", "L9", "L10"]
    );
    let rows = &systems[0].summary.groups[0].rows;
    let want = rows
        .iter()
        .find(|r| r.fmr_target == 1e-3 && r.values == ["C10", "L10"])
        .unwrap();
    assert_eq!(map.cells[6][9], Some(want.fnmr));
    let bars = charts.iter().find(|c| c.id == "fnmr-accessory").unwrap();
    let Body::Bars(b) = &bars.body else {
        panic!("not bars")
    };
    assert_eq!(b.groups.len(), 2);
    assert_eq!(b.categories.len(), 6);
}

#[test]
fn directories_with_only_verification_or_only_identification_still_report() {
    let tmp = tempfile::tempdir().unwrap();
    let (verif, ident) = (
        tmp.path().join("pairs-only"),
        tmp.path().join("search-only"),
    );
    let mut summary = make_eval_dir(&verif, &small(4, 0.0, false));
    summary.identification = None;
    evaldir::write_summary(&verif, &summary).unwrap();
    std::fs::remove_file(verif.join(evaldir::PROBES_CSV)).unwrap();
    let mut summary = make_eval_dir(&ident, &small(5, 0.0, false));
    summary.verification = None;
    summary.groups.clear();
    evaldir::write_summary(&ident, &summary).unwrap();
    std::fs::remove_file(ident.join(evaldir::ROC_CSV)).unwrap();

    let systems: Vec<System> = [&verif, &ident]
        .iter()
        .map(|d| System::load(d, d.file_name().unwrap().to_string_lossy().into_owned()).unwrap())
        .collect();
    // examples.csv: the explorer's faces (written by `evaluate` since the explorer).
    assert_eq!(
        systems[1].missing,
        [evaldir::ROC_CSV, evaldir::EXAMPLES_CSV]
    );
    let out = tmp.path().join("report");
    let written = write_report(
        &systems,
        &Options {
            user_threshold: Some(0.4),
        },
        &out,
    )
    .unwrap();
    let ids: Vec<&str> = written.charts.iter().map(|c| c.id.as_str()).collect();
    assert!(ids.contains(&"roc") && ids.contains(&"scores-1") && !ids.contains(&"scores-2"));
    assert!(ids.contains(&"open-set-distance-2") && !ids.contains(&"open-set-distance-1"));
    assert!(ids.contains(&"tuning-identification") && ids.contains(&"fnmr-camera-light-1"));
    let roc = build::roc_chart(&systems).unwrap();
    assert_eq!(
        xy(&roc).series.len(),
        1,
        "only the system with a ROC is drawn"
    );
    for c in &written.charts {
        assert_png_drawn(&out.join(format!("{}.png", c.id)), c.size);
    }
}

#[test]
fn the_same_inputs_give_byte_identical_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let systems = two_systems(tmp.path());
    let options = Options {
        user_threshold: Some(0.3),
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let written = write_report(&systems, &options, &a).unwrap();
    write_report(&systems, &options, &b).unwrap();
    let mut files = vec!["index.html".to_string()];
    for c in &written.charts {
        files.push(format!("{}.png", c.id));
        files.push(format!("{}.svg", c.id));
    }
    for f in files {
        let (x, y) = (
            std::fs::read(a.join(&f)).unwrap(),
            std::fs::read(b.join(&f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two runs");
    }
}

#[test]
fn the_command_writes_the_report_and_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("eval");
    make_eval_dir(&dir, &small(3, 0.05, false));
    let out = tmp.path().join("out");
    let bin = env!("CARGO_BIN_EXE_facekit");
    let run = Command::new(bin)
        .args([
            "report",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threshold",
            "0.3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(out.join("index.html").is_file());
    let rec = &json["systems"][0]["recommended"];
    assert_eq!(rec["fpir_target"].as_f64(), Some(1e-2));

    let bad = Command::new(bin)
        .args([
            "report",
            dir.to_str().unwrap(),
            "--out",
            "x",
            "--threshold",
            "1.5",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--threshold 1.5"));
    let missing = tmp.path().join("nothing-here");
    let bad = Command::new(bin)
        .args([
            "report",
            missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("summary.json"));
}

// ---------------------------------------------------------------------------
// The page in a browser.

#[test]
fn the_page_renders_in_headless_chromium() {
    let Some(browser) = chromium::find() else {
        require::skip(
            "chromium",
            "the_page_renders_in_headless_chromium",
            "chromium is not installed (apt-get install chromium)",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let systems = two_systems(tmp.path());
    let out = tmp.path().join("report");
    let written = write_report(&systems, &Options::default(), &out).unwrap();
    let shot = tmp.path().join("shot.png");
    chromium::run(
        &browser,
        tmp.path(),
        &format!("file://{}", written.index.display()),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,2000".into(),
        ],
    );
    let img = image::open(&shot)
        .unwrap_or_else(|e| panic!("no screenshot {}: {e}", shot.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), (1200, 2000));
    let colours: BTreeSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(
        colours.len() > 50,
        "screenshot has {} colours",
        colours.len()
    );
    assert!(
        non_white > 1200 * 2000 / 50,
        "screenshot nearly blank: {non_white} drawn pixels"
    );
}

// ---------------------------------------------------------------------------
// Speed: `cargo test --release --test report -- --ignored --nocapture`.

#[test]
#[ignore]
fn bench_report_over_ten_million_scores() {
    let tmp = tempfile::tempdir().unwrap();
    // FACEKIT_KEEP_REPORT=DIR keeps the evaluation directory, to time the command on it.
    let root = std::env::var_os("FACEKIT_KEEP_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let dir = root.join("eval");
    let p = Params {
        seed: 9,
        genuine: 100_000,
        impostor: 10_000_000,
        mated: 20_000,
        non_mated: 20_000,
        quality: 0.0,
        synthetic: true,
    };
    make_eval_dir(&dir, &p);
    let roc_rows = evaldir::read_csv::<RocRow>(&dir.join(evaldir::ROC_CSV))
        .unwrap()
        .len();
    let start = Instant::now();
    let system = System::load(&dir, "eval".into()).unwrap();
    let loaded = start.elapsed();
    let written = write_report(
        &[system],
        &Options {
            user_threshold: Some(0.3),
        },
        &root.join("report"),
    )
    .unwrap();
    let total = start.elapsed();
    let points: usize = written
        .charts
        .iter()
        .filter_map(|c| match &c.body {
            Body::Xy(p) => Some(p.series.iter().map(|s| s.points.len()).sum::<usize>()),
            _ => None,
        })
        .sum();
    println!(
        "report over {} genuine + {} impostor scores ({roc_rows} roc.csv rows, {} probes): \
         load {:.3} s, total {:.3} s, {} charts, {points} curve points drawn",
        p.genuine,
        p.impostor,
        p.mated + p.non_mated,
        loaded.as_secs_f64(),
        total.as_secs_f64(),
        written.charts.len()
    );
}
