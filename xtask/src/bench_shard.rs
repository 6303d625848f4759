//! `cargo xtask bench shard` (issue 12): the search case of `bench
//! evaluate` (10^4 probes × 10^5 gallery × 512, probe × gallery, top-10,
//! random-normal rows) run whole and as N parts one after another, then
//! merged: the parts' total CPU seconds against the single run's, the
//! merge's time and peak memory against the single run's time, each task's
//! peak memory, and whether the merged EVAL_DIR is byte-identical to the
//! single run's (but for summary.json's shard note).
//!
//! Single and split runs alternate (which goes first swaps each round);
//! medians over `--runs`. CPU seconds are user + system of each child from
//! wait4's rusage; wall seconds include whatever else the machine runs, so
//! the load average is printed with them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::Args;
use facekit::compare::SplitMix;
use facekit::evalinput::npy;

use crate::measure::{self, median, Measured};

#[derive(Debug, Args)]
pub struct ShardBench {
    /// Rounds of (single run, split runs + merge); medians are reported
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Parts of the split run
    #[arg(long, default_value_t = 4)]
    pub parts: u32,
    /// Blocks of the gallery among the parts (facekit's --gallery-blocks;
    /// must divide --parts): 2 with 4 parts is 2 probe blocks × 2 gallery
    /// blocks
    #[arg(long, default_value_t = 1)]
    pub gallery_blocks: u32,
    /// Where the inputs and outputs go (inputs are reused when present)
    #[arg(long, default_value = "target/bench-shard")]
    pub dir: PathBuf,
    /// Threads of each facekit process (default: all cores)
    #[arg(long)]
    pub jobs: Option<usize>,
    /// facekit's --fmr (default: facekit's); the largest target sets how
    /// many impostor scores every part keeps exactly
    #[arg(long, value_name = "LIST")]
    pub fmr: Option<String>,
}

const GALLERY: usize = 100_000;
const MATED: usize = 5_000;
const NON_MATED: usize = 5_000;
const DIM: usize = 512;

/// Standard normal values (Box–Muller on SplitMix), deterministic.
struct Normal(SplitMix);

impl Normal {
    fn next(&mut self) -> f32 {
        let u = |r: &mut SplitMix| ((r.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let (a, b) = (u(&mut self.0), u(&mut self.0));
        ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
    }
}

/// The search case's rows: a random-normal gallery of one image per
/// identity, 5,000 probes that are a gallery row plus noise (0.9 per
/// coordinate) and 5,000 of identities not enrolled, as `bench evaluate`'s
/// anchors script writes them.
fn write_inputs(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (emb, labels) = (dir.join("search.npy"), dir.join("search.csv"));
    if emb.exists() && labels.exists() {
        return Ok((emb, labels));
    }
    std::fs::create_dir_all(dir)?;
    eprintln!("writing the benchmark inputs into {} ...", dir.display());
    let mut normal = Normal(SplitMix(20261205));
    let mut data: Vec<f32> = (0..GALLERY * DIM).map(|_| normal.next()).collect();
    let mut csv = String::from("identity,role\n");
    for g in 0..GALLERY {
        csv.push_str(&format!("g{g},gallery\n"));
    }
    let mut pick = SplitMix(7);
    for _ in 0..MATED {
        let g = (pick.next() % GALLERY as u64) as usize;
        for d in 0..DIM {
            let v = data[g * DIM + d] + 0.9 * normal.next();
            data.push(v);
        }
        csv.push_str(&format!("g{g},probe\n"));
    }
    for n in 0..NON_MATED {
        data.extend((0..DIM).map(|_| normal.next()));
        csv.push_str(&format!("n{n},probe\n"));
    }
    npy::write_f32(&emb, GALLERY + MATED + NON_MATED, DIM, &data)?;
    std::fs::write(&labels, csv)?;
    Ok((emb, labels))
}

/// Every file of an EVAL_DIR but summary.json's shard note.
fn eval_files(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".facekit-lock") {
            continue;
        }
        let mut bytes = std::fs::read(entry.path())?;
        if name == "summary.json" {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes)?;
            if let Some(o) = v.as_object_mut() {
                o.remove("shards");
            }
            bytes = serde_json::to_vec(&v)?;
        }
        out.insert(name, bytes);
    }
    Ok(out)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

pub fn run(args: &ShardBench) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    anyhow::ensure!(args.parts >= 1, "--parts must be at least 1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf();
    let dir = measure::in_workspace(&root, &args.dir);
    let facekit = measure::build_facekit(&root)?;
    let (emb, labels) = write_inputs(&dir)?;
    let path = |p: &Path| p.display().to_string();
    let mut base: Vec<String> = [
        "evaluate",
        "--embeddings",
        &path(&emb),
        "--labels",
        &path(&labels),
        "--protocol",
        "probe-gallery",
        "--top-k",
        "10",
        "--device",
        "cpu",
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    if let Some(j) = args.jobs {
        base.extend(["--jobs".into(), j.to_string()]);
    }
    if let Some(fmr) = &args.fmr {
        base.extend(["--fmr".into(), fmr.clone()]);
    }
    let evaluate = |more: &[String]| {
        let mut c = Command::new(&facekit);
        c.args(&base).args(more);
        c
    };
    let single_dir = dir.join("single");
    let part_dirs: Vec<PathBuf> = (0..args.parts)
        .map(|i| dir.join(format!("part-{i}")))
        .collect();
    let merged_dir = dir.join("merged");

    let (mut single, mut split, mut merge): (Vec<Measured>, Vec<Vec<Measured>>, Vec<Measured>) =
        Default::default();
    let loads_before = load();
    for round in 0..args.runs {
        let run_single = |single: &mut Vec<Measured>| -> anyhow::Result<()> {
            eprintln!("round {round}: single run ...");
            single.push(measure::run(&mut evaluate(&[
                "--out".into(),
                path(&single_dir),
            ]))?);
            Ok(())
        };
        let run_split =
            |split: &mut Vec<Vec<Measured>>, merge: &mut Vec<Measured>| -> anyhow::Result<()> {
                let mut parts = Vec::new();
                for (i, part) in part_dirs.iter().enumerate() {
                    eprintln!("round {round}: part {i}/{} ...", args.parts);
                    parts.push(measure::run(&mut evaluate(&[
                        "--shard".into(),
                        format!("{i}/{}", args.parts),
                        "--gallery-blocks".into(),
                        args.gallery_blocks.to_string(),
                        "--out".into(),
                        path(part),
                    ]))?);
                }
                split.push(parts);
                eprintln!("round {round}: merge ...");
                let mut m = Command::new(&facekit);
                m.arg("merge").args(&part_dirs).args([
                    "--out",
                    &path(&merged_dir),
                    "--force",
                    "--quiet",
                ]);
                merge.push(measure::run(&mut m)?);
                Ok(())
            };
        if round % 2 == 0 {
            run_single(&mut single)?;
            run_split(&mut split, &mut merge)?;
        } else {
            run_split(&mut split, &mut merge)?;
            run_single(&mut single)?;
        }
    }
    let loads_after = load();

    let identical = eval_files(&single_dir)? == eval_files(&merged_dir)?;
    let part_bytes: Vec<u64> = part_dirs
        .iter()
        .map(|d| std::fs::metadata(d.join("partial.bin")).map(|m| m.len()))
        .collect::<Result<_, _>>()
        .context("reading the parts' sizes")?;
    let med = |v: Vec<f64>| median(&v);
    let single_cpu = med(single.iter().map(|m| m.cpu_seconds).collect());
    let single_wall = med(single.iter().map(|m| m.seconds).collect());
    let split_cpu = med(split
        .iter()
        .map(|p| p.iter().map(|m| m.cpu_seconds).sum())
        .collect());
    let split_wall = med(split
        .iter()
        .map(|p| p.iter().map(|m| m.seconds).sum())
        .collect());
    let merge_wall = med(merge.iter().map(|m| m.seconds).collect());
    let merge_cpu = med(merge.iter().map(|m| m.cpu_seconds).collect());
    let peak = |ms: &mut dyn Iterator<Item = &Measured>| {
        ms.map(|m| m.peak_process_rss.max(m.peak_tree_rss))
            .max()
            .unwrap_or(0)
    };
    let single_rss = peak(&mut single.iter());
    let part_rss = peak(&mut split.iter().flatten());
    let merge_rss = peak(&mut merge.iter());
    let (n, g) = (args.parts, args.gallery_blocks);
    println!(
        "bench shard: search 10^4 probes × 10^5 gallery × 512, probe × gallery, top-10, cpu fp32"
    );
    println!(
        "  command:  facekit {} --out DIR [--shard I/{n} --gallery-blocks {g}]; facekit merge PART... --out DIR --force --quiet",
        base[..].join(" ")
    );
    println!(
        "  rounds:   {} (single and split alternate), medians; load average before {loads_before}, after {loads_after}",
        args.runs
    );
    println!(
        "  single run:        {single_wall:8.2} s wall {single_cpu:8.2} CPU-s   peak RSS {:.2} GiB",
        gib(single_rss)
    );
    println!(
        "  {n} parts ({g} gallery blocks) in turn: {split_wall:8.2} s wall {split_cpu:8.2} CPU-s   peak RSS per task {:.2} GiB   CPU ratio {:.3}× (target ≤ 1.1×)",
        gib(part_rss),
        split_cpu / single_cpu
    );
    println!(
        "  merge:             {merge_wall:8.2} s wall {merge_cpu:8.2} CPU-s   peak RSS {:.2} GiB   {:.1}% of the single run's wall time (target < 2%)",
        gib(merge_rss),
        100.0 * merge_wall / single_wall
    );
    println!(
        "  parts (partial.bin): {} MiB each, largest",
        part_bytes.iter().max().copied().unwrap_or(0) >> 20
    );
    println!(
        "  merged EVAL_DIR byte-identical to the single run's (but the shard note): {}",
        if identical { "yes" } else { "NO" }
    );
    anyhow::ensure!(
        identical,
        "the merged EVAL_DIR differs from the single run's"
    );
    Ok(())
}
