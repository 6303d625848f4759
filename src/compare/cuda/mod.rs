//! The CUDA comparison engine: products by cuBLAS, the per-tile fold by the
//! kernels in `kernels/` (compiled at run time by NVRTC for the GPU present),
//! so that only the small results cross PCIe.
//!
//! For each probe block (`tile.rows` probes) the engine
//! 1. computes every genuine score of the block (probe × its mates, from a
//!    CSR list built on the host) and each probe's best mate score;
//! 2. for each gallery block (`tile.cols` rows) multiplies the two blocks
//!    (cuBLAS, fp32 / tf32 / bf16 / fp16 operands, fp32 scores) into one of
//!    two score buffers, and folds it (`fold.cu`) while the next product
//!    runs on a second stream: impostor histogram, mate-rank counts, top-k,
//!    and the impostor tail store (`tail.cu`).
//!
//! The gallery stays on the GPU when it fits, else it is streamed block by
//! block (twice per probe block: once for the genuine pass, once for the
//! products). The all-distinct pairing computes the whole square, since
//! each probe's candidate list needs its full row, and counts each
//! unordered pair once (column above row).
//!
//! Genuine scores come from the genuine pass, in the operands' precision
//! with fp32 accumulation (fp32 operands for tf32). The mate rank counts
//! non-mates whose product score is >= that mate score.

pub mod kernels;
pub mod libs;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    result as drv, sys as drv_sys, CudaContext, CudaEvent, CudaFunction, CudaStream, DriverError,
    LaunchConfig, PushKernelArg,
};

use super::{
    dot_f64, Candidate, CompareError, CompareJob, CompareResult, Engine, Pairing, ProbeResult,
    SplitMix, TileShape,
};
use crate::cli::Precision;

/// Fold blocks resident per SM (the kernel's __launch_bounds__ says 2).
const FOLD_BLOCKS_PER_SM: u32 = 2;

impl TileShape {
    /// 8192 × 16384: 512 MiB of fp32 scores per buffer, products long
    /// enough (137 GFLOP at d = 512) to keep cuBLAS near its peak.
    pub const CUDA_DEFAULT: TileShape = TileShape {
        rows: 8192,
        cols: 16384,
    };
}

/// Where the time of one job went (from CUDA events; products and fold run
/// on two streams and overlap, so their sum can exceed the total).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// Wall time of the whole job: uploads, products, fold, read-back.
    pub total_s: f64,
    /// GPU time of the cuBLAS products.
    pub products_s: f64,
    /// GPU time of the fold and tail kernels.
    pub fold_s: f64,
    /// GPU time of the genuine pass.
    pub genuine_s: f64,
    pub tiles: u64,
    /// Device memory taken during the job (free memory before minus the
    /// least free memory seen), cuBLAS's workspace included.
    pub peak_memory_bytes: u64,
    /// Largest |score − float64 score| over the sampled pairs.
    pub max_abs_score_error: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("{0}")]
    Unavailable(String),
    #[error("CUDA driver: {0}")]
    Driver(#[from] DriverError),
    #[error("cuBLAS: {0:?}")]
    Blas(blas_result::CublasError),
    #[error(transparent)]
    Compile(#[from] kernels::CompileError),
    #[error("{0}")]
    Job(String),
}

impl From<blas_result::CublasError> for CudaError {
    fn from(e: blas_result::CublasError) -> Self {
        CudaError::Blas(e)
    }
}

impl From<CudaError> for CompareError {
    fn from(e: CudaError) -> Self {
        CompareError::Device(e.to_string())
    }
}

/// Kernels that do not depend on the job.
struct BaseKernels {
    to_bf16: CudaFunction,
    to_f16: CudaFunction,
    gather: CudaFunction,
    genuine_f32: CudaFunction,
    genuine_bf16: CudaFunction,
    genuine_f16: CudaFunction,
    tail: CudaFunction,
}

pub struct CudaEngine {
    ctx: Arc<CudaContext>,
    precision: Precision,
    name: String,
    arch: String,
    sm_count: u32,
    /// Shared memory a fold block may take (two per SM).
    fold_smem: u32,
    base: BaseKernels,
    /// The fold loaded per top-k length (its PTX is cached per process).
    folds: Mutex<HashMap<usize, CudaFunction>>,
    tile: TileShape,
    force_streaming: bool,
    last_error: Mutex<Option<f64>>,
}

/// Runs a cudarc call that may panic (a symbol missing from a library it
/// loaded) and turns the panic into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(CudaError::Unavailable(format!("{what}: cudarc panicked"))))
}

impl CudaEngine {
    /// Opens GPU `ordinal` and compiles the fixed kernels. Every failure is
    /// an error naming its cause (no driver, no GPU, a library missing);
    /// nothing here panics.
    pub fn new(ordinal: usize, precision: Precision) -> Result<CudaEngine, CudaError> {
        if let Some(why) = libs::missing_library() {
            return Err(CudaError::Unavailable(why));
        }
        guarded("CUDA initialisation", || {
            let ctx = CudaContext::new(ordinal).map_err(|e| {
                CudaError::Unavailable(format!("no usable CUDA device {ordinal} ({e})"))
            })?;
            let (major, minor) = ctx.compute_capability()?;
            let arch = format!("sm_{major}{minor}");
            let name = format!("cuda:{ordinal} {} ({arch})", ctx.name()?);
            let sm_count = ctx
                .attribute(drv_sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?
                as u32;
            let optin = ctx.attribute(
                drv_sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )? as u32;
            let per_sm = ctx.attribute(
                drv_sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
            )? as u32;
            // The fold runs two blocks per SM; the driver reserves 1 KiB a block.
            let fold_smem = optin.min((per_sm / FOLD_BLOCKS_PER_SM).saturating_sub(1024));
            // A cuBLAS handle now, so a broken libcublas fails here, not mid-job.
            drop(CudaBlas::new(ctx.new_stream()?)?);
            let load = |source: &kernels::Source| -> Result<_, CudaError> {
                let ptx =
                    kernels::compile_cached(source, &arch, &kernels::default_defines(source))?;
                Ok(ctx.load_module(ptx)?)
            };
            let convert = load(&kernels::CONVERT)?;
            let genuine = load(&kernels::GENUINE)?;
            let tail = load(&kernels::TAIL)?;
            let base = BaseKernels {
                to_bf16: convert.load_function("f32_to_bf16")?,
                to_f16: convert.load_function("f32_to_f16")?,
                gather: convert.load_function("gather_scores")?,
                genuine_f32: genuine.load_function("genuine_f32")?,
                genuine_bf16: genuine.load_function("genuine_bf16")?,
                genuine_f16: genuine.load_function("genuine_f16")?,
                tail: tail.load_function("tail_maintain")?,
            };
            Ok(CudaEngine {
                ctx,
                precision,
                name,
                arch,
                sm_count,
                fold_smem,
                base,
                folds: Mutex::new(HashMap::new()),
                tile: TileShape::CUDA_DEFAULT,
                force_streaming: false,
                last_error: Mutex::new(None),
            })
        })
    }

    /// Another tile shape (columns are rounded up to a multiple of 128).
    pub fn with_tile(mut self, tile: TileShape) -> Self {
        self.tile = TileShape {
            rows: tile.rows.max(1),
            cols: tile.cols.max(1).div_ceil(128) * 128,
        };
        self
    }

    /// Streams the gallery block by block even where it would fit on the
    /// GPU (tests use it to reach that path on small data).
    pub fn with_streamed_gallery(mut self) -> Self {
        self.force_streaming = true;
        self
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Runs a job and says where its time went.
    pub fn compare_profiled(
        &self,
        job: &CompareJob<'_>,
    ) -> Result<(CompareResult, Profile), CompareError> {
        job.validate()?;
        let out = guarded("CUDA job", || self.run(job, true))?;
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = out.1.max_abs_score_error;
        Ok(out)
    }

    /// cuBLAS alone over the same tiles as a job of `probes` × `gallery`
    /// rows (random operands, no fold): the products' ceiling the engine is
    /// measured against. Returns the seconds per full sweep (median of
    /// `repeats`).
    pub fn products_only_seconds(
        &self,
        probes: usize,
        gallery: usize,
        dim: usize,
        repeats: usize,
    ) -> Result<f64, CompareError> {
        Ok(guarded("cuBLAS benchmark", || {
            self.products_only(probes, gallery, dim, repeats)
        })?)
    }

    fn fold_function(&self, top_k: usize) -> Result<CudaFunction, CudaError> {
        let mut folds = self.folds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = folds.get(&top_k) {
            return Ok(f.clone());
        }
        let ptx =
            kernels::compile_cached(&kernels::FOLD, &self.arch, &kernels::fold_defines(top_k))?;
        let f = self.ctx.load_module(ptx)?.load_function("fold_tile")?;
        folds.insert(top_k, f.clone());
        Ok(f)
    }

    fn operand_bytes(&self) -> usize {
        match self.precision {
            Precision::Fp32 | Precision::Tf32 => 4,
            Precision::Bf16 | Precision::Fp16 => 2,
        }
    }

    /// Copies host rows into device operands, converting on the GPU for the
    /// 16-bit precisions (through a float32 staging buffer).
    fn upload_rows(
        &self,
        stream: &CudaStream,
        host: &[f32],
        dst: u64,
        staging: &DeviceBuffer,
    ) -> Result<(), CudaError> {
        let convert = match self.precision {
            Precision::Fp32 | Precision::Tf32 => {
                // SAFETY: dst holds host.len() floats (sized by the caller).
                unsafe { drv::memcpy_htod_async(dst, host, stream.cu_stream()) }?;
                return Ok(());
            }
            Precision::Bf16 => &self.base.to_bf16,
            Precision::Fp16 => &self.base.to_f16,
        };
        let chunk = staging.bytes / 4;
        for (c, part) in host.chunks(chunk).enumerate() {
            // SAFETY: the staging buffer holds `chunk` floats; the kernel
            // that reads it runs on the same stream before the next copy.
            unsafe { drv::memcpy_htod_async(staging.ptr, part, stream.cu_stream()) }?;
            let out = dst + (c * chunk * 2) as u64;
            let n = part.len() as u64;
            let mut b = stream.launch_builder(convert);
            b.arg(&staging.ptr).arg(&out).arg(&n);
            let blocks = (part.len().div_ceil(256)).min(self.sm_count as usize * 16) as u32;
            unsafe { b.launch(cfg(blocks, 256, 0)) }?;
        }
        Ok(())
    }

    /// One product tile: S (rows × cols, row-major, leading dimension ld)
    /// = probes · galleryᵀ. cuBLAS is column-major, so it computes
    /// Sᵀ = gallery · probesᵀ with gallery transposed.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        blas: &CudaBlas,
        rows: usize,
        cols: usize,
        dim: usize,
        probes: u64,
        gallery: u64,
        s: u64,
        ld: usize,
    ) -> Result<(), CudaError> {
        let (dtype, compute) = match self.precision {
            Precision::Fp32 => (
                blas_sys::cudaDataType::CUDA_R_32F,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            Precision::Tf32 => (
                blas_sys::cudaDataType::CUDA_R_32F,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
            ),
            Precision::Bf16 => (
                blas_sys::cudaDataType::CUDA_R_16BF,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            Precision::Fp16 => (
                blas_sys::cudaDataType::CUDA_R_16F,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the pointers address device buffers of at least
        // cols × dim, rows × dim operands and rows × ld floats.
        unsafe {
            blas_result::gemm_ex(
                *blas.handle(),
                blas_sys::cublasOperation_t::CUBLAS_OP_T,
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                cols as i32,
                rows as i32,
                dim as i32,
                &alpha as *const f32 as *const _,
                gallery as *const _,
                dtype,
                dim as i32,
                probes as *const _,
                dtype,
                dim as i32,
                &beta as *const f32 as *const _,
                s as *mut _,
                blas_sys::cudaDataType::CUDA_R_32F,
                ld as i32,
                compute,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }?;
        Ok(())
    }

    fn products_only(
        &self,
        probes: usize,
        gallery: usize,
        dim: usize,
        repeats: usize,
    ) -> Result<f64, CudaError> {
        self.ctx.bind_to_thread()?;
        let stream = self.ctx.new_stream()?;
        let blas = CudaBlas::new(stream.clone())?;
        let e = self.operand_bytes();
        let rows_t = self.tile.rows.min(probes.max(1));
        let cols_t = self.tile.cols.min(gallery.max(1).div_ceil(128) * 128);
        let p = DeviceBuffer::new(probes * dim * e)?;
        let g = DeviceBuffer::new(gallery * dim * e)?;
        let s = [
            DeviceBuffer::new(rows_t * cols_t * 4)?,
            DeviceBuffer::new(rows_t * cols_t * 4)?,
        ];
        // Random-looking operands (products of zeros run faster than real data).
        let staging = DeviceBuffer::new(64 << 20)?;
        for (buf, rows, seed) in [(&p, probes, 1u64), (&g, gallery, 2u64)] {
            let host = noise(rows * dim, seed);
            self.upload_rows(&stream, &host, buf.ptr, &staging)?;
        }
        // One pass over the tiles (or the first `limit` of them).
        let sweep = |limit: usize| -> Result<f64, CudaError> {
            let start = timing_event(&self.ctx)?;
            let end = timing_event(&self.ctx)?;
            start.record(&stream)?;
            let mut t = 0;
            'tiles: for p0 in (0..probes).step_by(rows_t) {
                let rows = rows_t.min(probes - p0);
                for g0 in (0..gallery).step_by(cols_t) {
                    if t == limit {
                        break 'tiles;
                    }
                    let cols = cols_t.min(gallery - g0);
                    self.gemm(
                        &blas,
                        rows,
                        cols,
                        dim,
                        p.ptr + (p0 * dim * e) as u64,
                        g.ptr + (g0 * dim * e) as u64,
                        s[t % 2].ptr,
                        cols_t,
                    )?;
                    t += 1;
                }
            }
            end.record(&stream)?;
            end.synchronize()?;
            Ok(start.elapsed_ms(&end)? as f64 / 1e3)
        };
        sweep(2)?; // warm-up: cuBLAS's heuristics and workspace
        let mut times = (0..repeats.max(1))
            .map(|_| sweep(usize::MAX))
            .collect::<Result<Vec<_>, _>>()?;
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    fn run(
        &self,
        job: &CompareJob<'_>,
        profile: bool,
    ) -> Result<(CompareResult, Profile), CudaError> {
        let started = Instant::now();
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
            let result = CompareResult {
                genuine: Vec::new(),
                genuine_subjects: Vec::new(),
                impostor_hist: vec![0; bins],
                impostor_tail: Vec::new(),
                probes: vec![ProbeResult::default(); np],
            };
            return Ok((result, Profile::default()));
        }
        self.ctx.bind_to_thread()?;
        let fold = self.fold_function(k)?;
        let free_before = self.ctx.mem_get_info()?.0;
        let mut min_free = free_before;
        let mut note_memory = |ctx: &CudaContext| -> Result<(), CudaError> {
            min_free = min_free.min(ctx.mem_get_info()?.0);
            Ok(())
        };

        let mates = Mates::build(job.probe_labels, gallery_labels, all_distinct);
        let e = self.operand_bytes();
        let rows_t = self.tile.rows.min(np);
        let cols_t = self.tile.cols.min(ng.div_ceil(128) * 128);
        let want = job.tail_capacity.min(impostor_pairs(
            job.probe_labels,
            gallery_labels,
            all_distinct,
        ));
        let tail_cap = if want == 0 { 0 } else { 2 * want + (1 << 20) };
        let tail_high_water = want + (tail_cap - want) / 2;

        // Device memory: everything but the gallery, then the gallery whole
        // if it fits, else one block of it.
        let staging_bytes = if e == 2 { 64 << 20 } else { 0 };
        let fixed = 2 * rows_t * cols_t * 4
            + bins * 8
            + np * (k * 8 + 8 + 4)
            + (np + 1) * 8
            + mates.idx.len() * 8
            + (np + ng + 8) * 4
            + tail_cap * 4
            + rows_t * dim * e
            + staging_bytes
            + (64 << 20); // cuBLAS workspace and small buffers
        let budget = free_before / 10 * 9;
        let resident = !self.force_streaming && fixed + ng * dim * e <= budget;
        if !resident && fixed + cols_t * dim * e > budget {
            return Err(CudaError::Job(format!(
                "the GPU has {} MiB free; a {}×{} tile needs about {} MiB (a smaller tile would fit)",
                budget >> 20,
                rows_t,
                cols_t,
                (fixed + cols_t * dim * e) >> 20
            )));
        }

        let main = self.ctx.new_stream()?;
        let side = self.ctx.new_stream()?;
        let blas = CudaBlas::new(side.clone())?;

        let staging = DeviceBuffer::new(staging_bytes)?;
        let gallery_dev = DeviceBuffer::new(if resident { ng } else { cols_t } * dim * e)?;
        // Probes need their own buffer unless they are the resident gallery.
        let probes_shared = all_distinct && resident;
        let probe_dev = DeviceBuffer::new(if probes_shared { 0 } else { rows_t * dim * e })?;
        let scores = [
            DeviceBuffer::new(rows_t * cols_t * 4)?,
            DeviceBuffer::new(rows_t * cols_t * 4)?,
        ];
        let plabel = DeviceBuffer::upload(&main, &padded(job.probe_labels))?;
        let glabel = DeviceBuffer::upload(&main, &padded(gallery_labels))?;
        let mate_ptr = DeviceBuffer::upload(&main, &mates.ptr)?;
        let mate_idx = DeviceBuffer::upload(&main, &mates.idx)?;
        let pair_score = DeviceBuffer::new(mates.idx.len() * 4)?;
        let mate_best = DeviceBuffer::upload(&main, &vec![f32::NEG_INFINITY; np])?;
        let top_s = DeviceBuffer::upload(&main, &vec![f32::NEG_INFINITY; np * k])?;
        let top_j = DeviceBuffer::upload(&main, &vec![u32::MAX; np * k])?;
        let rank = DeviceBuffer::upload(&main, &vec![0u64; np])?;
        let hist = DeviceBuffer::upload(&main, &vec![0u64; bins])?;
        let tail_buf = DeviceBuffer::new(tail_cap * 4)?;
        // tail_bin, overflow (i32) and the tail count (u64) in one buffer.
        let tail_state = DeviceBuffer::upload(&main, &[0u64, 0u64])?;
        let tail_bin = tail_state.ptr;
        let overflow = tail_state.ptr + 4;
        let tail_count = tail_state.ptr + 8;

        let half_bins = job.histogram.bins as f32 * 0.5;
        let scratch = 2 * (kernels::FOLD_BLOCK as usize / 32) * k * 4;
        let win_len = bins.min((self.fold_smem as usize).saturating_sub(scratch) / 4);
        let win_lo = window_start(job, gallery, gallery_labels, all_distinct, win_len);
        let smem_main = (win_len * 4 + scratch) as u32;
        fold.set_attribute(
            drv_sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem_main as i32,
        )?;
        let fold_grid = ((self.sm_count * FOLD_BLOCKS_PER_SM) as usize)
            .min(rows_t.div_ceil(kernels::FOLD_BLOCK as usize / 32)) as u32;

        if resident {
            self.upload_rows(&main, gallery.as_slice(), gallery_dev.ptr, &staging)?;
        }
        note_memory(&self.ctx)?;

        let mut samples = Samples::new()?;
        let mut timings = Timings::default();
        let ev_ready = plain_event(&self.ctx)?;
        let ev_gemm = [plain_event(&self.ctx)?, plain_event(&self.ctx)?];
        let ev_fold = [plain_event(&self.ctx)?, plain_event(&self.ctx)?];
        ev_fold[0].record(&main)?;
        ev_fold[1].record(&main)?;
        let mut loaded_block: Option<usize> = None;
        let mut tile_no = 0u64;

        for p0 in (0..np).step_by(rows_t) {
            let rows = rows_t.min(np - p0);
            let probe_ptr = if probes_shared {
                gallery_dev.ptr + (p0 * dim * e) as u64
            } else {
                let host = &job.probes.as_slice()[p0 * dim..(p0 + rows) * dim];
                self.upload_rows(&main, host, probe_dev.ptr, &staging)?;
                probe_dev.ptr
            };
            // Where a gallery block lives, streaming it in when needed.
            let mut block = |g0: usize, cols: usize| -> Result<u64, CudaError> {
                if resident {
                    return Ok(gallery_dev.ptr + (g0 * dim * e) as u64);
                }
                if loaded_block != Some(g0) {
                    let host = &gallery.as_slice()[g0 * dim..(g0 + cols) * dim];
                    self.upload_rows(&main, host, gallery_dev.ptr, &staging)?;
                    loaded_block = Some(g0);
                }
                Ok(gallery_dev.ptr)
            };

            // 1. Genuine scores and best mate scores of this probe block.
            let genuine_start = timing_pair(profile, &self.ctx, &main)?;
            // A resident gallery is one block; a streamed one comes in
            // tile-wide blocks.
            let genuine_block = if resident { ng } else { cols_t };
            for g0 in (0..ng).step_by(genuine_block) {
                let cols = genuine_block.min(ng - g0);
                let gptr = block(g0, cols)?;
                let f = match self.precision {
                    Precision::Fp32 | Precision::Tf32 => &self.base.genuine_f32,
                    Precision::Bf16 => &self.base.genuine_bf16,
                    Precision::Fp16 => &self.base.genuine_f16,
                };
                let (dim_i, rows_i, col0, cols64) =
                    (dim as i32, rows as i32, g0 as u64, cols as u64);
                let mp = mate_ptr.ptr + (p0 * 8) as u64;
                let mb = mate_best.ptr + (p0 * 4) as u64;
                let mut b = main.launch_builder(f);
                b.arg(&probe_ptr)
                    .arg(&gptr)
                    .arg(&dim_i)
                    .arg(&rows_i)
                    .arg(&col0)
                    .arg(&cols64);
                b.arg(&mp).arg(&mate_idx.ptr).arg(&pair_score.ptr).arg(&mb);
                let blocks = rows.div_ceil(8).min(self.sm_count as usize * 8) as u32;
                unsafe { b.launch(cfg(blocks, 256, 0)) }?;
            }
            if let Some(start) = genuine_start {
                timings.genuine.push((start, timing_end(&self.ctx, &main)?));
            }

            // 2. Products and fold, tile by tile, alternating two buffers.
            for g0 in (0..ng).step_by(cols_t) {
                let cols = cols_t.min(ng - g0);
                let gptr = block(g0, cols)?;
                let buf = (tile_no % 2) as usize;
                ev_ready.record(&main)?;
                side.wait(&ev_ready)?;
                side.wait(&ev_fold[buf])?;
                let gemm_start = timing_pair(profile, &self.ctx, &side)?;
                self.gemm(
                    &blas,
                    rows,
                    cols,
                    dim,
                    probe_ptr,
                    gptr,
                    scores[buf].ptr,
                    cols_t,
                )?;
                if let Some(start) = gemm_start {
                    timings
                        .products
                        .push((start, timing_end(&self.ctx, &side)?));
                }
                ev_gemm[buf].record(&side)?;
                main.wait(&ev_gemm[buf])?;

                let fold_start = timing_pair(profile, &self.ctx, &main)?;
                let first = tile_no == 0;
                let launch_fold = |do_main: i32, do_tail: i32| -> Result<(), CudaError> {
                    let (rows_i, cols_i, ld, row0, col0) = (
                        rows as i32,
                        cols as i32,
                        cols_t as u64,
                        p0 as u64,
                        g0 as u64,
                    );
                    let pl = plabel.ptr + (p0 * 4) as u64;
                    let gl = glabel.ptr + (g0 * 4) as u64;
                    let ad = all_distinct as i32;
                    let mb = mate_best.ptr + (p0 * 4) as u64;
                    let (bins_i, win_lo_i) = (bins as i32, win_lo as i32);
                    let win_len_i = if do_main != 0 { win_len as i32 } else { 0 };
                    let ts = top_s.ptr + (p0 * k * 4) as u64;
                    let tj = top_j.ptr + (p0 * k * 4) as u64;
                    let rc = rank.ptr + (p0 * 8) as u64;
                    let cap = tail_cap as u64;
                    let mut b = main.launch_builder(&fold);
                    b.arg(&scores[buf].ptr)
                        .arg(&rows_i)
                        .arg(&cols_i)
                        .arg(&ld)
                        .arg(&row0)
                        .arg(&col0);
                    b.arg(&pl)
                        .arg(&gl)
                        .arg(&ad)
                        .arg(&mb)
                        .arg(&do_main)
                        .arg(&hist.ptr)
                        .arg(&bins_i);
                    b.arg(&half_bins)
                        .arg(&win_lo_i)
                        .arg(&win_len_i)
                        .arg(&ts)
                        .arg(&tj)
                        .arg(&rc);
                    b.arg(&do_tail)
                        .arg(&tail_bin)
                        .arg(&tail_buf.ptr)
                        .arg(&cap)
                        .arg(&tail_count);
                    let smem = if do_main != 0 {
                        smem_main
                    } else {
                        scratch as u32
                    };
                    unsafe { b.launch(cfg(fold_grid, kernels::FOLD_BLOCK, smem)) }?;
                    Ok(())
                };
                let maintain = || -> Result<(), CudaError> {
                    let (bins_i, want64, cap, hw) = (
                        bins as i32,
                        want as u64,
                        tail_cap as u64,
                        tail_high_water as u64,
                    );
                    let mut b = main.launch_builder(&self.base.tail);
                    b.arg(&hist.ptr)
                        .arg(&bins_i)
                        .arg(&half_bins)
                        .arg(&want64)
                        .arg(&tail_bin);
                    b.arg(&tail_buf.ptr)
                        .arg(&cap)
                        .arg(&tail_count)
                        .arg(&hw)
                        .arg(&overflow);
                    unsafe { b.launch(cfg(1, 1024, 0)) }?;
                    Ok(())
                };
                if want == 0 {
                    launch_fold(1, 0)?;
                } else if first {
                    // No bound yet: histogram first, then the tail pass.
                    launch_fold(1, 0)?;
                    maintain()?;
                    launch_fold(0, 1)?;
                } else {
                    launch_fold(1, 1)?;
                    maintain()?;
                }
                samples.take(
                    &self.base.gather,
                    &main,
                    scores[buf].ptr,
                    cols_t,
                    p0,
                    rows,
                    g0,
                    cols,
                )?;
                if let Some(start) = fold_start {
                    timings.fold.push((start, timing_end(&self.ctx, &main)?));
                }
                ev_fold[buf].record(&main)?;
                if first {
                    side.synchronize()?;
                    note_memory(&self.ctx)?;
                }
                tile_no += 1;
            }
        }
        side.synchronize()?;
        main.synchronize()?;

        // Read back the small results.
        let hist_h: Vec<u64> = download(&main, &hist, bins)?;
        let state: Vec<u64> = download(&main, &tail_state, 2)?;
        let (tail_overflow, tail_n) = ((state[0] >> 32) != 0, state[1] as usize);
        if tail_overflow || tail_n > tail_cap {
            return Err(CudaError::Job(format!(
                "the impostor tail store overflowed ({tail_n} scores for {tail_cap} places: too many tied \
                 scores near the tail bound); use --device cpu"
            )));
        }
        let mut tail: Vec<f32> = download(&main, &tail_buf, tail_n)?;
        tail.sort_by(|a, b| b.total_cmp(a));
        tail.truncate(want);
        let pair_h: Vec<f32> = download(&main, &pair_score, mates.idx.len())?;
        let best_h: Vec<f32> = download(&main, &mate_best, np)?;
        let top_s_h: Vec<f32> = download(&main, &top_s, np * k)?;
        let top_j_h: Vec<u32> = download(&main, &top_j, np * k)?;
        let rank_h: Vec<u64> = download(&main, &rank, np)?;
        let sampled = samples.read(&main, job.probes, gallery)?;
        note_memory(&self.ctx)?;

        let mut genuine = Vec::new();
        let mut genuine_subjects = Vec::new();
        let mut probes = Vec::with_capacity(np);
        for i in 0..np {
            let range = mates.ptr[i] as usize..mates.ptr[i + 1] as usize;
            for e in range.clone() {
                if !all_distinct || mates.idx[e] as usize > i {
                    genuine.push(pair_h[e]);
                    genuine_subjects.push(job.probe_labels[i]);
                }
            }
            let top = (0..k)
                .map(|q| Candidate {
                    index: top_j_h[i * k + q],
                    score: top_s_h[i * k + q],
                })
                .filter(|c| c.index != u32::MAX)
                .collect();
            let mated = !range.is_empty();
            probes.push(ProbeResult {
                top,
                mate_score: mated.then_some(best_h[i]),
                mate_rank: mated.then_some(1 + rank_h[i]),
            });
        }

        let profile = Profile {
            total_s: started.elapsed().as_secs_f64(),
            products_s: timings
                .products
                .iter()
                .map(elapsed)
                .sum::<Result<f64, _>>()?,
            fold_s: timings.fold.iter().map(elapsed).sum::<Result<f64, _>>()?,
            genuine_s: timings
                .genuine
                .iter()
                .map(elapsed)
                .sum::<Result<f64, _>>()?,
            tiles: tile_no,
            peak_memory_bytes: free_before.saturating_sub(min_free) as u64,
            max_abs_score_error: sampled,
        };
        let result = CompareResult {
            genuine,
            genuine_subjects,
            impostor_hist: hist_h,
            impostor_tail: tail,
            probes,
        };
        Ok((result, profile))
    }
}

impl Engine for CudaEngine {
    fn description(&self) -> String {
        self.name.clone()
    }

    fn compare(&self, job: &CompareJob<'_>) -> Result<CompareResult, CompareError> {
        self.compare_profiled(job).map(|(result, _)| result)
    }

    fn score_error(&self) -> Option<f64> {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A plain device allocation (cuMemAlloc), freed on drop. The engine orders
/// its two streams with its own events, so cudarc's per-slice tracking is
/// not used.
struct DeviceBuffer {
    ptr: u64,
    bytes: usize,
}

impl DeviceBuffer {
    fn new(bytes: usize) -> Result<DeviceBuffer, CudaError> {
        if bytes == 0 {
            return Ok(DeviceBuffer { ptr: 0, bytes: 0 });
        }
        // SAFETY: a plain allocation, freed once in Drop.
        let ptr = unsafe { drv::malloc_sync(bytes) }?;
        Ok(DeviceBuffer { ptr, bytes })
    }

    fn upload<T>(stream: &CudaStream, host: &[T]) -> Result<DeviceBuffer, CudaError> {
        let buf = DeviceBuffer::new(std::mem::size_of_val(host))?;
        if buf.bytes > 0 {
            // SAFETY: buf holds exactly host's bytes.
            unsafe { drv::memcpy_htod_async(buf.ptr, host, stream.cu_stream()) }?;
        }
        Ok(buf)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.bytes > 0 {
            // SAFETY: allocated by malloc_sync; the job synchronised its
            // streams before its buffers go out of scope (on an error path
            // cuMemFree waits for the work in flight).
            unsafe {
                let _ = drv::free_sync(self.ptr);
            }
        }
    }
}

fn download<T: Default + Clone>(
    stream: &CudaStream,
    buf: &DeviceBuffer,
    n: usize,
) -> Result<Vec<T>, CudaError> {
    let mut host = vec![T::default(); n];
    if n > 0 {
        // SAFETY: buf holds at least n values of T (checked by the callers'
        // sizes); the stream is synchronised before host is read.
        unsafe { drv::memcpy_dtoh_async(&mut host, buf.ptr, stream.cu_stream()) }?;
        stream.synchronize()?;
    }
    Ok(host)
}

fn cfg(blocks: u32, threads: u32, smem: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks.max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: smem,
    }
}

fn plain_event(ctx: &Arc<CudaContext>) -> Result<CudaEvent, CudaError> {
    Ok(ctx.new_event(None)?)
}

fn timing_event(ctx: &Arc<CudaContext>) -> Result<CudaEvent, CudaError> {
    Ok(ctx.new_event(Some(drv_sys::CUevent_flags::CU_EVENT_DEFAULT))?)
}

/// A timing event recorded on `stream` now, when profiling.
fn timing_pair(
    profile: bool,
    ctx: &Arc<CudaContext>,
    stream: &CudaStream,
) -> Result<Option<CudaEvent>, CudaError> {
    if !profile {
        return Ok(None);
    }
    let ev = timing_event(ctx)?;
    ev.record(stream)?;
    Ok(Some(ev))
}

fn timing_end(ctx: &Arc<CudaContext>, stream: &CudaStream) -> Result<CudaEvent, CudaError> {
    let ev = timing_event(ctx)?;
    ev.record(stream)?;
    Ok(ev)
}

fn elapsed(pair: &(CudaEvent, CudaEvent)) -> Result<f64, CudaError> {
    Ok(pair.0.elapsed_ms(&pair.1)? as f64 / 1e3)
}

#[derive(Default)]
struct Timings {
    products: Vec<(CudaEvent, CudaEvent)>,
    fold: Vec<(CudaEvent, CudaEvent)>,
    genuine: Vec<(CudaEvent, CudaEvent)>,
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
    gallery: &super::Embeddings,
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

/// Product scores read back at sampled positions of the first tiles, to
/// measure the products' error against float64 on the run's own data.
struct Samples {
    at: Vec<(usize, usize)>,
    /// Row and column of each sample within its tile (device, u32 pairs).
    index: DeviceBuffer,
    out: DeviceBuffer,
    rng: SplitMix,
}

impl Samples {
    const PER_TILE: usize = 64;
    const MAX: usize = 4096;

    fn new() -> Result<Samples, CudaError> {
        Ok(Samples {
            at: Vec::new(),
            index: DeviceBuffer::new(Self::MAX * 2 * 4)?,
            out: DeviceBuffer::new(Self::MAX * 4)?,
            rng: SplitMix(0xe770),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn take(
        &mut self,
        gather: &CudaFunction,
        stream: &CudaStream,
        s: u64,
        ld: usize,
        p0: usize,
        rows: usize,
        g0: usize,
        cols: usize,
    ) -> Result<(), CudaError> {
        let done = self.at.len();
        if done >= Self::MAX {
            return Ok(());
        }
        let n = Self::PER_TILE;
        let mut rc = Vec::with_capacity(2 * n);
        for q in 0..2 * n {
            let span = if q < n { rows } else { cols };
            rc.push((self.rng.next() % span as u64) as u32);
        }
        for q in 0..n {
            self.at.push((p0 + rc[q] as usize, g0 + rc[n + q] as usize));
        }
        let rows_at = self.index.ptr + (done * 2 * 4) as u64;
        let cols_at = rows_at + (n * 4) as u64;
        let out_at = self.out.ptr + (done * 4) as u64;
        // SAFETY: in bounds of `index` (done + n <= MAX); a pageable copy
        // has left the host vector when it returns.
        unsafe { drv::memcpy_htod_async(rows_at, &rc, stream.cu_stream()) }?;
        let (ld64, n_i) = (ld as u64, n as i32);
        let mut b = stream.launch_builder(gather);
        b.arg(&s)
            .arg(&ld64)
            .arg(&rows_at)
            .arg(&cols_at)
            .arg(&n_i)
            .arg(&out_at);
        unsafe { b.launch(cfg(1, n as u32, 0)) }?;
        Ok(())
    }

    /// The largest |product score − float64 dot product| over the samples.
    fn read(
        &self,
        stream: &CudaStream,
        probes: &super::Embeddings,
        gallery: &super::Embeddings,
    ) -> Result<Option<f64>, CudaError> {
        let got: Vec<f32> = download(stream, &self.out, self.at.len())?;
        Ok(got
            .iter()
            .zip(&self.at)
            .map(|(&g, &(i, j))| (g as f64 - dot_f64(probes.row(i), gallery.row(j))).abs())
            .reduce(f64::max))
    }
}

/// Values in [-1, 1) for benchmark operands, made on all cores.
fn noise(n: usize, seed: u64) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v = vec![0f32; n];
    v.par_chunks_mut(1 << 20)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng = SplitMix(seed ^ ((c as u64) << 32));
            chunk.iter_mut().for_each(|x| *x = rng.uniform());
        });
    v
}
