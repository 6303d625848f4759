//! The CPU engine, the reference: tiled products with a fused fold of every
//! tile, rayon workers across tiles. Two product kernels: fp32
//! (matrixmultiply's sgemm, the default) and bf16 ([`bf16`], AVX-512 BF16).
//!
//! Two passes, neither of which stores more than a tile of scores:
//! 1. per identity, the products of each probe with the gallery rows of its
//!    identity: every genuine score and each probe's mate score;
//! 2. the tiles of the probe × gallery product (for all distinct pairs, the
//!    upper triangle only), each folded at once into impostor bin counts,
//!    the exact top of the impostor scores, per-probe top-k lists and the
//!    count of non-mate rows scoring at least the mate score (the rank).
//!
//! Pass 2 needs pass 1's mate scores to count ranks in one sweep. Pass 1
//! is fp32, as pass 2 is by default; a kernel's score for a pair does not
//! depend on the shape or position of the tile it was computed in, so the
//! two passes agree exactly (the property tests check it).
//!
//! With the bf16 kernel the results are the fp32 engine's but for the
//! impostor bins below the exact tail. Genuine and mate scores come from an
//! fp32 pass 1. A bf16 score can only be within a proven bound of its fp32
//! score ([`bf16::fp32_distance_bound`]), so ranks recompute in fp32 the
//! scores that close to the mate score, and top-k lists and the impostor
//! tail keep extra candidates by bf16 score and recompute in fp32 those
//! that may belong to the exact result ([`exact_top`], [`exact_tail`]).
//! The remaining bins carry the bf16 error, which is sampled and reported.

pub mod bf16;

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{
    dot_f64, sort_descending, BandCounts, Candidate, CompareError, CompareJob, CompareResult,
    EmbeddingRows, Engine, Hardest, HistogramSpec, PairScore, Pairing, ProbeResult, SplitMix,
    TileShape,
};

impl TileShape {
    /// Chosen by measurement on 2 cores (process CPU time, 20,000 × 512
    /// all pairs and 10,000 × 100,000 × 512 probe × gallery): 1024 × 1024
    /// beat 256 × 2048 by 6-9% (sgemm packs each gallery block once per
    /// 1024 probes instead of 256) and tied 512 × 1024 and 2048 × 1024. A
    /// worker's scratch tile is 4 MiB.
    pub(crate) const CPU_DEFAULT: TileShape = TileShape {
        rows: 1024,
        cols: 1024,
    };
}

/// The arithmetic of the CPU engine's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CpuPrecision {
    /// fp32 products and sums (matrixmultiply sgemm).
    Fp32,
    /// Rows rounded to bf16, products summed in fp32 (AVX-512 BF16).
    Bf16,
}

/// The CPU engine. It runs on the rayon pool it is called from.
#[derive(Debug)]
pub struct CpuEngine {
    tile: TileShape,
    precision: CpuPrecision,
    /// The largest share of a job's comparisons its exact impostor tail may
    /// be for the bf16 kernel to run it ([`bf16_pays`]).
    bf16_tail_share: f64,
}

impl Default for CpuEngine {
    fn default() -> Self {
        CpuEngine::new()
    }
}

impl CpuEngine {
    /// The fp32 engine with the default tiles.
    pub fn new() -> CpuEngine {
        CpuEngine {
            tile: TileShape::CPU_DEFAULT,
            precision: CpuPrecision::Fp32,
            bf16_tail_share: BF16_TAIL_SHARE,
        }
    }

    /// The engine computing in `precision`; bf16 needs AVX-512 BF16.
    pub(crate) fn with_precision(precision: CpuPrecision) -> Result<CpuEngine, CompareError> {
        if precision == CpuPrecision::Bf16 && !bf16::supported() {
            return Err(CompareError::Device(
                "this CPU lacks AVX-512 BF16, which the CPU engine's bf16 products need".into(),
            ));
        }
        Ok(CpuEngine {
            precision,
            ..CpuEngine::new()
        })
    }

    /// The same engine with another limit on the exact tail's share of
    /// the comparisons for bf16 to run (tests).
    #[cfg(test)]
    pub(crate) fn with_bf16_tail_share(self, share: f64) -> CpuEngine {
        CpuEngine {
            bf16_tail_share: share,
            ..self
        }
    }

    /// The same engine with another tile shape (tests, tuning).
    pub fn with_tile(self, tile: TileShape) -> CpuEngine {
        CpuEngine {
            tile: TileShape {
                rows: tile.rows.max(1),
                cols: tile.cols.max(1),
            },
            ..self
        }
    }
}

/// `out[r * n + c] = <a_r, b_c>` for the `m` rows of `a` and the `n` rows of
/// `b` (row-major, `dim` wide), in fp32, on the calling thread (the engine
/// runs one product per rayon worker; matrixmultiply is built without its
/// own threads, which would only compete with the workers). matrixmultiply sums each element
/// over `dim` in the same order whatever `m` and `n`, so a pair's score
/// does not depend on its tile.
pub fn products(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
    let m = a.len() / dim;
    let n = b.len() / dim;
    assert!(
        a.len() == m * dim && b.len() == n * dim && out.len() == m * n,
        "product shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above bound every access: A is m×dim with row
    // stride dim, Bᵀ is dim×n read from b's rows (row stride 1, column
    // stride dim), C is m×n row-major; beta = 0 so C need not be initialised.
    unsafe {
        matrixmultiply::sgemm(
            m,
            dim,
            n,
            1.0,
            a.as_ptr(),
            dim as isize,
            1,
            b.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// A product kernel: the row layout it reads and its products.
trait Kernel: Sync {
    /// One element of a converted row.
    type Elem: Copy + Send + Sync;
    /// What a worker reuses between products.
    type Scratch: Default + Send;
    /// Whether the scores differ from fp32 sums enough to report the error.
    const REDUCED: bool;
    /// A bound on |score − fp32 engine score| for the job's rows.
    fn margin(job: &CompareJob<'_>) -> f32;
    /// Elements per converted row of `dim` values.
    fn width(dim: usize) -> usize;
    /// The rows of `e`, converted.
    fn rows<'a>(e: EmbeddingRows<'a>) -> Cow<'a, [Self::Elem]>;
    /// The scores of every row of `a` with every row of `b`, handed to
    /// `emit(first_row, scores)` in strips of consecutive rows, `scores`
    /// row-major over all of `b`.
    fn products(
        a: &[Self::Elem],
        b: &[Self::Elem],
        width: usize,
        scratch: &mut Self::Scratch,
        emit: &mut dyn FnMut(usize, &[f32]),
    );
}

struct Fp32;

impl Kernel for Fp32 {
    type Elem = f32;
    type Scratch = Vec<f32>;
    const REDUCED: bool = false;
    fn margin(_: &CompareJob<'_>) -> f32 {
        0.0
    }
    fn width(dim: usize) -> usize {
        dim
    }
    fn rows<'a>(e: EmbeddingRows<'a>) -> Cow<'a, [f32]> {
        Cow::Borrowed(e.as_slice())
    }
    fn products(
        a: &[f32],
        b: &[f32],
        dim: usize,
        scores: &mut Vec<f32>,
        emit: &mut dyn FnMut(usize, &[f32]),
    ) {
        // One strip: sgemm packs `b` once per call, so smaller strips
        // would pack it again for each.
        scores.resize(a.len() / dim * (b.len() / dim), 0.0);
        products(a, b, dim, scores);
        emit(0, scores);
    }
}

struct Bf16;

impl Kernel for Bf16 {
    type Elem = u32;
    type Scratch = bf16::Scratch;
    const REDUCED: bool = true;
    fn margin(job: &CompareJob<'_>) -> f32 {
        let dim = job.probes.dim();
        let mut rounding = bf16::max_rounding(job.probes.as_slice(), dim);
        // All distinct pairs: the gallery is the probe set.
        if job.pairing == Pairing::ProbeGallery {
            rounding = rounding.max(bf16::max_rounding(job.gallery.as_slice(), dim));
        }
        bf16::fp32_distance_bound(dim, rounding)
    }
    fn width(dim: usize) -> usize {
        bf16::pairs(dim)
    }
    fn rows<'a>(e: EmbeddingRows<'a>) -> Cow<'a, [u32]> {
        Cow::Owned(bf16::rows(e.as_slice(), e.dim()))
    }
    fn products(
        a: &[u32],
        b: &[u32],
        width: usize,
        scratch: &mut bf16::Scratch,
        emit: &mut dyn FnMut(usize, &[f32]),
    ) {
        bf16::products(a, b, width, scratch, emit)
    }
}

impl Engine for CpuEngine {
    /// No thread count: summary.json must not change with `--jobs`.
    fn description(&self) -> String {
        match self.precision {
            CpuPrecision::Fp32 => "cpu: matrixmultiply sgemm, fp32".into(),
            CpuPrecision::Bf16 => "cpu: AVX-512 BF16 products, fp32 sums".into(),
        }
    }

    fn counts_bands(&self) -> bool {
        true
    }

    fn compare(&self, job: &CompareJob<'_>) -> Result<CompareResult, CompareError> {
        job.validate()?;
        if job.pairing == Pairing::AllDistinct
            && (job.probes.rows() != job.gallery.rows() || job.probe_labels != job.gallery_labels)
        {
            return Err(CompareError::Device(
                "all distinct pairs needs the probes to be the gallery".into(),
            ));
        }
        Ok(match self.precision {
            CpuPrecision::Fp32 => compare_with::<Fp32>(job, self.tile, 0),
            CpuPrecision::Bf16 => match bf16_pays(job, self.bf16_tail_share) {
                Ok(()) => compare_with::<Bf16>(job, self.tile, LIST_SLACK),
                Err(why) => CompareResult {
                    precision_note: Some(why),
                    ..compare_with::<Fp32>(job, self.tile, 0)
                },
            },
        })
    }
}

/// The exact impostor tail's largest share of a job's comparisons for the
/// bf16 kernel to run it. Each tail score, and about as many in the band
/// below it, is rescored in fp32 (a gathered row each), costing a few
/// hundred times what bf16 saves on one comparison. Measured on 10^4 ×
/// 10^5 × 512 (2 threads): at a share of 10^-3 bf16 still took 25% less
/// CPU time than fp32; at 10^-1 it took several times more.
pub(crate) const BF16_TAIL_SHARE: f64 = 1e-3;

/// Whether bf16 products pay for the fp32 rescoring the job needs: Err
/// with the reason, for the summary, when its exact tail is more than
/// `max_share` of its comparisons (then fp32 runs the job, and is faster).
pub(crate) fn bf16_pays(job: &CompareJob<'_>, max_share: f64) -> Result<(), String> {
    if !job.bands.is_empty() {
        return Err(
            "fp32 ran instead of bf16: the job keeps exact scores in bands below its exact tail, \
             which bf16 products would have to rescore in fp32"
                .into(),
        );
    }
    let (p, g) = (job.probes.rows() as u64, job.gallery.rows() as u64);
    let comparisons = match job.pairing {
        Pairing::AllDistinct => p * p.saturating_sub(1) / 2,
        Pairing::ProbeGallery => p * g,
    };
    let share = job.tail_capacity as f64 / comparisons.max(1) as f64;
    if share <= max_share {
        return Ok(());
    }
    Err(format!(
        "fp32 ran instead of bf16: the exact impostor tail ({} scores, {:.3}% of the {} comparisons) is rescored in fp32, which costs more than bf16 saves above {}%",
        job.tail_capacity,
        100.0 * share,
        comparisons,
        100.0 * max_share
    ))
}

/// Runs a job on kernel `K`, whose workers keep `slack` candidates per
/// probe beyond the top k ([`list_capacity`]); the largest sampled score
/// error for a reduced-precision kernel.
fn compare_with<K: Kernel>(job: &CompareJob<'_>, tile: TileShape, slack: usize) -> CompareResult {
    let probes = K::rows(job.probes);
    // All distinct pairs: the gallery is the probe set (checked above).
    let gallery = if job.pairing == Pairing::AllDistinct {
        Cow::Borrowed(&*probes)
    } else {
        K::rows(job.gallery)
    };
    let rows = Rows::<K> {
        probes: &probes,
        gallery: &gallery,
        width: K::width(job.probes.dim()),
    };
    // Genuine and mate scores in fp32 whatever the kernel (only the genuine
    // pairs: a small pass); ranks, top-k lists and the impostor tail
    // recompute in fp32 every kernel score near a decision.
    let (genuine, mate, hardest_genuine) = mate_pass(job, tile);
    let folds = tile_pass(job, &rows, tile, &mate, slack);
    let error = K::REDUCED.then(|| folds.iter().map(|f| f.error).fold(0.0, f64::max));
    let (mut result, unsure) = merge(job, genuine, &mate, folds);
    result.hardest_genuine = hardest_genuine;
    if !unsure.is_empty() {
        exact_tops_again::<K>(job, tile, &unsure, &mut result, slack);
    }
    result.score_error = error;
    result
}

/// The top-k lists of the probes `unsure` (whose candidates a worker may
/// have dropped, see [`exact_top`]: more scores in their band than the
/// lists held) from a run of those probes alone against the whole gallery:
/// on the same kernel with lists 8 times longer while they stay shorter
/// than the gallery (a dense band costs a few more candidates, not an fp32
/// pass), in fp32 otherwise. For all distinct pairs that gallery holds the
/// probe itself, so one more candidate is asked for and the probe's own
/// row is taken out.
fn exact_tops_again<K: Kernel>(
    job: &CompareJob<'_>,
    tile: TileShape,
    unsure: &[usize],
    result: &mut CompareResult,
    slack: usize,
) {
    let distinct = job.pairing == Pairing::AllDistinct;
    let probes = job.probes.select(unsure);
    let labels: Vec<u32> = unsure.iter().map(|&p| job.probe_labels[p]).collect();
    let sub = CompareJob {
        probes: probes.view(),
        probe_labels: &labels,
        pairing: Pairing::ProbeGallery,
        top_k: job.top_k + usize::from(distinct),
        tail_capacity: 0,
        bands: &[],
        mates_elsewhere: None,
        ..*job
    };
    let wider = slack * 8;
    let again = if K::REDUCED && sub.top_k + wider < job.gallery.rows() {
        compare_with::<K>(&sub, tile, wider)
    } else {
        compare_with::<Fp32>(&sub, tile, 0)
    };
    for (&p, found) in unsure.iter().zip(again.probes) {
        let mut top = found.top;
        top.retain(|c| !(distinct && c.index as usize == p));
        top.truncate(job.top_k);
        result.probes[p].top = top;
    }
}

/// The job's rows, converted for kernel `K`.
struct Rows<'a, K: Kernel> {
    probes: &'a [K::Elem],
    gallery: &'a [K::Elem],
    width: usize,
}

impl<K: Kernel> Rows<'_, K> {
    fn range<'s>(&self, of: &'s [K::Elem], (r0, r1): (usize, usize)) -> &'s [K::Elem] {
        &of[r0 * self.width..r1 * self.width]
    }
}

/// The rows of `e` listed, in that order.
fn gather(e: EmbeddingRows<'_>, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * e.dim());
    for &r in rows {
        out.extend_from_slice(e.row(r));
    }
    out
}

/// Genuine scores with their identity, best first.
type Genuine = Vec<(f32, u32)>;

/// Pass 1: genuine scores (each unordered pair once for all distinct pairs),
/// each probe's best mate score (`-inf` when it has no mate; mates outside
/// the gallery count too) and the job's lowest genuine pairs.
fn mate_pass(job: &CompareJob<'_>, tile: TileShape) -> (Genuine, Vec<f32>, Vec<PairScore>) {
    use rayon::prelude::*;
    use std::collections::BTreeMap;
    let distinct = job.pairing == Pairing::AllDistinct;
    let rows_of = |labels: &[u32]| {
        let mut of: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (q, &label) in labels.iter().enumerate() {
            of.entry(label).or_default().push(q);
        }
        of
    };
    let gallery_of = rows_of(job.gallery_labels);
    let elsewhere_of = job
        .mates_elsewhere
        .map_or_else(BTreeMap::new, |(_, l)| rows_of(l));
    let mut probes_of: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (p, &label) in job.probe_labels.iter().enumerate() {
        if gallery_of.contains_key(&label) || elsewhere_of.contains_key(&label) {
            probes_of.entry(label).or_default().push(p);
        }
    }
    let none = Vec::new();
    let groups: Vec<(u32, &Vec<usize>, &Vec<usize>, &Vec<usize>)> = probes_of
        .iter()
        .map(|(&label, probes)| {
            let (here, there) = (gallery_of.get(&label), elsewhere_of.get(&label));
            (label, probes, here.unwrap_or(&none), there.unwrap_or(&none))
        })
        .collect();
    let dim = job.probes.dim();
    let per_group: Vec<(Genuine, Vec<(usize, f32)>, Vec<PairScore>)> = groups
        .par_iter()
        .map(|&(label, probes, gallery, elsewhere)| {
            let mut genuine = Vec::new();
            let mut best = Vec::with_capacity(probes.len());
            let mut hardest = Vec::new();
            let mut scratch = Vec::new();
            for probe_chunk in probes.chunks(tile.rows) {
                let a = gather(job.probes, probe_chunk);
                let mut chunk_best = vec![f32::NEG_INFINITY; probe_chunk.len()];
                for gallery_chunk in gallery.chunks(tile.cols) {
                    let b = gather(job.gallery, gallery_chunk);
                    let n = gallery_chunk.len();
                    Fp32::products(&a, &b, dim, &mut scratch, &mut |first, scores| {
                        for (r, row) in scores.chunks_exact(n).enumerate() {
                            let r = first + r;
                            let p = probe_chunk[r];
                            for (&q, &s) in gallery_chunk.iter().zip(row) {
                                if distinct && q == p {
                                    continue;
                                }
                                chunk_best[r] = chunk_best[r].max(s);
                                if !distinct || p < q {
                                    genuine.push((s, label));
                                    let pair = PairScore {
                                        score: s,
                                        probe: p as u32,
                                        gallery: q as u32,
                                    };
                                    Hardest::Lowest.offer(&mut hardest, job.examples, pair);
                                }
                            }
                        }
                    });
                }
                // Mates in other blocks of the gallery: the mate score only.
                if let Some((rows, _)) = job.mates_elsewhere {
                    for chunk in elsewhere.chunks(tile.cols) {
                        let b = gather(rows, chunk);
                        let n = chunk.len();
                        Fp32::products(&a, &b, dim, &mut scratch, &mut |first, scores| {
                            for (r, row) in scores.chunks_exact(n).enumerate() {
                                for &s in row {
                                    chunk_best[first + r] = chunk_best[first + r].max(s);
                                }
                            }
                        });
                    }
                }
                best.extend(probe_chunk.iter().copied().zip(chunk_best));
            }
            Hardest::Lowest.keep(&mut hardest, job.examples);
            (genuine, best, hardest)
        })
        .collect();
    let mut genuine = Vec::new();
    let mut mate = vec![f32::NEG_INFINITY; job.probes.rows()];
    let mut hardest = Vec::new();
    for (scores, best, group_hardest) in per_group {
        genuine.extend(scores);
        for (p, s) in best {
            mate[p] = s;
        }
        hardest.extend(group_hardest);
    }
    genuine.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Hardest::Lowest.keep(&mut hardest, job.examples);
    (genuine, mate, hardest)
}

/// One tile: probe rows `rows`, gallery rows `cols`.
#[derive(Debug, Clone, Copy)]
struct Tile {
    rows: (usize, usize),
    cols: (usize, usize),
}

fn tiles(job: &CompareJob<'_>, shape: TileShape) -> Vec<Tile> {
    let (n_p, n_g) = (job.probes.rows(), job.gallery.rows());
    let mut tiles = Vec::new();
    for r0 in (0..n_p).step_by(shape.rows) {
        let r1 = (r0 + shape.rows).min(n_p);
        // All distinct pairs: only columns from the block's first row on;
        // the fold skips the pairs on and below the diagonal.
        let c_start = if job.pairing == Pairing::AllDistinct {
            r0
        } else {
            0
        };
        for c0 in (c_start..n_g).step_by(shape.cols) {
            tiles.push(Tile {
                rows: (r0, r1),
                cols: (c0, (c0 + shape.cols).min(n_g)),
            });
        }
    }
    tiles
}

/// Pass 2: every worker of the pool takes tiles from a shared counter and
/// folds each strip of scores its kernel hands over into its own [`Fold`];
/// the folds are merged afterwards, in an order-independent way, so the
/// result does not depend on the schedule.
fn tile_pass<K: Kernel>(
    job: &CompareJob<'_>,
    rows: &Rows<'_, K>,
    shape: TileShape,
    mate: &[f32],
    slack: usize,
) -> Vec<Fold> {
    let tiles = tiles(job, shape);
    let margin = K::margin(job);
    let next = AtomicUsize::new(0);
    rayon::broadcast(|_| {
        let mut fold = Fold::new(job, mate, margin, slack);
        let mut scratch = K::Scratch::default();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&tile) = tiles.get(i) else { break };
            let (r0, r1) = tile.rows;
            K::products(
                rows.range(rows.probes, tile.rows),
                rows.range(rows.gallery, tile.cols),
                rows.width,
                &mut scratch,
                &mut |first, scores| {
                    let strip = Tile {
                        rows: (
                            r0 + first,
                            (r0 + first + scores.len() / (tile.cols.1 - tile.cols.0)).min(r1),
                        ),
                        cols: tile.cols,
                    };
                    if K::REDUCED {
                        fold.sample_error(job, strip, scores);
                    }
                    fold.tile(job, mate, strip, scores);
                },
            );
        }
        fold.flush_histogram();
        fold
    })
}

/// What one worker has folded so far.
struct Fold {
    /// Impostor counts per bin since the last flush (u32 halves the cache
    /// footprint of the hot loop); flushed into `hist` before they can wrap.
    recent: Vec<u32>,
    recent_total: u64,
    hist: Vec<u64>,
    tail: Tail,
    top: TopLists,
    /// Non-mate rows scoring >= the mate score, per probe.
    above_mate: Vec<u64>,
    /// Per probe, the lowest score that can change its state: the smaller
    /// of its top-k entry bar and its mate score.
    gate: Vec<f32>,
    /// The largest |score − float64 dot product| sampled so far.
    error: f64,
    /// How far the kernel's scores can be from fp32 scores (0 for fp32).
    margin: f32,
    /// Counts of the impostor scores met in each of the job's bands.
    bands: Vec<BandCounts>,
}

impl Fold {
    fn new(job: &CompareJob<'_>, mate: &[f32], margin: f32, slack: usize) -> Fold {
        let bins = job.histogram.bins as usize;
        let n = job.probes.rows();
        let top = TopLists::new(n, list_capacity(job.top_k, margin, slack));
        let gate = (0..n)
            .map(|p| top.bar(p).min(mate_bar(mate[p]) - margin))
            .collect();
        Fold {
            recent: vec![0; bins],
            recent_total: 0,
            hist: vec![0; bins],
            tail: Tail::new(job.tail_capacity, margin, job.examples),
            top,
            above_mate: vec![0; n],
            gate,
            error: 0.0,
            margin,
            bands: job
                .bands
                .iter()
                .map(|&b| BandCounts::new(b, job.histogram))
                .collect(),
        }
    }

    /// Compares a few scores of a strip, at positions fixed by the strip's
    /// place (so the maximum does not depend on the schedule), with the
    /// float64 dot products of the rows before conversion.
    fn sample_error(&mut self, job: &CompareJob<'_>, strip: Tile, scores: &[f32]) {
        const PER_STRIP: u64 = 2;
        let (r0, r1) = strip.rows;
        let (c0, c1) = strip.cols;
        let (rows, width) = ((r1 - r0) as u64, (c1 - c0) as u64);
        for i in 0..PER_STRIP {
            let h = SplitMix((r0 as u64) << 32 ^ (c0 as u64) << 2 ^ i).next();
            let (r, c) = ((h % rows) as usize, ((h >> 32) % width) as usize);
            let exact = dot_f64(job.probes.row(r0 + r), job.gallery.row(c0 + c));
            let s = scores[r * width as usize + c] as f64;
            self.error = self.error.max((s - exact).abs());
        }
    }

    fn flush_histogram(&mut self) {
        for (h, r) in self.hist.iter_mut().zip(self.recent.iter_mut()) {
            *h += u64::from(std::mem::take(r));
        }
        self.recent_total = 0;
    }

    /// Offers `(q, s)` to probe `p`: its candidate list and its rank
    /// count. The count is exact fp32: a kernel score within `margin` of
    /// the mate score is recomputed in fp32 before it is compared.
    #[inline]
    fn offer(
        &mut self,
        job: &CompareJob<'_>,
        p: usize,
        q: usize,
        s: f32,
        impostor: bool,
        mate: &[f32],
    ) {
        let mate = mate_bar(mate[p]);
        if impostor && s + self.margin >= mate {
            let above =
                self.margin == 0.0 || s - self.margin >= mate || fp32_score(job, p, q) >= mate;
            if above {
                self.above_mate[p] += 1;
            }
        }
        self.top.offer(
            p,
            Candidate {
                index: q as u32,
                score: s,
            },
        );
        self.gate[p] = self.top.bar(p).min(mate - self.margin);
    }

    fn tile(&mut self, job: &CompareJob<'_>, mate: &[f32], tile: Tile, scores: &[f32]) {
        let (r0, r1) = tile.rows;
        let (c0, c1) = tile.cols;
        let width = c1 - c0;
        if self.recent_total + ((r1 - r0) * width) as u64 > u64::from(u32::MAX) {
            self.flush_histogram();
        }
        self.recent_total += ((r1 - r0) * width) as u64;
        let spec = job.histogram;
        let distinct = job.pairing == Pairing::AllDistinct;
        let col_labels = &job.gallery_labels[c0..c1];
        for p in r0..r1 {
            let row = &scores[(p - r0) * width..(p - r0 + 1) * width];
            // All distinct pairs: only q > p, and each score also feeds q.
            let first = if distinct {
                (p + 1).saturating_sub(c0).min(width)
            } else {
                0
            };
            let label = job.probe_labels[p];
            count_impostors(
                &mut self.recent,
                spec,
                &row[first..],
                &col_labels[first..],
                label,
            );
            for band in &mut self.bands {
                band.count(&row[first..], &col_labels[first..], label);
            }
            // Few scores can change a probe's state: find them a chunk at a
            // time with a branch-free scan, then look at each one.
            let mut start = first;
            while start < width {
                let end = (start + SCAN_CHUNK).min(width);
                let bar = self.gate[p].min(self.tail.bar);
                let chunk = &row[start..end];
                let hit = if distinct {
                    any_at_or_above_either(chunk, bar, &self.gate[c0 + start..c0 + end])
                } else {
                    any_at_or_above(chunk, bar)
                };
                if hit {
                    for c in start..end {
                        let impostor = col_labels[c] != label;
                        self.hit(job, p, c0 + c, row[c], impostor, distinct, mate);
                    }
                }
                start = end;
            }
        }
    }

    /// One score that may change the state of probe `p` (and, for all
    /// distinct pairs, of `q`): every check is exact here.
    #[allow(clippy::too_many_arguments)]
    fn hit(
        &mut self,
        job: &CompareJob<'_>,
        p: usize,
        q: usize,
        s: f32,
        impostor: bool,
        distinct: bool,
        mate: &[f32],
    ) {
        if impostor && s >= self.tail.bar {
            self.tail.push(s, p, q);
        }
        if s >= self.gate[p] {
            self.offer(job, p, q, s, impostor, mate);
        }
        if distinct && s >= self.gate[q] {
            self.offer(job, q, p, s, impostor, mate);
        }
    }
}

/// Candidates a worker keeps per probe beyond the top k on a first run
/// with a reduced-precision kernel. Measured on the search benchmark (10^4
/// probes, top-10 of 10^5): 8 left 282 probes to a rerun, 16 one, and
/// longer lists only cost time.
const LIST_SLACK: usize = 16;

/// Candidates a worker keeps per probe. With a reduced-precision kernel
/// (`margin` > 0) the lists hold `slack` more than `k`, by kernel score, so
/// that the merge can recompute in fp32 every candidate that may be in the
/// exact top `k` (see [`exact_top`]).
fn list_capacity(k: usize, margin: f32, slack: usize) -> usize {
    if margin > 0.0 && k > 0 {
        k + slack
    } else {
        k
    }
}

/// The fp32 engine's score of one pair of rows: a 1 × 1 product sums in
/// the same order as any tile (see [`products`]).
pub(crate) fn pair_score(a: &[f32], b: &[f32]) -> f32 {
    let mut out = [0f32];
    products(a, b, a.len(), &mut out);
    out[0]
}

/// [`pair_score`] of probe `p` and gallery row `q` of a job.
fn fp32_score(job: &CompareJob<'_>, p: usize, q: usize) -> f32 {
    pair_score(job.probes.row(p), job.gallery.row(q))
}

/// Scores scanned at once for a hit.
const SCAN_CHUNK: usize = 64;

/// Adds the scores whose column label differs from `label` to `hist`:
/// AVX-512 where the CPU has it (about 2× the scalar loop, measured),
/// the same counts either way.
#[inline]
fn count_impostors(
    hist: &mut [u32],
    spec: HistogramSpec,
    scores: &[f32],
    labels: &[u32],
    label: u32,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { count_impostors_avx512(hist, spec, scores, labels, label) };
    }
    count_impostors_scalar(hist, spec, scores, labels, label)
}

fn count_impostors_scalar(
    hist: &mut [u32],
    spec: HistogramSpec,
    scores: &[f32],
    labels: &[u32],
    label: u32,
) {
    let hist = &mut hist[..spec.bins as usize];
    for (&s, &l) in scores.iter().zip(labels) {
        if l != label {
            hist[spec.bin(s)] += 1;
        }
    }
}

/// 16 bins at a time with [`HistogramSpec::bin`]'s arithmetic (add, then
/// multiply, both rounded; max with 0 maps NaN to 0 as `f32::max` does;
/// truncating conversion), then one increment per impostor. The bins are
/// taken out of the register, not stored and reloaded: a 64-byte store
/// read back 4 bytes at a time stalls (measured 10× slower).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn count_impostors_avx512(
    hist: &mut [u32],
    spec: HistogramSpec,
    scores: &[f32],
    labels: &[u32],
    label: u32,
) {
    use std::arch::x86_64::*;
    let hist = &mut hist[..spec.bins as usize];
    let n = scores.len().min(labels.len());
    let whole = n / 16 * 16;
    let one = _mm512_set1_ps(1.0);
    let scale = _mm512_set1_ps(spec.bins as f32 * 0.5);
    let top = _mm512_set1_ps((spec.bins - 1) as f32);
    let label_v = _mm512_set1_epi32(label as i32);
    let h = hist.as_mut_ptr();
    for i in (0..whole).step_by(16) {
        // SAFETY: i + 16 <= n, inside both slices.
        let s = _mm512_loadu_ps(scores.as_ptr().add(i));
        let l = _mm512_loadu_si512(labels.as_ptr().add(i).cast());
        let impostor = _mm512_cmpneq_epi32_mask(l, label_v);
        let scaled = _mm512_mul_ps(_mm512_add_ps(s, one), scale);
        let bins = _mm512_cvttps_epu32(_mm512_min_ps(
            _mm512_max_ps(scaled, _mm512_setzero_ps()),
            top,
        ));
        let quarters = [
            _mm512_extracti32x4_epi32::<0>(bins),
            _mm512_extracti32x4_epi32::<1>(bins),
            _mm512_extracti32x4_epi32::<2>(bins),
            _mm512_extracti32x4_epi32::<3>(bins),
        ];
        // SAFETY (both branches): every bin is at most bins - 1 (clamped
        // above), inside `hist`.
        if impostor == 0xffff {
            for q in quarters {
                let lo = _mm_cvtsi128_si64(q) as u64;
                let hi = _mm_extract_epi64::<1>(q) as u64;
                *h.add((lo & 0xffff_ffff) as usize) += 1;
                *h.add((lo >> 32) as usize) += 1;
                *h.add((hi & 0xffff_ffff) as usize) += 1;
                *h.add((hi >> 32) as usize) += 1;
            }
        } else {
            let mut at = [0u32; 16];
            _mm512_storeu_si512(at.as_mut_ptr().cast(), bins);
            let mut m = impostor;
            while m != 0 {
                *h.add(at[m.trailing_zeros() as usize] as usize) += 1;
                m &= m - 1;
            }
        }
    }
    count_impostors_scalar(hist, spec, &scores[whole..n], &labels[whole..n], label);
}

#[inline]
fn any_at_or_above(scores: &[f32], bar: f32) -> bool {
    scores.iter().fold(false, |any, &s| any | (s >= bar))
}

#[inline]
fn any_at_or_above_either(scores: &[f32], bar: f32, gates: &[f32]) -> bool {
    scores
        .iter()
        .zip(gates)
        .fold(false, |any, (&s, &g)| any | (s >= bar) | (s >= g))
}

impl BandCounts {
    /// Counts the scores in the band whose column label differs from
    /// `label`: a branch-free scan of each chunk first (a band holds a
    /// small share of the scores), then the few in range one by one.
    fn count(&mut self, scores: &[f32], labels: &[u32], label: u32) {
        let (high, low) = self.range();
        for (chunk, chunk_labels) in scores.chunks(SCAN_CHUNK).zip(labels.chunks(SCAN_CHUNK)) {
            let hit = chunk
                .iter()
                .fold(false, |any, &s| any | ((s >= low) & (s <= high)));
            if !hit {
                continue;
            }
            for (&s, &l) in chunk.iter().zip(chunk_labels) {
                if l != label && s >= low && s <= high {
                    self.add(s, 1);
                }
            }
        }
    }
}

/// A mate score as a gate: probes without a mate never count ranks.
fn mate_bar(mate: f32) -> f32 {
    if mate == f32::NEG_INFINITY {
        f32::INFINITY
    } else {
        mate
    }
}

/// An impostor score and the pair it came from.
#[derive(Debug, Clone, Copy)]
struct TailScore {
    score: f32,
    probe: u32,
    gallery: u32,
}

/// What a tail store holds per score: in fp32 the score alone (the
/// hardest pairs are kept aside, [`Tail::hardest`]: a third of the memory
/// for a store of every impostor score); with a reduced-precision kernel
/// the score and its pair, which the merge rescores in fp32.
enum Store {
    Scores(Vec<f32>),
    Pairs(Vec<TailScore>),
}

impl Store {
    fn len(&self) -> usize {
        match self {
            Store::Scores(v) => v.len(),
            Store::Pairs(v) => v.len(),
        }
    }
}

/// The highest impostor scores seen: everything >= `bar` is kept. When the
/// store has doubled since it was last cut, it is cut to the scores at or
/// above the `capacity`-th best minus `2 * margin`, which becomes the bar.
/// With a reduced-precision kernel that band lets the merge find every
/// score of the exact fp32 tail (see [`exact_tail`]); in fp32 the margin
/// is 0 and only ties below the `capacity`-th best are kept beyond it.
struct Tail {
    capacity: usize,
    margin: f32,
    bar: f32,
    store: Store,
    /// The store's size after the last cut.
    kept: usize,
    /// In fp32, the `examples` highest pairs so far ([`Hardest::Highest`]),
    /// and the score a pair must reach to enter them.
    hardest: Vec<PairScore>,
    examples: usize,
    hardest_bar: f32,
}

impl Tail {
    fn new(capacity: usize, margin: f32, examples: usize) -> Tail {
        let bar = if capacity == 0 {
            f32::INFINITY
        } else {
            f32::NEG_INFINITY
        };
        Tail {
            capacity,
            margin,
            bar,
            store: if margin == 0.0 {
                Store::Scores(Vec::new())
            } else {
                Store::Pairs(Vec::new())
            },
            kept: 0,
            hardest: Vec::new(),
            examples: examples.min(capacity),
            hardest_bar: f32::NEG_INFINITY,
        }
    }

    fn push(&mut self, score: f32, probe: usize, gallery: usize) {
        let (probe, gallery) = (probe as u32, gallery as u32);
        match &mut self.store {
            Store::Scores(v) => {
                v.push(score);
                if score >= self.hardest_bar {
                    let pair = PairScore {
                        score,
                        probe,
                        gallery,
                    };
                    if let Some(bar) =
                        Hardest::Highest.offer(&mut self.hardest, self.examples, pair)
                    {
                        self.hardest_bar = bar;
                    }
                }
            }
            Store::Pairs(v) => v.push(TailScore {
                score,
                probe,
                gallery,
            }),
        }
        if self.store.len() >= 2 * self.kept.max(self.capacity).max(1) {
            self.cut();
        }
    }

    fn cut(&mut self) {
        let floor = match &mut self.store {
            Store::Scores(v) => cut_to(v, self.capacity, self.margin, |&s| s),
            Store::Pairs(v) => cut_to(v, self.capacity, self.margin, |t| t.score),
        };
        if let Some(floor) = floor {
            self.bar = floor;
        }
        self.kept = self.store.len();
    }
}

/// Cuts a store to the entries at or above its `capacity`-th best score
/// less twice the margin, and returns that floor, when it holds more.
fn cut_to<E>(v: &mut Vec<E>, capacity: usize, margin: f32, score: fn(&E) -> f32) -> Option<f32> {
    if v.len() <= capacity {
        return None;
    }
    let (_, kth, _) = v.select_nth_unstable_by(capacity - 1, |a, b| score(b).total_cmp(&score(a)));
    let floor = score(kth) - 2.0 * margin;
    v.retain(|e| score(e) >= floor);
    Some(floor)
}

/// Per-probe candidate lists of at most `k`, best first: higher score,
/// then lower index.
struct TopLists {
    k: usize,
    len: Vec<u32>,
    items: Vec<Candidate>,
}

fn better(a: Candidate, b: Candidate) -> bool {
    a.score > b.score || (a.score == b.score && a.index < b.index)
}

impl TopLists {
    fn new(n: usize, k: usize) -> TopLists {
        TopLists {
            k,
            len: vec![0; n],
            items: vec![
                Candidate {
                    index: 0,
                    score: 0.0
                };
                n * k
            ],
        }
    }

    /// The lowest score that may enter probe `p`'s list.
    fn bar(&self, p: usize) -> f32 {
        if self.k == 0 {
            f32::INFINITY
        } else if (self.len[p] as usize) < self.k {
            f32::NEG_INFINITY
        } else {
            self.items[p * self.k + self.k - 1].score
        }
    }

    fn offer(&mut self, p: usize, c: Candidate) {
        if self.k == 0 {
            return;
        }
        let len = self.len[p] as usize;
        let list = &mut self.items[p * self.k..(p + 1) * self.k];
        if len == self.k && !better(c, list[self.k - 1]) {
            return;
        }
        let at = list[..len].partition_point(|&e| better(e, c));
        let end = len.min(self.k - 1);
        list.copy_within(at..end, at + 1);
        list[at] = c;
        self.len[p] = (len + 1).min(self.k) as u32;
    }

    fn list(&self, p: usize) -> &[Candidate] {
        &self.items[p * self.k..p * self.k + self.len[p] as usize]
    }
}

/// Probe `p`'s top `k` by fp32 score (ties by lower index) from the
/// workers' lists, or None when they cannot tell it.
///
/// With an fp32 kernel the lists hold exact scores: the best `k` of their
/// union. With a reduced-precision kernel, scores are within `margin` (m)
/// of fp32. If B is the k-th best kernel score, k rows score at least
/// B − m in fp32, so a row of the exact top k scores at least B − m in
/// fp32 and at least B − 2m by the kernel. Every such row is in the union
/// unless some worker's full list ends at or above B − 2m (it may have
/// dropped one): then None. Otherwise the rows at or above B − 2m are
/// rescored in fp32 and the best k kept.
fn exact_top(job: &CompareJob<'_>, p: usize, folds: &[Fold]) -> Option<Vec<Candidate>> {
    let k = job.top_k;
    let by_rank = Candidate::best_first;
    let mut union: Vec<Candidate> = folds
        .iter()
        .flat_map(|f| f.top.list(p).iter().copied())
        .collect();
    union.sort_unstable_by(by_rank);
    let margin = folds.first().map_or(0.0, |f| f.margin);
    if margin == 0.0 || k == 0 {
        union.truncate(k);
        return Some(union);
    }
    let band = match union.get(k - 1) {
        Some(kth) => kth.score - 2.0 * margin,
        None => f32::NEG_INFINITY,
    };
    let dropped = folds.iter().any(|f| {
        let list = f.top.list(p);
        list.len() == f.top.k && list.last().is_some_and(|c| c.score >= band)
    });
    if dropped {
        return None;
    }
    let near: Vec<u32> = union
        .iter()
        .filter(|c| c.score >= band)
        .map(|c| c.index)
        .collect();
    let mut exact = fp32_scores(job, p, &near);
    exact.sort_unstable_by(by_rank);
    exact.truncate(k);
    Some(exact)
}

/// Probe `p` against the gallery rows `rows` in fp32: one 1 × n product,
/// equal to the tiles' scores.
fn fp32_scores(job: &CompareJob<'_>, p: usize, rows: &[u32]) -> Vec<Candidate> {
    let dim = job.probes.dim();
    let mut gathered = Vec::with_capacity(rows.len() * dim);
    for &q in rows {
        gathered.extend_from_slice(job.gallery.row(q as usize));
    }
    let mut scores = vec![0f32; rows.len()];
    products(job.probes.row(p), &gathered, dim, &mut scores);
    rows.iter()
        .zip(scores)
        .map(|(&index, score)| Candidate { index, score })
        .collect()
}

/// The `capacity` highest impostor scores in fp32, sorted descending, from
/// the workers' stores.
///
/// With an fp32 kernel these are the best of the stores. With a reduced-
/// precision kernel (scores within `margin`, m, of fp32): if B is the
/// capacity-th best kernel score of the union, a score of the exact tail is
/// at least B − 2m by the kernel, and every worker kept all its scores down
/// to its own capacity-th best (≤ B) minus 2m. So the union holds every
/// score at or above B − 2m; those are rescored in fp32, and each is moved
/// from the histogram bin of its kernel score to that of its fp32 score,
/// so that the bins agree with the tail (the set moved does not depend on
/// the schedule).
///
/// Also the job's hardest impostor pairs: in fp32 from the workers' lists
/// (`hardest`), otherwise the highest of the rescored pairs.
fn exact_tail(
    job: &CompareJob<'_>,
    stores: Vec<Store>,
    hardest: Vec<PairScore>,
    margin: f32,
    hist: &mut [u64],
) -> (Vec<f32>, Vec<PairScore>) {
    let capacity = job.tail_capacity;
    let len = stores.iter().map(Store::len).sum();
    let (mut scores, mut union) = (Vec::with_capacity(len), Vec::new());
    for store in stores {
        match store {
            Store::Scores(v) => scores.extend(v),
            Store::Pairs(v) => union.extend(v),
        }
    }
    let (scores, mut hardest) = if margin == 0.0 {
        (scores, hardest)
    } else {
        rescored_tail(job, union, margin, hist)
    };
    Hardest::Highest.keep(&mut hardest, job.examples.min(capacity));
    // Sorted only now, as plain scores: a tail of 2·10^8 pairs took 8 s to
    // sort by score, its scores take 1 s.
    let mut tail = sort_descending(scores);
    tail.truncate(capacity);
    (tail, hardest)
}

/// A reduced-precision kernel's tail stores as fp32 scores (see
/// [`exact_tail`]), and the highest pairs among them.
fn rescored_tail(
    job: &CompareJob<'_>,
    mut union: Vec<TailScore>,
    margin: f32,
    hist: &mut [u64],
) -> (Vec<f32>, Vec<PairScore>) {
    use rayon::prelude::*;
    let capacity = job.tail_capacity;
    let by_score = |a: &TailScore, b: &TailScore| b.score.total_cmp(&a.score);
    if capacity != 0 {
        // Every score of the exact tail is in the band below the
        // capacity-th kernel score: rescored, it replaces the kernel's
        // score, in the bins and in the store.
        let band = if union.len() >= capacity {
            let (_, kth, _) = union.select_nth_unstable_by(capacity - 1, by_score);
            kth.score - 2.0 * margin
        } else {
            f32::NEG_INFINITY
        };
        union.retain(|t| t.score >= band);
        // Rescored a probe at a time, one 1 × n product per probe: a
        // product per pair costs far more in call and packing overhead
        // than in sums.
        union.par_sort_unstable_by_key(|t| (t.probe, t.gallery));
        let exact: Vec<f32> = union
            .par_chunk_by(|a, b| a.probe == b.probe)
            .flat_map_iter(|group| {
                let rows: Vec<u32> = group.iter().map(|t| t.gallery).collect();
                fp32_scores(job, group[0].probe as usize, &rows)
                    .into_iter()
                    .map(|c| c.score)
            })
            .collect();
        let spec = job.histogram;
        for (t, &e) in union.iter_mut().zip(&exact) {
            hist[spec.bin(t.score)] -= 1;
            hist[spec.bin(e)] += 1;
            t.score = e;
        }
    }
    // The hardest pairs are the tail's highest; all ties of the n-th are
    // offered (the store keeps every tie of its last score), and the
    // caller's cut picks among them by pair.
    let n = job.examples.min(capacity).min(union.len());
    let hardest: Vec<PairScore> = if n == 0 {
        Vec::new()
    } else {
        let (_, nth, _) = union.select_nth_unstable_by(n - 1, by_score);
        let bar = nth.score;
        union
            .iter()
            .filter(|t| t.score >= bar)
            .map(|t| PairScore {
                score: t.score,
                probe: t.probe,
                gallery: t.gallery,
            })
            .collect()
    };
    (union.into_iter().map(|t| t.score).collect(), hardest)
}

/// The workers' folds as one result, and the probes whose top-k lists
/// need an fp32 run (see [`exact_top`]; their lists are left empty).
fn merge(
    job: &CompareJob<'_>,
    genuine: Genuine,
    mate: &[f32],
    mut folds: Vec<Fold>,
) -> (CompareResult, Vec<usize>) {
    use rayon::prelude::*;
    let mut hist = vec![0u64; job.histogram.bins as usize];
    // Each worker's store is freed as it is moved: a tail that holds every
    // impostor score is in memory once, not twice.
    let mut stores = Vec::with_capacity(folds.len());
    let mut hardest = Vec::new();
    let n = job.probes.rows();
    let mut above_mate = vec![0u64; n];
    // The bands' counts summed into the first worker's.
    let mut band_counts = Vec::new();
    if let Some((first, rest)) = folds.split_first_mut() {
        for (i, sum) in first.bands.iter_mut().enumerate() {
            for fold in rest.iter() {
                sum.add_counts(&fold.bands[i]);
            }
        }
        band_counts = std::mem::take(&mut first.bands);
    }
    for fold in &mut folds {
        for (h, f) in hist.iter_mut().zip(&fold.hist) {
            *h += f;
        }
        stores.push(std::mem::replace(
            &mut fold.tail.store,
            Store::Scores(Vec::new()),
        ));
        hardest.append(&mut fold.tail.hardest);
        for (a, f) in above_mate.iter_mut().zip(&fold.above_mate) {
            *a += f;
        }
    }
    let margin = folds.first().map_or(0.0, |f| f.margin);
    let (impostor_tail, hardest_impostors) = exact_tail(job, stores, hardest, margin, &mut hist);
    let tops: Vec<Option<Vec<Candidate>>> = (0..n)
        .into_par_iter()
        .map(|p| exact_top(job, p, &folds))
        .collect();
    let unsure = (0..n).filter(|&p| tops[p].is_none()).collect();
    let probes = tops
        .into_iter()
        .enumerate()
        .map(|(p, top)| {
            let has_mate = mate[p] != f32::NEG_INFINITY;
            ProbeResult {
                top: top.unwrap_or_default(),
                mate_score: has_mate.then_some(mate[p]),
                mate_rank: has_mate.then_some(1 + above_mate[p]),
            }
        })
        .collect();
    let (genuine, genuine_subjects) = genuine.into_iter().unzip();
    let result = CompareResult {
        genuine,
        genuine_subjects,
        impostor_hist: hist,
        impostor_tail,
        probes,
        score_error: None,
        precision_note: None,
        hardest_genuine: Vec::new(),
        hardest_impostors,
        band_counts,
    };
    (result, unsure)
}

/// Rows built to stress bf16's rescoring band (tests of the engine and of
/// search): a gallery of `dim`-wide rows where a third are exact copies of
/// others (exact ties) and a third near-copies (ties within the bf16
/// error), and probes of which half are mated (a gallery row plus noise)
/// and half unmated blends of four gallery rows, whose best scores are
/// near-ties. Returns (gallery, its labels, probes, their labels).
#[cfg(test)]
pub(crate) fn band_stress_rows(
    gallery_rows: usize,
    probe_rows: usize,
    dim: usize,
) -> (super::Embeddings, Vec<u32>, super::Embeddings, Vec<u32>) {
    let mut rng = SplitMix(2024);
    let base: Vec<Vec<f32>> = (0..gallery_rows.div_ceil(3))
        .map(|_| (0..dim).map(|_| rng.uniform()).collect())
        .collect();
    let mut gallery = Vec::new();
    let mut gallery_labels = Vec::new();
    for g in 0..gallery_rows {
        let b = &base[g % base.len()];
        let row: Vec<f32> = match g / base.len() {
            0 | 1 => b.clone(),
            _ => b.iter().map(|v| v + 1e-3 * rng.uniform()).collect(),
        };
        gallery.extend(row);
        gallery_labels.push((g % (base.len() + 7)) as u32);
    }
    let mut probes = Vec::new();
    let mut probe_labels = Vec::new();
    for p in 0..probe_rows {
        let at = |i: usize| (p * 7 + i * 13) % gallery_rows;
        if p % 2 == 0 {
            let g = at(0);
            probes.extend(
                gallery[g * dim..(g + 1) * dim]
                    .iter()
                    .map(|v| v + 0.4 * rng.uniform()),
            );
            probe_labels.push(gallery_labels[g]);
        } else {
            let blend: Vec<f32> = (0..dim)
                .map(|k| {
                    (0..4).map(|i| gallery[at(i) * dim + k]).sum::<f32>() + 0.05 * rng.uniform()
                })
                .collect();
            probes.extend(blend);
            probe_labels.push(1_000_000 + p as u32);
        }
    }
    (
        super::Embeddings::normalized(gallery, dim).expect("finite rows"),
        gallery_labels,
        super::Embeddings::normalized(probes, dim).expect("finite rows"),
        probe_labels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{Embeddings, HistogramSpec, ScoreBand};
    use proptest::prelude::*;

    /// The O(N²) reference: every pair scored by a 1×1 product, folded by
    /// the definitions.
    /// The score of one pair by a 1 × 1 product of `precision`.
    fn kernel_score(job: &CompareJob<'_>, precision: CpuPrecision, p: usize, q: usize) -> f32 {
        let dim = job.probes.dim();
        match precision {
            CpuPrecision::Fp32 => fp32_score(job, p, q),
            CpuPrecision::Bf16 => {
                let (a, b) = (
                    bf16::rows(job.probes.row(p), dim),
                    bf16::rows(job.gallery.row(q), dim),
                );
                let mut out = f32::NAN;
                let mut scratch = bf16::Scratch::default();
                bf16::products(&a, &b, bf16::pairs(dim), &mut scratch, &mut |_, s| {
                    out = s[0]
                });
                out
            }
        }
    }

    fn naive(job: &CompareJob<'_>, precision: CpuPrecision) -> CompareResult {
        let score = |p: usize, q: usize| kernel_score(job, precision, p, q);
        let distinct = job.pairing == Pairing::AllDistinct;
        let mut genuine = Vec::new();
        let mut impostor = Vec::new();
        let (mut genuine_pairs, mut impostor_pairs) = (Vec::new(), Vec::new());
        let mut hist = vec![0u64; job.histogram.bins as usize];
        let mut probes = Vec::new();
        for p in 0..job.probes.rows() {
            let mut all: Vec<Candidate> = Vec::new();
            for q in 0..job.gallery.rows() {
                if distinct && q == p {
                    continue;
                }
                let s = score(p, q);
                all.push(Candidate {
                    index: q as u32,
                    score: s,
                });
                if !distinct || p < q {
                    let pair = PairScore {
                        score: s,
                        probe: p as u32,
                        gallery: q as u32,
                    };
                    if job.probe_labels[p] == job.gallery_labels[q] {
                        genuine.push((s, job.probe_labels[p]));
                        genuine_pairs.push(pair);
                    } else {
                        impostor.push(s);
                        impostor_pairs.push(pair);
                        hist[job.histogram.bin(s)] += 1;
                    }
                }
            }
            let mates: Vec<f32> = all
                .iter()
                .filter(|c| job.gallery_labels[c.index as usize] == job.probe_labels[p])
                .map(|c| c.score)
                .collect();
            let mate_score = mates.iter().copied().reduce(f32::max);
            let mate_rank = mate_score.map(|m| {
                1 + all
                    .iter()
                    .filter(|c| {
                        job.gallery_labels[c.index as usize] != job.probe_labels[p] && c.score >= m
                    })
                    .count() as u64
            });
            all.sort_by(Candidate::best_first);
            all.truncate(job.top_k);
            probes.push(ProbeResult {
                top: all,
                mate_score,
                mate_rank,
            });
        }
        genuine.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let (genuine, genuine_subjects) = genuine.into_iter().unzip();
        impostor.sort_by(|a, b| b.total_cmp(a));
        let band_counts = crate::compare::band_counts_of(job.bands, job.histogram, &impostor);
        impostor.truncate(job.tail_capacity);
        Hardest::Lowest.keep(&mut genuine_pairs, job.examples);
        Hardest::Highest.keep(&mut impostor_pairs, job.examples.min(job.tail_capacity));
        CompareResult {
            genuine,
            genuine_subjects,
            impostor_hist: hist,
            impostor_tail: impostor,
            probes,
            score_error: None,
            precision_note: None,
            hardest_genuine: genuine_pairs,
            hardest_impostors: impostor_pairs,
            band_counts,
        }
    }

    /// What an engine of `precision` must return: the fp32 result, but for
    /// a reduced precision the impostor bins of the kernel's scores, except
    /// the scores at or above the band below the tail (see [`exact_tail`]),
    /// binned by their fp32 score.
    fn expected(job: &CompareJob<'_>, precision: CpuPrecision) -> CompareResult {
        let fp32 = naive(job, CpuPrecision::Fp32);
        if precision == CpuPrecision::Fp32 {
            return fp32;
        }
        let mut hist = naive(job, precision).impostor_hist;
        let distinct = job.pairing == Pairing::AllDistinct;
        let mut impostors: Vec<(f32, f32)> = Vec::new();
        for p in 0..job.probes.rows() {
            for q in 0..job.gallery.rows() {
                if (!distinct || p < q) && job.probe_labels[p] != job.gallery_labels[q] {
                    impostors.push((kernel_score(job, precision, p, q), fp32_score(job, p, q)));
                }
            }
        }
        if job.tail_capacity > 0 {
            impostors.sort_by(|a, b| b.0.total_cmp(&a.0));
            let margin = Bf16::margin(job);
            let band = impostors
                .get(job.tail_capacity - 1)
                .map_or(f32::NEG_INFINITY, |kth| kth.0 - 2.0 * margin);
            for &(kernel, exact) in impostors.iter().filter(|i| i.0 >= band) {
                hist[job.histogram.bin(kernel)] -= 1;
                hist[job.histogram.bin(exact)] += 1;
            }
        }
        CompareResult {
            impostor_hist: hist,
            ..fp32
        }
    }

    /// A result less its sampled score error, which the naive loop has not.
    fn without_error(result: CompareResult) -> CompareResult {
        CompareResult {
            score_error: None,
            ..result
        }
    }

    /// The bf16 engine on `tile`, running bf16 whatever the job's tail.
    fn bf16_engine(tile: TileShape) -> CpuEngine {
        CpuEngine::with_precision(CpuPrecision::Bf16)
            .unwrap()
            .with_tile(tile)
            .with_bf16_tail_share(f64::INFINITY)
    }

    fn pairing(distinct: bool) -> Pairing {
        if distinct {
            Pairing::AllDistinct
        } else {
            Pairing::ProbeGallery
        }
    }

    /// Rows on a coarse grid so that tied scores are common.
    fn embeddings(rows: usize, dim: usize, values: &[i8]) -> Embeddings {
        let data: Vec<f32> = (0..rows * dim)
            .map(|i| values[i % values.len()] as f32 + 0.5)
            .collect();
        Embeddings::normalized(data, dim).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn tiled_engine_equals_the_naive_loop(
            n_probe in 1usize..40,
            n_gallery in 1usize..40,
            dim in 1usize..20,
            values in proptest::collection::vec(-3i8..3, 1..64),
            labels in proptest::collection::vec(0u32..6, 80),
            distinct in any::<bool>(),
            tile_rows in 1usize..9,
            tile_cols in 1usize..13,
            threads in 1usize..4,
            top_k in 0usize..6,
            tail_capacity in 0usize..30,
            examples in 0usize..8,
            bf16 in any::<bool>(),
            // Bands where f32 values are sparse enough to count each one.
            band in proptest::option::of(prop_oneof![48u32..60, 0u32..12].prop_flat_map(|low| (Just(low), 1u32..5))),
            // Where probe × gallery is cut into two gallery blocks.
            cut in 0usize..40,
        ) {
            let probes = embeddings(n_probe, dim, &values);
            let gallery = if distinct { probes.clone() } else { embeddings(n_gallery, dim, &values[1..].iter().chain(&values[..1]).copied().collect::<Vec<_>>()) };
            let probe_labels = &labels[..n_probe];
            let gallery_labels = if distinct { probe_labels } else { &labels[40..40 + n_gallery] };
            let bands: Vec<ScoreBand> = band.map(|(low, len)| ScoreBand { low, high: (low + len).min(64) }).into_iter().collect();
            let job = CompareJob {
                probes: probes.view(),
                probe_labels,
                gallery: gallery.view(),
                gallery_labels,
                pairing: pairing(distinct),
                top_k,
                histogram: HistogramSpec { bins: 64 },
                tail_capacity,
                examples,
                bands: &bands,
                mates_elsewhere: None,
            };
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            // bf16 where the CPU has it (the engine refuses it otherwise).
            let precision = if bf16 && bf16::supported() { CpuPrecision::Bf16 } else { CpuPrecision::Fp32 };
            let tile = TileShape { rows: tile_rows, cols: tile_cols };
            let engine = CpuEngine::with_precision(precision).unwrap().with_tile(tile).with_bf16_tail_share(f64::INFINITY);
            let tiled = pool.install(|| engine.compare(&job)).unwrap();
            // Two gallery blocks, each with the other's rows as mates
            // elsewhere, combine to the whole job's search results.
            if !distinct {
                let cut = cut.min(n_gallery);
                let (first, second): (Vec<usize>, Vec<usize>) = ((0..cut).collect(), (cut..n_gallery).collect());
                let (ga, gb) = (gallery.select(&first), gallery.select(&second));
                let (la, lb) = gallery_labels.split_at(cut);
                let block = |g: &Embeddings, l: &[u32], other: &Embeddings, ol: &[u32]| {
                    let j = CompareJob { gallery: g.view(), gallery_labels: l, mates_elsewhere: Some((other.view(), ol)), ..job };
                    pool.install(|| engine.compare(&j)).unwrap().probes
                };
                let combined: Vec<ProbeResult> = block(&ga, la, &gb, lb)
                    .into_iter()
                    .zip(block(&gb, lb, &ga, la))
                    .map(|(a, mut b)| {
                        b.top.iter_mut().for_each(|c| c.index += cut as u32);
                        a.with_block(b, top_k)
                    })
                    .collect();
                prop_assert_eq!(&combined, &tiled.probes);
            }
            // A job with bands runs in fp32, and says so.
            let ran = if bands.is_empty() { precision } else { CpuPrecision::Fp32 };
            prop_assert_eq!(tiled.precision_note.is_some(), ran != precision);
            prop_assert_eq!(tiled.score_error.is_some(), ran == CpuPrecision::Bf16);
            let tiled = CompareResult { precision_note: None, ..without_error(tiled) };
            prop_assert_eq!(tiled, expected(&job, ran));
        }
    }

    /// Tiles taller than a bf16 strip: the fold gets each strip at its
    /// offset in the tile, for both pairings.
    #[test]
    fn bf16_strips_fold_like_the_naive_loop() {
        if !bf16::testable() {
            return;
        }
        let probes = embeddings(130, 24, &[3, -1, 2, 0, -2, 1, 1, -3, 2, 1, 0]);
        let gallery = embeddings(70, 24, &[1, -2, 0, 2, 3, -1, 1]);
        let labels: Vec<u32> = (0..130).map(|i| (i * 7 % 23) as u32).collect();
        for distinct in [false, true] {
            let job = CompareJob {
                probes: probes.view(),
                probe_labels: &labels,
                gallery: if distinct {
                    probes.view()
                } else {
                    gallery.view()
                },
                gallery_labels: if distinct { &labels } else { &labels[..70] },
                pairing: pairing(distinct),
                top_k: 5,
                histogram: HistogramSpec { bins: 256 },
                tail_capacity: 40,
                examples: 0,
                bands: &[],
                mates_elsewhere: None,
            };
            let tile = TileShape {
                rows: 100,
                cols: 64,
            };
            let engine = bf16_engine(tile);
            let got = engine.compare(&job).unwrap();
            let error = got.score_error.unwrap();
            assert_eq!(without_error(got), expected(&job, CpuPrecision::Bf16));
            assert!(error > 0.0 && error < 1e-2, "bf16 error {error}");
        }
    }

    /// More rows within the rescoring band than a worker's list holds
    /// (here 60 near-copies of 5 rows): the probe's top-k comes from a
    /// rerun with longer lists in bf16 where the gallery has room (200
    /// other rows), in fp32 where it has not, for both pairings.
    #[test]
    fn bf16_top_lists_rerun_on_wide_ties() {
        if !bf16::testable() {
            return;
        }
        let dim = 16;
        let mut rng = SplitMix(5);
        for others in [0, 200] {
            let data: Vec<f32> = (0..60 * dim)
                .map(|i| 1.0 + ((i / dim) % 5) as f32 * 1e-3 * (i % 3) as f32)
                .chain((0..others * dim).map(|_| rng.uniform()))
                .collect();
            let rows = Embeddings::normalized(data, dim).unwrap();
            let labels: Vec<u32> = (0..60 + others as u32).map(|i| i % 4).collect();
            assert_eq!(
                3 + 1 + 8 * LIST_SLACK < rows.rows(),
                others > 0,
                "both reruns"
            );
            for distinct in [false, true] {
                let job = CompareJob {
                    probes: rows.view(),
                    probe_labels: &labels,
                    gallery: rows.view(),
                    gallery_labels: &labels,
                    pairing: pairing(distinct),
                    top_k: 3,
                    histogram: HistogramSpec { bins: 64 },
                    tail_capacity: 5,
                    examples: 0,
                    bands: &[],
                    mates_elsewhere: None,
                };
                let tile = TileShape { rows: 7, cols: 9 };
                let margin = bf16::fp32_distance_bound(dim, 2f64.powi(-8));
                assert!(
                    list_capacity(3, margin, LIST_SLACK) < 59,
                    "the lists must overflow"
                );
                let engine = bf16_engine(tile);
                assert_eq!(
                    without_error(engine.compare(&job).unwrap()),
                    expected(&job, CpuPrecision::Bf16)
                );
            }
        }
    }

    /// On rows built to stress the band (near-tied best scores of unmated
    /// probes, exact and near duplicates in the gallery), bf16 gives fp32's
    /// top-k lists, mate scores and ranks, genuine scores and exact tail
    /// (so the same thresholds), for both pairings, on several tilings.
    #[test]
    fn bf16_decides_as_fp32_on_near_ties_and_duplicates() {
        if !bf16::testable() {
            return;
        }
        let dim = 64;
        let (gallery, gallery_labels, probes, probe_labels) = band_stress_rows(300, 120, dim);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for distinct in [false, true] {
            let (p, pl) = if distinct {
                (&gallery, &gallery_labels)
            } else {
                (&probes, &probe_labels)
            };
            let job = CompareJob {
                probes: p.view(),
                probe_labels: pl,
                gallery: gallery.view(),
                gallery_labels: &gallery_labels,
                pairing: pairing(distinct),
                top_k: 10,
                histogram: HistogramSpec { bins: 256 },
                tail_capacity: 400,
                examples: 0,
                bands: &[],
                mates_elsewhere: None,
            };
            let fp32 = pool.install(|| CpuEngine::new().compare(&job)).unwrap();
            // The data does stress the band: many lists with three
            // neighbours within the band of each other, not all equal.
            let margin = Bf16::margin(&job);
            let tight = fp32
                .probes
                .iter()
                .filter(|r| {
                    r.top.windows(3).any(|w| {
                        let (a, c) = (w[0].score, w[2].score);
                        a != c && a - c <= 2.0 * margin
                    })
                })
                .count();
            assert!(tight >= 20, "only {tight} near-tied lists");
            let ties = fp32
                .probes
                .iter()
                .filter(|r| r.top.windows(2).any(|w| w[0].score == w[1].score))
                .count();
            assert!(ties >= 20, "only {ties} lists with exact ties");
            for tile in [
                TileShape { rows: 7, cols: 50 },
                TileShape { rows: 64, cols: 33 },
            ] {
                let engine = bf16_engine(tile);
                let bf16 = pool.install(|| engine.compare(&job)).unwrap();
                assert!(bf16.score_error.is_some(), "bf16 products ran");
                assert_eq!(bf16.probes, fp32.probes, "distinct {distinct} {tile:?}");
                assert_eq!(bf16.impostor_tail, fp32.impostor_tail);
                assert_eq!(bf16.genuine, fp32.genuine);
            }
        }
    }

    /// Where the exact tail is a large share of the comparisons, the bf16
    /// engine runs the job in fp32 (bf16 would rescore that share one row
    /// at a time) and says why; the result is fp32's, bins included.
    #[test]
    fn bf16_runs_fp32_where_the_exact_tail_would_cost_more() {
        if !bf16::testable() {
            return;
        }
        let (gallery, gallery_labels, probes, probe_labels) = band_stress_rows(90, 30, 16);
        let mut job = CompareJob {
            probes: probes.view(),
            probe_labels: &probe_labels,
            gallery: gallery.view(),
            gallery_labels: &gallery_labels,
            pairing: Pairing::ProbeGallery,
            top_k: 3,
            histogram: HistogramSpec { bins: 64 },
            tail_capacity: 2,
            examples: 0,
            bands: &[],
            mates_elsewhere: None,
        };
        // 2 of 2,700 comparisons is under 10^-3: bf16 runs.
        let engine = CpuEngine::with_precision(CpuPrecision::Bf16).unwrap();
        assert_eq!(bf16_pays(&job, BF16_TAIL_SHARE), Ok(()));
        let got = engine.compare(&job).unwrap();
        assert!(got.score_error.is_some() && got.precision_note.is_none());
        job.tail_capacity = 100;
        let why = bf16_pays(&job, BF16_TAIL_SHARE).unwrap_err();
        assert!(
            why.contains("100 scores, 3.704% of the 2700 comparisons"),
            "{why}"
        );
        let got = engine.compare(&job).unwrap();
        assert_eq!(got.precision_note, Some(why));
        assert_eq!(
            CompareResult {
                precision_note: None,
                ..got
            },
            CpuEngine::new().compare(&job).unwrap()
        );
    }

    #[test]
    fn scores_do_not_depend_on_the_tile() {
        let e = embeddings(300, 512, &[3, -1, 2, 0, -2, 1, 1, -3, 2]);
        let data: Vec<f32> = e
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, v)| v + (i % 7) as f32 * 1e-3)
            .collect();
        let e = Embeddings::normalized(data, 512).unwrap();
        let mut full = vec![0f32; 300 * 300];
        products(e.as_slice(), e.as_slice(), 512, &mut full);
        for (p, q) in [(0, 1), (17, 299), (299, 5), (128, 128)] {
            let mut one = [0f32];
            products(e.row(p), e.row(q), 512, &mut one);
            assert_eq!(one[0].to_bits(), full[p * 300 + q].to_bits());
            assert_eq!(
                full[p * 300 + q].to_bits(),
                full[q * 300 + p].to_bits(),
                "symmetric"
            );
        }
    }

    #[test]
    fn simd_impostor_counts_equal_the_scalar_loop() {
        let spec = HistogramSpec::DEFAULT;
        let mut state = 3u64;
        let mut scores: Vec<f32> = (0..10_007)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((state >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * 1.01
            })
            .collect();
        scores[..6].copy_from_slice(&[-1.0, 1.0, 1.0f32.next_up(), -1.5, 0.0, -0.0]);
        let labels: Vec<u32> = (0..scores.len() as u32).map(|i| i % 7 / 3).collect();
        let mut simd = vec![0u32; spec.bins as usize];
        let mut scalar = simd.clone();
        count_impostors(&mut simd, spec, &scores, &labels, 1);
        count_impostors_scalar(&mut scalar, spec, &scores, &labels, 1);
        assert_eq!(simd, scalar);
        assert_eq!(
            simd.iter().map(|&c| c as usize).sum::<usize>(),
            labels.iter().filter(|&&l| l != 1).count()
        );
    }

    #[test]
    fn all_distinct_needs_one_set() {
        let e = embeddings(3, 4, &[1, 2, -1]);
        let f = embeddings(4, 4, &[1, 2, -1]);
        let job = CompareJob {
            probes: e.view(),
            probe_labels: &[0, 0, 1],
            gallery: f.view(),
            gallery_labels: &[0, 0, 1, 1],
            pairing: Pairing::AllDistinct,
            top_k: 1,
            histogram: HistogramSpec { bins: 8 },
            tail_capacity: 1,
            examples: 0,
            bands: &[],
            mates_elsewhere: None,
        };
        assert!(CpuEngine::new().compare(&job).is_err());
    }
}
