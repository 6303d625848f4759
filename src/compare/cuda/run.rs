//! One job on the CUDA engine, in four steps: setup (sizes, buffers, the
//! resident gallery, the products' margin), the genuine pass of each probe
//! block, the tile loop (products on the side stream, fold and tail store
//! on the main stream), and the read-back into a [`CompareResult`], where
//! the exact tail is taken from the store (`rescore::exact_tail`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{sys as drv_sys, CudaEvent, CudaFunction, CudaStream, PushKernelArg};

use super::device::{cfg, mark, plain_event, DeviceBuffer, Spans, Staging};
use super::params::{BandSpec, FoldParams, TailEntry, TailParams, TailState};
use super::products::{first_column, operand_bytes, upload_rows, Gemm, RowsAt};
use super::samples::{Samples, TileAt};
use super::{kernels, rescore, tail, CudaEngine, CudaError, Profile, FOLD_BLOCKS_PER_SM};
use crate::compare::{
    descending_key, BandCounts, Candidate, CompareJob, CompareResult, EmbeddingRows, Hardest,
    PairScore, Pairing, ProbeResult, SplitMix,
};

/// Runs `job` on `engine`'s GPU.
pub fn run(
    engine: &CudaEngine,
    job: &CompareJob<'_>,
) -> Result<(CompareResult, Profile), CudaError> {
    let started = Instant::now();
    let outside = rescore::outside_mate_scores(job);
    let Some(mut r) = Run::setup(engine, job, &outside)? else {
        // No comparisons; a probe's mates in other gallery blocks still
        // give its mate score, and no non-mate here outranks it.
        let probes = outside
            .iter()
            .map(|&m| {
                let mated = m != f32::NEG_INFINITY;
                ProbeResult {
                    top: Vec::new(),
                    mate_score: mated.then_some(m),
                    mate_rank: mated.then_some(1),
                }
            })
            .collect();
        let result = CompareResult {
            genuine: Vec::new(),
            genuine_subjects: Vec::new(),
            impostor_hist: vec![0; job.histogram.bins as usize],
            impostor_tail: Vec::new(),
            probes,
            score_error: None,
            precision_note: None,
            hardest_genuine: Vec::new(),
            hardest_impostors: Vec::new(),
            band_counts: Vec::new(),
        };
        return Ok((result, Profile::default()));
    };
    let Shape {
        np,
        ng,
        rows_t,
        cols_t,
        triangle,
        ..
    } = r.s;
    if triangle {
        // Every mate score first: a tile's columns rank against theirs.
        for p0 in (0..np).step_by(rows_t) {
            let rows = rows_t.min(np - p0);
            let probes = r.probe_block(p0, rows)?;
            r.genuine_pass(p0, rows, probes)?;
        }
    }
    for p0 in (0..np).step_by(rows_t) {
        let rows = rows_t.min(np - p0);
        let probes = r.probe_block(p0, rows)?;
        if !triangle {
            r.genuine_pass(p0, rows, probes)?;
        }
        for g0 in (first_column(p0, cols_t, triangle)..ng).step_by(cols_t) {
            r.tile(p0, rows, probes, g0)?;
        }
    }
    r.read_back(started)
}

/// The job's sizes.
struct Shape {
    all_distinct: bool,
    /// All distinct pairs with no top-k: only the tiles above the diagonal,
    /// each pair ranking both its rows (fold.cu). With a top-k the square,
    /// since each probe's list needs its whole row.
    triangle: bool,
    np: usize,
    ng: usize,
    dim: usize,
    bins: usize,
    k: usize,
    /// Bytes per value of the 16-bit operands kept beside the fp32 rows
    /// (0 when the products read the fp32 rows).
    e16: usize,
    /// The bound on |product − decision score|, widened, and twice it.
    margin: f32,
    margin2: f32,
    rows_t: usize,
    cols_t: usize,
    /// Impostor scores kept exactly, and the store's places for them.
    want: usize,
    tail_cap: usize,
    /// The whole gallery on the GPU (else one block at a time).
    resident: bool,
    /// Probe blocks read from the resident gallery (all-distinct pairing).
    probes_shared: bool,
}

/// Device buffers. Rows are kept in fp32 (`*32`), which decision scores
/// are computed from, and for the 16-bit precisions also as the products'
/// operands.
struct Buffers {
    gallery32: DeviceBuffer,
    gallery16: DeviceBuffer,
    probes32: DeviceBuffer,
    probes16: DeviceBuffer,
    scores: [DeviceBuffer; 2],
    plabel: DeviceBuffer,
    glabel: DeviceBuffer,
    mate_ptr: DeviceBuffer,
    mate_idx: DeviceBuffer,
    pair_score: DeviceBuffer,
    mate_best: DeviceBuffer,
    top_s: DeviceBuffer,
    top_j: DeviceBuffer,
    rank: DeviceBuffer,
    hist: DeviceBuffer,
    tail_buf: DeviceBuffer,
    tail_state: DeviceBuffer,
    /// The largest |product − decision score| the fold rescored (f32 bits).
    worst: DeviceBuffer,
    /// The job's score bands ([`band_specs`]), their counters, and per bin
    /// the band pairs whose product and whose decision score are in it.
    bands: DeviceBuffer,
    band_counts: DeviceBuffer,
    moved_out: DeviceBuffer,
    moved_in: DeviceBuffer,
}

/// Where a block of rows lies on the GPU: its fp32 rows and the operands
/// the products read.
#[derive(Clone, Copy)]
struct Block {
    rows32: u64,
    operands: u64,
}

#[derive(Default)]
struct Timings {
    products: Spans,
    fold: Spans,
    genuine: Spans,
}

struct Run<'e, 'j> {
    engine: &'e CudaEngine,
    job: &'j CompareJob<'j>,
    gallery: EmbeddingRows<'j>,
    s: Shape,
    mates: Mates,
    main: Arc<CudaStream>,
    side: Arc<CudaStream>,
    blas: CudaBlas,
    fold: CudaFunction,
    fold_grid: u32,
    /// The fold's shared-memory histogram window.
    win_lo: usize,
    win_len: usize,
    b: Buffers,
    staging: Staging,
    /// Recorded on main after uploads; the next product waits for it.
    ev_uploaded: CudaEvent,
    /// Per score buffer: its product done; its last fold done.
    ev_gemm: [CudaEvent; 2],
    ev_fold: [CudaEvent; 2],
    /// An upload went onto main since the side stream last waited for one.
    uploaded: bool,
    loaded_block: Option<usize>,
    tile_no: u64,
    /// Scores computed so far.
    products: u64,
    samples: Samples,
    t: Timings,
    free_before: usize,
    min_free: usize,
    /// The job's bands as the fold reads them, highest first, each with
    /// its number of counters.
    bands: Vec<(BandSpec, usize)>,
}

/// The job's score bands as the fold reads them, highest first (so their
/// counters list the scores descending), each with its number of counters:
/// a product within the margin of a band's score range is rescored.
fn band_specs(job: &CompareJob<'_>, margin: f32) -> Vec<(BandSpec, usize)> {
    let mut offset = 0;
    job.bands
        .iter()
        .rev()
        .map(|band| {
            let (hi, lo) = band.score_range(job.histogram);
            let len = band.values(job.histogram) as usize;
            let spec = BandSpec {
                reach_lo: lo - margin,
                reach_hi: hi + margin,
                lo,
                hi,
                first: descending_key(hi),
                pad: 0,
                offset: offset as u64,
            };
            offset += len;
            (spec, len)
        })
        .collect()
}

impl<'e, 'j> Run<'e, 'j> {
    /// Sizes, checks and allocates everything; None for a job with no
    /// comparisons.
    /// `outside`: each probe's mate score from mates outside the gallery
    /// ([`rescore::outside_mate_scores`]), where its mate scores start.
    fn setup(
        engine: &'e CudaEngine,
        job: &'j CompareJob<'j>,
        outside: &[f32],
    ) -> Result<Option<Self>, CudaError> {
        let all_distinct = job.pairing == Pairing::AllDistinct;
        let (gallery, gallery_labels) = if all_distinct {
            (job.probes, job.probe_labels)
        } else {
            (job.gallery, job.gallery_labels)
        };
        let (np, ng, dim) = (job.probes.rows(), gallery.rows(), job.probes.dim());
        let bins = job.histogram.bins as usize;
        let k = job.top_k;
        if k > kernels::MAX_TOP_K {
            return Err(CudaError::Job(format!(
                "top-k {k} is above the CUDA engine's limit of {}; use --device cpu",
                kernels::MAX_TOP_K
            )));
        }
        if ng >= u32::MAX as usize || bins == 0 || bins > i32::MAX as usize {
            return Err(CudaError::Job(format!(
                "{ng} gallery rows or {bins} bins is beyond the CUDA engine"
            )));
        }
        if np == 0 || ng == 0 {
            return Ok(None);
        }
        let ctx = &engine.ctx;
        ctx.bind_to_thread()?;
        let fold = engine.fold_function(k)?;
        let free_before = ctx.mem_get_info()?.0;

        let mates = Mates::build(job.probe_labels, gallery_labels, all_distinct);
        let e = operand_bytes(engine.precision);
        let e16 = if e == 4 { 0 } else { e };
        let rows_t = engine.tile.rows.min(np);
        let cols_t = engine.tile.cols.min(ng.div_ceil(128) * 128);
        let want = job.tail_capacity.min(impostor_pairs(
            job.probe_labels,
            gallery_labels,
            all_distinct,
        ));
        let tail_cap = tail::store_capacity(want);
        let mut rounding = rescore::operand_rounding(engine.precision, job.probes.as_slice(), dim);
        if !all_distinct {
            rounding = rounding.max(rescore::operand_rounding(
                engine.precision,
                gallery.as_slice(),
                dim,
            ));
        }
        let margin = rescore::margin(dim, rounding);
        let bands = band_specs(job, margin);
        let band_values: usize = bands.iter().map(|b| b.1).sum();
        let band_bins = if bands.is_empty() { 0 } else { bins };

        // Device memory: everything but the gallery, then the gallery whole
        // if it fits, else one block of it.
        let row_bytes = dim * (4 + e16);
        let fixed = 2 * rows_t * cols_t * 4
            + bins * 8
            + np * (k * 8 + 8 + 4)
            + (np + 1) * 8
            + mates.idx.len() * 8
            + (np + ng + 8) * 4
            + tail_cap * std::mem::size_of::<TailEntry>()
            + (band_values + 2 * band_bins) * 8
            + rows_t * row_bytes
            + (64 << 20); // cuBLAS workspace and small buffers
        let budget = free_before / 10 * 9;
        let resident = !engine.force_streaming && fixed + ng * row_bytes <= budget;
        if !resident && fixed + cols_t * row_bytes > budget {
            return Err(CudaError::Job(format!(
                "the GPU has {} MiB free; a {}×{} tile needs about {} MiB (a smaller tile would fit)",
                budget >> 20,
                rows_t,
                cols_t,
                (fixed + cols_t * row_bytes) >> 20
            )));
        }
        let probes_shared = all_distinct && resident;

        let main = ctx.new_stream()?;
        let side = ctx.new_stream()?;
        let blas = CudaBlas::new(side.clone())?;
        let mut staging = Staging::new(ctx)?;
        let st = &mut staging;
        let gallery_rows = if resident { ng } else { cols_t };
        let probe_rows = if probes_shared { 0 } else { rows_t };
        let b = Buffers {
            gallery32: DeviceBuffer::new(gallery_rows * dim * 4)?,
            gallery16: DeviceBuffer::new(gallery_rows * dim * e16)?,
            probes32: DeviceBuffer::new(probe_rows * dim * 4)?,
            probes16: DeviceBuffer::new(probe_rows * dim * e16)?,
            scores: [
                DeviceBuffer::new(rows_t * cols_t * 4)?,
                DeviceBuffer::new(rows_t * cols_t * 4)?,
            ],
            plabel: DeviceBuffer::upload(st, &main, &padded(job.probe_labels))?,
            glabel: DeviceBuffer::upload(st, &main, &padded(gallery_labels))?,
            mate_ptr: DeviceBuffer::upload(st, &main, &mates.ptr)?,
            mate_idx: DeviceBuffer::upload(st, &main, &mates.idx)?,
            pair_score: DeviceBuffer::new(mates.idx.len() * 4)?,
            mate_best: DeviceBuffer::upload(st, &main, outside)?,
            top_s: DeviceBuffer::upload(st, &main, &vec![f32::NEG_INFINITY; np * k])?,
            top_j: DeviceBuffer::upload(st, &main, &vec![u32::MAX; np * k])?,
            rank: DeviceBuffer::upload(st, &main, &vec![0u64; np])?,
            hist: DeviceBuffer::upload(st, &main, &vec![0u64; bins])?,
            tail_buf: DeviceBuffer::new(tail_cap * std::mem::size_of::<TailEntry>())?,
            tail_state: DeviceBuffer::upload(st, &main, &[TailState::default()])?,
            worst: DeviceBuffer::upload(st, &main, &[0u32])?,
            bands: DeviceBuffer::upload(st, &main, &bands.iter().map(|b| b.0).collect::<Vec<_>>())?,
            band_counts: DeviceBuffer::upload(st, &main, &vec![0u64; band_values])?,
            moved_out: DeviceBuffer::upload(st, &main, &vec![0u64; band_bins])?,
            moved_in: DeviceBuffer::upload(st, &main, &vec![0u64; band_bins])?,
        };

        let win_len = bins.min(engine.fold_smem as usize / 4);
        let win_lo = window_start(job, gallery, gallery_labels, all_distinct, win_len);
        fold.set_attribute(
            drv_sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            (win_len * 4) as i32,
        )?;
        let fold_grid = ((engine.sm_count * FOLD_BLOCKS_PER_SM) as usize)
            .min(rows_t.div_ceil(kernels::FOLD_BLOCK as usize / 32)) as u32;

        let ev_fold = [plain_event(ctx)?, plain_event(ctx)?];
        ev_fold[0].record(&main)?;
        ev_fold[1].record(&main)?;
        let mut run = Run {
            engine,
            job,
            gallery,
            s: Shape {
                all_distinct,
                triangle: all_distinct && k == 0,
                np,
                ng,
                dim,
                bins,
                k,
                e16,
                margin,
                margin2: 2.0 * margin,
                rows_t,
                cols_t,
                want,
                tail_cap,
                resident,
                probes_shared,
            },
            mates,
            main,
            side,
            blas,
            fold,
            fold_grid,
            win_lo,
            win_len,
            b,
            staging,
            ev_uploaded: plain_event(ctx)?,
            ev_gemm: [plain_event(ctx)?, plain_event(ctx)?],
            ev_fold,
            // The labels, mates and zeroed results above went onto main.
            uploaded: true,
            loaded_block: None,
            tile_no: 0,
            products: 0,
            samples: Samples::new()?,
            t: Timings::default(),
            free_before,
            min_free: free_before,
            bands,
        };
        if resident {
            run.upload(gallery.as_slice(), Target::Gallery, 0)?;
        }
        run.note_memory()?;
        Ok(Some(run))
    }

    fn note_memory(&mut self) -> Result<(), CudaError> {
        self.min_free = self.min_free.min(self.engine.ctx.mem_get_info()?.0);
        Ok(())
    }

    /// Rows of `host` into the probe or gallery buffers from row `first`,
    /// on main.
    fn upload(&mut self, host: &[f32], target: Target, first: usize) -> Result<(), CudaError> {
        let (rows32, rows16) = match target {
            Target::Probes => (&self.b.probes32, &self.b.probes16),
            Target::Gallery => (&self.b.gallery32, &self.b.gallery16),
        };
        let Shape { dim, e16, .. } = self.s;
        let to = RowsAt {
            rows: rows32.ptr + (first * dim * 4) as u64,
            rows_in: rows32,
            operands: (e16 > 0).then(|| (rows16.ptr + (first * dim * e16) as u64, rows16)),
        };
        upload_rows(self.engine, &mut self.staging, &self.main, host, to)?;
        self.uploaded = true;
        Ok(())
    }

    /// Rows `first..` of the probe or gallery buffers.
    fn block(&self, target: Target, first: usize) -> Block {
        let (rows32, rows16) = match target {
            Target::Probes => (&self.b.probes32, &self.b.probes16),
            Target::Gallery => (&self.b.gallery32, &self.b.gallery16),
        };
        let Shape { dim, e16, .. } = self.s;
        let at32 = rows32.ptr + (first * dim * 4) as u64;
        Block {
            rows32: at32,
            operands: if e16 == 0 {
                at32
            } else {
                rows16.ptr + (first * dim * e16) as u64
            },
        }
    }

    /// Where probe block p0 lives on the GPU, uploading it when needed.
    fn probe_block(&mut self, p0: usize, rows: usize) -> Result<Block, CudaError> {
        if self.s.probes_shared {
            return Ok(self.block(Target::Gallery, p0));
        }
        let dim = self.s.dim;
        let host = &self.job.probes.as_slice()[p0 * dim..(p0 + rows) * dim];
        self.upload(host, Target::Probes, 0)?;
        Ok(self.block(Target::Probes, 0))
    }

    /// Where gallery block g0 lives on the GPU, streaming it in when needed.
    fn gallery_block(&mut self, g0: usize, cols: usize) -> Result<Block, CudaError> {
        if self.s.resident {
            return Ok(self.block(Target::Gallery, g0));
        }
        if self.loaded_block != Some(g0) {
            let dim = self.s.dim;
            let host = &self.gallery.as_slice()[g0 * dim..(g0 + cols) * dim];
            self.upload(host, Target::Gallery, 0)?;
            self.loaded_block = Some(g0);
        }
        Ok(self.block(Target::Gallery, 0))
    }

    /// Genuine scores and best mate scores of one probe block, as decision
    /// scores, on main.
    fn genuine_pass(&mut self, p0: usize, rows: usize, probes: Block) -> Result<(), CudaError> {
        let start = mark(&self.engine.ctx, &self.main)?;
        // A resident gallery is one block; a streamed one comes in
        // tile-wide blocks.
        let block = if self.s.resident {
            self.s.ng
        } else {
            self.s.cols_t
        };
        for g0 in (0..self.s.ng).step_by(block) {
            let cols = block.min(self.s.ng - g0);
            let gallery = self.gallery_block(g0, cols)?;
            let (dim, rows_i, col0, cols64) =
                (self.s.dim as u64, rows as i32, g0 as u64, cols as u64);
            let mp = self.b.mate_ptr.ptr + (p0 * 8) as u64;
            let mb = self.b.mate_best.ptr + (p0 * 4) as u64;
            let mut b = self.main.launch_builder(&self.engine.base.genuine);
            b.arg(&probes.rows32)
                .arg(&gallery.rows32)
                .arg(&dim)
                .arg(&rows_i)
                .arg(&col0)
                .arg(&cols64);
            b.arg(&mp)
                .arg(&self.b.mate_idx.ptr)
                .arg(&self.b.pair_score.ptr)
                .arg(&mb);
            let blocks = rows.div_ceil(8).min(self.engine.sm_count as usize * 8) as u32;
            // SAFETY: genuine(…) reads `rows` fp32 probe rows and the fp32
            // gallery rows [g0, g0 + cols) of `dim` values each, the CSR
            // mate lists of those rows (every index < ng, so every
            // pair_score slot exists), and writes rows mate_best values
            // from p0.
            unsafe { b.launch(cfg(blocks, 256, 0)) }?;
        }
        let end = mark(&self.engine.ctx, &self.main)?;
        self.t.genuine.push(start, end);
        Ok(())
    }

    /// The product of one tile on the side stream, then its fold and tail
    /// maintenance on main.
    fn tile(&mut self, p0: usize, rows: usize, probes: Block, g0: usize) -> Result<(), CudaError> {
        let ctx = self.engine.ctx.clone();
        let cols = self.s.cols_t.min(self.s.ng - g0);
        let gallery = self.gallery_block(g0, cols)?;
        let buf = (self.tile_no % 2) as usize;
        // The product waits for the fold that last read its buffer, and for
        // any upload since the last product: nothing else, so it runs while
        // the other buffer's fold does.
        self.side.wait(&self.ev_fold[buf])?;
        if std::mem::take(&mut self.uploaded) {
            self.ev_uploaded.record(&self.main)?;
            self.side.wait(&self.ev_uploaded)?;
        }
        let start = mark(&ctx, &self.side)?;
        Gemm {
            rows,
            cols,
            dim: self.s.dim,
            probes: probes.operands,
            gallery: gallery.operands,
            scores: self.b.scores[buf].ptr,
            ld: self.s.cols_t,
        }
        .run(&self.blas, self.engine.precision)?;
        self.t.products.push(start, mark(&ctx, &self.side)?);
        self.ev_gemm[buf].record(&self.side)?;
        self.main.wait(&self.ev_gemm[buf])?;

        let start = mark(&ctx, &self.main)?;
        self.fold_tile(p0, rows, probes, g0, cols, gallery, buf)?;
        let tile = TileAt {
            scores: self.b.scores[buf].ptr,
            ld: self.s.cols_t,
            p0,
            rows,
            g0,
            cols,
        };
        self.samples.take(
            &mut self.staging,
            &self.engine.base.gather,
            &self.main,
            &tile,
        )?;
        self.t.fold.push(start, mark(&ctx, &self.main)?);
        self.ev_fold[buf].record(&self.main)?;
        if self.tile_no == 0 {
            self.side.synchronize()?;
            self.note_memory()?;
        }
        self.tile_no += 1;
        self.products += (rows * cols) as u64;
        Ok(())
    }

    /// The fold of one tile and, with a tail wanted, the store's
    /// maintenance and the tile's redo when it overflowed (`tail.cu`).
    #[allow(clippy::too_many_arguments)]
    fn fold_tile(
        &self,
        p0: usize,
        rows: usize,
        probes: Block,
        g0: usize,
        cols: usize,
        gallery: Block,
        buf: usize,
    ) -> Result<(), CudaError> {
        let Shape { k, want, .. } = self.s;
        let b = &self.b;
        let fused = FoldParams {
            scores: b.scores[buf].ptr,
            ld: self.s.cols_t as u64,
            row0: p0 as u64,
            col0: g0 as u64,
            p32: probes.rows32,
            g32: gallery.rows32,
            dim: self.s.dim as u64,
            plabel: b.plabel.ptr + (p0 * 4) as u64,
            glabel: b.glabel.ptr + (g0 * 4) as u64,
            mate_best: b.mate_best.ptr + (p0 * 4) as u64,
            mate_all: b.mate_best.ptr,
            hist: b.hist.ptr,
            top_s: b.top_s.ptr + (p0 * k * 4) as u64,
            top_j: b.top_j.ptr + (p0 * k * 4) as u64,
            rank_count: b.rank.ptr + (p0 * 8) as u64,
            rank_all: b.rank.ptr,
            tail_buf: b.tail_buf.ptr,
            tail: b.tail_state.ptr,
            tail_cap: self.s.tail_cap as u64,
            worst: b.worst.ptr,
            bands: b.bands.ptr,
            band_counts: b.band_counts.ptr,
            moved_out: b.moved_out.ptr,
            moved_in: b.moved_in.ptr,
            margin: self.s.margin,
            margin2: self.s.margin2,
            half_bins: self.job.histogram.bins as f32 * 0.5,
            rows: rows as i32,
            cols: cols as i32,
            bins: self.s.bins as i32,
            win_lo: self.win_lo as i32,
            win_len: self.win_len as i32,
            all_distinct: self.s.all_distinct as i32,
            triangle: self.s.triangle as i32,
            do_main: 1,
            do_tail: (want > 0) as i32,
            redo_only: 0,
            n_bands: self.bands.len() as i32,
        };
        self.launch_fold(&fused, (self.win_len * 4) as u32)?;
        if want > 0 {
            self.maintain(false)?;
            let redo = FoldParams {
                do_main: 0,
                redo_only: 1,
                ..fused
            };
            self.launch_fold(&redo, 0)?;
            self.maintain(true)?;
        }
        Ok(())
    }

    fn launch_fold(&self, p: &FoldParams, smem: u32) -> Result<(), CudaError> {
        let mut b = self.main.launch_builder(&self.fold);
        b.arg(p);
        // SAFETY: fold_tile reads the rows × cols tile (cols <= ld, the
        // buffer holds rows_t × cols_t floats) and the fp32 rows, labels,
        // mate scores, top-k lists and rank counts of rows [row0, row0 +
        // rows) and columns [col0, col0 + cols), all inside their buffers
        // (sized by np, ng, dim and k in setup; labels padded by 4 for
        // 16-byte loads); the histogram has `bins` counters and the window
        // lies inside it; the tail store has tail_cap entries; `worst` is
        // one u32; `smem` covers the window.
        unsafe { b.launch(cfg(self.fold_grid, kernels::FOLD_BLOCK, smem)) }?;
        Ok(())
    }

    fn maintain(&self, after_redo: bool) -> Result<(), CudaError> {
        let p = TailParams {
            hist: self.b.hist.ptr,
            buf: self.b.tail_buf.ptr,
            state: self.b.tail_state.ptr,
            want: self.s.want as u64,
            cap: self.s.tail_cap as u64,
            high_water: tail::high_water(self.s.want) as u64,
            half_bins: self.job.histogram.bins as f32 * 0.5,
            margin2: self.s.margin2,
            bins: self.s.bins as i32,
            after_redo: after_redo as i32,
        };
        let mut b = self.main.launch_builder(&self.engine.base.tail);
        b.arg(&p);
        // SAFETY: tail_maintain reads `bins` counters, at most `cap`
        // stored entries and the one TailState; it runs as one block of
        // TAIL_BLOCK threads, the TB it was compiled with.
        unsafe { b.launch(cfg(1, kernels::TAIL_BLOCK, 0)) }?;
        Ok(())
    }

    /// Waits for the GPU and gathers the small results.
    fn read_back(mut self, started: Instant) -> Result<(CompareResult, Profile), CudaError> {
        self.side.synchronize()?;
        self.main.synchronize()?;
        let Shape {
            np,
            k,
            want,
            tail_cap,
            all_distinct,
            bins,
            margin,
            margin2,
            ..
        } = self.s;
        let (main, st) = (&self.main, &mut self.staging);
        let mut hist: Vec<u64> = st.download(main, &self.b.hist, bins)?;
        let state = st.download::<TailState>(main, &self.b.tail_state, 1)?[0];
        if state.overflow != 0 {
            let b = state.bin as usize;
            return Err(CudaError::Job(format!(
                "the exact impostor tail needs the {want} highest impostor scores, but {} of them \
                 tie in one histogram bin (cosine {:.6} to {:.6}) or lie within the {:?} products' \
                 margin ({:.1e}) below it, more than the GPU's store has room for ({tail_cap} \
                 places); use --precision fp32 or --device cpu",
                hist[b],
                self.job.histogram.lower_edge(b),
                self.job.histogram.lower_edge(b + 1),
                self.engine.precision,
                margin,
            )));
        }
        let worst = f32::from_bits(st.download::<u32>(main, &self.b.worst, 1)?[0]);
        if worst > margin {
            return Err(CudaError::Job(format!(
                "a {:?} product was {worst:.2e} from its fp32 decision score, beyond the bound \
                 ({margin:.2e}) that the engine's exact decisions rest on; use --precision fp32 or \
                 --device cpu",
                self.engine.precision
            )));
        }
        // Band pairs move from their product's bin to their decision
        // score's; the tail leaves them where the bands put them.
        let mut band_counts = Vec::new();
        if !self.bands.is_empty() {
            let out: Vec<u64> = st.download(main, &self.b.moved_out, bins)?;
            let into: Vec<u64> = st.download(main, &self.b.moved_in, bins)?;
            for ((h, o), i) in hist.iter_mut().zip(out).zip(into) {
                *h = *h - o + i;
            }
            let total = self.bands.iter().map(|b| b.1).sum();
            let counts: Vec<u64> = st.download(main, &self.b.band_counts, total)?;
            // The fold's bands are highest first; the result's in the job's order.
            for (spec, len) in self.bands.iter().rev() {
                let at = spec.offset as usize;
                band_counts.push(BandCounts {
                    first: spec.first,
                    counts: counts[at..at + len].to_vec(),
                });
            }
        }
        let reach: Vec<(f32, f32)> = self
            .bands
            .iter()
            .map(|b| (b.0.reach_lo, b.0.reach_hi))
            .collect();
        let entries: Vec<TailEntry> = st.download(main, &self.b.tail_buf, state.count as usize)?;
        let (tail, hardest_impostors) = rescore::exact_tail(
            entries,
            want,
            margin2,
            self.job.histogram,
            &mut hist,
            &reach,
            self.job.examples.min(want),
        );
        let pair: Vec<f32> = st.download(main, &self.b.pair_score, self.mates.idx.len())?;
        let best: Vec<f32> = st.download(main, &self.b.mate_best, np)?;
        let top_s: Vec<f32> = st.download(main, &self.b.top_s, np * k)?;
        let top_j: Vec<u32> = st.download(main, &self.b.top_j, np * k)?;
        let rank: Vec<u64> = st.download(main, &self.b.rank, np)?;
        let sampled = self.samples.read(st, main, self.job.probes, self.gallery)?;
        self.note_memory()?;

        let mut genuine = Vec::new();
        let mut genuine_subjects = Vec::new();
        let mut hardest_genuine = Vec::new();
        let mut probes = Vec::with_capacity(np);
        for i in 0..np {
            let range = self.mates.ptr[i] as usize..self.mates.ptr[i + 1] as usize;
            for e in range.clone() {
                if !all_distinct || self.mates.idx[e] as usize > i {
                    genuine.push(pair[e]);
                    genuine_subjects.push(self.job.probe_labels[i]);
                    let hard = PairScore {
                        score: pair[e],
                        probe: i as u32,
                        gallery: self.mates.idx[e],
                    };
                    Hardest::Lowest.offer(&mut hardest_genuine, self.job.examples, hard);
                }
            }
            let top = (0..k)
                .map(|q| Candidate {
                    index: top_j[i * k + q],
                    score: top_s[i * k + q],
                })
                .filter(|c| c.index != u32::MAX)
                .collect();
            // Mated here or in another gallery block: a mate score.
            let mated = best[i] != f32::NEG_INFINITY;
            probes.push(ProbeResult {
                top,
                mate_score: mated.then_some(best[i]),
                mate_rank: mated.then_some(1 + rank[i]),
            });
        }
        let profile = Profile {
            total_s: started.elapsed().as_secs_f64(),
            products_s: self.t.products.seconds()?,
            fold_s: self.t.fold.seconds()?,
            genuine_s: self.t.genuine.seconds()?,
            tiles: self.tile_no,
            products: self.products,
            tail_redone: state.redone as u64,
            peak_memory_bytes: self.free_before.saturating_sub(self.min_free) as u64,
            max_abs_score_error: sampled,
            margin: margin as f64,
            max_rescored_gap: worst as f64,
        };
        Hardest::Lowest.keep(&mut hardest_genuine, self.job.examples);
        let result = CompareResult {
            genuine,
            genuine_subjects,
            impostor_hist: hist,
            impostor_tail: tail,
            probes,
            score_error: sampled,
            precision_note: None,
            hardest_genuine,
            // The tail store keeps scores, not their pairs (yet): the
            // hardest impostor pairs come from the CPU engine only.
            hardest_impostors,
            band_counts,
        };
        Ok((result, profile))
    }
}

#[derive(Clone, Copy)]
enum Target {
    Probes,
    Gallery,
}

/// Labels padded so the fold's 16-byte label loads stay in bounds.
fn padded(labels: &[u32]) -> Vec<u32> {
    let mut v = labels.to_vec();
    v.extend_from_slice(&[u32::MAX; 4]);
    v
}

/// Each probe's mates (gallery rows of its identity; itself excluded in the
/// all-distinct pairing), ascending, in CSR form.
struct Mates {
    ptr: Vec<u64>,
    idx: Vec<u32>,
}

impl Mates {
    fn build(probe_labels: &[u32], gallery_labels: &[u32], all_distinct: bool) -> Mates {
        let mut by_label: HashMap<u32, Vec<u32>> = HashMap::new();
        for (j, &l) in gallery_labels.iter().enumerate() {
            by_label.entry(l).or_default().push(j as u32);
        }
        let mut ptr = Vec::with_capacity(probe_labels.len() + 1);
        let mut idx = Vec::new();
        ptr.push(0u64);
        for (i, l) in probe_labels.iter().enumerate() {
            if let Some(rows) = by_label.get(l) {
                idx.extend(
                    rows.iter()
                        .copied()
                        .filter(|&j| !(all_distinct && j as usize == i)),
                );
            }
            ptr.push(idx.len() as u64);
        }
        Mates { ptr, idx }
    }
}

/// The number of impostor pairs a job has (the tail never needs more).
fn impostor_pairs(probe_labels: &[u32], gallery_labels: &[u32], all_distinct: bool) -> usize {
    let mut per_label: HashMap<u32, u64> = HashMap::new();
    for &l in gallery_labels {
        *per_label.entry(l).or_default() += 1;
    }
    let ng = gallery_labels.len() as u64;
    let ordered: u64 = probe_labels
        .iter()
        .map(|l| ng - per_label.get(l).copied().unwrap_or(0))
        .sum();
    let pairs = if all_distinct { ordered / 2 } else { ordered };
    usize::try_from(pairs).unwrap_or(usize::MAX)
}

/// The first bin of the fold's shared-memory window: centred on the median
/// of a deterministic sample of impostor scores, so that nearly every
/// impostor lands in it (the rest take a slower global atomic).
fn window_start(
    job: &CompareJob<'_>,
    gallery: EmbeddingRows<'_>,
    gallery_labels: &[u32],
    all_distinct: bool,
    win_len: usize,
) -> usize {
    let bins = job.histogram.bins as usize;
    if win_len >= bins {
        return 0;
    }
    let (np, ng) = (job.probes.rows(), gallery.rows());
    let mut rng = SplitMix(0x5eed);
    let mut sample: Vec<f32> = (0..4096)
        .filter_map(|_| {
            let i = (rng.next() % np as u64) as usize;
            let j = (rng.next() % ng as u64) as usize;
            let distinct = !(all_distinct && i == j);
            (distinct && job.probe_labels[i] != gallery_labels[j]).then(|| {
                job.probes
                    .row(i)
                    .iter()
                    .zip(gallery.row(j))
                    .map(|(a, b)| a * b)
                    .sum()
            })
        })
        .collect();
    if sample.is_empty() {
        return bins / 2 - win_len / 2;
    }
    sample.sort_by(f32::total_cmp);
    let centre = job.histogram.bin(sample[sample.len() / 2]);
    centre.saturating_sub(win_len / 2).min(bins - win_len)
}
