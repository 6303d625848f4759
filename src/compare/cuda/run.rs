//! One job on the CUDA engine, in four steps: setup (sizes, buffers, the
//! resident gallery), the genuine pass of each probe block, the tile loop
//! (products on the side stream, fold and tail store on the main stream),
//! and the read-back into a [`CompareResult`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{sys as drv_sys, CudaEvent, CudaFunction, CudaStream, PushKernelArg};

use super::device::{cfg, mark, plain_event, DeviceBuffer, Spans};
use super::params::{FoldParams, TailParams, TailState};
use super::products::{operand_bytes, staging_bytes, upload_rows, Gemm};
use super::samples::{Samples, TileAt};
use super::{kernels, tail, CudaEngine, CudaError, Profile, FOLD_BLOCKS_PER_SM};
use crate::compare::Precision;
use crate::compare::{
    Candidate, CompareJob, CompareResult, Embeddings, Pairing, ProbeResult, SplitMix,
};

/// Runs `job` on `engine`'s GPU.
pub fn run(
    engine: &CudaEngine,
    job: &CompareJob<'_>,
) -> Result<(CompareResult, Profile), CudaError> {
    let started = Instant::now();
    let Some(mut r) = Run::setup(engine, job)? else {
        let result = CompareResult {
            genuine: Vec::new(),
            genuine_subjects: Vec::new(),
            impostor_hist: vec![0; job.histogram.bins as usize],
            impostor_tail: Vec::new(),
            probes: vec![ProbeResult::default(); job.probes.rows()],
        };
        return Ok((result, Profile::default()));
    };
    for p0 in (0..r.s.np).step_by(r.s.rows_t) {
        let rows = r.s.rows_t.min(r.s.np - p0);
        let probes = r.probe_block(p0, rows)?;
        r.genuine_pass(p0, rows, probes)?;
        for g0 in (0..r.s.ng).step_by(r.s.cols_t) {
            r.tile(p0, rows, probes, g0)?;
        }
    }
    r.read_back(started)
}

/// The job's sizes.
struct Shape {
    all_distinct: bool,
    np: usize,
    ng: usize,
    dim: usize,
    bins: usize,
    k: usize,
    /// Bytes per operand value.
    e: usize,
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

struct Buffers {
    staging: DeviceBuffer,
    gallery: DeviceBuffer,
    probes: DeviceBuffer,
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
    gallery: &'j Embeddings,
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
    /// Recorded on main after uploads; the next product waits for it.
    ev_uploaded: CudaEvent,
    /// Per score buffer: its product done; its last fold done.
    ev_gemm: [CudaEvent; 2],
    ev_fold: [CudaEvent; 2],
    /// An upload went onto main since the side stream last waited for one.
    uploaded: bool,
    loaded_block: Option<usize>,
    tile_no: u64,
    samples: Samples,
    t: Timings,
    free_before: usize,
    min_free: usize,
}

impl<'e, 'j> Run<'e, 'j> {
    /// Sizes, checks and allocates everything; None for a job with no
    /// comparisons.
    fn setup(engine: &'e CudaEngine, job: &'j CompareJob<'j>) -> Result<Option<Self>, CudaError> {
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
        let rows_t = engine.tile.rows.min(np);
        let cols_t = engine.tile.cols.min(ng.div_ceil(128) * 128);
        let want = job.tail_capacity.min(impostor_pairs(
            job.probe_labels,
            gallery_labels,
            all_distinct,
        ));
        let tail_cap = tail::store_capacity(want);

        // Device memory: everything but the gallery, then the gallery whole
        // if it fits, else one block of it.
        let staging = staging_bytes(engine.precision);
        let fixed = 2 * rows_t * cols_t * 4
            + bins * 8
            + np * (k * 8 + 8 + 4)
            + (np + 1) * 8
            + mates.idx.len() * 8
            + (np + ng + 8) * 4
            + tail_cap * 4
            + rows_t * dim * e
            + staging
            + (64 << 20); // cuBLAS workspace and small buffers
        let budget = free_before / 10 * 9;
        let resident = !engine.force_streaming && fixed + ng * dim * e <= budget;
        if !resident && fixed + cols_t * dim * e > budget {
            return Err(CudaError::Job(format!(
                "the GPU has {} MiB free; a {}×{} tile needs about {} MiB (a smaller tile would fit)",
                budget >> 20,
                rows_t,
                cols_t,
                (fixed + cols_t * dim * e) >> 20
            )));
        }
        let probes_shared = all_distinct && resident;

        let main = ctx.new_stream()?;
        let side = ctx.new_stream()?;
        let blas = CudaBlas::new(side.clone())?;
        let b = Buffers {
            staging: DeviceBuffer::new(staging)?,
            gallery: DeviceBuffer::new(if resident { ng } else { cols_t } * dim * e)?,
            probes: DeviceBuffer::new(if probes_shared { 0 } else { rows_t * dim * e })?,
            scores: [
                DeviceBuffer::new(rows_t * cols_t * 4)?,
                DeviceBuffer::new(rows_t * cols_t * 4)?,
            ],
            plabel: DeviceBuffer::upload(&main, &padded(job.probe_labels))?,
            glabel: DeviceBuffer::upload(&main, &padded(gallery_labels))?,
            mate_ptr: DeviceBuffer::upload(&main, &mates.ptr)?,
            mate_idx: DeviceBuffer::upload(&main, &mates.idx)?,
            pair_score: DeviceBuffer::new(mates.idx.len() * 4)?,
            mate_best: DeviceBuffer::upload(&main, &vec![f32::NEG_INFINITY; np])?,
            top_s: DeviceBuffer::upload(&main, &vec![f32::NEG_INFINITY; np * k])?,
            top_j: DeviceBuffer::upload(&main, &vec![u32::MAX; np * k])?,
            rank: DeviceBuffer::upload(&main, &vec![0u64; np])?,
            hist: DeviceBuffer::upload(&main, &vec![0u64; bins])?,
            tail_buf: DeviceBuffer::new(tail_cap * 4)?,
            tail_state: DeviceBuffer::upload(&main, &[TailState::default()])?,
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
                np,
                ng,
                dim,
                bins,
                k,
                e,
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
            ev_uploaded: plain_event(ctx)?,
            ev_gemm: [plain_event(ctx)?, plain_event(ctx)?],
            ev_fold,
            // The labels, mates and zeroed results above went onto main.
            uploaded: true,
            loaded_block: None,
            tile_no: 0,
            samples: Samples::new()?,
            t: Timings::default(),
            free_before,
            min_free: free_before,
        };
        if resident {
            run.upload(gallery.as_slice(), run.b.gallery.ptr, Target::Gallery)?;
        }
        run.note_memory()?;
        Ok(Some(run))
    }

    fn note_memory(&mut self) -> Result<(), CudaError> {
        self.min_free = self.min_free.min(self.engine.ctx.mem_get_info()?.0);
        Ok(())
    }

    /// Rows of `host` into the probe or gallery buffer at `dst`, on main.
    fn upload(&mut self, host: &[f32], dst: u64, target: Target) -> Result<(), CudaError> {
        let within = match target {
            Target::Probes => &self.b.probes,
            Target::Gallery => &self.b.gallery,
        };
        upload_rows(self.engine, &self.main, host, dst, within, &self.b.staging)?;
        self.uploaded = true;
        Ok(())
    }

    /// Where probe block p0 lives on the GPU, uploading it when needed.
    fn probe_block(&mut self, p0: usize, rows: usize) -> Result<u64, CudaError> {
        let Shape { dim, e, .. } = self.s;
        if self.s.probes_shared {
            return Ok(self.b.gallery.ptr + (p0 * dim * e) as u64);
        }
        let host = &self.job.probes.as_slice()[p0 * dim..(p0 + rows) * dim];
        let dst = self.b.probes.ptr;
        self.upload(host, dst, Target::Probes)?;
        Ok(dst)
    }

    /// Where gallery block g0 lives on the GPU, streaming it in when needed.
    fn gallery_block(&mut self, g0: usize, cols: usize) -> Result<u64, CudaError> {
        let Shape { dim, e, .. } = self.s;
        if self.s.resident {
            return Ok(self.b.gallery.ptr + (g0 * dim * e) as u64);
        }
        if self.loaded_block != Some(g0) {
            let host = &self.gallery.as_slice()[g0 * dim..(g0 + cols) * dim];
            let dst = self.b.gallery.ptr;
            self.upload(host, dst, Target::Gallery)?;
            self.loaded_block = Some(g0);
        }
        Ok(self.b.gallery.ptr)
    }

    /// Genuine scores and best mate scores of one probe block, on main.
    fn genuine_pass(&mut self, p0: usize, rows: usize, probes: u64) -> Result<(), CudaError> {
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
            let gptr = self.gallery_block(g0, cols)?;
            let f = match self.engine.precision {
                Precision::Fp32 | Precision::Tf32 => &self.engine.base.genuine_f32,
                Precision::Bf16 => &self.engine.base.genuine_bf16,
                Precision::Fp16 => &self.engine.base.genuine_f16,
            };
            let (dim_i, rows_i, col0, cols64) =
                (self.s.dim as i32, rows as i32, g0 as u64, cols as u64);
            let mp = self.b.mate_ptr.ptr + (p0 * 8) as u64;
            let mb = self.b.mate_best.ptr + (p0 * 4) as u64;
            let mut b = self.main.launch_builder(f);
            b.arg(&probes)
                .arg(&gptr)
                .arg(&dim_i)
                .arg(&rows_i)
                .arg(&col0)
                .arg(&cols64);
            b.arg(&mp)
                .arg(&self.b.mate_idx.ptr)
                .arg(&self.b.pair_score.ptr)
                .arg(&mb);
            let blocks = rows.div_ceil(8).min(self.engine.sm_count as usize * 8) as u32;
            // SAFETY: genuine_*(…) reads `rows` probe rows and the gallery
            // rows [g0, g0 + cols) of `dim` operands each, the CSR mate
            // lists of those rows (every index < ng, so every pair_score
            // slot exists), and writes rows mate_best values from p0.
            unsafe { b.launch(cfg(blocks, 256, 0)) }?;
        }
        let end = mark(&self.engine.ctx, &self.main)?;
        self.t.genuine.push(start, end);
        Ok(())
    }

    /// The product of one tile on the side stream, then its fold and tail
    /// maintenance on main.
    fn tile(&mut self, p0: usize, rows: usize, probes: u64, g0: usize) -> Result<(), CudaError> {
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
            probes,
            gallery,
            scores: self.b.scores[buf].ptr,
            ld: self.s.cols_t,
        }
        .run(&self.blas, self.engine.precision)?;
        self.t.products.push(start, mark(&ctx, &self.side)?);
        self.ev_gemm[buf].record(&self.side)?;
        self.main.wait(&self.ev_gemm[buf])?;

        let start = mark(&ctx, &self.main)?;
        self.fold_tile(p0, rows, g0, cols, buf)?;
        let tile = TileAt {
            scores: self.b.scores[buf].ptr,
            ld: self.s.cols_t,
            p0,
            rows,
            g0,
            cols,
        };
        self.samples
            .take(&self.engine.base.gather, &self.main, &tile)?;
        self.t.fold.push(start, mark(&ctx, &self.main)?);
        self.ev_fold[buf].record(&self.main)?;
        if self.tile_no == 0 {
            self.side.synchronize()?;
            self.note_memory()?;
        }
        self.tile_no += 1;
        Ok(())
    }

    /// The fold of one tile and, with a tail wanted, the store's
    /// maintenance and the tile's redo when it overflowed (`tail.cu`).
    fn fold_tile(
        &self,
        p0: usize,
        rows: usize,
        g0: usize,
        cols: usize,
        buf: usize,
    ) -> Result<(), CudaError> {
        let Shape { k, want, .. } = self.s;
        let b = &self.b;
        let fused = FoldParams {
            scores: b.scores[buf].ptr,
            ld: self.s.cols_t as u64,
            row0: p0 as u64,
            col0: g0 as u64,
            plabel: b.plabel.ptr + (p0 * 4) as u64,
            glabel: b.glabel.ptr + (g0 * 4) as u64,
            mate_best: b.mate_best.ptr + (p0 * 4) as u64,
            hist: b.hist.ptr,
            top_s: b.top_s.ptr + (p0 * k * 4) as u64,
            top_j: b.top_j.ptr + (p0 * k * 4) as u64,
            rank_count: b.rank.ptr + (p0 * 8) as u64,
            tail_buf: b.tail_buf.ptr,
            tail: b.tail_state.ptr,
            tail_cap: self.s.tail_cap as u64,
            half_bins: self.job.histogram.bins as f32 * 0.5,
            rows: rows as i32,
            cols: cols as i32,
            bins: self.s.bins as i32,
            win_lo: self.win_lo as i32,
            win_len: self.win_len as i32,
            all_distinct: self.s.all_distinct as i32,
            do_main: 1,
            do_tail: (want > 0) as i32,
            redo_only: 0,
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
        // buffer holds rows_t × cols_t floats) and the labels, mate scores,
        // top-k lists and rank counts of rows [row0, row0 + rows) and
        // columns [col0, col0 + cols), all inside their buffers (sized by
        // np, ng and k in setup; labels padded by 4 for 16-byte loads); the
        // histogram has `bins` counters and the window lies inside it; the
        // tail store has tail_cap places; `smem` covers the window.
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
            bins: self.s.bins as i32,
            after_redo: after_redo as i32,
            pad: 0,
        };
        let mut b = self.main.launch_builder(&self.engine.base.tail);
        b.arg(&p);
        // SAFETY: tail_maintain reads `bins` counters, at most `cap`
        // stored scores and the one TailState; it runs as one block of
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
            ..
        } = self.s;
        let main = &self.main;
        let hist: Vec<u64> = self.b.hist.download(main, bins)?;
        let state = self.b.tail_state.download::<TailState>(main, 1)?[0];
        if state.overflow != 0 {
            let b = state.bin as usize;
            return Err(CudaError::Job(format!(
                "the exact impostor tail needs the {want} highest impostor scores, but {} of them \
                 tie in one histogram bin (cosine {:.6} to {:.6}), more than the GPU's store has \
                 room for ({tail_cap} places); use --device cpu",
                hist[b],
                self.job.histogram.lower_edge(b),
                self.job.histogram.lower_edge(b + 1)
            )));
        }
        let mut tail: Vec<f32> = self.b.tail_buf.download(main, state.count as usize)?;
        tail.sort_by(|a, b| b.total_cmp(a));
        tail.truncate(want);
        let pair: Vec<f32> = self.b.pair_score.download(main, self.mates.idx.len())?;
        let best: Vec<f32> = self.b.mate_best.download(main, np)?;
        let top_s: Vec<f32> = self.b.top_s.download(main, np * k)?;
        let top_j: Vec<u32> = self.b.top_j.download(main, np * k)?;
        let rank: Vec<u64> = self.b.rank.download(main, np)?;
        let sampled = self.samples.read(main, self.job.probes, self.gallery)?;
        self.note_memory()?;

        let mut genuine = Vec::new();
        let mut genuine_subjects = Vec::new();
        let mut probes = Vec::with_capacity(np);
        for i in 0..np {
            let range = self.mates.ptr[i] as usize..self.mates.ptr[i + 1] as usize;
            for e in range.clone() {
                if !all_distinct || self.mates.idx[e] as usize > i {
                    genuine.push(pair[e]);
                    genuine_subjects.push(self.job.probe_labels[i]);
                }
            }
            let top = (0..k)
                .map(|q| Candidate {
                    index: top_j[i * k + q],
                    score: top_s[i * k + q],
                })
                .filter(|c| c.index != u32::MAX)
                .collect();
            let mated = !range.is_empty();
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
            tail_redone: state.redone as u64,
            peak_memory_bytes: self.free_before.saturating_sub(self.min_free) as u64,
            max_abs_score_error: sampled,
        };
        let result = CompareResult {
            genuine,
            genuine_subjects,
            impostor_hist: hist,
            impostor_tail: tail,
            probes,
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
    gallery: &Embeddings,
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
