//! The report's threshold explorer, end to end: a small embedding set with
//! face crops (and a planted stranger close to one gallery face) goes
//! through `facekit evaluate` and `facekit report`; headless Chromium opens
//! the page at several URL fragments, and every live number it renders is
//! recomputed here from the EVAL_DIR files at the threshold the page shows.

mod chromium;
mod require;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chacha20::ChaCha8Rng;
use facekit::evaldir::{
    self, cosine_to_l2, ExampleRow, GroupScoreRow, HistogramRow, ProbeRow, EXAMPLE_GENUINE,
    EXAMPLE_IMPOSTOR, EXAMPLE_NON_MATED, HIST_GENUINE, HIST_IMPOSTOR,
};
use facekit::metrics::bootstrap::clopper_pearson;
use facekit::report::explorer::PAGE_FACES;
use facekit::text::percent;
use rand::{RngExt, SeedableRng};

const DIM: usize = 32;
const PLANTED: &str = "planted-stranger";
/// The gallery identity the planted stranger is drawn next to.
const VICTIM: &str = "g3";

fn facekit(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "facekit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn near(rng: &mut ChaCha8Rng, centre: &[f32], noise: f32) -> Vec<f32> {
    unit(
        centre
            .iter()
            .map(|c| c + noise * rng.random_range(-1.0..1.0f32))
            .collect(),
    )
}

/// Labels, embeddings and a crop per row in `dir`: 8 enrolled people with
/// one gallery image and 6 probes each (cameras C4/C7, lights L1/L2), 10
/// strangers with 2 probes each, and the planted stranger.
fn fixture(dir: &Path) {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let mut rows: Vec<(String, &str, Vec<f32>)> = Vec::new();
    let centre =
        |rng: &mut ChaCha8Rng| unit((0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect());
    let mut victim = Vec::new();
    for g in 0..8 {
        let c = centre(&mut rng);
        rows.push((format!("g{g}"), "gallery", near(&mut rng, &c, 0.15)));
        for k in 0..6 {
            // Later probes are harder: more noise.
            rows.push((
                format!("g{g}"),
                "probe",
                near(&mut rng, &c, 0.2 + 0.1 * k as f32),
            ));
        }
        if format!("g{g}") == VICTIM {
            victim = rows[rows.len() - 7].2.clone();
        }
    }
    for s in 0..10 {
        let c = centre(&mut rng);
        for _ in 0..2 {
            rows.push((format!("s{s}"), "probe", near(&mut rng, &c, 0.3)));
        }
    }
    rows.push((PLANTED.into(), "probe", near(&mut rng, &victim, 0.02)));

    let crops = dir.join("crops");
    std::fs::create_dir_all(&crops).unwrap();
    let mut labels = String::from("identity,role,path,camera,light\n");
    let mut data = Vec::new();
    for (i, (identity, role, e)) in rows.iter().enumerate() {
        let path = format!("crops/{i}.png");
        let shade = (i * 37 % 200) as u8;
        image::RgbImage::from_fn(112, 112, |x, y| {
            image::Rgb([shade, (x as u8).wrapping_mul(2), (y as u8).wrapping_mul(2)])
        })
        .save(dir.join(&path))
        .unwrap();
        let camera = if i % 2 == 0 { "C4" } else { "C7" };
        let light = if i % 3 == 0 { "L1" } else { "L2" };
        labels.push_str(&format!("{identity},{role},{path},{camera},{light}\n"));
        data.extend_from_slice(e);
    }
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
    facekit::evalinput::npy::write_f32(&dir.join("embeddings.npy"), rows.len(), DIM, &data)
        .unwrap();
}

/// The report of the fixture, and its EVAL_DIR.
fn report(root: &Path) -> (PathBuf, PathBuf) {
    fixture(root);
    let eval = root.join("eval");
    let out = root.join("report");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    facekit(&[
        "evaluate",
        "--embeddings",
        &s(&root.join("embeddings.npy")),
        "--labels",
        &s(&root.join("labels.csv")),
        "--group-by",
        "camera+light",
        "--fpir",
        "0.1",
        "--out",
        &s(&eval),
        "--quiet",
    ]);
    facekit(&["report", &s(&eval), "--out", &s(&out), "--quiet"]);
    (eval, out.join("index.html"))
}

/// The page at `fragment` through Chromium: its stdout and stderr.
fn chrome(
    browser: &Path,
    work: &Path,
    page: &Path,
    fragment: &str,
    extra: &[String],
) -> (String, String) {
    let mut flags = vec!["--window-size=1200,6000".to_string()];
    flags.extend(extra.iter().cloned());
    chromium::run(
        browser,
        work,
        &format!("file://{}#{fragment}", page.display()),
        &flags,
    )
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The attributes of every start tag with `data-metric="name"`, in order.
fn tags(dom: &str, name: &str) -> Vec<BTreeMap<String, String>> {
    let needle = format!("data-metric=\"{name}\"");
    let mut found = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find(&needle) {
        let open = rest[..at].rfind('<').unwrap();
        let close = at + rest[at..].find('>').unwrap();
        let tag = &rest[open..close];
        let mut attrs = BTreeMap::new();
        let mut t = tag;
        while let Some(eq) = t.find("=\"") {
            let key = t[..eq].rsplit(' ').next().unwrap().to_string();
            let end = eq + 2 + t[eq + 2..].find('"').unwrap();
            attrs.insert(key, unescape(&t[eq + 2..end]));
            t = &t[end + 1..];
        }
        let text_end = rest[close..].find('<').map_or(close, |e| close + e);
        attrs.insert("text".into(), unescape(&rest[close + 1..text_end]));
        found.push(attrs);
        rest = &rest[close..];
    }
    found
}

fn value(dom: &str, name: &str) -> f64 {
    let all = tags(dom, name);
    assert_eq!(all.len(), 1, "{name}: {} elements", all.len());
    all[0]["data-value"].parse().unwrap()
}

/// What the EVAL_DIR says at threshold `t`.
struct Expected {
    counts: [u64; 4],
    totals: [u64; 4],
}

fn expected(eval: &Path, t: f64) -> Expected {
    let hist: Vec<HistogramRow> =
        evaldir::read_histograms(&eval.join(evaldir::SCORES_PARQUET)).unwrap();
    let sum = |kind: &str, keep: &dyn Fn(f64) -> bool| -> u64 {
        hist.iter()
            .filter(|r| r.kind == kind && keep(r.bin_low))
            .map(|r| r.count)
            .sum()
    };
    let probes: Vec<ProbeRow> = evaldir::read_csv(&eval.join(evaldir::PROBES_CSV)).unwrap();
    let non_mated: Vec<&ProbeRow> = probes.iter().filter(|p| !p.mated).collect();
    let mated: Vec<&ProbeRow> = probes.iter().filter(|p| p.mated).collect();
    Expected {
        counts: [
            sum(HIST_IMPOSTOR, &|low| low >= t),
            sum(HIST_GENUINE, &|low| low < t),
            non_mated
                .iter()
                .filter(|p| p.top1_score.is_some_and(|s| s >= t))
                .count() as u64,
            mated
                .iter()
                .filter(|p| !(p.mate_rank == Some(1) && p.mate_score.is_some_and(|s| s >= t)))
                .count() as u64,
        ],
        totals: [
            sum(HIST_IMPOSTOR, &|_| true),
            sum(HIST_GENUINE, &|_| true),
            non_mated.len() as u64,
            mated.len() as u64,
        ],
    }
}

/// Every live number of `dom` against the EVAL_DIR at the page's threshold;
/// returns that threshold.
fn check_page(dom: &str, eval: &Path) -> f64 {
    let t = value(dom, "threshold");
    assert!((value(dom, "distance") - cosine_to_l2(t)).abs() < 1e-12);
    let want = expected(eval, t);
    for (k, name) in ["fmr", "fnmr", "fpir", "fnir"].iter().enumerate() {
        let count = value(dom, &format!("{name}_count")) as u64;
        let total = value(dom, &format!("{name}_total")) as u64;
        assert_eq!(
            (count, total),
            (want.counts[k], want.totals[k]),
            "{name} at {t}"
        );
        let rate = count as f64 / total as f64;
        let shown = &tags(dom, name)[0];
        assert_eq!(shown["text"], percent(rate), "{name} at {t}");
        let ci = &tags(dom, &format!("{name}_ci95"))[0];
        let [lo, hi] = clopper_pearson(count, total, 0.95);
        let low: f64 = ci["data-low"].parse().unwrap();
        let high: f64 = ci["data-high"].parse().unwrap();
        assert!(
            (low - lo).abs() <= 1e-5 * lo.max(1e-12) + 1e-15,
            "{name} low {low} vs {lo}"
        );
        assert!((high - hi).abs() <= 1e-5 * hi, "{name} high {high} vs {hi}");
    }
    // The per-condition FNMR, recomputed from group_scores.csv.
    let groups: Vec<GroupScoreRow> =
        evaldir::read_csv(&eval.join(evaldir::GROUP_SCORES_CSV)).unwrap();
    let cells = tags(dom, "group_fnmr");
    assert_eq!(cells.len(), 4, "camera × light cells");
    for cell in cells {
        let values: Vec<String> = serde_json::from_str(&cell["data-values"]).unwrap();
        let of_cell = || {
            groups.iter().filter(|r| {
                r.columns == "camera+light"
                    && serde_json::from_str::<Vec<String>>(&r.values).unwrap() == values
            })
        };
        let total: u64 = of_cell().map(|r| r.count).sum();
        let below: u64 = of_cell().filter(|r| r.bin_low < t).map(|r| r.count).sum();
        assert_eq!(cell["data-total"].parse::<u64>().unwrap(), total);
        assert_eq!(
            cell["data-count"].parse::<u64>().unwrap(),
            below,
            "{values:?} at {t}"
        );
        assert_eq!(cell["text"], percent(below as f64 / total as f64));
    }
    let command = &tags(dom, "command")[0];
    assert!(
        command["text"].starts_with("facekit search --gallery ")
            && command["text"].ends_with(&format!(" --threshold {}", command["data-value"])),
        "{}",
        command["text"]
    );
    assert_eq!(command["data-value"].parse::<f64>().unwrap(), t);
    t
}

#[test]
fn explorer_numbers_equal_the_eval_dir_in_chromium() {
    let Some(browser) = chromium::find() else {
        require::skip(
            "chromium",
            "explorer_numbers_equal_the_eval_dir_in_chromium",
            "chromium is not installed (apt-get install chromium)",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (eval, page) = report(tmp.path());
    let work = tmp.path();

    // The grid the page embeds: thresholds and their counts.
    let html = std::fs::read_to_string(&page).unwrap();
    let json = html
        .split_once("id=\"fx-data\">")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .unwrap()
        .0
        .replace("<\\/", "</");
    let data: serde_json::Value = serde_json::from_str(&json).unwrap();
    let grid: Vec<(f64, Vec<u64>)> = data[0]["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .zip(data[0]["counts"].as_array().unwrap())
        .map(|(t, c)| {
            let counts = c
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect();
            (t.as_f64().unwrap(), counts)
        })
        .collect();
    assert!(grid.windows(2).all(|w| w[0].0 < w[1].0), "ascending grid");

    let mut seen = Vec::new();
    let mut pairs_shown = 0;
    for fragment in [
        "threshold=0.35",
        "distance=1.2",
        "fmr=1e-2",
        "fpir=0.1",
        "threshold=0.9",
    ] {
        let (dom, log) = chrome(&browser, work, &page, fragment, &["--dump-dom".into()]);
        assert!(
            !log.contains("Uncaught") && !log.contains(":CONSOLE"),
            "{fragment}: console messages:\n{log}"
        );
        let t = check_page(&dom, &eval);
        let want = expected(&eval, t);
        // The page starts where the fragment says, among its own grid.
        let (kind, v) = fragment.split_once('=').unwrap();
        let v: f64 = v.parse().unwrap();
        let chosen = match kind {
            "threshold" | "distance" => {
                let c = if kind == "distance" {
                    1.0 - v * v / 2.0
                } else {
                    v
                };
                grid.iter()
                    .map(|g| g.0)
                    .min_by(|a, b| (a - c).abs().total_cmp(&(b - c).abs()))
            }
            // The lowest grid threshold meeting the target.
            _ => {
                let k = if kind == "fmr" { 0 } else { 2 };
                grid.iter()
                    .find(|g| g.1[k] as f64 / want.totals[k] as f64 <= v)
                    .map(|g| g.0)
            }
        };
        assert_eq!(Some(t), chosen, "{fragment}");
        // The pair panels: their totals are the FMR and FNMR counts, and
        // their first page lists examples.csv's pairs that are errors at
        // this threshold, hardest first.
        assert_eq!(value(&dom, "false_matches_count"), want.counts[0] as f64);
        assert_eq!(
            value(&dom, "false_non_matches_count"),
            want.counts[1] as f64
        );
        let examples: Vec<ExampleRow> =
            evaldir::read_csv(&eval.join(evaldir::EXAMPLES_CSV)).unwrap();
        for (item, kind, error) in [
            ("false_match", EXAMPLE_IMPOSTOR, true),
            ("false_non_match", EXAMPLE_GENUINE, false),
        ] {
            let shown: Vec<String> = tags(&dom, item)
                .iter()
                .map(|f| f["data-path"].clone())
                .collect();
            let want_shown: Vec<String> = examples
                .iter()
                .filter(|e| e.kind == kind && (e.score >= t) == error)
                .take(PAGE_FACES)
                .map(|e| e.path.clone().unwrap())
                .collect();
            assert_eq!(shown, want_shown, "{fragment}: {item}");
            pairs_shown += shown.len();
        }
        if fragment == "fpir=0.1" {
            // The planted stranger is the worst false accept, shown first
            // against the gallery face it resembles, with thumbnails.
            let accepts = tags(&dom, "false_accept");
            assert!(!accepts.is_empty(), "no false accepts at {t}");
            assert_eq!(accepts[0]["data-identity"], PLANTED);
            let examples: Vec<ExampleRow> =
                evaldir::read_csv(&eval.join(evaldir::EXAMPLES_CSV)).unwrap();
            let first = examples
                .iter()
                .find(|e| e.kind == EXAMPLE_NON_MATED)
                .unwrap();
            assert_eq!(
                (first.identity.as_str(), first.gallery_identity.as_str()),
                (PLANTED, VICTIM)
            );
            assert_eq!(accepts[0]["data-path"], first.path.clone().unwrap());
            assert!(dom.contains("src=\"data:image/jpeg;base64,"));
            assert_eq!(
                value(&dom, "false_accepts_count"),
                want.counts[2] as f64,
                "the panel's total is the FPIR count"
            );
        }
        seen.push(t);
    }
    seen.dedup();
    assert!(seen.len() >= 4, "fragments gave thresholds {seen:?}");
    assert!(pairs_shown > 0, "no pair panel showed a pair");

    // Two thresholds, two different pictures.
    let shot = |fragment: &str, name: &str| {
        let path = tmp.path().join(name);
        chrome(
            &browser,
            work,
            &page,
            fragment,
            &[format!("--screenshot={}", path.display())],
        );
        image::open(&path)
            .unwrap_or_else(|e| panic!("no screenshot {}: {e}", path.display()))
            .to_rgb8()
    };
    let (a, b) = (
        shot("threshold=0.2", "a.png"),
        shot("threshold=0.9", "b.png"),
    );
    assert_eq!(a.dimensions(), b.dimensions());
    let differing = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
    assert!(differing > 500, "screenshots differ in {differing} pixels");
}

#[test]
fn evaluate_records_what_the_explorer_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let (eval, page) = report(tmp.path());
    let examples: Vec<ExampleRow> = evaldir::read_csv(&eval.join(evaldir::EXAMPLES_CSV)).unwrap();
    // 21 out-of-DB probes and 48 in-DB ones, all within the cap.
    assert_eq!(
        examples
            .iter()
            .filter(|e| e.kind == EXAMPLE_NON_MATED)
            .count(),
        21
    );
    let kind = |k: &str| -> Vec<&ExampleRow> { examples.iter().filter(|e| e.kind == k).collect() };
    let (impostors, genuine) = (kind(EXAMPLE_IMPOSTOR), kind(EXAMPLE_GENUINE));
    assert!(!impostors.is_empty() && !genuine.is_empty());
    assert!(impostors.len() <= 60 && genuine.len() <= 60);
    assert_eq!(examples.len(), 21 + 48 + impostors.len() + genuine.len());
    // Hardest first: impostor pairs by score descending, genuine ascending;
    // two people in each impostor pair, one in each genuine pair.
    assert!(impostors.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(genuine.windows(2).all(|w| w[0].score <= w[1].score));
    assert!(impostors.iter().all(|e| e.identity != e.gallery_identity));
    assert!(genuine.iter().all(|e| e.identity == e.gallery_identity));
    let scores: Vec<f64> = examples
        .iter()
        .filter(|e| e.kind == EXAMPLE_NON_MATED)
        .map(|e| e.score)
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "worst first: {scores:?}"
    );
    // A stranger's nearest gallery face is an impostor pair of the
    // verification set too: none scores above the hardest pair.
    assert!(impostors[0].score >= scores[0]);
    assert!(examples
        .iter()
        .all(|e| e.path.is_some() && e.gallery_path.is_some()));
    let groups: Vec<GroupScoreRow> =
        evaldir::read_csv(&eval.join(evaldir::GROUP_SCORES_CSV)).unwrap();
    let summary = evaldir::read_summary(&eval).unwrap();
    let breakdown = &summary.groups[0];
    for row in &breakdown.rows {
        let values = serde_json::to_string(&row.values).unwrap();
        let total: u64 = groups
            .iter()
            .filter(|g| g.values == values)
            .map(|g| g.count)
            .sum();
        assert_eq!(total, row.genuine_count, "{values}");
        let below: u64 = groups
            .iter()
            .filter(|g| g.values == values && g.bin_high <= row.threshold)
            .map(|g| g.count)
            .sum();
        // At the global threshold the histogram gives the summary's FNMR
        // up to the bin that holds the threshold.
        let straddling: u64 = groups
            .iter()
            .filter(|g| {
                g.values == values && g.bin_low < row.threshold && g.bin_high > row.threshold
            })
            .map(|g| g.count)
            .sum();
        let fnm = (row.fnmr * row.genuine_count as f64).round() as u64;
        assert!(below <= fnm && fnm <= below + straddling, "{values}");
    }
    // The page embeds its data and stays bounded.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"fx-data\"") && html.contains("Threshold explorer"));
    assert!(html.len() < 2_000_000, "index.html is {} bytes", html.len());
}
