//! `facekit demo`: the whole path, offline, in seconds. It draws a small
//! synthetic K-Face tree, converts it with held-out identities (some of
//! them out-of-DB), embeds the held-out images with the documented
//! synthetic model (no face model ships with facekit), evaluates them,
//! writes the report, and prints the three numbers a threshold is chosen
//! by.
//!
//! OUT/
//!   source/      the synthetic K-Face tree (`한국인 안면 이미지/Middle_Resolution/...`)
//!   kface112/    `facekit convert`'s output: shards, manifest, eval/
//!   embeddings/  embeddings.npy + labels.csv of the held-out images
//!   eval/        `facekit evaluate`'s EVAL_DIR
//!   index.html   `facekit report`'s page, and its charts

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::{ConvertArgs, DemoArgs, EvaluateArgs, ReportArgs};
use crate::evaldir::{self, same_target, Summary};
use crate::evalinput::labels::{self, Labels};
use crate::evalinput::npy;
use crate::kface::{path, ImageKey, Selection};
use crate::output::{self, OutputDir};
use crate::synth::{self, Tier};
use crate::synthetic_model::{SyntheticModel, NOTE};
use crate::text::percent;

/// Identities drawn, and how many of them convert holds out for evaluation
/// (half of those out-of-DB, convert's default share).
const IDENTITIES: usize = 24;
const HELD_OUT: usize = 16;
/// 84 images per identity: no accessory and sunglasses, two bright lights
/// and a side light, neutral and smiling, yaw +45° to -45°. Every value
/// shows up in the report's per-condition charts.
const SELECTION: &str = "S1,4 L1,6,16 E1-2 C1,3,5,7,9,11,13";
const EMBEDDING_DIM: usize = 512;
/// Label columns the report breaks FNMR down by; `camera+light` is its heatmap.
const GROUP_BY: [&str; 5] = ["accessory", "light", "expression", "camera", "camera+light"];
/// What the source tree was drawn with.
const SOURCE_MARKER: &str = "synth.json";
/// The folders the demo fills in OUT (the report's files beside them are
/// `facekit report`'s own).
const PARTS: [&str; 4] = ["source", "kface112", "embeddings", "eval"];

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let out = &args.out;
    let steps = Steps::new(args.output.quiet);
    output::claim(out, "demo", &PARTS)?;

    steps.say("drawing a synthetic K-Face tree");
    let source = out.join("source");
    let synth = write_source(&source, args.seed)?;

    steps.say("converting it (facekit convert --holdout)");
    let converted = out.join("kface112");
    crate::cmd::convert::run(&parse_args::<ConvertArgs>(
        "convert",
        [
            source.clone().into_os_string(),
            "--out".into(),
            converted.clone().into_os_string(),
            "--holdout".into(),
            HELD_OUT.to_string().into(),
            "--seed".into(),
            args.seed.to_string().into(),
            "--force".into(),
            "--quiet".into(),
        ],
    )?)?;

    steps.say("embedding the held-out images (synthetic model)");
    let embeddings = out.join("embeddings");
    let rows = write_embeddings(&converted, &embeddings, args.seed)?;

    steps.say("evaluating (facekit evaluate)");
    let eval_dir = out.join("eval");
    let mut evaluate_argv: Vec<OsString> = vec![
        "--embeddings".into(),
        embeddings.join("embeddings.npy").into_os_string(),
        "--labels".into(),
        embeddings.join("labels.csv").into_os_string(),
        "--seed".into(),
        args.seed.to_string().into(),
        "--out".into(),
        eval_dir.clone().into_os_string(),
        "--quiet".into(),
    ];
    for column in GROUP_BY {
        evaluate_argv.extend(["--group-by".into(), column.into()]);
    }
    crate::cmd::evaluate::run(&parse_args::<EvaluateArgs>("evaluate", evaluate_argv)?)?;
    let summary = mark_synthetic(&eval_dir)?;

    steps.say("writing the report (facekit report)");
    crate::cmd::report::run(&parse_args::<ReportArgs>(
        "report",
        [
            eval_dir.clone().into_os_string(),
            "--out".into(),
            out.clone().into_os_string(),
            // The labels' paths are relative to convert's eval/ folder.
            "--images".into(),
            converted.join("eval").into_os_string(),
            "--quiet".into(),
        ],
    )?)?;

    let numbers = Numbers::of(&summary);
    let seconds = started.elapsed().as_secs_f64();
    if args.output.json {
        let doc = JsonOutput {
            index: out.join("index.html"),
            eval_dir,
            embeddings,
            identities: synth.identities.len(),
            source_images: synth.images,
            eval_images: rows,
            numbers,
            synthetic_note: NOTE,
            seconds,
        };
        crate::output::print(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
    } else if !args.output.quiet {
        crate::output::print(&console(
            &numbers,
            out,
            synth.identities.len(),
            synth.images,
            rows,
            seconds,
        ))?;
    }
    Ok(())
}

/// Step lines on a terminal only.
struct Steps {
    show: bool,
}

impl Steps {
    fn new(quiet: bool) -> Steps {
        Steps {
            show: !quiet && std::io::stderr().is_terminal(),
        }
    }
    fn say(&self, what: &str) {
        if self.show {
            eprintln!("demo: {what}");
        }
    }
}

/// Builds a command's arguments through its clap definition, so the demo
/// runs each step with exactly the defaults the command line has.
fn parse_args<T: clap::Args + clap::FromArgMatches>(
    name: &'static str,
    argv: impl IntoIterator<Item = OsString>,
) -> anyhow::Result<T> {
    let command = T::augment_args(clap::Command::new(name));
    let matches = command
        .try_get_matches_from(std::iter::once(OsString::from(name)).chain(argv))
        .with_context(|| format!("the demo's `{name}` arguments"))?;
    Ok(T::from_arg_matches(&matches)?)
}

/// Draws the source tree, replacing an earlier demo's (`run` claimed it).
fn write_source(dir: &Path, seed: u64) -> anyhow::Result<synth::Summary> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("{}: cannot replace", dir.display()))?;
    }
    let config = synth::Config {
        identities: IDENTITIES,
        tier: Tier::Middle,
        selection: SELECTION.parse::<Selection>()?,
        seed,
        korean_parent: true,
        ..synth::Config::default()
    };
    let summary = synth::generate(&config, dir)?;
    let json = serde_json::to_string_pretty(&summary)?;
    output::write_atomic(dir.join(SOURCE_MARKER), format!("{json}\n").as_bytes())
        .with_context(|| format!("{}: cannot write", dir.join(SOURCE_MARKER).display()))?;
    Ok(summary)
}

/// Embeds every image of the `eval/` of `dataset` (a convert output) with
/// the synthetic model and writes an embeddings directory: `embeddings.npy`
/// (float32 [N, 512]) and `labels.csv` (the eval manifest's columns:
/// identity, role, path, in_db and the four conditions), as `facekit embed`
/// would, the dataset's fingerprint included. Returns the row count.
pub(crate) fn write_embeddings(dataset: &Path, out: &Path, seed: u64) -> anyhow::Result<usize> {
    let manifest = dataset.join("eval/manifest.parquet");
    let labels = labels::read_labels(&manifest)?;
    let paths = labels
        .path
        .as_ref()
        .with_context(|| format!("{}: no path column", manifest.display()))?;
    let keys = paths
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split('/').collect();
            path::parse_components(&parts)
                .map(|m| m.key)
                .with_context(|| {
                    format!("{}: {p:?} is not a K-Face image path", manifest.display())
                })
        })
        .collect::<anyhow::Result<Vec<ImageKey>>>()?;
    let model = SyntheticModel::new(EMBEDDING_DIM, seed);
    let data: Vec<f32> = keys.par_iter().flat_map_iter(|k| model.embed(k)).collect();

    let mut dir = OutputDir::begin(out, "embed", true)?;
    dir.derived_from(dataset, "convert")?;
    let npy_path = dir.stage().join("embeddings.npy");
    npy::write_f32(&npy_path, keys.len(), EMBEDDING_DIM, &data)
        .with_context(|| format!("{}: cannot write", npy_path.display()))?;
    write_labels(&dir.stage().join("labels.csv"), &labels)?;
    dir.commit()?;
    Ok(keys.len())
}

fn write_labels(path: &Path, labels: &Labels) -> anyhow::Result<()> {
    let columns: Vec<(String, Vec<String>)> = labels
        .column_names()
        .into_iter()
        .filter_map(|name| labels.column(&name).map(|values| (name, values)))
        .collect();
    labels::write_table(path, &columns)?;
    Ok(())
}

/// Says on the summary (and its Markdown twin) that the scores are synthetic.
fn mark_synthetic(eval_dir: &Path) -> anyhow::Result<Summary> {
    let mut summary = evaldir::read_summary(eval_dir)?;
    summary.synthetic_note = Some(NOTE.to_string());
    let md_path = eval_dir.join(evaldir::SUMMARY_MD);
    let md = fs::read_to_string(&md_path)
        .with_context(|| format!("{}: cannot read", md_path.display()))?;
    output::write_atomic(&md_path, format!("> {NOTE}\n\n{md}").as_bytes())
        .with_context(|| format!("{}: cannot write", md_path.display()))?;
    evaldir::write_summary(eval_dir, &summary)?;
    Ok(summary)
}

/// The three numbers that matter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Numbers {
    pub eer: Option<f64>,
    pub eer_threshold: Option<f64>,
    /// FNMR at FMR 1e-3, with the realised FMR and the threshold.
    pub fnmr_at_fmr_1e3: Option<Rate>,
    /// The open-set threshold for FPIR 1%.
    pub fpir_1e2: Option<OpenSet>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    pub fnmr: f64,
    pub fmr: f64,
    pub threshold: f64,
    pub threshold_l2: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenSet {
    pub threshold: f64,
    pub threshold_l2: f64,
    pub fpir: f64,
    pub fnir: f64,
}

impl Numbers {
    pub fn of(s: &Summary) -> Numbers {
        let v = s.verification.as_ref();
        Numbers {
            eer: v.map(|v| v.eer),
            eer_threshold: v.map(|v| v.eer_threshold),
            fnmr_at_fmr_1e3: v
                .and_then(|v| {
                    v.operating_points
                        .iter()
                        .find(|p| same_target(p.fmr_target, 1e-3))
                })
                .map(|p| Rate {
                    fnmr: p.fnmr,
                    fmr: p.fmr,
                    threshold: p.threshold,
                    threshold_l2: p.threshold_l2,
                }),
            fpir_1e2: s
                .identification
                .as_ref()
                .and_then(|i| {
                    i.operating_points
                        .iter()
                        .find(|p| same_target(p.fpir_target, 1e-2))
                })
                .map(|p| OpenSet {
                    threshold: p.threshold,
                    threshold_l2: p.threshold_l2,
                    fpir: p.fpir,
                    fnir: p.fnir,
                }),
        }
    }
}

#[derive(Serialize)]
struct JsonOutput {
    index: PathBuf,
    eval_dir: PathBuf,
    embeddings: PathBuf,
    identities: usize,
    source_images: u64,
    eval_images: usize,
    numbers: Numbers,
    synthetic_note: &'static str,
    seconds: f64,
}

/// What the demo prints.
pub fn console(
    n: &Numbers,
    out: &Path,
    identities: usize,
    images: u64,
    rows: usize,
    seconds: f64,
) -> String {
    let mut s = String::new();
    let na = "n/a (too few comparisons)";
    let _ = writeln!(
        s,
        "facekit demo: {identities} synthetic identities, {images} images -> convert ({HELD_OUT} held out, some out-of-DB) -> {rows} eval embeddings -> evaluate -> report, in {seconds:.1} s"
    );
    let _ = writeln!(s, "report: {}", out.join("index.html").display());
    let _ = match (n.eer, n.eer_threshold) {
        (Some(eer), Some(t)) => writeln!(
            s,
            "EER: {} (at cosine {t:.4} = distance {:.4})",
            percent(eer),
            evaldir::cosine_to_l2(t)
        ),
        _ => writeln!(s, "EER: {na}"),
    };
    let _ = match &n.fnmr_at_fmr_1e3 {
        Some(r) => writeln!(
            s,
            "FNMR at FMR 1e-3: {} (realised FMR {:.2e}, cosine {:.4} = distance {:.4})",
            percent(r.fnmr),
            r.fmr,
            r.threshold,
            r.threshold_l2
        ),
        None => writeln!(s, "FNMR at FMR 1e-3: {na}"),
    };
    let _ = match &n.fpir_1e2 {
        Some(p) => writeln!(
            s,
            "open-set threshold for FPIR 1%: cosine {:.4} = distance {:.4} (realised FPIR {}, FNIR {})",
            p.threshold,
            p.threshold_l2,
            percent(p.fpir),
            percent(p.fnir)
        ),
        None => writeln!(s, "open-set threshold for FPIR 1%: {na}"),
    };
    let _ = writeln!(s, "\n{NOTE}");
    let emb = out.join("embeddings");
    let _ = writeln!(
        s,
        "\nnext: facekit search --gallery {} --probes {} --threshold {}:fpir=0.01",
        emb.display(),
        emb.display(),
        out.join("eval").display()
    );
    s
}
