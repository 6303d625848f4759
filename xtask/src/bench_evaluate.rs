//! `cargo xtask bench evaluate` (issue 4): the release `facekit evaluate`
//! against its Python anchors, measured in the same run on the same files.
//!
//! * **scores**: 10^7 impostor + 10^4 genuine scores in a Parquet file.
//!   facekit's metrics from scores in memory (exact counts, AUC, EER, the
//!   curve, FNMR at six FMR targets, intervals) and the whole
//!   `facekit evaluate --scores` process, against scikit-learn `roc_curve`
//!   and bob.measure `eer_threshold` (in memory, after numba's compile, and
//!   as whole processes reading the same file);
//! * **search**: top-10 of 10,000 probes in a 100,000 × 512 gallery, the
//!   whole `facekit evaluate --protocol probe-gallery` process against
//!   faiss-cpu `IndexFlatIP` (2 threads), with the top-1 agreement;
//! * **open-set** (issue 14): the same shapes with half the probes
//!   out-of-DB, half of those look-alikes (blends of three gallery
//!   people) whose best scores are near-ties: evaluate and `facekit
//!   search`, fp32 and bf16, against faiss, interleaved run by run; the
//!   search case runs `facekit search` too. Both assert that every top-1
//!   is faiss's and that bf16's probes.csv and search output are fp32's;
//! * **all-pairs**: genuine scores and impostor histogram over every
//!   distinct pair of 20,000 × 512 embeddings, the whole process against a
//!   tiled numpy implementation;
//! * **kernels**: the bare fp32 and bf16 product kernels on 2 threads, and
//!   the time the products of the two cases above need at that rate.
//!
//! facekit runs in fp32 (the default) and with `--precision bf16`.
//!
//! Medians over `--runs`, wall and CPU (user + system) seconds; peak memory
//! is the largest sampled resident size of a run's process tree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use facekit::evaldir::{self, ProbeRow};
use facekit::evalinput::{labels, scores};
use facekit::metrics::bootstrap::clopper_pearson;
use facekit::metrics::verification::verification;
use facekit::metrics::ScoreCounts;

use crate::measure::{self, median, Measured};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    Scores,
    Search,
    /// The search case with half the probes out-of-DB look-alikes (issue 14)
    OpenSet,
    AllPairs,
    /// The bare product kernels' rate, for the floor of the two cases
    Kernels,
}

#[derive(Debug, Args)]
pub struct EvaluateBench {
    /// Runs per measurement; the median is reported
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the inputs and outputs go (inputs are reused when present)
    #[arg(long, default_value = "target/bench-evaluate")]
    pub dir: PathBuf,
    /// Threads of faiss (the anchor: 2)
    #[arg(long, default_value_t = 2)]
    pub faiss_threads: usize,
    /// Parts to run (default: all)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Part>,
}

/// One measured tool: whole-process wall times, the in-memory times it
/// reported (or that were measured here), and its peak memory.
struct Row {
    case: &'static str,
    tool: String,
    whole: Vec<f64>,
    /// User + system seconds of each whole process: on a shared machine
    /// the wall time also counts other people's work.
    cpu: Vec<f64>,
    in_memory: Vec<f64>,
    peak_rss: u64,
}

impl Row {
    fn new(case: &'static str, tool: impl Into<String>) -> Row {
        Row {
            case,
            tool: tool.into(),
            whole: Vec::new(),
            cpu: Vec::new(),
            in_memory: Vec::new(),
            peak_rss: 0,
        }
    }

    /// Runs and measures one whole process.
    fn run(&mut self, cmd: &mut Command) -> anyhow::Result<Measured> {
        let before = children_cpu();
        let m = measure::run(cmd)?;
        self.cpu.push(children_cpu() - before);
        self.whole.push(m.seconds);
        // The sampled resident memory of the process tree: a child's
        // ru_maxrss also counts the parent's pages at the spawn.
        self.peak_rss = self.peak_rss.max(m.peak_tree_rss);
        Ok(m)
    }

    fn whole(&self) -> f64 {
        median_or_nan(&self.whole)
    }
    fn cpu(&self) -> f64 {
        median_or_nan(&self.cpu)
    }
    fn in_memory(&self) -> f64 {
        median_or_nan(&self.in_memory)
    }
}

fn median_or_nan(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        median(values)
    }
}

/// User + system seconds of all the children waited for so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

pub fn run(args: &EvaluateBench) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf();
    let python = std::env::var("FACEKIT_PYTHON_ANCHORS")
        .context("set FACEKIT_PYTHON_ANCHORS to the anchors venv's python (numpy, scikit-learn, pyarrow, faiss-cpu, bob.measure)")?;
    let script = root.join("scripts/bench/evaluate_anchors.py");
    let dir = measure::in_workspace(&root, &args.dir);
    let facekit = measure::build_facekit(&root)?;
    if !dir.join("pairs.csv").exists() {
        eprintln!("writing the benchmark inputs into {} ...", dir.display());
        measure::run(Command::new(&python).arg(&script).arg("data").arg(&dir))?;
    }
    if !dir.join("openset.csv").exists() {
        eprintln!("writing the open-set case into {} ...", dir.display());
        measure::run(Command::new(&python).arg(&script).arg("openset").arg(&dir))?;
    }
    let parts = if args.only.is_empty() {
        vec![
            Part::Scores,
            Part::Search,
            Part::OpenSet,
            Part::AllPairs,
            Part::Kernels,
        ]
    } else {
        args.only.clone()
    };
    let ctx = Ctx {
        python,
        script,
        dir,
        facekit,
        runs: args.runs,
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for part in parts {
        match part {
            Part::Scores => scores_part(&ctx, &mut rows, &mut notes)?,
            Part::Search => search_case(
                &ctx,
                SEARCH,
                "search",
                args.faiss_threads,
                &mut rows,
                &mut notes,
            )?,
            Part::OpenSet => search_case(
                &ctx,
                OPEN_SET,
                "openset",
                args.faiss_threads,
                &mut rows,
                &mut notes,
            )?,
            Part::AllPairs => all_pairs_part(&ctx, &mut rows, &mut notes)?,
            Part::Kernels => kernels_part(&mut notes),
        }
    }
    print_table(&rows, &notes);
    Ok(())
}

struct Ctx {
    python: String,
    script: PathBuf,
    dir: PathBuf,
    facekit: PathBuf,
    runs: usize,
}

impl Ctx {
    fn python(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.python);
        c.arg(&self.script).args(args);
        c
    }
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
    fn facekit(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.facekit);
        c.arg("evaluate").args(args).arg("--quiet");
        c
    }
}

/// The JSON line an anchor prints.
fn anchor_json(m: &Measured) -> anyhow::Result<serde_json::Value> {
    let line = m
        .stdout
        .lines()
        .last()
        .context("the anchor printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

fn seconds_of(v: &serde_json::Value) -> Vec<f64> {
    v["seconds"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_f64()).collect())
        .unwrap_or_default()
}

fn scores_part(ctx: &Ctx, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> anyhow::Result<()> {
    let file = ctx.path("scores.parquet");
    eprintln!("scores: facekit in memory ...");
    let read = scores::read_scores(Path::new(&file))?;
    let targets = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6];
    let mut mem = Row::new("scores 10^7+10^4", "facekit metrics, in memory");
    let mut eer = 0.0;
    for _ in 0..ctx.runs {
        let (g, i) = (read.genuine.clone(), read.impostor.clone());
        let t = Instant::now();
        let genuine = ScoreCounts::from_scores(g);
        let impostor = ScoreCounts::from_scores(i);
        let report = verification(&genuine, &impostor, &targets)?;
        let intervals: Vec<[f64; 2]> = report
            .summary
            .operating_points
            .iter()
            .map(|p| clopper_pearson(p.false_matches, impostor.total(), 0.95))
            .collect();
        mem.in_memory.push(t.elapsed().as_secs_f64());
        eer = report.summary.eer;
        std::hint::black_box(intervals);
    }
    // Free the scores before spawning: a child's ru_maxrss can include the
    // parent's resident pages at the spawn.
    drop(read);
    rows.push(mem);
    eprintln!("scores: facekit process ...");
    let mut whole = Row::new("scores 10^7+10^4", "facekit evaluate --scores (process)");
    let out = ctx.path("out-scores");
    for _ in 0..ctx.runs {
        whole.run(&mut ctx.facekit(&["--scores", &file, "--out", &out]))?;
    }
    rows.push(whole);
    eprintln!("scores: scikit-learn ...");
    let mut sk = Row::new("scores 10^7+10^4", "sklearn roc_curve");
    for _ in 0..ctx.runs {
        let m = sk.run(&mut ctx.python(&["sklearn", &file, "1"]))?;
        sk.in_memory.extend(seconds_of(&anchor_json(&m)?));
    }
    rows.push(sk);
    eprintln!("scores: bob.measure ...");
    let mut bob = Row::new("scores 10^7+10^4", "bob eer_threshold");
    let mut bob_eer = f64::NAN;
    for _ in 0..ctx.runs {
        let m = bob.run(&mut ctx.python(&["bob", &file, "1"]))?;
        let v = anchor_json(&m)?;
        bob.in_memory.extend(seconds_of(&v));
        bob.tool = format!(
            "{} eer_threshold",
            v["which"].as_str().unwrap_or("bob.measure")
        );
        bob_eer = v["eer"].as_f64().unwrap_or(f64::NAN);
    }
    rows.push(bob);
    notes.push(format!(
        "scores: facekit EER {eer:.6}, bob.measure EER at its threshold {bob_eer:.6}"
    ));
    notes.push("bob.measure's in-memory time excludes numba's compile (a warm-up call); its process time includes it".into());
    Ok(())
}

/// One probes × gallery case (`NAME.npy`, `NAME.csv`): `facekit evaluate
/// --protocol probe-gallery` and `facekit search`, each in fp32 and bf16,
/// and faiss, interleaved run by run so that the machine's load falls on
/// all alike. Asserts that every probe's top-1 identity is faiss's, in
/// every facekit run, and that bf16's probes.csv and search output are
/// fp32's.
fn search_case(
    ctx: &Ctx,
    case: &'static str,
    name: &str,
    faiss_threads: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let (emb, lab) = (
        ctx.path(&format!("{name}.npy")),
        ctx.path(&format!("{name}.csv")),
    );
    // search reads an embeddings directory: the same two files by its names.
    let emb_dir = ctx.dir.join(format!("{name}-emb"));
    std::fs::create_dir_all(&emb_dir)?;
    for (file, link) in [(&emb, "embeddings.npy"), (&lab, "labels.csv")] {
        let link = emb_dir.join(link);
        if !link.exists() {
            std::os::unix::fs::symlink(file, &link)?;
        }
    }
    let emb_dir = emb_dir.display().to_string();
    let out = ctx.path(&format!("out-{name}"));
    let top1 = ctx.path(&format!("faiss-top1-{name}.npy"));
    let mut evaluate: Vec<Row> = PRECISIONS
        .iter()
        .map(|p| Row::new(case, search_tool(p)))
        .collect();
    let mut search: Vec<Row> = PRECISIONS
        .iter()
        .map(|p| Row::new(case, search_command_tool(p)))
        .collect();
    let mut faiss = Row::new(case, format!("faiss IndexFlatIP ({faiss_threads} threads)"));
    let mut printed: Vec<String> = vec![String::new(); PRECISIONS.len()];
    for run in 0..ctx.runs {
        eprintln!("{case}: run {} of {} ...", run + 1, ctx.runs);
        let m = faiss.run(&mut ctx.python(&[
            "faiss",
            &emb,
            &lab,
            &faiss_threads.to_string(),
            &top1,
        ]))?;
        faiss.in_memory.extend(seconds_of(&anchor_json(&m)?));
        for (i, precision) in PRECISIONS.iter().enumerate() {
            let dir = format!("{out}-{precision}");
            evaluate[i].run(&mut ctx.facekit(&[
                "--embeddings",
                &emb,
                "--labels",
                &lab,
                "--protocol",
                "probe-gallery",
                "--top-k",
                "10",
                "--device",
                "cpu",
                "--precision",
                precision,
                "--out",
                &dir,
            ]))?;
            let m = search[i].run(Command::new(&ctx.facekit).args([
                "search",
                "--gallery",
                &emb_dir,
                "--probes",
                &emb_dir,
                "--top-k",
                "10",
                "--format",
                "csv",
                "--device",
                "cpu",
                "--precision",
                precision,
            ]))?;
            printed[i] = m.stdout;
        }
    }
    rows.extend(evaluate);
    rows.extend(search);
    rows.push(faiss);
    // Top-1 agreement, by gallery identity (one image per identity).
    let labels = labels::read_labels(Path::new(&lab))?;
    let roles = labels.role.as_ref().context("search labels have roles")?;
    let gallery_ids: Vec<&str> = labels
        .identity
        .iter()
        .zip(roles)
        .filter(|(_, r)| **r == labels::Role::Gallery)
        .map(|(i, _)| i.as_str())
        .collect();
    let faiss_top1: Vec<Option<&str>> = read_i64_npy(Path::new(&top1))?
        .iter()
        .map(|&f| gallery_ids.get(f as usize).copied())
        .collect();
    let probes_csv =
        |precision: &str| Path::new(&format!("{out}-{precision}")).join(evaldir::PROBES_CSV);
    for (precision, printed) in PRECISIONS.iter().zip(&printed) {
        let probes: Vec<ProbeRow> = evaldir::read_csv(&probes_csv(precision))?;
        let evaluate_top1: Vec<Option<&str>> =
            probes.iter().map(|p| p.top1_identity.as_deref()).collect();
        same_top1(
            &format!("{case}: evaluate {precision}"),
            &evaluate_top1,
            &faiss_top1,
        )?;
        same_top1(
            &format!("{case}: search {precision}"),
            &search_top1(printed)?,
            &faiss_top1,
        )?;
        notes.push(format!(
            "{case} {precision}: top-1 identical to faiss for all {} probes, evaluate and search{}{}",
            probes.len(),
            score_error_note(Path::new(&format!("{out}-{precision}")))?,
            precision_note(Path::new(&format!("{out}-{precision}")))?
        ));
    }
    anyhow::ensure!(
        std::fs::read(probes_csv("bf16"))? == std::fs::read(probes_csv("fp32"))?,
        "{case}: bf16's probes.csv differs from fp32's"
    );
    anyhow::ensure!(
        printed[0] == printed[1],
        "{case}: bf16's search output differs from fp32's"
    );
    notes.push(format!(
        "{case}: bf16 probes.csv and search output identical to fp32's; {}",
        precision_agreement(&out)?
    ));
    Ok(())
}

/// Fails naming the first probe whose top-1 identity is not faiss's.
fn same_top1(what: &str, ours: &[Option<&str>], faiss: &[Option<&str>]) -> anyhow::Result<()> {
    anyhow::ensure!(
        ours.len() == faiss.len(),
        "{what}: {} probes, faiss {}",
        ours.len(),
        faiss.len()
    );
    let differ: Vec<usize> = (0..ours.len()).filter(|&i| ours[i] != faiss[i]).collect();
    if let Some(&i) = differ.first() {
        bail!(
            "{what}: top-1 differs from faiss for {} probes, first probe {i}: {:?} vs {:?}",
            differ.len(),
            ours[i],
            faiss[i]
        );
    }
    Ok(())
}

/// The rank-1 identity of each probe in `facekit search --format csv`
/// output (probe, row, label, rank, identity, …), in probe order.
fn search_top1(csv: &str) -> anyhow::Result<Vec<Option<&str>>> {
    let mut top1 = Vec::new();
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        anyhow::ensure!(cells.len() == 8, "search output line {line:?}");
        if cells[3] == "1" {
            top1.push(Some(cells[4]));
        }
    }
    Ok(top1)
}

/// How the bf16 run's verification compares with the fp32 run's: the
/// operating points (threshold and false match count) that are identical,
/// and the largest EER difference.
fn precision_agreement(out: &str) -> anyhow::Result<String> {
    let read = |precision: &str| -> anyhow::Result<evaldir::Verification> {
        evaldir::read_summary(Path::new(&format!("{out}-{precision}")))?
            .verification
            .context("the summary has verification")
    };
    let (fp32, bf16) = (read("fp32")?, read("bf16")?);
    let same = fp32
        .operating_points
        .iter()
        .zip(&bf16.operating_points)
        .filter(|(a, b)| a.threshold == b.threshold && a.false_matches == b.false_matches)
        .count();
    let (mut threshold, mut fmr) = (0f64, 0f64);
    for (a, b) in fp32.operating_points.iter().zip(&bf16.operating_points) {
        threshold = threshold.max((a.threshold - b.threshold).abs());
        if a.fmr > 0.0 {
            fmr = fmr.max((a.fmr - b.fmr).abs() / a.fmr);
        }
    }
    Ok(format!(
        "bf16 vs fp32: {same} of {} FMR operating points identical (threshold and false matches); largest threshold difference {threshold:.1e}, largest relative FMR difference {fmr:.1e}; EER {:.6} vs {:.6}",
        fp32.operating_points.len(),
        bf16.eer,
        fp32.eer
    ))
}

/// ", NOTE" where a run says it used another precision than asked for.
fn precision_note(dir: &Path) -> anyhow::Result<String> {
    let summary = evaldir::read_summary(dir)?;
    Ok(summary
        .engine
        .precision_note
        .map(|n| format!(", {n}"))
        .unwrap_or_default())
}

/// ", largest sampled score error E" for a reduced-precision run.
fn score_error_note(dir: &Path) -> anyhow::Result<String> {
    let summary = evaldir::read_summary(dir)?;
    Ok(summary
        .engine
        .max_abs_score_error
        .map(|e| format!(", largest sampled score error {e:.1e}"))
        .unwrap_or_default())
}

const PRECISIONS: [&str; 2] = ["fp32", "bf16"];
const SEARCH: &str = "search 10^4 × 10^5 × 512, top-10";
const OPEN_SET: &str = "open-set 10^4 × 10^5 × 512 (half out-of-DB, look-alikes), top-10";
const ALL_PAIRS: &str = "all pairs 20,000 × 512";

/// Measures `facekit evaluate ARGS --device cpu --precision P` for each
/// precision, writing into `OUT-P`.
fn facekit_rows(
    ctx: &Ctx,
    case: &'static str,
    tool: fn(&str) -> String,
    out: &str,
    args: &[&str],
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    for precision in PRECISIONS {
        eprintln!("{case}: facekit {precision} ...");
        let mut row = Row::new(case, tool(precision));
        let out = format!("{out}-{precision}");
        let mut all = args.to_vec();
        all.extend(["--device", "cpu", "--precision", precision, "--out", &out]);
        for _ in 0..ctx.runs {
            row.run(&mut ctx.facekit(&all))?;
        }
        rows.push(row);
    }
    Ok(())
}

fn search_tool(precision: &str) -> String {
    format!("facekit evaluate --protocol probe-gallery --precision {precision}")
}

fn search_command_tool(precision: &str) -> String {
    format!("facekit search --top-k 10 --precision {precision}")
}

fn all_pairs_tool(precision: &str) -> String {
    format!("facekit evaluate (all distinct pairs) --precision {precision}")
}

/// The int64 vector the faiss anchor saves (np.save of a 1-d array).
fn read_i64_npy(path: &Path) -> anyhow::Result<Vec<i64>> {
    let bytes = std::fs::read(path)?;
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len])?;
    if !header.contains("'<i8'") {
        bail!(
            "{}: expected an int64 array, header {header}",
            path.display()
        );
    }
    Ok(bytes[10 + header_len..]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

fn all_pairs_part(ctx: &Ctx, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> anyhow::Result<()> {
    let (emb, lab, out) = (
        ctx.path("pairs.npy"),
        ctx.path("pairs.csv"),
        ctx.path("out-pairs"),
    );
    let args = ["--embeddings", &emb, "--labels", &lab];
    facekit_rows(ctx, ALL_PAIRS, all_pairs_tool, &out, &args, rows)?;
    eprintln!("all-pairs: numpy ...");
    let mut np = Row::new(ALL_PAIRS, "numpy, tiled (2048)");
    let mut counts = (0, 0);
    for _ in 0..ctx.runs {
        let m = np.run(&mut ctx.python(&["numpy", &emb, &lab]))?;
        let v = anchor_json(&m)?;
        np.in_memory.extend(seconds_of(&v));
        counts = (
            v["genuine"].as_u64().unwrap_or(0),
            v["impostor"].as_u64().unwrap_or(0),
        );
    }
    rows.push(np);
    for precision in PRECISIONS {
        let dir = format!("{out}-{precision}");
        let summary = evaldir::read_summary(Path::new(&dir))?;
        let v = summary
            .verification
            .context("all-pairs summary has verification")?;
        notes.push(format!(
            "all-pairs {precision}: facekit {} genuine + {} impostor, numpy {} + {}{}",
            v.genuine_count,
            v.impostor_count,
            counts.0,
            counts.1,
            score_error_note(Path::new(&dir))?
        ));
    }
    notes.push(format!("all-pairs: {}", precision_agreement(&out)?));
    Ok(())
}

const N: usize = 1024;
const DIM: usize = 512;
const REPS: usize = 40;
const THREADS: usize = 2;

/// FLOP/s of `run`, REPS times on each of THREADS threads, each thread
/// with its own scratch (allocated once, as the engine's workers do).
fn rate<S: Default>(run: &(dyn Fn(&mut S) + Sync)) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mut scratch = S::default();
                (0..REPS).for_each(|_| run(&mut scratch));
            });
        }
    });
    (THREADS * REPS * N * N * DIM * 2) as f64 / t.elapsed().as_secs_f64()
}

/// The bare product kernels, one per thread on 2 threads (this machine's
/// cores), on 1024 × 1024 × 512 tiles as the engine runs them; then the
/// time the products of the search and all-pairs cases need at that rate.
fn kernels_part(notes: &mut Vec<String>) {
    use facekit::compare::cpu::{bf16, products};
    eprintln!("kernels ...");
    let values: Vec<f32> = (0..N * DIM)
        .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / 1001.0 / (DIM as f32).sqrt())
        .collect();
    let fp32 = rate(&|out: &mut Vec<f32>| {
        out.resize(N * N, 0.0);
        products(&values, &values, DIM, out);
        std::hint::black_box(out);
    });
    let rows = bf16::rows(&values, DIM);
    let bf16_rate = bf16::supported().then(|| {
        rate(&|scratch: &mut bf16::Scratch| {
            bf16::products(&rows, &rows, bf16::pairs(DIM), scratch, &mut |_, s| {
                std::hint::black_box(s);
            });
        })
    });
    // FLOPs: every probe × gallery product; for all distinct pairs the
    // upper-triangle tiles the engine computes (1024-row blocks).
    let search = 2.0 * 1e4 * 1e5 * DIM as f64;
    let blocks = 20_000usize.div_ceil(1024);
    let all_pairs: f64 = (0..blocks)
        .map(|b| {
            let rows = 1024.min(20_000 - b * 1024) as f64;
            rows * (20_000 - b * 1024) as f64
        })
        .sum::<f64>()
        * 2.0
        * DIM as f64;
    for (name, r) in [("fp32 sgemm", Some(fp32)), ("bf16 vdpbf16ps", bf16_rate)] {
        let Some(r) = r else {
            notes.push(format!("kernels: {name} not run (no AVX-512 BF16)"));
            continue;
        };
        notes.push(format!(
            "kernels: {name} {:.0} GFLOP/s on {THREADS} threads; products alone: search {:.2} s, all pairs {:.2} s",
            r / 1e9,
            search / r,
            all_pairs / r
        ));
    }
}

fn print_table(rows: &[Row], notes: &[String]) {
    println!("| case | tool | process wall s | process CPU s | in-memory s | peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    let fmt = |s: f64| {
        if s.is_nan() {
            "–".to_string()
        } else {
            format!("{s:.3}")
        }
    };
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.case,
            r.tool,
            fmt(r.whole()),
            fmt(r.cpu()),
            fmt(r.in_memory()),
            if r.peak_rss == 0 {
                "–".to_string()
            } else {
                format!("{:.0}", r.peak_rss as f64 / (1 << 20) as f64)
            }
        );
    }
    let find = |prefix: &str| rows.iter().find(|r| r.tool.starts_with(prefix));
    println!();
    let get = |prefix: &str, what: fn(&Row) -> f64| find(prefix).map(what);
    // (what, anchor, facekit, the target)
    let mut comparisons: Vec<(String, Option<f64>, Option<f64>, Option<f64>)> = vec![
        (
            "scores in memory: bob eer_threshold / facekit metrics".into(),
            get("bob", Row::in_memory),
            get("facekit metrics", Row::in_memory),
            Some(5.0),
        ),
        (
            "scores in memory: sklearn roc_curve / facekit metrics".into(),
            get("sklearn", Row::in_memory),
            get("facekit metrics", Row::in_memory),
            Some(5.0),
        ),
        (
            "scores processes, wall: bob / facekit".into(),
            get("bob", Row::whole),
            get("facekit evaluate --scores", Row::whole),
            None,
        ),
        (
            "scores processes, wall: sklearn / facekit".into(),
            get("sklearn", Row::whole),
            get("facekit evaluate --scores", Row::whole),
            None,
        ),
    ];
    // The probes × gallery cases against faiss in the same case: whole
    // processes (wall and CPU); issue 14's targets for bf16.
    for (case, bf16_target) in [(SEARCH, 1.7), (OPEN_SET, 1.6)] {
        let in_case = |prefix: &str| {
            rows.iter()
                .find(|r| r.case == case && r.tool.starts_with(prefix))
        };
        let Some(faiss) = in_case("faiss") else {
            continue;
        };
        for precision in PRECISIONS {
            for tool in [search_tool(precision), search_command_tool(precision)] {
                let Some(ours) = in_case(&tool) else { continue };
                let target = (precision == "bf16").then_some(bf16_target);
                comparisons.push((
                    format!("{case}, wall: faiss process / {tool}"),
                    Some(faiss.whole()),
                    Some(ours.whole()),
                    target,
                ));
                comparisons.push((
                    format!("{case}, CPU: faiss process / {tool}"),
                    Some(faiss.cpu()),
                    Some(ours.cpu()),
                    None,
                ));
            }
        }
    }
    type Metric = fn(&Row) -> f64;
    for precision in PRECISIONS {
        let pairs = all_pairs_tool(precision);
        // (case, what, anchor, its metric, facekit, its metric, target)
        let cases: [(&str, &str, &str, Metric, &str, Metric, Option<f64>); 3] = [
            (
                "all pairs",
                "wall: numpy tiled loop alone / facekit process",
                "numpy",
                Row::in_memory,
                &pairs,
                Row::whole,
                None,
            ),
            (
                "all pairs",
                "wall: numpy process / facekit process",
                "numpy",
                Row::whole,
                &pairs,
                Row::whole,
                Some(4.5),
            ),
            (
                "all pairs",
                "CPU: numpy process / facekit process",
                "numpy",
                Row::cpu,
                &pairs,
                Row::cpu,
                None,
            ),
        ];
        for (case, what, anchor, of_anchor, ours, of_ours, target) in cases {
            comparisons.push((
                format!("{case} {precision}, {what}"),
                get(anchor, of_anchor),
                get(ours, of_ours),
                target,
            ));
        }
    }
    for (what, anchor, ours, target) in comparisons {
        let (Some(a), Some(o)) = (anchor, ours) else {
            continue;
        };
        let x = a / o;
        match target {
            Some(t) => println!(
                "{what}: {x:.1}x (target >= {t}x: {})",
                if x >= t { "met" } else { "NOT met" }
            ),
            None => println!("{what}: {x:.1}x"),
        }
    }
    for n in notes {
        println!("{n}");
    }
}
