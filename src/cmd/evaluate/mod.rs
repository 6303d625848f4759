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

mod examples;
mod group_scores;
mod markdown;
mod tables;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};

use crate::cli::{EvaluateArgs, Protocol};
use crate::cmd::engine::select_engine;
use crate::compare::cpu::pair_score;
use crate::compare::{CompareJob, CompareResult, Embeddings, Engine, HistogramSpec, Pairing};
use crate::evaldir::{
    self, EngineInfo, ExampleRow, GroupBreakdown, GroupScoreRow, HistogramRow, Identification,
    Inputs, ProbeRow, RocRow, ScoreInfo, Summary, Verification, DECISION, HIST_GENUINE,
    HIST_IMPOSTOR,
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
use crate::text::natural_cmp;

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
    let started = Instant::now();
    let out = OutputDir::begin(&args.out, "evaluate", true)?;
    for input in [&args.embeddings, &args.pairs].into_iter().flatten() {
        if let Some(stale) = stale_source(input)? {
            eprintln!("facekit: warning: {stale}");
        }
    }
    let pool = crate::output::thread_pool(args.jobs)?;
    let threads = pool.current_num_threads();
    let evaluation = pool.install(|| match &args.scores {
        Some(path) => from_score_file(args, path),
        None => from_embeddings(args),
    })?;
    write_outputs(out.stage(), &evaluation)?;
    out.commit()?;
    let seconds = started.elapsed().as_secs_f64();
    if args.output.json {
        crate::output::print(&(serde_json::to_string_pretty(&evaluation.summary)? + "\n"))?;
    } else if !args.output.quiet {
        crate::output::print(&markdown::console(
            &evaluation.summary,
            evaluation.comparisons,
            threads,
            seconds,
            &args.out,
        ))?;
    }
    Ok(())
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
    evaldir::write_csv(&dir.join(evaldir::ROC_CSV), &e.roc)?;
    evaldir::write_csv(&dir.join(evaldir::OPERATING_POINTS_CSV), &operating)?;
    evaldir::write_histograms(&dir.join(evaldir::SCORES_PARQUET), &e.histograms)?;
    evaldir::write_csv(&dir.join(evaldir::PROBES_CSV), &e.probes)?;
    evaldir::write_csv(&dir.join(evaldir::EXAMPLES_CSV), &e.examples)?;
    evaldir::write_csv(&dir.join(evaldir::GROUP_SCORES_CSV), &e.group_scores)?;
    crate::output::write_atomic(
        dir.join(evaldir::SUMMARY_MD),
        markdown::summary_md(&e.summary).as_bytes(),
    )
    .with_context(|| format!("{}: cannot write", dir.join(evaldir::SUMMARY_MD).display()))?;
    evaldir::write_summary(dir, &e.summary)?;
    Ok(())
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
    let (verification, roc) = verify(args, &genuine, &impostor, &[])
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
            kind: "none".into(),
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
    args: &EvaluateArgs,
    genuine: &ScoreCounts,
    impostor: &ScoreCounts,
    subjects: &[SubjectScore],
) -> anyhow::Result<(Verification, Vec<RocRow>)> {
    let report = verification(genuine, impostor, &args.fmr)?;
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

/// The loaded inputs of an embeddings run.
struct Loaded<'a> {
    args: &'a EvaluateArgs,
    embeddings: Embeddings,
    labels: Labels,
    labels_path: &'a Path,
    /// Dense identity of each row, and the names.
    ids: Vec<u32>,
    names: Vec<String>,
    /// Rows by role (both empty without a role column).
    gallery: Vec<usize>,
    probes: Vec<usize>,
}

fn from_embeddings(args: &EvaluateArgs) -> anyhow::Result<Evaluation> {
    let emb_path = args
        .embeddings
        .as_deref()
        .context("give --embeddings with --labels, or --scores")?;
    let labels_path = args
        .labels
        .as_deref()
        .context("--embeddings needs --labels")?;
    let matrix = npy::read_matrix(emb_path)?;
    let labels = labels::read_labels(labels_path)?;
    if matrix.rows != labels.len() {
        bail!(
            "{}: {} embedding rows, but {} has {} label rows",
            emb_path.display(),
            matrix.rows,
            labels_path.display(),
            labels.len()
        );
    }
    if matrix.rows < 2 {
        bail!(
            "{}: {} embedding rows; at least 2 are needed to compare",
            emb_path.display(),
            matrix.rows
        );
    }
    if matrix.cols == 0 {
        bail!("{}: the embeddings have 0 columns", emb_path.display());
    }
    let embeddings = Embeddings::normalized(matrix.data, matrix.cols)
        .map_err(|e| anyhow!("{}: {e}", emb_path.display()))?;
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
    for column in args.group_by.iter().flat_map(|c| c.split('+')) {
        if labels.column(column).is_none() {
            bail!(
                "{}: no column {column:?} to group by (columns: {})",
                labels_path.display(),
                labels.column_names().join(", ")
            );
        }
    }
    let loaded = Loaded {
        args,
        embeddings,
        labels,
        labels_path,
        ids,
        names,
        gallery,
        probes,
    };
    let selected = select_engine(args.device, args.precision)?;
    let notice = selected.notice();
    let mut evaluation = loaded.evaluate(selected.engine.as_ref(), selected.info, emb_path)?;
    evaluation.summary.engine.max_abs_score_error = selected.engine.score_error();
    evaluation.summary.engine.precision_note = selected.engine.precision_note();
    // Said once the run has succeeded, so an error stays the only line.
    // A GPU that is there but unusable is said even with --quiet.
    let quiet = (args.output.quiet || args.output.json) && !selected.gpu_unusable;
    if let (Some(notice), false) = (notice, quiet) {
        eprintln!("facekit: {notice}");
    }
    Ok(evaluation)
}

/// A verification set: its scores (exact genuine, binned or exact
/// impostor) and whether every threshold is exact.
struct VerificationSet {
    genuine: ScoreCounts,
    impostor: ScoreCounts,
    subjects: Vec<SubjectScore>,
    histograms: Vec<HistogramRow>,
    comparisons: u64,
}

impl Loaded<'_> {
    fn has_roles(&self) -> bool {
        !self.gallery.is_empty()
    }

    fn evaluate(
        &self,
        engine: &dyn Engine,
        engine_info: EngineInfo,
        emb_path: &Path,
    ) -> anyhow::Result<Evaluation> {
        let args = self.args;
        let probe_gallery = args.protocol == Protocol::ProbeGallery;
        if probe_gallery && !self.has_roles() {
            bail!(
                "{}: --protocol probe-gallery needs a role column (gallery / probe)",
                self.labels_path.display()
            );
        }
        let spec = HistogramSpec::DEFAULT;
        let mut kfold = None;
        // The identification pass, when roles are given; under probe-gallery
        // it is also the verification set.
        let search = if self.has_roles() {
            Some(self.search(engine, spec, probe_gallery)?)
        } else {
            None
        };
        let (protocol, set) = if let Some(pairs_path) = &args.pairs {
            let listed = self.scored_pairs(pairs_path)?;
            let (set, accuracy) = self.pairs_set(&listed, pairs_path, spec)?;
            kfold = accuracy;
            (VerificationPairs::Listed(listed), set)
        } else if probe_gallery {
            let result = &search.as_ref().expect("roles checked above").0;
            (
                VerificationPairs::ProbeGallery,
                self.set_from_result(result, spec),
            )
        } else {
            (
                VerificationPairs::AllDistinct,
                self.all_pairs_set(engine, spec)?,
            )
        };
        let (mut verification, roc) = verify(args, &set.genuine, &set.impostor, &set.subjects)
            .with_context(|| {
                format!(
                    "{}: cannot compute verification",
                    self.labels_path.display()
                )
            })?;
        verification.kfold_accuracy = kfold;
        let (groups, group_scores) = self.groups(engine, spec, &protocol, &verification)?;
        let mut histograms = set.histograms;
        let (identification, probes, examples) = match &search {
            Some((result, _)) => {
                let (ident, rows, examples) = self.identify(result, verification.eer_threshold)?;
                histograms.extend(tables::top1_histograms(Bins::cosine(spec), &result.probes));
                (Some(ident), rows, examples)
            }
            None => (None, Vec::new(), Vec::new()),
        };
        let comparisons = set.comparisons
            + search
                .as_ref()
                .filter(|_| !probe_gallery)
                .map_or(0, |s| s.1);
        let summary = Summary {
            schema: evaldir::SCHEMA,
            facekit_version: crate::VERSION.into(),
            engine: engine_info,
            inputs: Inputs {
                embeddings: Some(path_text(emb_path)),
                labels: Some(path_text(self.labels_path)),
                scores: None,
                pairs: args.pairs.as_deref().map(path_text),
                protocol: protocol.name().into(),
                rows: self.embeddings.rows() as u64,
                dim: Some(self.embeddings.dim() as u64),
                identities: self.names.len() as u64,
            },
            score: score_info(&set.impostor, spec, Some(EXACT_IMPOSTOR_BUDGET), true),
            verification: Some(verification),
            identification,
            groups,
            synthetic_note: None,
        };
        Ok(Evaluation {
            summary,
            roc,
            histograms,
            probes,
            examples,
            group_scores,
            comparisons,
        })
    }

    /// Runs one job over row subsets.
    fn compare(
        &self,
        engine: &dyn Engine,
        probe_rows: &[usize],
        gallery_rows: &[usize],
        pairing: Pairing,
        top_k: usize,
        tail_capacity: usize,
        spec: HistogramSpec,
    ) -> anyhow::Result<CompareResult> {
        let probes = subset(&self.embeddings, probe_rows);
        let probe_labels: Vec<u32> = probe_rows.iter().map(|&r| self.ids[r]).collect();
        let (gallery, gallery_labels) = match pairing {
            Pairing::AllDistinct => (None, probe_labels.clone()),
            Pairing::ProbeGallery => (
                Some(subset(&self.embeddings, gallery_rows)),
                gallery_rows.iter().map(|&r| self.ids[r]).collect(),
            ),
        };
        let job = CompareJob {
            probes: &probes,
            probe_labels: &probe_labels,
            gallery: gallery.as_deref().unwrap_or(&probes),
            gallery_labels: &gallery_labels,
            pairing,
            top_k,
            histogram: spec,
            tail_capacity,
        };
        Ok(engine.compare(&job)?)
    }

    /// The exact impostor tail a job over these rows keeps
    /// ([`tail_capacity`]).
    fn tail_for(&self, pairing: Pairing, probe_rows: &[usize]) -> usize {
        let impostors = impostor_count(pairing, probe_rows, &self.gallery, &self.ids);
        tail_capacity(impostors, &self.args.fmr)
    }

    /// Probes against the gallery: top-k, mate ranks, and (for the
    /// probe-gallery protocol) the verification statistics.
    fn search(
        &self,
        engine: &dyn Engine,
        spec: HistogramSpec,
        verification_too: bool,
    ) -> anyhow::Result<(CompareResult, u64)> {
        let tail = if verification_too {
            self.tail_for(Pairing::ProbeGallery, &self.probes)
        } else {
            0
        };
        let result = self.compare(
            engine,
            &self.probes,
            &self.gallery,
            Pairing::ProbeGallery,
            self.args.top_k.max(1),
            tail,
            spec,
        )?;
        Ok((result, (self.probes.len() * self.gallery.len()) as u64))
    }

    fn set_from_result(&self, result: &CompareResult, spec: HistogramSpec) -> VerificationSet {
        let genuine = ScoreCounts::from_scores(result.genuine.clone());
        let impostor = ScoreCounts::from_binned(&result.impostor_tail, &result.impostor_hist, spec);
        // Engines may leave the subjects out: then no FNMR interval.
        let subjects = if result.genuine_subjects.len() == result.genuine.len() {
            result
                .genuine
                .iter()
                .zip(&result.genuine_subjects)
                .map(|(&s, &subject)| SubjectScore {
                    subject,
                    score: s as f64,
                })
                .collect()
        } else {
            Vec::new()
        };
        let bins = Bins::cosine(spec);
        let mut histograms = bins.rows(HIST_GENUINE, result.genuine.iter().copied());
        histograms.extend(bins.count_rows(HIST_IMPOSTOR, &result.impostor_hist));
        VerificationSet {
            comparisons: genuine.total() + impostor.total(),
            genuine,
            impostor,
            subjects,
            histograms,
        }
    }

    fn all_pairs_set(
        &self,
        engine: &dyn Engine,
        spec: HistogramSpec,
    ) -> anyhow::Result<VerificationSet> {
        let rows: Vec<usize> = (0..self.embeddings.rows()).collect();
        let tail = self.tail_for(Pairing::AllDistinct, &rows);
        let result = self.compare(engine, &rows, &[], Pairing::AllDistinct, 0, tail, spec)?;
        Ok(self.set_from_result(&result, spec))
    }

    /// The pairs listed in `path`, read once and each scored by the
    /// engine's product.
    fn scored_pairs(&self, path: &Path) -> anyhow::Result<Vec<(Pair, f32)>> {
        use rayon::prelude::*;
        let label_paths = self.labels.path.as_deref().ok_or_else(|| {
            anyhow!(
                "{}: no `path` column to match the pairs of {} to",
                self.labels_path.display(),
                path.display()
            )
        })?;
        let listed = pairs::read_pairs(path, label_paths)?;
        Ok(listed
            .into_par_iter()
            .map(|p| {
                let s = pair_score(self.embeddings.row(p.first), self.embeddings.row(p.second));
                (p, s)
            })
            .collect())
    }

    /// The listed pairs as a verification set, and the insightface 10-fold
    /// accuracy over them in list order.
    fn pairs_set(
        &self,
        listed: &[(Pair, f32)],
        path: &Path,
        spec: HistogramSpec,
    ) -> anyhow::Result<(VerificationSet, Option<crate::evaldir::KFoldAccuracy>)> {
        let (mut genuine, mut impostor, mut subjects) = (Vec::new(), Vec::new(), Vec::new());
        for &(p, s) in listed {
            if p.same {
                genuine.push(s);
                subjects.push(SubjectScore {
                    subject: self.ids[p.first],
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
            comparisons: listed.len() as u64,
            genuine: ScoreCounts::from_scores(genuine),
            impostor: ScoreCounts::from_scores(impostor),
            subjects,
            histograms,
        };
        Ok((set, kfold))
    }

    fn identify(
        &self,
        result: &CompareResult,
        eer_threshold: f64,
    ) -> anyhow::Result<(Identification, Vec<ProbeRow>, Vec<ExampleRow>)> {
        let args = self.args;
        let gallery_identities: BTreeSet<u32> = self.gallery.iter().map(|&r| self.ids[r]).collect();
        let mut ident = identification(
            &result.probes,
            self.gallery.len() as u64,
            gallery_identities.len() as u64,
            &args.fpir,
            args.top_k.max(1),
            args.rank,
        )
        .with_context(|| {
            format!(
                "{}: cannot compute identification",
                self.labels_path.display()
            )
        })?;
        if args.bootstrap > 0 {
            let samples: Vec<SubjectScore> = result
                .probes
                .iter()
                .zip(&self.probes)
                .filter_map(|(p, &row)| {
                    mate_score_within(p, args.rank).map(|score| SubjectScore {
                        subject: self.ids[row],
                        score,
                    })
                })
                .collect();
            let thresholds: Vec<f64> = ident.operating_points.iter().map(|p| p.threshold).collect();
            if let Some(ci) = miss_rate_intervals(&samples, &thresholds, args.bootstrap, args.seed)
            {
                for (p, c) in ident.operating_points.iter_mut().zip(ci) {
                    p.fnir_ci95 = Some(c);
                }
            }
        }
        let threshold = tables::decision_threshold(&ident.operating_points, Some(eer_threshold))
            .expect("the EER threshold is always there");
        let ctx = ProbeContext {
            rows: &self.probes,
            gallery_rows: &self.gallery,
            identity: &self.labels.identity,
            path: self.labels.path.as_deref(),
        };
        Ok((
            ident,
            tables::probe_rows(&result.probes, &ctx, threshold),
            examples::example_rows(&result.probes, &ctx, examples::PER_KIND),
        ))
    }

    /// FNMR and FMR per value of each `--group-by` column (or `a+b` cross)
    /// at the global thresholds. A comparison belongs to a group when both
    /// its images have the value; under probe-gallery, when its probe has.
    fn groups(
        &self,
        engine: &dyn Engine,
        spec: HistogramSpec,
        protocol: &VerificationPairs,
        verification: &Verification,
    ) -> anyhow::Result<(Vec<GroupBreakdown>, Vec<GroupScoreRow>)> {
        let mut breakdowns = Vec::new();
        let mut scores = Vec::new();
        for spec_text in &self.args.group_by {
            let columns: Vec<String> = spec_text.split('+').map(str::to_string).collect();
            let values: Vec<Vec<String>> = columns
                .iter()
                .map(|c| self.labels.column(c).expect("columns checked on load"))
                .collect();
            let key = |row: usize| values.iter().map(|v| v[row].clone()).collect::<Vec<_>>();
            let pool: Vec<usize> = match protocol {
                VerificationPairs::ProbeGallery => self.probes.clone(),
                VerificationPairs::AllDistinct | VerificationPairs::Listed(_) => {
                    (0..self.embeddings.rows()).collect()
                }
            };
            let mut members: BTreeMap<NaturalKey, Vec<usize>> = BTreeMap::new();
            for row in pool {
                members.entry(NaturalKey(key(row))).or_default().push(row);
            }
            let mut groups = Vec::new();
            for (NaturalKey(values), rows) in members {
                let (genuine, impostor) = match protocol {
                    VerificationPairs::Listed(listed) => group_pairs(listed, &rows),
                    VerificationPairs::ProbeGallery => {
                        let capacity = self.tail_for(Pairing::ProbeGallery, &rows);
                        let r = self.compare(
                            engine,
                            &rows,
                            &self.gallery,
                            Pairing::ProbeGallery,
                            0,
                            capacity,
                            spec,
                        )?;
                        binned(r, spec)
                    }
                    VerificationPairs::AllDistinct => {
                        let capacity = self.tail_for(Pairing::AllDistinct, &rows);
                        let r = self.compare(
                            engine,
                            &rows,
                            &[],
                            Pairing::AllDistinct,
                            0,
                            capacity,
                            spec,
                        )?;
                        binned(r, spec)
                    }
                };
                groups.push(GroupScores {
                    values,
                    genuine,
                    impostor,
                });
            }
            scores.extend(group_scores::group_score_rows(
                &columns,
                &groups,
                Bins::cosine(spec),
            ));
            breakdowns.push(GroupBreakdown {
                columns,
                rows: group_rows(&groups, &verification.operating_points),
            });
        }
        Ok((breakdowns, scores))
    }
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

fn binned(r: CompareResult, spec: HistogramSpec) -> (ScoreCounts, ScoreCounts) {
    let impostor = ScoreCounts::from_binned(&r.impostor_tail, &r.impostor_hist, spec);
    (ScoreCounts::from_scores(r.genuine), impostor)
}

/// The rows of `e` listed, borrowed when they are every row in order.
fn subset<'a>(e: &'a Embeddings, rows: &[usize]) -> Cow<'a, Embeddings> {
    if rows.len() == e.rows() && rows.iter().enumerate().all(|(i, &r)| i == r) {
        Cow::Borrowed(e)
    } else {
        Cow::Owned(e.select(rows))
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

/// Impostor comparisons whose scores are all kept exactly, so that every
/// figure is what the exact scores give: 2^28, about 11 GiB of memory at
/// the peak (measured 40 bytes per impostor score on the CPU engine, which
/// holds a score with its pair while it merges).
/// All distinct pairs of 23,000 images, or 300,000 probes × 890 gallery
/// images, fit.
pub const EXACT_IMPOSTOR_BUDGET: u64 = 1 << 28;

/// How many of the highest impostor scores to keep exactly: every one
/// within [`EXACT_IMPOSTOR_BUDGET`]; beyond it, enough that the threshold
/// of the largest FMR target is an exact score, with room for ties at it,
/// capped at the budget (targets beyond the cap are said to be inexact).
fn tail_capacity(impostors: u64, fmr_targets: &[f64]) -> usize {
    if impostors <= EXACT_IMPOSTOR_BUDGET {
        return impostors as usize;
    }
    let largest = fmr_targets.iter().copied().fold(0.0f64, f64::max);
    let needed = (largest * impostors as f64).ceil() as u64 + 1;
    (needed + 4096).min(EXACT_IMPOSTOR_BUDGET) as usize
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
        assert_eq!(tail_capacity(11, &[1e-3]), 11);
        assert_eq!(tail_capacity(200_000_000, &[1e-1, 1e-6]), 200_000_000);
        assert_eq!(tail_capacity(1 << 32, &[1e-3, 1e-6]), 4_294_968 + 1 + 4096);
        assert_eq!(
            tail_capacity(1 << 32, &[1e-1]),
            EXACT_IMPOSTOR_BUDGET as usize
        );
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
