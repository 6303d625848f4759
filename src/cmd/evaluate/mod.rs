//! `facekit evaluate`: read embeddings and labels (or scores), run the
//! comparisons a protocol asks for, compute every metric, write EVAL_DIR
//! (through `evaldir`) and print a short summary.
//!
//! Protocols:
//! * **all distinct pairs** (default): verification over every unordered
//!   pair of embeddings; identification probe × gallery when the labels
//!   give roles;
//! * **probe × gallery** (`--protocol probe-gallery`, needs roles): one
//!   pass gives verification over probe × gallery pairs and identification;
//! * **pairs file** (`--pairs`): verification over the listed pairs, with
//!   insightface's 10-fold accuracy; identification as above when roles
//!   are given;
//! * **scores** (`--scores`): verification from scores computed elsewhere.
//!
//! With embeddings, a run is compare → partial state → metrics: the
//! engine's results become a [`partial::Partial`] (sums, unions, bounded
//! top-lists), and [`finish`] computes every figure from it. A plain run
//! finishes the merge of its one part; `--shard I/N` (or a Slurm / Kubernetes
//! array task) writes its part instead (`partial.json`, [`job::JOB_JSON`],
//! [`partial_file::PARTIAL_BIN`]) and `facekit merge` ([`merge`]) finishes the
//! merge of all parts: the same code, so the same bytes whatever N is.

mod bands;
mod examples;
mod group_scores;
mod job;
mod markdown;
mod partial;
mod partial_file;
mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};

use crate::cli::{EvaluateArgs, MergeArgs, OutputFlags};
use crate::cmd::engine::select_engine;
use crate::compare::cpu::pair_score;
use crate::compare::{
    CompareJob, CompareResult, EmbeddingError, EmbeddingRows, Embeddings, Engine, HistogramSpec,
    PairScore, Pairing, ProbeResult,
};
use crate::evaldir::{
    self, EngineInfo, EngineKind, ExampleRow, GroupBreakdown, GroupScoreRow, HistogramRow,
    Identification, Inputs, ProbeRow, RocRow, ScoreInfo, Summary,
    Verification as VerificationSummary, DECISION, HIST_GENUINE, HIST_IMPOSTOR,
};
use crate::evalinput::labels::{Labels, Role};
use crate::evalinput::pairs::{self, Pair};
use crate::evalinput::{labels, npy, scores};
use crate::metrics::bootstrap::{clopper_pearson, miss_rate_intervals, SubjectScore};
use crate::metrics::groups::{group_rows, GroupScores};
use crate::metrics::identification::{identification, mate_score_within, search_results};
use crate::metrics::kfold::{insightface_kfold, squared_l2_of_cosine};
use crate::metrics::verification::{roc_rows, verification};
use crate::metrics::ScoreCounts;
use crate::output::{stale_source, OutputDir};
use crate::partition::{Part, PartHeader, PartKind, Shard, ShardSource, ShardSpec};
use crate::text::natural_cmp;
use examples::PER_KIND;

use job::Job;
use partial::{max_error, Exact, Partial, Scores, Verification};
use tables::{Bins, ProbeContext};

/// Everything one run writes.
struct Evaluation {
    summary: Summary,
    roc: Vec<RocRow>,
    histograms: Vec<HistogramRow>,
    probes: Vec<ProbeRow>,
    examples: Vec<ExampleRow>,
    group_scores: Vec<GroupScoreRow>,
    /// Comparisons made (or scores read), for the printed summary.
    comparisons: u64,
}

pub fn run(args: &EvaluateArgs) -> anyhow::Result<()> {
    check_targets(&args.fmr, "--fmr")?;
    check_targets(&args.fpir, "--fpir")?;
    let shard = args.shard.resolve()?;
    let sharded = shard.source != ShardSource::Whole;
    if args.gallery_blocks > 1
        && (args.protocol != crate::cli::Protocol::ProbeGallery
            || args.pairs.is_some()
            || args.scores.is_some())
    {
        bail!("--gallery-blocks splits the gallery of --protocol probe-gallery, without --pairs or --scores");
    }
    if sharded && args.scores.is_some() {
        bail!("--shard splits the comparisons of --embeddings; the scores of --scores are computed already: evaluate the file whole");
    }
    let started = Instant::now();
    let out = OutputDir::begin(&args.out, "evaluate", true)?;
    for input in [&args.embeddings, &args.pairs].into_iter().flatten() {
        if let Some(stale) = stale_source(input)? {
            eprintln!("facekit: warning: {stale}");
        }
    }
    let pool = crate::output::thread_pool(args.jobs)?;
    let threads = pool.current_num_threads();
    let evaluation = match &args.scores {
        Some(path) => pool.install(|| from_score_file(args, path))?,
        None => {
            let computed = pool.install(|| from_embeddings(args, shard))?;
            if sharded {
                return write_part(out, &computed, shard, &args.output, started);
            }
            let Computed { job, ctx, partial } = computed;
            pool.install(|| {
                finish(
                    &job,
                    &ctx,
                    Partial::merge(vec![partial])?,
                    ONE_MACHINE.into(),
                )
            })?
        }
    };
    publish(out, &evaluation, &args.output, threads, started)
}

/// Writes one part of a split job: its header, its job and its partial
/// state, swapped in whole like any output.
fn write_part(
    out: OutputDir,
    computed: &Computed,
    shard: Shard,
    flags: &OutputFlags,
    started: Instant,
) -> anyhow::Result<()> {
    let header = PartHeader::new(PartKind::Evaluate, shard, computed.job.fingerprint());
    let stage = out.stage();
    let at = |name: &str| format!("{}: cannot write", stage.join(name).display());
    computed
        .job
        .write(stage)
        .with_context(|| at(job::JOB_JSON))?;
    partial_file::write(stage, &computed.partial)?;
    header
        .write(stage)
        .with_context(|| at(crate::partition::PART_FILE))?;
    let dir = out.dir().to_path_buf();
    out.commit()?;
    if flags.json {
        crate::output::print(&(serde_json::to_string_pretty(&header)? + "\n"))?;
    } else if !flags.quiet {
        crate::output::print(&format!(
            "facekit evaluate: part {} ({}) · {} comparisons in {:.3} s → {}\n  Merge every part: facekit merge PART... --out EVAL_DIR\n",
            shard.spec,
            shard.source.describe(),
            crate::output::thousands(computed.partial.comparisons),
            started.elapsed().as_secs_f64(),
            dir.display()
        ))?;
    }
    Ok(())
}

/// `facekit merge` of evaluate parts: the EVAL_DIR one machine would have
/// written. The labels (and pairs) are read again from where the parts
/// found them, and must be unchanged; the embeddings are not needed.
pub fn merge(parts: &[Part], args: &MergeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let first = &parts[0];
    let job = Job::read(&first.dir, &first.header.fingerprint)?;
    // The parts are read and merged while the labels are checked and load.
    // Each worker folds the parts it reads into its own merged state, and
    // the states merge in part order: memory holds a state and a part per
    // thread. With gallery blocks a chunk is the parts of one probe block
    // (numbered row by row), combined before it joins the rest.
    let (merged, ctx) = rayon::join(
        || -> anyhow::Result<Partial> {
            use rayon::prelude::*;
            let blocks = job.gallery_blocks.max(1) as usize;
            let fold = |acc: Option<Partial>, (dir, next): (&Path, Partial)| {
                let both = acc.into_iter().chain([next]).collect();
                Partial::merge(both).with_context(|| format!("{}: cannot merge", dir.display()))
            };
            parts
                .par_chunks(blocks)
                .map(|chunk| -> anyhow::Result<(&Path, Partial)> {
                    let mut read: Vec<Partial> = chunk
                        .iter()
                        .map(|part| partial_file::read(&part.dir))
                        .collect::<Result<_, _>>()?;
                    let dir = chunk[0].dir.as_path();
                    let one = if blocks > 1 {
                        Partial::merge_gallery_blocks(read, job.top_k.max(1)).with_context(
                            || format!("{}: cannot merge its gallery blocks", dir.display()),
                        )?
                    } else {
                        read.pop().context("an empty chunk of parts")?
                    };
                    Ok((dir, one))
                })
                .try_fold(|| None, |acc, next| fold(acc, next?).map(Some))
                .try_reduce(
                    || None,
                    |a, b| match (a, b) {
                        (Some(a), Some(b)) => Partial::merge(vec![a, b])
                            .context("cannot merge the parts")
                            .map(Some),
                        (a, b) => Ok(a.or(b)),
                    },
                )?
                .context("no parts to merge")
        },
        || -> anyhow::Result<Context> {
            job.labels.check_unchanged()?;
            if let Some(p) = &job.pairs {
                p.check_unchanged()?;
            }
            Context::load(
                &job,
                &job.labels.path,
                job.pairs.as_ref().map(|p| p.path.as_path()),
            )
        },
    );
    let (merged, ctx) = (merged?, ctx?);
    let note = if job.gallery_blocks > 1 {
        format!(
            "merged from {} parts ({} probe blocks × {} gallery blocks)",
            parts.len(),
            parts.len() / job.gallery_blocks as usize,
            job.gallery_blocks
        )
    } else {
        format!("merged from {} parts", parts.len())
    };
    let evaluation = finish(&job, &ctx, merged, note)?;
    // Only now, with everything computed: a merge that fails leaves no output.
    let out = OutputDir::begin(&args.out, "evaluate", args.force)?;
    publish(
        out,
        &evaluation,
        &args.output,
        rayon::current_num_threads(),
        started,
    )
}

/// Writes EVAL_DIR, swaps it in and prints the summary.
fn publish(
    out: OutputDir,
    evaluation: &Evaluation,
    flags: &OutputFlags,
    threads: usize,
    started: Instant,
) -> anyhow::Result<()> {
    write_outputs(out.stage(), evaluation)?;
    let dir = out.dir().to_path_buf();
    out.commit()?;
    let seconds = started.elapsed().as_secs_f64();
    if flags.json {
        crate::output::print(&(serde_json::to_string_pretty(&evaluation.summary)? + "\n"))?;
    } else if !flags.quiet {
        crate::output::print(&markdown::console(
            &evaluation.summary,
            evaluation.comparisons,
            threads,
            seconds,
            &dir,
        ))?;
    }
    Ok(())
}

/// The flags the metrics read.
struct Settings<'a> {
    fmr: &'a [f64],
    fpir: &'a [f64],
    top_k: usize,
    rank: u64,
    bootstrap: usize,
    seed: u64,
}

impl Settings<'_> {
    fn of_args(a: &EvaluateArgs) -> Settings<'_> {
        Settings {
            fmr: &a.fmr,
            fpir: &a.fpir,
            top_k: a.top_k,
            rank: a.rank,
            bootstrap: a.bootstrap,
            seed: a.seed,
        }
    }

    fn of_job(j: &Job) -> Settings<'_> {
        Settings {
            fmr: &j.fmr,
            fpir: &j.fpir,
            top_k: j.top_k,
            rank: j.rank,
            bootstrap: j.bootstrap,
            seed: j.seed,
        }
    }
}

fn check_targets(targets: &[f64], flag: &str) -> anyhow::Result<()> {
    if let Some(t) = targets.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
        bail!("{flag}: target {t} is not in (0, 1]");
    }
    Ok(())
}

fn write_outputs(dir: &Path, e: &Evaluation) -> anyhow::Result<()> {
    let operating = tables::operating_points(
        e.summary
            .verification
            .as_ref()
            .map_or(&[][..], |v| &v.operating_points),
        e.summary
            .identification
            .as_ref()
            .map_or(&[][..], |i| &i.operating_points),
    );
    // The histograms' Parquet file is written beside the tables.
    let (histograms, tables) = rayon::join(
        || evaldir::write_histograms(&dir.join(evaldir::SCORES_PARQUET), &e.histograms),
        || -> anyhow::Result<()> {
            evaldir::write_csv(&dir.join(evaldir::ROC_CSV), &e.roc)?;
            evaldir::write_csv(&dir.join(evaldir::OPERATING_POINTS_CSV), &operating)?;
            evaldir::write_csv(&dir.join(evaldir::PROBES_CSV), &e.probes)?;
            evaldir::write_csv(&dir.join(evaldir::EXAMPLES_CSV), &e.examples)?;
            evaldir::write_csv(&dir.join(evaldir::GROUP_SCORES_CSV), &e.group_scores)?;
            crate::output::write_atomic(
                dir.join(evaldir::SUMMARY_MD),
                markdown::summary_md(&e.summary).as_bytes(),
            )
            .with_context(|| {
                format!("{}: cannot write", dir.join(evaldir::SUMMARY_MD).display())
            })?;
            evaldir::write_summary(dir, &e.summary)?;
            Ok(())
        },
    );
    histograms?;
    tables
}

/// What the scores are, and how exactly the impostor scores are held.
fn score_info(
    impostor: &ScoreCounts,
    spec: HistogramSpec,
    budget: Option<u64>,
    cosine: bool,
) -> ScoreInfo {
    let exact = impostor.is_exact();
    ScoreInfo {
        kind: if cosine { "cosine" } else { "score" }.into(),
        decision: DECISION.into(),
        distance: if cosine {
            "*_l2 = sqrt(2 - 2 cos), the Euclidean distance of unit vectors (accept if distance <= it)".into()
        } else {
            "scores read from a file are not cosines: the *_l2 twins do not apply".into()
        },
        resolution: if exact { 0.0 } else { 2.0 / spec.bins as f64 },
        exact_from: (!exact).then(|| impostor.exact_from()),
        binned: impostor.collapsed().iter().map(|&(l, h)| [l, h]).collect(),
        exact_budget: budget,
    }
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------- scores

fn from_score_file(args: &EvaluateArgs, path: &Path) -> anyhow::Result<Evaluation> {
    if !args.group_by.is_empty() {
        bail!("--group-by needs --embeddings and --labels (a score file has no attribute columns)");
    }
    if args.pairs.is_some() {
        bail!("--pairs needs --embeddings and --labels");
    }
    let read = scores::read_scores(path)?;
    let comparisons = (read.genuine.len() + read.impostor.len()) as u64;
    let hist_bins = Bins::covering(HistogramSpec::DEFAULT, &[&read.genuine, &read.impostor]);
    let cosine = hist_bins == Bins::cosine(HistogramSpec::DEFAULT);
    let mut histograms = hist_bins.rows(HIST_GENUINE, read.genuine.iter().copied());
    histograms.extend(hist_bins.rows(HIST_IMPOSTOR, read.impostor.iter().copied()));
    let genuine = ScoreCounts::from_scores(read.genuine);
    let impostor = ScoreCounts::from_scores(read.impostor);
    let (verification, roc) = verify(&Settings::of_args(args), &genuine, &impostor, &[])
        .with_context(|| format!("{}: cannot compute verification", path.display()))?;
    // bob's 4- and 5-column files name each search: identification too,
    // once some search has a mate.
    let identification = if read.searches.iter().any(|c| c.mated) {
        let probes = search_results(&read.searches, args.top_k.max(1));
        let ident = identification(
            &probes,
            read.models,
            read.gallery_identities,
            &args.fpir,
            args.top_k.max(1),
            args.rank,
        )
        .with_context(|| format!("{}: cannot compute identification", path.display()))?;
        Some(ident)
    } else {
        None
    };
    let summary = Summary {
        schema: evaldir::SCHEMA,
        facekit_version: crate::VERSION.into(),
        engine: EngineInfo {
            kind: EngineKind::ScoreFile,
            description: format!("scores read from a {} file", read.format),
            precision: "fp32".into(),
            fallback_reason: None,
            max_abs_score_error: None,
            precision_note: None,
        },
        inputs: Inputs {
            embeddings: None,
            labels: None,
            scores: Some(path_text(path)),
            pairs: None,
            protocol: "scores".into(),
            rows: comparisons,
            dim: None,
            identities: 0,
        },
        score: score_info(&impostor, HistogramSpec::DEFAULT, None, cosine),
        verification: Some(verification),
        identification,
        groups: Vec::new(),
        synthetic_note: None,
        shards: Some(ONE_MACHINE.into()),
    };
    Ok(Evaluation {
        summary,
        roc,
        histograms,
        probes: Vec::new(),
        examples: Vec::new(),
        group_scores: Vec::new(),
        comparisons,
    })
}

/// Verification metrics with their intervals: a subject bootstrap for the
/// FNMR (when subjects are known), Clopper–Pearson for the FMR.
fn verify(
    args: &Settings,
    genuine: &ScoreCounts,
    impostor: &ScoreCounts,
    subjects: &[SubjectScore],
) -> anyhow::Result<(VerificationSummary, Vec<RocRow>)> {
    let report = verification(genuine, impostor, args.fmr)?;
    let mut summary = report.summary;
    if args.bootstrap > 0 {
        let thresholds: Vec<f64> = summary
            .operating_points
            .iter()
            .map(|p| p.threshold)
            .collect();
        let fnmr = miss_rate_intervals(subjects, &thresholds, args.bootstrap, args.seed);
        for (i, p) in summary.operating_points.iter_mut().enumerate() {
            p.fnmr_ci95 = fnmr.as_ref().map(|c| c[i]);
            p.fmr_ci95 = Some(clopper_pearson(p.false_matches, impostor.total(), 0.95));
        }
    }
    let roc = roc_rows(&report.roc, genuine.total(), impostor.total());
    Ok((summary, roc))
}

// ------------------------------------------------------------ embeddings

/// The labels side of an embeddings job, as both a run and a merge load it:
/// identities, roles, the pairs listed and the `--group-by` groups.
struct Context {
    labels: Labels,
    labels_path: PathBuf,
    /// Dense identity of each row, and the names.
    ids: Vec<u32>,
    names: Vec<String>,
    /// Rows by role (both empty without a role column).
    gallery: Vec<usize>,
    probes: Vec<usize>,
    /// The pairs of `--pairs`, when given.
    listed: Option<(PathBuf, Vec<Pair>)>,
    /// Per `--group-by` flag: its columns and its groups (values and rows,
    /// rows ascending), values in natural order.
    groups: Vec<(Vec<String>, Vec<(Vec<String>, Vec<usize>)>)>,
}

impl Context {
    /// Reads the labels (and pairs) of `job` from the paths given and
    /// checks them against the job.
    fn load(job: &Job, labels_path: &Path, pairs_path: Option<&Path>) -> anyhow::Result<Context> {
        let labels = labels::read_labels(labels_path)?;
        if labels.len() as u64 != job.rows {
            bail!(
                "{}: {} embedding rows, but {} has {} label rows",
                job.embeddings.given,
                job.rows,
                labels_path.display(),
                labels.len()
            );
        }
        let (ids, names) = labels.identity_indices();
        let (mut gallery, mut probes) = (Vec::new(), Vec::new());
        if let Some(roles) = &labels.role {
            for (row, role) in roles.iter().enumerate() {
                match role {
                    Role::Gallery => gallery.push(row),
                    Role::Probe => probes.push(row),
                }
            }
            if gallery.is_empty() {
                bail!(
                    "{}: the role column names no gallery rows",
                    labels_path.display()
                );
            }
            if probes.is_empty() {
                bail!(
                    "{}: the role column names no probe rows",
                    labels_path.display()
                );
            }
        }
        if job.probe_gallery && gallery.is_empty() {
            bail!(
                "{}: --protocol probe-gallery needs a role column (gallery / probe)",
                labels_path.display()
            );
        }
        for column in job.group_by.iter().flat_map(|c| c.split('+')) {
            if labels.column(column).is_none() {
                bail!(
                    "{}: no column {column:?} to group by (columns: {})",
                    labels_path.display(),
                    labels.column_names().join(", ")
                );
            }
        }
        let listed = match pairs_path {
            Some(path) => {
                let label_paths = labels.path.as_deref().ok_or_else(|| {
                    anyhow!(
                        "{}: no `path` column to match the pairs of {} to",
                        labels_path.display(),
                        path.display()
                    )
                })?;
                Some((path.to_path_buf(), pairs::read_pairs(path, label_paths)?))
            }
            None => None,
        };
        let pool: Vec<usize> = if job.probe_gallery && listed.is_none() {
            probes.clone()
        } else {
            (0..labels.len()).collect()
        };
        let groups = job
            .group_by
            .iter()
            .map(|spec| {
                let columns: Vec<String> = spec.split('+').map(str::to_string).collect();
                let values: Vec<Vec<String>> = columns
                    .iter()
                    .map(|c| labels.column(c).expect("columns checked above"))
                    .collect();
                let mut members: BTreeMap<NaturalKey, Vec<usize>> = BTreeMap::new();
                for &row in &pool {
                    let key = values.iter().map(|v| v[row].clone()).collect();
                    members.entry(NaturalKey(key)).or_default().push(row);
                }
                let groups = members.into_iter().map(|(k, rows)| (k.0, rows)).collect();
                (columns, groups)
            })
            .collect();
        Ok(Context {
            labels,
            labels_path: labels_path.to_path_buf(),
            ids,
            names,
            gallery,
            probes,
            listed,
            groups,
        })
    }

    fn has_roles(&self) -> bool {
        !self.gallery.is_empty()
    }
}

/// What a run of an embeddings job computed: the job, its labels and the
/// partial state of the part it did.
struct Computed {
    job: Job,
    ctx: Context,
    partial: Partial,
}

fn from_embeddings(args: &EvaluateArgs, shard: Shard) -> anyhow::Result<Computed> {
    let emb_path = args
        .embeddings
        .as_deref()
        .context("give --embeddings with --labels, or --scores")?;
    let labels_path = args
        .labels
        .as_deref()
        .context("--embeddings needs --labels")?;
    let header = npy::shape(emb_path)?;
    if header.rows < 2 {
        bail!(
            "{}: {} embedding rows; at least 2 are needed to compare",
            emb_path.display(),
            header.rows
        );
    }
    if header.cols == 0 {
        bail!("{}: the embeddings have 0 columns", emb_path.display());
    }
    let (probe_block, gallery_block) = shard.spec.grid(args.gallery_blocks)?;
    let selected = select_engine(args.device, args.precision)?;
    let job = Job::new(
        args,
        emb_path,
        labels_path,
        (header.rows, header.cols),
        selected.info.clone(),
    )?;
    let ctx = Context::load(&job, labels_path, args.pairs.as_deref())?;
    if job.gallery_blocks > 1 && !ctx.has_roles() {
        bail!(
            "{}: --gallery-blocks needs gallery and probe roles",
            labels_path.display()
        );
    }
    // Only the rows this part compares (each part checks those it reads).
    let rows = Loaded::rows_needed(&ctx, &job, probe_block, gallery_block);
    let matrix = rows.read(emb_path)?;
    let embeddings = Embeddings::normalized(matrix.data, matrix.cols).map_err(|e| {
        let e = match e {
            EmbeddingError::NotFinite { row } => EmbeddingError::NotFinite {
                row: rows.rows[row],
            },
            EmbeddingError::Zero { row } => EmbeddingError::Zero {
                row: rows.rows[row],
            },
            shape => shape,
        };
        anyhow!("{}: {e}", emb_path.display())
    })?;
    let compare = Comparer {
        ctx: &ctx,
        job: &job,
        engine: selected.engine.as_ref(),
        embeddings: &embeddings,
        loaded: &rows,
        shard: probe_block,
        gallery_block,
        observed: Default::default(),
    };
    let partial = compare.part()?;
    // Said once the run has succeeded, so an error stays the only line.
    // A GPU that is there but unusable is said even with --quiet.
    let quiet = (args.output.quiet || args.output.json) && !selected.gpu_unusable;
    if let (Some(notice), false) = (selected.notice(), quiet) {
        eprintln!("facekit: {notice}");
    }
    Ok(Computed { job, ctx, partial })
}

/// One part's comparisons: its block of probes (probe × gallery and the
/// search), its balanced block of rows of the upper triangle (all distinct
/// pairs) or its share of the listed pairs, and the same for each group.
struct Comparer<'a> {
    ctx: &'a Context,
    job: &'a Job,
    engine: &'a dyn Engine,
    /// The rows read: `embeddings` row i is label row `loaded.rows[i]`.
    embeddings: &'a Embeddings,
    loaded: &'a Loaded,
    /// The part's block of the probes (of the triangle, of the listed pairs).
    shard: ShardSpec,
    /// The part's block of the gallery (probe × gallery with
    /// `--gallery-blocks`; else the whole gallery).
    gallery_block: ShardSpec,
    /// What the engine said of the jobs run so far.
    observed: std::cell::RefCell<Observed>,
}

/// The label rows of one comparison job: probes, gallery (unused for all
/// distinct pairs) and the gallery rows of other blocks that hold the
/// probes' mates.
#[derive(Debug, Clone, Copy)]
struct Rows<'r> {
    probes: &'r [usize],
    gallery: &'r [usize],
    elsewhere: &'r [usize],
}

impl<'r> Rows<'r> {
    /// No mates elsewhere: the whole gallery, or a job whose ranks are
    /// not used.
    fn of(probes: &'r [usize], gallery: &'r [usize]) -> Rows<'r> {
        Rows {
            probes,
            gallery,
            elsewhere: &[],
        }
    }
}

/// The largest sampled score error of a part's jobs and the first note of
/// a job run in another precision than asked for.
#[derive(Debug, Default)]
struct Observed {
    score_error: Option<f64>,
    precision_note: Option<String>,
}

/// The block of rows of the upper triangle of `n` rows that a part takes:
/// row p holds the pairs (p, q > p), so the blocks are balanced by that
/// count.
fn triangle_block(n: usize, shard: ShardSpec) -> Range<usize> {
    let weights: Vec<u64> = (0..n).map(|p| (n - 1 - p) as u64).collect();
    shard.weighted_range(&weights)
}

/// The gallery rows outside `block` (of the gallery's order) that hold
/// mates of `probes`, ascending: what a gallery block needs besides itself
/// for its probes' mate scores.
fn mates_outside(ctx: &Context, probes: &[usize], block: Range<usize>) -> Vec<usize> {
    let identities: BTreeSet<u32> = probes.iter().map(|&r| ctx.ids[r]).collect();
    let mut rows: Vec<usize> = ctx.gallery[..block.start]
        .iter()
        .chain(&ctx.gallery[block.end..])
        .copied()
        .filter(|&r| identities.contains(&ctx.ids[r]))
        .collect();
    rows.sort_unstable();
    rows
}

/// The label rows a part read, ascending: row i of its embeddings is
/// label row `rows[i]`.
struct Loaded {
    rows: Vec<usize>,
    /// With a gallery block, the gallery rows of other blocks that hold
    /// mates of the part's probes ([`mates_outside`]); else empty.
    mates_elsewhere: Vec<usize>,
}

impl Loaded {
    /// The rows a part compares. With the whole gallery: one range of label
    /// rows that holds its probes and the gallery, its listed pairs, or its
    /// block of the triangle and the rows after it (read in one sweep).
    /// With a gallery block: its probes, its block of the gallery and the
    /// other gallery rows of its probes' identities (for their mate
    /// scores), and no other row.
    fn rows_needed(ctx: &Context, job: &Job, shard: ShardSpec, gallery: ShardSpec) -> Loaded {
        let probes = &ctx.probes[shard.range(ctx.probes.len())];
        if gallery.count > 1 {
            let block = gallery.range(ctx.gallery.len());
            let mates_elsewhere = mates_outside(ctx, probes, block.clone());
            let mut rows: Vec<usize> = probes.to_vec();
            rows.extend_from_slice(&ctx.gallery[block]);
            rows.extend_from_slice(&mates_elsewhere);
            rows.sort_unstable();
            rows.dedup();
            return Loaded {
                rows,
                mates_elsewhere,
            };
        }
        let n = job.rows as usize;
        let (mut low, mut high) = (n, 0);
        let mut take = |r: usize| {
            low = low.min(r);
            high = high.max(r + 1);
        };
        if ctx.has_roles() {
            probes.iter().chain(&ctx.gallery).for_each(|&r| take(r));
        }
        match &ctx.listed {
            Some((_, pairs)) => pairs[shard.range(pairs.len())]
                .iter()
                .for_each(|p| [p.first, p.second].into_iter().for_each(&mut take)),
            None if !job.probe_gallery => {
                let block = triangle_block(n, shard);
                if !block.is_empty() {
                    take(block.start);
                    take(n - 1);
                }
            }
            None => {}
        }
        Loaded {
            rows: (low..high.max(low)).collect(),
            mates_elsewhere: Vec::new(),
        }
    }

    /// Whether the rows are one range.
    fn contiguous(&self) -> bool {
        match (self.rows.first(), self.rows.last()) {
            (Some(&a), Some(&b)) => b - a + 1 == self.rows.len(),
            _ => true,
        }
    }

    fn read(&self, path: &Path) -> Result<npy::Matrix, npy::NpyError> {
        if self.contiguous() {
            let first = self.rows.first().copied().unwrap_or(0);
            npy::read_rows(path, first..first + self.rows.len())
        } else {
            npy::read_row_list(path, &self.rows)
        }
    }

    /// Where label row `r`, one of the rows read, is in the embeddings.
    fn local(&self, r: usize) -> usize {
        if self.contiguous() {
            r - self.rows[0]
        } else {
            self.rows
                .binary_search(&r)
                .expect("a part compares only rows it read")
        }
    }

    /// The label rows listed, as embeddings: borrowed when they are
    /// consecutive rows read (a gallery read with its probes is not copied
    /// again), else copied.
    fn subset<'a>(&self, e: &'a Embeddings, rows: &[usize]) -> Subset<'a> {
        let local: Vec<usize> = rows.iter().map(|&r| self.local(r)).collect();
        let first = local.first().copied().unwrap_or(0);
        if local.iter().enumerate().all(|(i, &l)| l == first + i) {
            Subset::Borrowed(e.view_rows(first..first + local.len()))
        } else {
            Subset::Owned(e.select(&local))
        }
    }
}

/// Rows of one side of a comparison job ([`Loaded::subset`]).
enum Subset<'a> {
    Borrowed(EmbeddingRows<'a>),
    Owned(Embeddings),
}

impl Subset<'_> {
    fn rows(&self) -> EmbeddingRows<'_> {
        match self {
            Subset::Borrowed(rows) => *rows,
            Subset::Owned(e) => e.view(),
        }
    }
}

impl Comparer<'_> {
    fn part(&self) -> anyhow::Result<Partial> {
        let (ctx, job) = (self.ctx, self.job);
        let spec = HistogramSpec::DEFAULT;
        let block = self.shard.range(ctx.probes.len());
        let block_rows = &ctx.probes[block];
        let gallery = self.gallery_block.range(ctx.gallery.len());
        let gallery_rows = &ctx.gallery[gallery.clone()];
        let mut comparisons = 0;
        let mut verification = None;
        let mut probes = Vec::new();
        if ctx.has_roles() {
            let verification_too = job.probe_gallery && ctx.listed.is_none();
            let exact = if verification_too {
                self.exact(Pairing::ProbeGallery, &ctx.probes)?
            } else {
                Exact::default()
            };
            let rows = Rows {
                probes: block_rows,
                gallery: gallery_rows,
                elsewhere: &self.loaded.mates_elsewhere,
            };
            let mut result = self.compare(
                rows,
                Pairing::ProbeGallery,
                job.top_k.max(1),
                &exact,
                if verification_too { PER_KIND } else { 0 },
            )?;
            comparisons += (block_rows.len() * gallery_rows.len()) as u64;
            probes = std::mem::take(&mut result.probes);
            // Candidates by their place in the whole gallery.
            for c in probes.iter_mut().flat_map(|p| &mut p.top) {
                c.index += gallery.start as u32;
            }
            if verification_too {
                verification = Some(Verification::Scored(Scores::from_result(result, &exact)));
            }
        }
        let verification = match (verification, &ctx.listed) {
            (Some(v), _) => v,
            (None, Some((_, listed))) => {
                let mine = &listed[self.shard.range(listed.len())];
                comparisons += mine.len() as u64;
                Verification::Listed(self.score_pairs(mine))
            }
            (None, None) => {
                let rows: Vec<usize> = (0..self.job.rows as usize).collect();
                let (scores, n) = self.triangle(&rows, PER_KIND)?;
                comparisons += n;
                Verification::Scored(scores)
            }
        };
        let mut groups = Vec::new();
        if ctx.listed.is_none() {
            let in_block: BTreeSet<usize> = block_rows.iter().copied().collect();
            for (_, members) in &ctx.groups {
                let mut flag = Vec::with_capacity(members.len());
                for (_, rows) in members {
                    let scores = if job.probe_gallery {
                        let exact = self.exact(Pairing::ProbeGallery, rows)?;
                        let mine: Vec<usize> = rows
                            .iter()
                            .copied()
                            .filter(|r| in_block.contains(r))
                            .collect();
                        if mine.is_empty() {
                            Scores::empty(spec.bins as usize, &exact)
                        } else {
                            let r = self.compare(
                                Rows::of(&mine, gallery_rows),
                                Pairing::ProbeGallery,
                                0,
                                &exact,
                                0,
                            )?;
                            Scores::from_result(r, &exact)
                        }
                    } else {
                        self.triangle(rows, 0)?.0
                    };
                    flag.push(scores);
                }
                groups.push(flag);
            }
        }
        let observed = self.observed.take();
        Ok(Partial {
            verification,
            probes,
            groups,
            score_error: observed.score_error,
            precision_note: observed.precision_note,
            comparisons,
        })
    }

    /// This part's share of all distinct pairs of `rows` (ascending): the
    /// pairs whose first row falls in the part's block of the triangle, as
    /// the pairs within the block and the block × the rows after it. With
    /// its comparison count.
    fn triangle(&self, rows: &[usize], examples: usize) -> anyhow::Result<(Scores, u64)> {
        let block = triangle_block(self.job.rows as usize, self.shard);
        let own: Vec<usize> = rows.iter().copied().filter(|r| block.contains(r)).collect();
        let later: Vec<usize> = rows.iter().copied().filter(|&r| r >= block.end).collect();
        let exact = self.exact(Pairing::AllDistinct, rows)?;
        let mut parts = vec![Scores::empty(HistogramSpec::DEFAULT.bins as usize, &exact)];
        let mut comparisons = 0;
        let mut run = |probes: &[usize], gallery: &[usize], pairing| -> anyhow::Result<()> {
            let r = self.compare(Rows::of(probes, gallery), pairing, 0, &exact, examples)?;
            comparisons += r.genuine.len() as u64 + r.impostor_count();
            parts.push(Scores::from_result(r, &exact));
            Ok(())
        };
        if own.len() >= 2 {
            run(&own, &[], Pairing::AllDistinct)?;
        }
        if !own.is_empty() && !later.is_empty() {
            run(&own, &later, Pairing::ProbeGallery)?;
        }
        Ok((Scores::merge(parts)?, comparisons))
    }

    /// Runs one job over row subsets.
    fn compare(
        &self,
        rows: Rows<'_>,
        pairing: Pairing,
        top_k: usize,
        exact: &Exact,
        examples: usize,
    ) -> anyhow::Result<CompareResult> {
        let Rows {
            probes: probe_rows,
            gallery: gallery_rows,
            elsewhere,
        } = rows;
        let ids = &self.ctx.ids;
        let labels = |rows: &[usize]| -> Vec<u32> { rows.iter().map(|&r| ids[r]).collect() };
        let probes = self.loaded.subset(self.embeddings, probe_rows);
        let probe_labels = labels(probe_rows);
        let (gallery, gallery_labels) = match pairing {
            Pairing::AllDistinct => (None, probe_labels.clone()),
            Pairing::ProbeGallery => (
                Some(self.loaded.subset(self.embeddings, gallery_rows)),
                labels(gallery_rows),
            ),
        };
        let elsewhere_labels = labels(elsewhere);
        let elsewhere_rows =
            (!elsewhere.is_empty()).then(|| self.loaded.subset(self.embeddings, elsewhere));
        let job = CompareJob {
            probes: probes.rows(),
            probe_labels: &probe_labels,
            gallery: gallery.as_ref().unwrap_or(&probes).rows(),
            gallery_labels: &gallery_labels,
            pairing,
            top_k,
            histogram: HistogramSpec::DEFAULT,
            tail_capacity: exact.capacity,
            examples,
            bands: &exact.bands,
            mates_elsewhere: elsewhere_rows
                .as_ref()
                .map(|e| (e.rows(), elsewhere_labels.as_slice())),
        };
        let mut r = self.engine.compare(&job)?;
        // The hardest pairs as rows of the labels.
        let gallery_rows = match pairing {
            Pairing::AllDistinct => probe_rows,
            Pairing::ProbeGallery => gallery_rows,
        };
        for pair in r.hardest_genuine.iter_mut().chain(&mut r.hardest_impostors) {
            pair.probe = probe_rows[pair.probe as usize] as u32;
            pair.gallery = gallery_rows[pair.gallery as usize] as u32;
        }
        let mut observed = self.observed.borrow_mut();
        observed.score_error = max_error(observed.score_error, r.score_error);
        if let Some(note) = r.precision_note.take() {
            observed.precision_note.get_or_insert(note);
        }
        Ok(r)
    }

    /// What the whole job over these rows keeps exactly, the same in every
    /// part: within the budget every impostor score; beyond it the highest
    /// scores down to the thresholds of the FMR targets that need at most
    /// [`TAIL_TARGETS`] of them ([`tail_capacity`]; every part keeps that
    /// many, so that the highest of the whole job are among the parts'
    /// tails), and score bands around the other targets' thresholds,
    /// placed from a sample drawn with the job's seed. A target whose band
    /// would span too many values, or any target when the engine counts no
    /// bands, is reached by the tail, within the budget.
    fn exact(&self, pairing: Pairing, probe_rows: &[usize]) -> anyhow::Result<Exact> {
        let (job, ids) = (self.job, &self.ctx.ids);
        let impostors = impostor_count(pairing, probe_rows, &self.ctx.gallery, ids);
        let budget = job.exact_budget;
        let small = budget.min(TAIL_TARGETS) as usize;
        let (near, far): (Vec<f64>, Vec<f64>) = job
            .fmr
            .iter()
            .partition(|&&f| tail_reaching(impostors, f) <= small);
        if impostors <= budget || far.is_empty() || !self.engine.counts_bands() {
            return Ok(Exact {
                capacity: tail_capacity(impostors, &job.fmr, budget),
                bands: Vec::new(),
            });
        }
        let read = |rows: Vec<usize>| -> anyhow::Result<(Embeddings, Vec<u32>)> {
            let path = &job.embeddings.path;
            let m = npy::read_row_list(path, &rows)?;
            let e = Embeddings::normalized(m.data, m.cols)
                .map_err(|e| anyhow!("{}: a sampled row: {e}", path.display()))?;
            Ok((e, rows.iter().map(|&r| ids[r]).collect()))
        };
        let probes = read(bands::sample_rows(probe_rows, bands::SAMPLE_ROWS, job.seed))?;
        let gallery = match pairing {
            Pairing::AllDistinct => None,
            Pairing::ProbeGallery => Some(read(bands::sample_rows(
                &self.ctx.gallery,
                bands::SAMPLE_ROWS,
                job.seed.wrapping_add(1),
            ))?),
        };
        let sample = bands::Sample::new(
            job.dim as usize,
            (probes.0.as_slice(), &probes.1),
            gallery.as_ref().map(|g| (g.0.as_slice(), &g.1[..])),
        );
        let (bands, refused) =
            bands::target_bands(&sample, impostors, &far, HistogramSpec::DEFAULT);
        let tail_targets: Vec<f64> = near.into_iter().chain(refused).collect();
        Ok(Exact {
            capacity: tail_capacity(impostors, &tail_targets, budget),
            bands,
        })
    }

    /// The scores of listed pairs, each by the engine's product.
    fn score_pairs(&self, listed: &[Pair]) -> Vec<f32> {
        use rayon::prelude::*;
        let (e, at) = (self.embeddings, self.loaded);
        listed
            .par_iter()
            .map(|p| pair_score(e.row(at.local(p.first)), e.row(at.local(p.second))))
            .collect()
    }
}

/// A verification set: its scores (exact genuine, binned or exact
/// impostor) and whether every threshold is exact.
struct VerificationSet {
    genuine: ScoreCounts,
    impostor: ScoreCounts,
    subjects: Vec<SubjectScore>,
    histograms: Vec<HistogramRow>,
}

/// How `summary.json` says where a result's comparisons ran: the only
/// field, with timings, that differs between a merge and a plain run.
const ONE_MACHINE: &str = "one machine";

/// Every figure of EVAL_DIR from a job's whole partial state: the same
/// code for a plain run (its one part) and a merge (of every part).
fn finish(job: &Job, ctx: &Context, partial: Partial, note: String) -> anyhow::Result<Evaluation> {
    let spec = HistogramSpec::DEFAULT;
    let settings = Settings::of_job(job);
    // Verification and identification read disjoint results: computed
    // side by side, the probes' tables then decided at their threshold.
    let results = &partial.probes;
    let (verified, identified) = rayon::join(
        || verified(job, ctx, &settings, partial.verification, spec),
        || {
            ctx.has_roles()
                .then(|| identification_of(ctx, &settings, results))
                .transpose()
        },
    );
    let Verified {
        protocol,
        set,
        summary: verification,
        roc,
        hardest,
    } = verified?;
    let (groups, group_scores) = groups(ctx, partial.groups, &protocol, &verification, spec)?;
    let mut histograms = set.histograms;
    let (identification, probes, mut examples) = match identified? {
        Some(ident) => {
            let (rows, examples) = probe_tables(ctx, &ident, results, verification.eer_threshold);
            histograms.extend(tables::top1_histograms(Bins::cosine(spec), results));
            (Some(ident), rows, examples)
        }
        None => (None, Vec::new(), Vec::new()),
    };
    examples.extend(examples::pair_rows(
        &hardest.0,
        &hardest.1,
        &ctx.labels.identity,
        ctx.labels.path.as_deref(),
    ));
    let mut engine = job.engine.clone();
    engine.max_abs_score_error = partial.score_error;
    engine.precision_note = partial.precision_note;
    let summary = Summary {
        schema: evaldir::SCHEMA,
        facekit_version: crate::VERSION.into(),
        engine,
        inputs: Inputs {
            embeddings: Some(job.embeddings.given.clone()),
            labels: Some(job.labels.given.clone()),
            scores: None,
            pairs: job.pairs.as_ref().map(|p| p.given.clone()),
            protocol: protocol.name().into(),
            rows: job.rows,
            dim: Some(job.dim),
            identities: ctx.names.len() as u64,
        },
        score: score_info(&set.impostor, spec, Some(job.exact_budget), true),
        verification: Some(verification),
        identification,
        groups,
        synthetic_note: None,
        shards: Some(note),
    };
    Ok(Evaluation {
        summary,
        roc,
        histograms,
        probes,
        examples,
        group_scores,
        comparisons: partial.comparisons,
    })
}

/// The verification figures of a job's scores.
struct Verified {
    protocol: VerificationPairs,
    set: VerificationSet,
    summary: VerificationSummary,
    roc: Vec<RocRow>,
    /// The hardest pairs: (impostors, genuine).
    hardest: (Vec<PairScore>, Vec<PairScore>),
}

fn verified(
    job: &Job,
    ctx: &Context,
    settings: &Settings,
    scored: Verification,
    spec: HistogramSpec,
) -> anyhow::Result<Verified> {
    let mut kfold = None;
    let hardest;
    let (protocol, set) = match scored {
        Verification::Listed(scores) => {
            let (path, pairs) = ctx.listed.as_ref().context("listed scores need --pairs")?;
            if scores.len() != pairs.len() {
                bail!(
                    "{}: {} pairs, but the parts scored {}",
                    path.display(),
                    pairs.len(),
                    scores.len()
                );
            }
            let listed: Vec<(Pair, f32)> = pairs.iter().copied().zip(scores).collect();
            hardest = examples::hardest_listed(&listed, PER_KIND);
            let (set, accuracy) = pairs_set(ctx, &listed, path, spec)?;
            kfold = accuracy;
            (VerificationPairs::Listed(listed), set)
        }
        Verification::Scored(mut scores) => {
            hardest = (
                std::mem::take(&mut scores.hardest_impostors),
                std::mem::take(&mut scores.hardest_genuine),
            );
            let protocol = if job.probe_gallery {
                VerificationPairs::ProbeGallery
            } else {
                VerificationPairs::AllDistinct
            };
            (protocol, set_from_scores(scores, spec))
        }
    };
    let (mut summary, roc) = verify(settings, &set.genuine, &set.impostor, &set.subjects)
        .with_context(|| format!("{}: cannot compute verification", ctx.labels_path.display()))?;
    summary.kfold_accuracy = kfold;
    Ok(Verified {
        protocol,
        set,
        summary,
        roc,
        hardest,
    })
}

fn set_from_scores(s: Scores, spec: HistogramSpec) -> VerificationSet {
    let impostor =
        ScoreCounts::from_binned(&s.impostor_tail, &s.band_counts, &s.impostor_hist, spec);
    let subjects = s
        .genuine
        .iter()
        .zip(&s.subjects)
        .map(|(&score, &subject)| SubjectScore {
            subject,
            score: score as f64,
        })
        .collect();
    let bins = Bins::cosine(spec);
    let mut histograms = bins.rows(HIST_GENUINE, s.genuine.iter().copied());
    histograms.extend(bins.count_rows(HIST_IMPOSTOR, &s.impostor_hist));
    let genuine = ScoreCounts::from_scores(s.genuine);
    VerificationSet {
        genuine,
        impostor,
        subjects,
        histograms,
    }
}

/// The listed pairs as a verification set, and the insightface 10-fold
/// accuracy over them in list order.
fn pairs_set(
    ctx: &Context,
    listed: &[(Pair, f32)],
    path: &Path,
    spec: HistogramSpec,
) -> anyhow::Result<(VerificationSet, Option<crate::evaldir::KFoldAccuracy>)> {
    let (mut genuine, mut impostor, mut subjects) = (Vec::new(), Vec::new(), Vec::new());
    for &(p, s) in listed {
        if p.same {
            genuine.push(s);
            subjects.push(SubjectScore {
                subject: ctx.ids[p.first],
                score: s as f64,
            });
        } else {
            impostor.push(s);
        }
    }
    let bins = Bins::cosine(spec);
    let mut histograms = bins.rows(HIST_GENUINE, genuine.iter().copied());
    histograms.extend(bins.rows(HIST_IMPOSTOR, impostor.iter().copied()));
    let distances: Vec<f64> = listed
        .iter()
        .map(|&(_, s)| squared_l2_of_cosine(s as f64))
        .collect();
    let same: Vec<bool> = listed.iter().map(|(p, _)| p.same).collect();
    let kfold = if listed.len() >= 10 {
        Some(
            insightface_kfold(&distances, &same, 10)
                .with_context(|| format!("{}: 10-fold accuracy", path.display()))?,
        )
    } else {
        None
    };
    let set = VerificationSet {
        genuine: ScoreCounts::from_scores(genuine),
        impostor: ScoreCounts::from_scores(impostor),
        subjects,
        histograms,
    };
    Ok((set, kfold))
}

/// The identification figures of the probes' results, with their
/// bootstrap intervals.
fn identification_of(
    ctx: &Context,
    settings: &Settings,
    results: &[ProbeResult],
) -> anyhow::Result<Identification> {
    if results.len() != ctx.probes.len() {
        bail!(
            "{}: {} probes, but the parts searched {}",
            ctx.labels_path.display(),
            ctx.probes.len(),
            results.len()
        );
    }
    let gallery_identities: BTreeSet<u32> = ctx.gallery.iter().map(|&r| ctx.ids[r]).collect();
    let mut ident = identification(
        results,
        ctx.gallery.len() as u64,
        gallery_identities.len() as u64,
        &settings.fpir,
        settings.top_k.max(1),
        settings.rank,
    )
    .with_context(|| {
        format!(
            "{}: cannot compute identification",
            ctx.labels_path.display()
        )
    })?;
    if settings.bootstrap > 0 {
        let samples: Vec<SubjectScore> = results
            .iter()
            .zip(&ctx.probes)
            .filter_map(|(p, &row)| {
                mate_score_within(p, settings.rank).map(|score| SubjectScore {
                    subject: ctx.ids[row],
                    score,
                })
            })
            .collect();
        let thresholds: Vec<f64> = ident.operating_points.iter().map(|p| p.threshold).collect();
        if let Some(ci) =
            miss_rate_intervals(&samples, &thresholds, settings.bootstrap, settings.seed)
        {
            for (p, c) in ident.operating_points.iter_mut().zip(ci) {
                p.fnir_ci95 = Some(c);
            }
        }
    }
    Ok(ident)
}

/// probes.csv, decided at the identification's threshold (else the
/// EER's), and the example probes.
fn probe_tables(
    ctx: &Context,
    ident: &Identification,
    results: &[ProbeResult],
    eer_threshold: f64,
) -> (Vec<ProbeRow>, Vec<ExampleRow>) {
    let threshold = tables::decision_threshold(&ident.operating_points, Some(eer_threshold))
        .expect("the EER threshold is always there");
    let probe_ctx = ProbeContext {
        rows: &ctx.probes,
        gallery_rows: &ctx.gallery,
        identity: &ctx.labels.identity,
        path: ctx.labels.path.as_deref(),
    };
    (
        tables::probe_rows(results, &probe_ctx, threshold),
        examples::example_rows(results, &probe_ctx, examples::PER_KIND),
    )
}

/// FNMR and FMR per value of each `--group-by` column (or `a+b` cross)
/// at the global thresholds. A comparison belongs to a group when both
/// its images have the value; under probe-gallery, when its probe has.
fn groups(
    ctx: &Context,
    scored: Vec<Vec<Scores>>,
    protocol: &VerificationPairs,
    verification: &VerificationSummary,
    spec: HistogramSpec,
) -> anyhow::Result<(Vec<GroupBreakdown>, Vec<GroupScoreRow>)> {
    let mut breakdowns = Vec::new();
    let mut rows_out = Vec::new();
    let mut scored = scored.into_iter();
    for (columns, members) in &ctx.groups {
        let groups: Vec<GroupScores> = match protocol {
            VerificationPairs::Listed(listed) => members
                .iter()
                .map(|(values, rows)| {
                    let (genuine, impostor) = group_pairs(listed, rows);
                    GroupScores {
                        values: values.clone(),
                        genuine,
                        impostor,
                    }
                })
                .collect(),
            VerificationPairs::ProbeGallery | VerificationPairs::AllDistinct => {
                let flag = scored.next().context("the parts hold too few group sets")?;
                if flag.len() != members.len() {
                    bail!(
                        "{}: {} groups, but the parts hold {}",
                        ctx.labels_path.display(),
                        members.len(),
                        flag.len()
                    );
                }
                members
                    .iter()
                    .zip(flag)
                    .map(|((values, _), s)| GroupScores {
                        values: values.clone(),
                        impostor: ScoreCounts::from_binned(
                            &s.impostor_tail,
                            &s.band_counts,
                            &s.impostor_hist,
                            spec,
                        ),
                        genuine: ScoreCounts::from_scores(s.genuine),
                    })
                    .collect()
            }
        };
        rows_out.extend(group_scores::group_score_rows(
            columns,
            &groups,
            Bins::cosine(spec),
        ));
        breakdowns.push(GroupBreakdown {
            columns: columns.clone(),
            rows: group_rows(&groups, &verification.operating_points),
        });
    }
    Ok((breakdowns, rows_out))
}

/// The listed pairs whose two images are both among `rows`.
fn group_pairs(listed: &[(Pair, f32)], rows: &[usize]) -> (ScoreCounts, ScoreCounts) {
    let member: BTreeSet<usize> = rows.iter().copied().collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for &(p, s) in listed {
        if member.contains(&p.first) && member.contains(&p.second) {
            if p.same {
                genuine.push(s)
            } else {
                impostor.push(s)
            }
        }
    }
    (
        ScoreCounts::from_scores(genuine),
        ScoreCounts::from_scores(impostor),
    )
}

/// The comparisons that make up the verification set (`inputs.protocol`).
enum VerificationPairs {
    AllDistinct,
    ProbeGallery,
    /// The pairs of `--pairs`, with their scores.
    Listed(Vec<(Pair, f32)>),
}

impl VerificationPairs {
    fn name(&self) -> &'static str {
        match self {
            VerificationPairs::AllDistinct => "all-pairs",
            VerificationPairs::ProbeGallery => "probe-gallery",
            VerificationPairs::Listed(_) => "pairs-file",
        }
    }
}

/// Impostor comparisons of a job: all distinct pairs of `probe_rows`, or
/// `probe_rows` × `gallery_rows`, less the genuine ones.
fn impostor_count(
    pairing: Pairing,
    probe_rows: &[usize],
    gallery_rows: &[usize],
    ids: &[u32],
) -> u64 {
    let count = |rows: &[usize]| {
        let mut c: BTreeMap<u32, u64> = BTreeMap::new();
        for &r in rows {
            *c.entry(ids[r]).or_default() += 1;
        }
        c
    };
    let p = count(probe_rows);
    match pairing {
        Pairing::AllDistinct => {
            let n = probe_rows.len() as u64;
            n * n.saturating_sub(1) / 2 - p.values().map(|&c| c * (c - 1) / 2).sum::<u64>()
        }
        Pairing::ProbeGallery => {
            let g = count(gallery_rows);
            let same: u64 = p
                .iter()
                .map(|(id, &c)| c * g.get(id).copied().unwrap_or(0))
                .sum();
            probe_rows.len() as u64 * gallery_rows.len() as u64 - same
        }
    }
}

/// The largest `--exact-budget`: a partial file refuses a larger tail.
pub(crate) const MAX_EXACT_BUDGET: u64 = 1 << 32;

/// Beyond the exact budget, the most impostor scores the exact tail keeps
/// to reach FMR targets (a few MiB, and each part of a split job keeps as
/// many); targets further
/// down get score bands ([`bands`]), whose cost is their width, not their
/// scores. Measured on `cargo xtask bench shard`: at 2^22 (FMR 1e-3 of
/// 10^9 in the tail) the merge took 2.4% of the single run, read mostly
/// in the parts' tails.
const TAIL_TARGETS: u64 = 1 << 18;

/// How many of the highest impostor scores to keep exactly: every one
/// within `budget` (`--exact-budget`, by default 2^28: about 2.7 GB of
/// memory at the peak, measured 1.9 GB for the 2·10^8 distinct pairs of
/// 20,000 × 512 on the CPU engine in fp32; all distinct pairs of 23,000
/// images, or 300,000 probes × 890 gallery images);
/// beyond it, enough that the threshold of the largest of `fmr_targets` is
/// an exact score, with room for ties at it, capped at the budget.
fn tail_capacity(impostors: u64, fmr_targets: &[f64], budget: u64) -> usize {
    if impostors <= budget {
        return impostors as usize;
    }
    let largest = fmr_targets.iter().copied().fold(0.0f64, f64::max);
    tail_reaching(impostors, largest).min(budget as usize)
}

/// The tail whose lowest score is the threshold of FMR target `f` among
/// `impostors` scores: one past the most false matches the target allows,
/// with room for ties at it.
fn tail_reaching(impostors: u64, f: f64) -> usize {
    (f * impostors as f64).ceil() as usize + 1 + 4096
}

/// Group values in natural order: "L2" before "L10" ([`natural_cmp`], the
/// report's order too).
#[derive(Debug, PartialEq, Eq)]
struct NaturalKey(Vec<String>);

impl Ord for NaturalKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| natural_cmp(a, b))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| self.0.len().cmp(&other.0.len()))
    }
}
impl PartialOrd for NaturalKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impostor_counts_and_tails() {
        let ids = [0u32, 0, 1, 1, 1, 2];
        // 15 pairs, genuine 1 + 3.
        assert_eq!(
            impostor_count(Pairing::AllDistinct, &[0, 1, 2, 3, 4, 5], &[], &ids),
            11
        );
        // probes {1, 3, 5} × gallery {0, 2}: genuine (1,0), (3,2).
        assert_eq!(
            impostor_count(Pairing::ProbeGallery, &[1, 3, 5], &[0, 2], &ids),
            4
        );
        let budget = 1 << 28;
        assert_eq!(tail_capacity(11, &[1e-3], budget), 11);
        assert_eq!(
            tail_capacity(200_000_000, &[1e-1, 1e-6], budget),
            200_000_000
        );
        assert_eq!(
            tail_capacity(1 << 32, &[1e-3, 1e-6], budget),
            4_294_968 + 1 + 4096
        );
        assert_eq!(tail_capacity(1 << 32, &[1e-1], budget), budget as usize);
    }

    #[test]
    fn natural_order_of_group_values() {
        let mut v: Vec<NaturalKey> = ["L10", "L2", "L1", "C4", "L2a"]
            .iter()
            .map(|s| NaturalKey(vec![s.to_string()]))
            .collect();
        v.sort();
        let got: Vec<&str> = v.iter().map(|k| k.0[0].as_str()).collect();
        assert_eq!(got, ["C4", "L1", "L2", "L2a", "L10"]);
    }
}
