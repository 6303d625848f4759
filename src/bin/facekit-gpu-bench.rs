//! GPU benchmark of the CUDA comparison engine: all-pairs impostor
//! histogram, genuine scores and top-k of N probes against M gallery rows
//! (ten rows per identity around a random centre, mates at a cosine of
//! about 0.5, as a face model gives), end to end (uploads, products, fold,
//! read-back), next to cuBLAS's own GEMM over the same tiles at the same
//! precision in the same run. Each precision after the first is checked to
//! make exactly the first's decisions (top-k lists, mate scores and ranks,
//! genuine scores, the exact tail).
//!
//! It needs a GPU; `scripts/gpu-check.sh` runs it. Without one it says so
//! and exits 1. Built only with `--features gpu-bench`, so that it stays
//! out of a user's `cargo install`.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use facekit::cli::Precision as PrecisionArg;
use facekit::compare::cuda::{CudaEngine, Profile};
use facekit::compare::{CompareJob, CompareResult, Embeddings, HistogramSpec, Pairing, Precision};
use facekit::compare::{SplitMix, TileShape};

#[derive(Parser)]
// A later --n (gpu-check.sh's BENCH_ARGS) overrides an earlier one.
#[command(
    about = "Benchmark the CUDA engine against cuBLAS's own GEMM",
    version,
    args_override_self = true
)]
struct Args {
    /// Probes (rows of the first set)
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    /// Gallery rows (default: as many as probes)
    #[arg(long)]
    gallery: Option<usize>,
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// Precisions to run, in order
    #[arg(long, value_enum, value_delimiter = ',', default_value = "bf16")]
    precision: Vec<PrecisionArg>,
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Impostor scores kept exactly
    #[arg(long, default_value_t = 1_000_000)]
    tail: usize,
    /// Tile shapes ROWSxCOLS; with several, each is timed on --sweep-n
    /// probes and gallery rows first and the fastest is used
    #[arg(long, value_delimiter = ',', default_value = "8192x16384")]
    tile: Vec<String>,
    #[arg(long, default_value_t = 200_000)]
    sweep_n: usize,
    /// Timed repeats of the cuBLAS-only sweep (median)
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// All distinct pairs of the probes (verification) instead of probes
    /// against a gallery
    #[arg(long)]
    all_pairs: bool,
}

fn parse_tile(s: &str) -> Result<TileShape> {
    let (r, c) = s
        .split_once('x')
        .with_context(|| format!("tile {s:?}: expected ROWSxCOLS"))?;
    Ok(TileShape {
        rows: r.parse()?,
        cols: c.parse()?,
    })
}

/// Rows of identity i / 10: the identity's centre plus as much noise
/// (uniform values, SplitMix64 per identity), made on all cores. The same
/// centres for every seed, so probes and gallery share identities.
fn face_rows(rows: usize, dim: usize, seed: u64) -> Result<Embeddings> {
    use rayon::prelude::*;
    let mut data = vec![0f32; rows * dim];
    data.par_chunks_mut(dim * 10)
        .enumerate()
        .for_each(|(id, chunk)| {
            let centre: Vec<f32> = {
                let mut rng = SplitMix(0xce17e ^ (id as u64) << 20);
                (0..dim).map(|_| rng.uniform()).collect()
            };
            let mut rng = SplitMix(seed ^ ((id as u64 + 1) << 24));
            for (t, x) in chunk.iter_mut().enumerate() {
                *x = centre[t % dim] + rng.uniform();
            }
        });
    Ok(Embeddings::normalized(data, dim)?)
}

/// Whether two runs made the same decisions: genuine scores, exact tail,
/// and every probe's top-k list, mate score and rank, bit for bit.
fn same_decisions(a: &CompareResult, b: &CompareResult) -> bool {
    let sorted = |v: &[f32]| {
        let mut v: Vec<u32> = v.iter().map(|s| s.to_bits()).collect();
        v.sort_unstable();
        v
    };
    sorted(&a.genuine) == sorted(&b.genuine)
        && a.impostor_tail == b.impostor_tail
        && a.probes == b.probes
}

/// Every probe against every gallery row, the labels cut to the rows given.
fn all_pairs<'a>(
    p: &'a Embeddings,
    pl: &'a [u32],
    g: &'a Embeddings,
    gl: &'a [u32],
    args: &Args,
) -> CompareJob<'a> {
    CompareJob {
        probes: p.view(),
        probe_labels: &pl[..p.rows()],
        gallery: g.view(),
        gallery_labels: &gl[..g.rows()],
        pairing: if args.all_pairs {
            Pairing::AllDistinct
        } else {
            Pairing::ProbeGallery
        },
        top_k: args.top_k,
        histogram: HistogramSpec::DEFAULT,
        tail_capacity: args.tail,
        examples: 0,
        bands: &[],
        mates_elsewhere: None,
    }
}

struct Row {
    precision: Precision,
    tile: TileShape,
    profile: Profile,
    cublas_s: f64,
    /// Whether it made the first precision's decisions (None: it is first).
    same: Option<bool>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let m = args.gallery.unwrap_or(args.n);
    let tiles = args
        .tile
        .iter()
        .map(|t| parse_tile(t))
        .collect::<Result<Vec<_>>>()?;
    if tiles.is_empty() || args.precision.is_empty() {
        bail!("give at least one --tile and one --precision");
    }
    // Fail before making gigabytes of data where no GPU is usable.
    drop(CudaEngine::new(0, args.precision[0].into()).context("the CUDA engine cannot start")?);
    let t = Instant::now();
    let probes = face_rows(args.n, args.dim, 1)?;
    let gallery = face_rows(m, args.dim, 2)?;
    let pl: Vec<u32> = (0..args.n as u32).map(|i| i / 10).collect();
    let gl: Vec<u32> = (0..m as u32).map(|i| i / 10).collect();
    eprintln!(
        "data: {} × {} vs {} × {} made in {:.1} s",
        args.n,
        args.dim,
        m,
        args.dim,
        t.elapsed().as_secs_f64()
    );
    let job = |n: usize,
               g: usize,
               probes: &'_ Embeddings,
               gallery: &'_ Embeddings|
     -> (Embeddings, Embeddings) {
        if n == probes.rows() && g == gallery.rows() {
            return (probes.clone(), gallery.clone());
        }
        let pick = |e: &Embeddings, k: usize| e.select(&(0..k).collect::<Vec<_>>());
        (pick(probes, n), pick(gallery, g))
    };

    let mut rows = Vec::new();
    let mut first: Option<CompareResult> = None;
    for precision in args.precision.iter().map(|&p| Precision::from(p)) {
        let base = CudaEngine::new(0, precision).context("the CUDA engine cannot start")?;
        eprintln!("{}", facekit::compare::Engine::description(&base));
        // Warm-up: compiles the fold for this top-k, initialises cuBLAS.
        let (wp, wg) = job(1000.min(args.n), 1000.min(m), &probes, &gallery);
        base.compare_profiled(&all_pairs(&wp, &pl, &wg, &gl, &args))?;

        let mut tile = tiles[0];
        if tiles.len() > 1 {
            let (sp, sg) = job(
                args.sweep_n.min(args.n),
                args.sweep_n.min(m),
                &probes,
                &gallery,
            );
            let mut best = f64::INFINITY;
            for &candidate in &tiles {
                let engine = CudaEngine::new(0, precision)?.with_tile(candidate);
                let (_, p) = engine.compare_profiled(&all_pairs(&sp, &pl, &sg, &gl, &args))?;
                eprintln!(
                    "  sweep {precision:?} {}x{}: {:.3} s for {} × {}",
                    candidate.rows,
                    candidate.cols,
                    p.total_s,
                    sp.rows(),
                    sg.rows()
                );
                if p.total_s < best {
                    best = p.total_s;
                    tile = candidate;
                }
            }
        }
        let engine = base.with_tile(tile);
        let (result, profile) =
            engine.compare_profiled(&all_pairs(&probes, &pl, &gallery, &gl, &args))?;
        let triangle = args.all_pairs && args.top_k == 0;
        let cublas_s = engine.products_only_seconds(args.n, m, args.dim, args.repeats, triangle)?;
        eprintln!(
            "  {precision:?}: {} impostor pairs, {} genuine, tail {}, {:.2} s",
            result.impostor_count(),
            result.genuine.len(),
            result.impostor_tail.len(),
            profile.total_s
        );
        let same = first.as_ref().map(|f| same_decisions(f, &result));
        first.get_or_insert(result);
        rows.push(Row {
            precision,
            tile,
            profile,
            cublas_s,
            same,
        });
    }

    println!();
    println!(
        "all-pairs histograms + top-{} over {} × {} vs {} × {} ({:.2e} comparisons)",
        args.top_k,
        args.n,
        args.dim,
        m,
        args.dim,
        args.n as f64 * m as f64
    );
    println!(
        "| precision | tile | end to end s | TFLOP/s | cuBLAS alone s | cuBLAS TFLOP/s | ratio | products s | fold s | genuine s | tail tiles redone | peak GPU GiB | max score error | margin | largest rescored gap | decisions as {:?} |",
        args.precision[0]
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let p = &r.profile;
        // The products the engine computed (a triangle computes about half).
        let flop = 2.0 * p.products as f64 * args.dim as f64;
        let same = match r.same {
            None => "(first)",
            Some(true) => "same",
            Some(false) => "DIFFERENT",
        };
        println!(
            "| {:?} | {}x{} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.3} | {} | {:.2} | {:.1e} | {:.1e} | {:.1e} | {same} |",
            r.precision,
            r.tile.rows,
            r.tile.cols,
            p.total_s,
            flop / p.total_s / 1e12,
            r.cublas_s,
            flop / r.cublas_s / 1e12,
            100.0 * r.cublas_s / p.total_s,
            p.products_s,
            p.fold_s,
            p.genuine_s,
            p.tail_redone,
            p.peak_memory_bytes as f64 / (1u64 << 30) as f64,
            p.max_abs_score_error.unwrap_or(f64::NAN),
            p.margin,
            p.max_rescored_gap,
        );
    }
    if rows.iter().any(|r| r.same == Some(false)) {
        bail!(
            "a precision made other decisions than {:?}",
            args.precision[0]
        );
    }
    Ok(())
}
