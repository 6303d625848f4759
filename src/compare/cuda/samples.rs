//! Product scores read back at sampled positions of the first tiles, to
//! measure the products' error against float64 on the run's own data.

use cudarc::driver::{CudaFunction, CudaStream, PushKernelArg};

use super::device::{cfg, DeviceBuffer, Staging};
use super::CudaError;
use crate::compare::{dot_f64, EmbeddingRows, SplitMix};

pub(crate) struct Samples {
    at: Vec<(usize, usize)>,
    /// Row and column of each sample within its tile (device, u32 pairs).
    index: DeviceBuffer,
    out: DeviceBuffer,
    rng: SplitMix,
}

/// Where one tile lies: its scores and its place in the job.
pub(crate) struct TileAt {
    pub scores: u64,
    pub ld: usize,
    pub p0: usize,
    pub rows: usize,
    pub g0: usize,
    pub cols: usize,
}

impl Samples {
    const PER_TILE: usize = 64;
    const MAX: usize = 4096;

    pub fn new() -> Result<Samples, CudaError> {
        Ok(Samples {
            at: Vec::new(),
            index: DeviceBuffer::new(Self::MAX * 2 * 4)?,
            out: DeviceBuffer::new(Self::MAX * 4)?,
            rng: SplitMix(0xe770),
        })
    }

    /// Gathers PER_TILE scores of a tile on `stream`, until MAX are taken.
    pub fn take(
        &mut self,
        staging: &mut Staging,
        gather: &CudaFunction,
        stream: &CudaStream,
        tile: &TileAt,
    ) -> Result<(), CudaError> {
        let done = self.at.len();
        if done >= Self::MAX {
            return Ok(());
        }
        let n = Self::PER_TILE;
        let mut rc = Vec::with_capacity(2 * n);
        for q in 0..2 * n {
            let span = if q < n { tile.rows } else { tile.cols };
            rc.push((self.rng.next() % span as u64) as u32);
        }
        for q in 0..n {
            self.at
                .push((tile.p0 + rc[q] as usize, tile.g0 + rc[n + q] as usize));
        }
        let rows_at = self.index.ptr + (done * 2 * 4) as u64;
        let cols_at = rows_at + (n * 4) as u64;
        let out_at = self.out.ptr + (done * 4) as u64;
        staging.upload(stream, &rc, rows_at, &self.index)?;
        let (ld64, n_i) = (tile.ld as u64, n as i32);
        let mut b = stream.launch_builder(gather);
        b.arg(&tile.scores)
            .arg(&ld64)
            .arg(&rows_at)
            .arg(&cols_at)
            .arg(&n_i)
            .arg(&out_at);
        // SAFETY: gather_scores reads n (row, col) pairs inside the tile
        // (row < rows, col < cols <= ld) and writes n floats of `out`
        // (done + n <= MAX).
        unsafe { b.launch(cfg(1, n as u32, 0)) }?;
        Ok(())
    }

    /// The largest |product score − float64 dot product| over the samples.
    pub fn read(
        &self,
        staging: &mut Staging,
        stream: &CudaStream,
        probes: EmbeddingRows<'_>,
        gallery: EmbeddingRows<'_>,
    ) -> Result<Option<f64>, CudaError> {
        let got: Vec<f32> = staging.download(stream, &self.out, self.at.len())?;
        Ok(got
            .iter()
            .zip(&self.at)
            .map(|(&g, &(i, j))| (g as f64 - dot_f64(probes.row(i), gallery.row(j))).abs())
            .reduce(f64::max))
    }
}
