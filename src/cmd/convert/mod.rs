//! `facekit convert`: the AI Hub K-Face tree → aligned, labeled training
//! shards, the held-out evaluation set and the tables that describe them.
//!
//! discover the units → plan the held-out identities → per unit (one loaded
//! at a time, its images in parallel): landmarks, decode, align, encode,
//! spool → sort the rows canonically, assign labels and shuffled keys →
//! write the shards, `eval/`, `manifest.parquet`, `identities.csv`,
//! `preview.png` and `dataset.json`, all under the stage of DIR
//! (`output::OutputDir`), swapped in whole when complete.

mod assign;
mod manifest;
mod outputs;
mod process;
mod spool;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cli::{ConvertArgs, LandmarkPolicy, ShardFormat};
use crate::imaging::DEFAULT_MAX_PIXELS;
use crate::kface::landmarks::Policy;
use crate::kface::source::{discover, Discovery, PATTERN};
use crate::kface::{HoldoutPlan, HoldoutSpec, Selection};
use crate::output::{self, write_atomic, OutputDir};
use manifest::{Row, RowSplit, Status};
use process::Settings;
use spool::Spool;

/// Files every run writes in DIR (besides the shards): a user file under
/// one of these names refuses the run before the work.
const OUTPUTS: [&str; 6] = [
    "dataset.json",
    "train.rec",
    "train.idx",
    "manifest.parquet",
    "identities.csv",
    "preview.png",
];
const MANIFEST: &str = "manifest.parquet";
/// Where `--format folder` puts the class folders.
const FOLDER_DIR: &str = "train";

#[derive(Debug, Serialize)]
struct Counts {
    identities_found: u64,
    images_seen: u64,
    ok: u64,
    failed: u64,
    skipped: u64,
    train: u64,
    gallery: u64,
    probe: u64,
    excluded: u64,
    duplicate_identities: u64,
    stray_files: u64,
}

#[derive(Debug, Serialize)]
struct Holdout {
    identities: Vec<String>,
    out_of_db: Vec<String>,
    missing: Vec<String>,
    enroll: String,
}

#[derive(Debug, Serialize)]
struct Failure {
    source: String,
    reason: String,
}

/// `dataset.json`, and the summary `--json` prints.
#[derive(Debug, Serialize)]
struct Summary {
    facekit_version: &'static str,
    dir: String,
    format: ShardFormat,
    num_classes: u64,
    num_image: u64,
    image_size: [u32; 2],
    selection: String,
    landmarks: Policy,
    seed: u64,
    quality: u8,
    holdout: Option<Holdout>,
    counts: Counts,
    failures: u64,
    /// The first failures in manifest order (all of them are in the manifest).
    first_failures: Vec<Failure>,
    /// Archives and folders that could not be read whole (damaged, cut
    /// short, unreadable): the images in them are gone, uncounted.
    lost: Vec<Failure>,
    /// Lines to paste into an arcface_torch config.
    arcface_torch: Vec<String>,
}

const FIRST_FAILURES: usize = 20;

fn policy(choice: LandmarkPolicy) -> Policy {
    match choice {
        LandmarkPolicy::Sibling => Policy::Sibling,
        LandmarkPolicy::Annotation => Policy::Annotation,
        LandmarkPolicy::Bbox => Policy::Bbox,
    }
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    let quiet = args.output.quiet;
    let selection = match &args.select {
        Some(spec) => spec.parse::<Selection>()?,
        None => Selection::default_training(),
    };
    let enroll: Selection = args.enroll.parse().context("--enroll")?;
    crate::align::template(args.size).context("--size")?;
    let holdout = args
        .holdout
        .as_deref()
        .map(HoldoutSpec::parse)
        .transpose()?;
    let landmark_policy = policy(args.landmarks);

    let found = discover(&args.sources)?;
    let warn = |line: &str| {
        if !quiet {
            eprintln!("facekit: warning: {line}");
        }
    };
    if found.is_empty() {
        let unreadable = found
            .unreadable
            .first()
            .map(|u| format!("; {}: {}", u.source, u.reason))
            .unwrap_or_default();
        bail!(
            "no K-Face images found in {} (looked for {PATTERN}){unreadable}",
            crate::text::path_list(&args.sources)
        );
    }
    for (unit, winner) in &found.duplicates {
        warn(&format!(
            "identity {} in {} was already read from {winner}; skipped",
            unit.identity(),
            unit.origin()
        ));
    }
    let identities: BTreeSet<String> = found
        .units
        .iter()
        .map(|u| u.identity().to_string())
        .collect();
    let plan = match &holdout {
        Some(spec) => HoldoutPlan::new(spec, &identities, args.out_of_db_share, args.seed)?,
        None => HoldoutPlan::default(),
    };
    if !plan.missing.is_empty() {
        warn(&format!(
            "{} held-out identities are not in the sources: {}",
            plan.missing.len(),
            plan.missing.join(" ")
        ));
    }
    let mut out = OutputDir::begin(&args.out, "convert", args.force)?;
    out.check_free(&OUTPUTS)?;
    let stage = out.stage().to_path_buf();

    let settings = Settings {
        selection,
        enroll,
        policy: landmark_policy,
        size: args.size,
        quality: args.quality,
        max_pixels: DEFAULT_MAX_PIXELS,
        plan,
    };
    let (mut rows, mut spool) = read_sources(&found, &settings, args, &stage, quiet)?;
    rows.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let assignment = assign::assign(&mut rows, args.seed);
    let counts = Counts::of(&rows, &found);
    if counts.ok == 0 {
        bail!(nothing_converted(
            &rows,
            &counts,
            &settings.selection,
            &args.sources
        ));
    }

    match args.format {
        ShardFormat::Rec => outputs::write_rec(&stage, &rows, &assignment, &mut spool)?,
        ShardFormat::Folder => {
            outputs::write_folder(&stage.join(FOLDER_DIR), &rows, &assignment, &mut spool)?
        }
    }
    let eval = outputs::eval_rows(&rows);
    if !eval.is_empty() {
        outputs::write_eval(
            &stage.join("eval"),
            &eval,
            &settings.plan.out_of_db,
            &mut spool,
        )?;
    }
    manifest::write_manifest(&stage.join(MANIFEST), &rows)?;
    outputs::write_identities(&stage.join("identities.csv"), &assignment)?;
    outputs::write_preview(&stage.join("preview.png"), &rows, args.size, &mut spool)?;
    drop(spool);

    let num_classes = assignment.classes.len() as u64;
    let num_image = assignment.order.len() as u64;
    let dir = fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());
    let rec_dir = match args.format {
        ShardFormat::Rec => dir.clone(),
        ShardFormat::Folder => dir.join(FOLDER_DIR),
    };
    let summary = Summary {
        facekit_version: crate::VERSION,
        dir: dir.display().to_string(),
        format: args.format,
        num_classes,
        num_image,
        image_size: [args.size, args.size],
        selection: settings.selection.to_string(),
        landmarks: landmark_policy,
        seed: args.seed,
        quality: args.quality,
        holdout: holdout.as_ref().map(|_| Holdout {
            identities: settings.plan.held_out.iter().cloned().collect(),
            out_of_db: settings.plan.out_of_db.iter().cloned().collect(),
            missing: settings.plan.missing.clone(),
            enroll: settings.enroll.to_string(),
        }),
        failures: counts.failed,
        counts,
        first_failures: rows
            .iter()
            .filter(|r| r.status == Status::Failed)
            .take(FIRST_FAILURES)
            .map(|r| Failure {
                source: r.source.clone(),
                reason: r.reason.clone().unwrap_or_default(),
            })
            .collect(),
        lost: rows
            .iter()
            .filter(|r| r.status == Status::Failed && stands_for_many(r, &found))
            .map(|r| Failure {
                source: r.source.clone(),
                reason: r.reason.clone().unwrap_or_default(),
            })
            .collect(),
        arcface_torch: vec![
            format!("config.rec = {:?}", rec_dir.display().to_string()),
            format!("config.num_classes = {num_classes}"),
            format!("config.num_image = {num_image}"),
        ],
    };
    let json = serde_json::to_string_pretty(&summary)? + "\n";
    let dataset_json = stage.join("dataset.json");
    write_atomic(&dataset_json, json.as_bytes())
        .with_context(|| format!("{}: cannot write", dataset_json.display()))?;
    // Pairs and embeddings made from this dataset record its manifest's
    // fingerprint, so a later re-convert shows them stale.
    out.fingerprint_of(MANIFEST);
    out.commit()?;

    if args.output.json {
        crate::output::print(&json)?;
    } else if !quiet {
        crate::output::print(&summary_text(&summary, &args.out))?;
    }
    // Lost data is said last, whatever the flags: exit 0 must not hide it.
    if let Some(first) = summary.lost.first() {
        eprintln!(
            "facekit: warning: data lost: {} archive(s) or folder(s) not read whole, first {}: {}; all are under \"lost\" in {}",
            summary.lost.len(),
            first.source,
            first.reason,
            args.out.join("dataset.json").display()
        );
    }
    Ok(())
}

/// A failed row that stands for an archive or a folder rather than one
/// image: what it held is lost whole.
fn stands_for_many(row: &Row, found: &Discovery) -> bool {
    let archive = row
        .source
        .rsplit(['!', '/'])
        .next()
        .is_some_and(|name| name.to_ascii_lowercase().ends_with(".zip"));
    archive || found.unreadable.iter().any(|u| u.source == row.source)
}

/// Converts every unit, one loaded at a time, into rows and spooled crops;
/// adds the rows of duplicate identities and of unlisted files.
fn read_sources(
    found: &Discovery,
    settings: &Settings,
    args: &ConvertArgs,
    stage: &Path,
    quiet: bool,
) -> anyhow::Result<(Vec<Row>, Spool)> {
    let pool = output::thread_pool(args.jobs)?;
    let mut spool = Spool::create(stage)
        .with_context(|| format!("{}: cannot create the spool", stage.display()))?;
    let known: u64 = found.units.iter().filter_map(|u| u.image_count()).sum();
    let progress = output::progress(known, "converting", quiet);
    let mut rows: Vec<Row> = Vec::new();
    for unit in &found.units {
        process::process_unit(
            unit.as_ref(),
            stage,
            settings,
            &pool,
            &mut spool,
            &mut rows,
            &progress,
        )
        .context("spooling the converted crops")?;
    }
    progress.finish_and_clear();
    for (unit, winner) in &found.duplicates {
        process::duplicate_rows(unit.as_ref(), stage, winner, &mut rows);
    }
    for orphan in found.orphans.iter().chain(&found.unreadable) {
        let identity = orphan.identity.clone().unwrap_or_default();
        let row = Row::new(orphan.source.clone(), identity, None, RowSplit::Excluded);
        rows.push(row.with(Status::Failed, orphan.reason.clone()));
    }
    Ok((rows, spool))
}

impl Counts {
    fn of(rows: &[Row], found: &Discovery) -> Counts {
        let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count() as u64;
        let converted = |split: RowSplit| count(&|r| r.split == split && r.status == Status::Ok);
        Counts {
            identities_found: found.units.len() as u64,
            images_seen: rows.len() as u64,
            ok: count(&|r| r.status == Status::Ok),
            failed: count(&|r| r.status == Status::Failed),
            skipped: count(&|r| r.status == Status::Skipped),
            train: converted(RowSplit::Train),
            gallery: converted(RowSplit::Gallery),
            probe: converted(RowSplit::Probe),
            excluded: count(&|r| r.split == RowSplit::Excluded),
            duplicate_identities: found.duplicates.len() as u64,
            stray_files: found.stray_files,
        }
    }
}

/// The message when not one image was converted.
fn nothing_converted(
    rows: &[Row],
    counts: &Counts,
    selection: &Selection,
    sources: &[PathBuf],
) -> String {
    if counts.failed == 0 && counts.excluded == counts.images_seen {
        return format!(
            "none of the {} images found in {} is in the selection {selection}",
            counts.images_seen,
            crate::text::path_list(sources)
        );
    }
    let examples: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.status == Status::Failed || (r.status != Status::Ok && r.split != RowSplit::Excluded)
        })
        .take(3)
        .map(|r| format!("{}: {}", r.source, r.reason.as_deref().unwrap_or("")))
        .collect();
    format!(
        "no image could be converted ({} failed), e.g. {}",
        counts.failed,
        examples.join("; ")
    )
}

/// The lines printed after a run.
fn summary_text(s: &Summary, out: &Path) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let c = &s.counts;
    let _ = writeln!(t, "num_classes = {}", s.num_classes);
    let _ = writeln!(t, "num_image   = {}", s.num_image);
    let _ = writeln!(
        t,
        "images seen: {} in {} identities ({} converted, {} failed, {} skipped)",
        c.images_seen, c.identities_found, c.ok, c.failed, c.skipped
    );
    if let Some(h) = &s.holdout {
        let _ = writeln!(
            t,
            "held out: {} identities ({} out-of-DB) -> {}/eval/ ({} gallery, {} probe images)",
            h.identities.len(),
            h.out_of_db.len(),
            out.display(),
            c.gallery,
            c.probe
        );
    }
    if s.failures > 0 {
        let _ = writeln!(
            t,
            "failures: {} (reasons in {}/manifest.parquet)",
            s.failures,
            out.display()
        );
    }
    let shards = match s.format {
        ShardFormat::Rec => "train.rec, train.idx",
        ShardFormat::Folder => "train/",
    };
    let _ = writeln!(
        t,
        "wrote {}: {shards}, manifest.parquet, identities.csv, dataset.json, preview.png",
        out.display()
    );
    let _ = writeln!(t, "arcface_torch config:");
    for line in &s.arcface_torch {
        let _ = writeln!(t, "    {line}");
    }
    t
}
