//! The engine's operands and products: uploads (converted on the GPU for
//! the 16-bit precisions), one cuBLAS product per tile, and cuBLAS alone
//! over a job's tiles, the ceiling the engine is measured against.

use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{CudaStream, PushKernelArg};

use super::device::{cfg, DeviceBuffer, Staging};
use super::{CudaEngine, CudaError};
use crate::compare::Precision;
use crate::compare::SplitMix;

/// Bytes of one operand value.
pub(crate) fn operand_bytes(precision: Precision) -> usize {
    match precision {
        Precision::Fp32 | Precision::Tf32 => 4,
        Precision::Bf16 | Precision::Fp16 => 2,
    }
}

/// Where rows go on the GPU: their fp32 copy, which decision scores are
/// computed from (and the products read, in fp32 and tf32), and for the
/// 16-bit precisions the operands of the products, converted from it.
pub(crate) struct RowsAt<'b> {
    pub rows: u64,
    pub rows_in: &'b DeviceBuffer,
    pub operands: Option<(u64, &'b DeviceBuffer)>,
}

/// Copies host rows to the GPU (`to`), converting them there for the
/// 16-bit precisions.
pub(crate) fn upload_rows(
    engine: &CudaEngine,
    staging: &mut Staging,
    stream: &CudaStream,
    host: &[f32],
    to: RowsAt<'_>,
) -> Result<(), CudaError> {
    staging.upload(stream, host, to.rows, to.rows_in)?;
    let convert = match engine.precision {
        Precision::Fp32 | Precision::Tf32 => return Ok(()),
        Precision::Bf16 => &engine.base.to_bf16,
        Precision::Fp16 => &engine.base.to_f16,
    };
    let Some((out, within)) = to.operands else {
        return Err(CudaError::Job("16-bit operands without a buffer".into()));
    };
    if out < within.ptr || (out - within.ptr) as usize + host.len() * 2 > within.bytes {
        return Err(CudaError::Job(format!(
            "{} operands past their {}-byte buffer",
            host.len(),
            within.bytes
        )));
    }
    let n = host.len() as u64;
    let mut b = stream.launch_builder(convert);
    b.arg(&to.rows).arg(&out).arg(&n);
    let blocks = (host.len().div_ceil(256)).min(engine.sm_count as usize * 16) as u32;
    // SAFETY: f32_to_*(in, out, n) reads the n floats just uploaded at
    // `to.rows` (inside `rows_in`, checked by the upload) and writes n
    // 16-bit values at `out`, inside `within` (checked above).
    unsafe { b.launch(cfg(blocks, 256, 0)) }?;
    Ok(())
}

/// One product tile: S (rows × cols, row-major, leading dimension ld)
/// = probes · galleryᵀ. cuBLAS is column-major, so it computes
/// Sᵀ = gallery · probesᵀ with gallery transposed.
pub(crate) struct Gemm {
    pub rows: usize,
    pub cols: usize,
    pub dim: usize,
    pub probes: u64,
    pub gallery: u64,
    pub scores: u64,
    pub ld: usize,
}

impl Gemm {
    /// Runs the product. The caller vouches that `probes` holds rows × dim
    /// operands, `gallery` cols × dim, and `scores` rows × ld floats with
    /// cols <= ld.
    pub fn run(&self, blas: &CudaBlas, precision: Precision) -> Result<(), CudaError> {
        let (dtype, compute) = match precision {
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
        // SAFETY: the buffers hold the operands and scores the caller
        // vouches for; alpha and beta live across the call, which only
        // enqueues work on the handle's stream.
        unsafe {
            blas_result::gemm_ex(
                *blas.handle(),
                blas_sys::cublasOperation_t::CUBLAS_OP_T,
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                self.cols as i32,
                self.rows as i32,
                self.dim as i32,
                &alpha as *const f32 as *const _,
                self.gallery as *const _,
                dtype,
                self.dim as i32,
                self.probes as *const _,
                dtype,
                self.dim as i32,
                &beta as *const f32 as *const _,
                self.scores as *mut _,
                blas_sys::cudaDataType::CUDA_R_32F,
                self.ld as i32,
                compute,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }?;
        Ok(())
    }
}

/// The first gallery row of the column blocks (of `cols_t` rows) that the
/// probe block from row `p0` is multiplied with: the first, or in the
/// all-distinct triangle the block holding row p0 (those before lie wholly
/// below the diagonal).
pub(crate) fn first_column(p0: usize, cols_t: usize, triangle: bool) -> usize {
    if triangle {
        p0 / cols_t * cols_t
    } else {
        0
    }
}

/// cuBLAS alone over the tiles of a `probes` × `gallery` job (the
/// triangle's with `triangle`) on random operands: seconds per sweep, the
/// median of `repeats`.
pub(crate) fn products_only(
    engine: &CudaEngine,
    probes: usize,
    gallery: usize,
    dim: usize,
    repeats: usize,
    triangle: bool,
) -> Result<f64, CudaError> {
    engine.ctx.bind_to_thread()?;
    let stream = engine.ctx.new_stream()?;
    let blas = CudaBlas::new(stream.clone())?;
    let e = operand_bytes(engine.precision);
    let rows_t = engine.tile.rows.min(probes.max(1));
    let cols_t = engine.tile.cols.min(gallery.max(1).div_ceil(128) * 128);
    let s = [
        DeviceBuffer::new(rows_t * cols_t * 4)?,
        DeviceBuffer::new(rows_t * cols_t * 4)?,
    ];
    // Random-looking operands (products of zeros run faster than real data).
    let mut staging = Staging::new(&engine.ctx)?;
    let mut operands = Vec::new();
    for (rows, seed) in [(probes, 1u64), (gallery, 2u64)] {
        let rows32 = DeviceBuffer::new(rows * dim * 4)?;
        let op = DeviceBuffer::new(if e == 4 { 0 } else { rows * dim * e })?;
        let to = RowsAt {
            rows: rows32.ptr,
            rows_in: &rows32,
            operands: (e != 4).then_some((op.ptr, &op)),
        };
        upload_rows(engine, &mut staging, &stream, &noise(rows * dim, seed), to)?;
        operands.push((rows32, op));
    }
    stream.synchronize()?;
    let operand = |i: usize| {
        let (rows32, op): &(DeviceBuffer, DeviceBuffer) = &operands[i];
        if e == 4 {
            rows32.ptr
        } else {
            op.ptr
        }
    };
    let (p, g) = (operand(0), operand(1));
    // One pass over the tiles (or the first `limit` of them).
    let sweep = |limit: usize| -> Result<f64, CudaError> {
        let start = super::device::mark(&engine.ctx, &stream)?;
        let mut t = 0;
        'tiles: for p0 in (0..probes).step_by(rows_t) {
            let rows = rows_t.min(probes - p0);
            for g0 in (first_column(p0, cols_t, triangle)..gallery).step_by(cols_t) {
                if t == limit {
                    break 'tiles;
                }
                Gemm {
                    rows,
                    cols: cols_t.min(gallery - g0),
                    dim,
                    probes: p + (p0 * dim * e) as u64,
                    gallery: g + (g0 * dim * e) as u64,
                    scores: s[t % 2].ptr,
                    ld: cols_t,
                }
                .run(&blas, engine.precision)?;
                t += 1;
            }
        }
        let end = super::device::mark(&engine.ctx, &stream)?;
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
