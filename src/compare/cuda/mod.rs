//! The CUDA comparison engine: products by cuBLAS, the per-tile fold by the
//! kernels in `kernels/` (compiled at run time by NVRTC to machine code for
//! the GPU present), so that only the small results cross PCIe.
//!
//! Every decision is made on decision scores, one fp32 dot product of the
//! original rows in a fixed, documented order (`rescore`), whatever the
//! precision of the products (fp32, tf32, bf16, fp16): genuine and mate
//! scores are decision scores, and the fold rescores each product that
//! lies within a proven margin of a decision's bar (a mate score, a top-k
//! list's last entry, the tail store's bound). So ranks, top-k lists and
//! the exact impostor tail are the same in every precision; only the
//! impostor histogram below the tail follows the products.
//!
//! For each probe block (`tile.rows` probes) the engine
//! 1. computes every genuine score of the block (probe × its mates, from a
//!    CSR list built on the host) and each probe's best mate score;
//! 2. for each gallery block (`tile.cols` rows) multiplies the two blocks
//!    (cuBLAS on a side stream, fp32 scores) into one of two score buffers,
//!    and folds it on the main stream (`fold.cu`) while the next product
//!    fills the other buffer: impostor histogram, mate-rank counts, top-k,
//!    and the impostor tail store (`tail.cu`). A product waits only for the
//!    fold that last read its buffer, and for an upload that replaced its
//!    operands.
//!
//! Uploads and read-backs pass through page-locked host memory. The gallery
//! stays on the GPU when it fits, else it is streamed block by block (twice
//! per probe block: once for the genuine pass, once for the products). The
//! all-distinct pairing counts each unordered pair once (column above
//! row); with no top-k it computes only the tiles that reach above the
//! diagonal, each pair ranking both its rows, and with a top-k the whole
//! square, since each probe's list needs its full row (the engine's
//! description says so).

mod device;
pub mod kernels;
pub mod libs;
pub(crate) mod params;
mod products;
pub mod rescore;
mod run;
mod samples;
pub mod tail;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use cudarc::cublas::{result as blas_result, CudaBlas};
use cudarc::driver::{sys as drv_sys, CudaContext, CudaFunction, DriverError};

use super::{CompareError, CompareJob, CompareResult, Engine, TileShape};
use crate::compare::Precision;
use libs::Versions;

/// Fold blocks resident per SM (the kernel's __launch_bounds__ says 2).
const FOLD_BLOCKS_PER_SM: u32 = 2;

impl TileShape {
    /// 8192 × 16384: 512 MiB of fp32 scores per buffer, products long
    /// enough (137 GFLOP at d = 512) to keep cuBLAS near its peak.
    pub(crate) const CUDA_DEFAULT: TileShape = TileShape {
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
    /// Scores the products computed (rows × columns over the tiles).
    pub products: u64,
    /// Tiles whose tail pass overflowed the store and ran again.
    pub tail_redone: u64,
    /// Device memory taken during the job (free memory before minus the
    /// least free memory seen), cuBLAS's workspace included.
    pub peak_memory_bytes: u64,
    /// Largest |score − float64 score| over the sampled pairs.
    pub max_abs_score_error: Option<f64>,
    /// The bound on |product − decision score| the job's decisions rest on.
    pub margin: f64,
    /// The largest |product − decision score| among the pairs rescored
    /// (the job fails if it passes the margin).
    pub max_rescored_gap: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No driver, no GPU or a library missing: nothing to warn about.
    #[error("{0}")]
    Unavailable(String),
    /// A GPU is there but cannot be used (its driver is too old for the
    /// CUDA libraries found, or refused the kernels): worth saying always.
    #[error("{0}")]
    Unusable(String),
    #[error("CUDA driver: {0}")]
    Driver(#[from] DriverError),
    #[error("cuBLAS: {0:?}")]
    Blas(blas_result::CublasError),
    #[error(transparent)]
    Compile(#[from] kernels::CompileError),
    #[error("{0}")]
    Job(String),
}

impl CudaError {
    /// Whether a GPU is present but unusable (see [`CudaError::Unusable`]).
    pub(crate) fn gpu_unusable(&self) -> bool {
        matches!(self, CudaError::Unusable(_))
    }
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
    genuine: CudaFunction,
    tail: CudaFunction,
}

pub struct CudaEngine {
    ctx: Arc<CudaContext>,
    precision: Precision,
    name: String,
    arch: String,
    versions: Versions,
    sm_count: u32,
    /// Shared memory a fold block may take (two per SM).
    fold_smem: u32,
    base: BaseKernels,
    /// The fold loaded per top-k length (its CUBIN is cached per process).
    folds: Mutex<HashMap<usize, CudaFunction>>,
    tile: TileShape,
    force_streaming: bool,
}

/// Runs a cudarc call that may panic (a symbol missing from a library it
/// loaded) and turns the panic into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(CudaError::Unavailable(format!("{what}: cudarc panicked"))))
}

impl CudaEngine {
    /// Opens GPU `ordinal` and compiles the fixed kernels. Every failure is
    /// an error naming its cause (no driver, no GPU, a library missing, a
    /// driver too old for NVRTC, with both versions); nothing here panics.
    pub fn new(ordinal: usize, precision: Precision) -> Result<CudaEngine, CudaError> {
        if let Some(why) = libs::missing_library() {
            return Err(CudaError::Unavailable(why));
        }
        guarded("CUDA initialisation", || {
            let versions = Versions::probe().map_err(CudaError::Unavailable)?;
            versions.check().map_err(CudaError::Unusable)?;
            let ctx = CudaContext::new(ordinal).map_err(|e| {
                CudaError::Unavailable(format!("no usable CUDA device {ordinal} ({e})"))
            })?;
            let (major, minor) = ctx.compute_capability()?;
            let arch = format!("sm_{major}{minor}");
            let name = format!(
                "cuda:{ordinal} {} ({arch}; decisions on fp32 scores; all distinct pairs with a \
                 top-k take the full square, each probe's list needing its whole row)",
                ctx.name()?
            );
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
            drop(CudaBlas::new(ctx.new_stream()?).map_err(|e| {
                CudaError::Unusable(format!(
                    "cuBLAS cannot start ({e:?}) under a driver for CUDA {}",
                    versions.driver
                ))
            })?);
            let engine_load = |source: &kernels::Source| {
                load(
                    &ctx,
                    &arch,
                    &versions,
                    source,
                    &kernels::default_defines(source),
                )
            };
            let convert = engine_load(&kernels::CONVERT)?;
            let genuine = engine_load(&kernels::GENUINE)?;
            let tail = engine_load(&kernels::TAIL)?;
            let base = BaseKernels {
                to_bf16: convert.load_function("f32_to_bf16")?,
                to_f16: convert.load_function("f32_to_f16")?,
                gather: convert.load_function("gather_scores")?,
                genuine: genuine.load_function("genuine")?,
                tail: tail.load_function("tail_maintain")?,
            };
            Ok(CudaEngine {
                ctx,
                precision,
                name,
                arch,
                versions,
                sm_count,
                fold_smem,
                base,
                folds: Mutex::new(HashMap::new()),
                tile: TileShape::CUDA_DEFAULT,
                force_streaming: false,
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
        Ok(guarded("CUDA job", || run::run(self, job))?)
    }

    /// cuBLAS alone over the same tiles as a job of `probes` × `gallery`
    /// rows (random operands, no fold; with `triangle`, the tiles of all
    /// distinct pairs with no top-k): the products' ceiling the engine is
    /// measured against. Returns the seconds per full sweep (median of
    /// `repeats`).
    pub fn products_only_seconds(
        &self,
        probes: usize,
        gallery: usize,
        dim: usize,
        repeats: usize,
        triangle: bool,
    ) -> Result<f64, CompareError> {
        Ok(guarded("cuBLAS benchmark", || {
            products::products_only(self, probes, gallery, dim, repeats, triangle)
        })?)
    }

    fn fold_function(&self, top_k: usize) -> Result<CudaFunction, CudaError> {
        let mut folds = self.folds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = folds.get(&top_k) {
            return Ok(f.clone());
        }
        let module = load(
            &self.ctx,
            &self.arch,
            &self.versions,
            &kernels::FOLD,
            &kernels::fold_defines(top_k),
        )?;
        let f = module.load_function("fold_tile")?;
        folds.insert(top_k, f.clone());
        Ok(f)
    }
}

/// Compiles a kernel file for `arch` and loads it; a driver that refuses
/// the machine code is named with both versions.
fn load(
    ctx: &Arc<CudaContext>,
    arch: &str,
    versions: &Versions,
    source: &kernels::Source,
    defines: &[String],
) -> Result<Arc<cudarc::driver::CudaModule>, CudaError> {
    let compiled = kernels::compile_cached(source, arch, defines)?;
    ctx.load_module(compiled.module()).map_err(|e| {
        CudaError::Unusable(format!(
            "the NVIDIA driver (CUDA {}) refused {} compiled for {arch} by NVRTC {}: {e}",
            versions.driver, source.file, versions.nvrtc
        ))
    })
}

impl Engine for CudaEngine {
    fn description(&self) -> String {
        self.name.clone()
    }

    /// The fold rescores every product within the margin of a band.
    fn counts_bands(&self) -> bool {
        true
    }

    fn compare(&self, job: &CompareJob<'_>) -> Result<CompareResult, CompareError> {
        self.compare_profiled(job).map(|(result, _)| result)
    }
}
