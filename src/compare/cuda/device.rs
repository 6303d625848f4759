//! Device memory and ordering helpers of the CUDA engine: plain
//! allocations, copies through page-locked host memory bounded by cudarc's
//! `DeviceRepr`, launch shapes and timing events.

use std::sync::Arc;

use cudarc::driver::{
    result as drv, sys as drv_sys, CudaContext, CudaEvent, CudaStream, DeviceRepr, LaunchConfig,
    PinnedHostSlice,
};

use super::CudaError;

/// A plain device allocation (cuMemAlloc), freed on drop. The engine orders
/// its two streams with its own events, so cudarc's per-slice tracking is
/// not used.
pub(crate) struct DeviceBuffer {
    pub ptr: u64,
    pub bytes: usize,
}

impl DeviceBuffer {
    pub fn new(bytes: usize) -> Result<DeviceBuffer, CudaError> {
        if bytes == 0 {
            return Ok(DeviceBuffer { ptr: 0, bytes: 0 });
        }
        // SAFETY: a plain allocation, freed once in Drop.
        let ptr = unsafe { drv::malloc_sync(bytes) }?;
        Ok(DeviceBuffer { ptr, bytes })
    }

    /// A buffer holding a copy of `host`.
    pub(crate) fn upload<T: DeviceRepr>(
        staging: &mut Staging,
        stream: &CudaStream,
        host: &[T],
    ) -> Result<DeviceBuffer, CudaError> {
        let buf = DeviceBuffer::new(std::mem::size_of_val(host))?;
        staging.upload(stream, host, buf.ptr, &buf)?;
        Ok(buf)
    }

    /// Whether `bytes` bytes from `at` lie inside the buffer.
    fn holds(&self, at: u64, bytes: usize) -> bool {
        at.checked_sub(self.ptr)
            .is_some_and(|off| off as usize + bytes <= self.bytes)
    }
}

/// Page-locked host memory (cudarc's pinned host slices) that every upload
/// and read-back of a job passes through, in two chunks: the DMA of one
/// runs while the host fills the other, and no copy waits for the driver
/// to stage pageable memory. A chunk is refilled once its last copy has
/// passed on the GPU, so the host runs at most two copies ahead.
pub(crate) struct Staging {
    chunks: [PinnedHostSlice<u8>; 2],
    /// Recorded after the last copy through each chunk.
    done: [CudaEvent; 2],
    next: usize,
}

impl Staging {
    /// Bytes per chunk.
    const CHUNK: usize = 32 << 20;

    pub fn new(ctx: &Arc<CudaContext>) -> Result<Staging, CudaError> {
        // SAFETY: a chunk is written before it is read: an upload fills it
        // before its copy, a read-back copies into it and waits before
        // reading it.
        let alloc = || unsafe { ctx.alloc_pinned_with_flags::<u8>(Self::CHUNK, 0) };
        Ok(Staging {
            chunks: [alloc()?, alloc()?],
            done: [plain_event(ctx)?, plain_event(ctx)?],
            next: 0,
        })
    }

    /// The next chunk, once its last copy has passed.
    fn next_chunk(&mut self) -> Result<usize, CudaError> {
        let i = self.next;
        self.next ^= 1;
        self.done[i].synchronize()?;
        Ok(i)
    }

    /// Copies `host` to `dst`, an address inside `within`, on `stream`; it
    /// has read `host` when this returns.
    pub(crate) fn upload<T: DeviceRepr>(
        &mut self,
        stream: &CudaStream,
        host: &[T],
        dst: u64,
        within: &DeviceBuffer,
    ) -> Result<(), CudaError> {
        let bytes = std::mem::size_of_val(host);
        if !within.holds(dst, bytes) {
            return Err(CudaError::Job(format!(
                "a {bytes}-byte upload past its {}-byte buffer",
                within.bytes
            )));
        }
        // SAFETY: every T the engine copies (integers, floats and the
        // padding-free #[repr(C)] structs of params.rs) is plain data,
        // readable as bytes.
        let src = unsafe { std::slice::from_raw_parts(host.as_ptr().cast::<u8>(), bytes) };
        for (c, part) in src.chunks(Self::CHUNK).enumerate() {
            let i = self.next_chunk()?;
            let chunk = &mut self.chunks[i].as_mut_slice()?[..part.len()];
            chunk.copy_from_slice(part);
            // SAFETY: the copy's destination lies inside `within` (checked
            // above); the chunk is page-locked and not written again before
            // `done[i]`, recorded just after the copy, has passed.
            unsafe {
                drv::memcpy_htod_async(dst + (c * Self::CHUNK) as u64, chunk, stream.cu_stream())
            }?;
            self.done[i].record(stream)?;
        }
        Ok(())
    }

    /// The first `n` values of type T in `src`, once `stream` has caught up.
    pub(crate) fn download<T: DeviceRepr + Default + Clone>(
        &mut self,
        stream: &CudaStream,
        src: &DeviceBuffer,
        n: usize,
    ) -> Result<Vec<T>, CudaError> {
        let bytes = n * std::mem::size_of::<T>();
        if n > 0 && !src.holds(src.ptr, bytes) {
            return Err(CudaError::Job(format!(
                "read-back of {n} values past a {}-byte buffer",
                src.bytes
            )));
        }
        let mut host = vec![T::default(); n];
        // SAFETY: as in `upload`, and every bit pattern is a valid value of
        // those types, so the bytes copied in make valid values.
        let out = unsafe { std::slice::from_raw_parts_mut(host.as_mut_ptr().cast::<u8>(), bytes) };
        for (c, part) in out.chunks_mut(Self::CHUNK).enumerate() {
            let i = self.next_chunk()?;
            let chunk = &mut self.chunks[i].as_mut_slice()?[..part.len()];
            // SAFETY: the source lies inside `src` (checked above); the
            // stream is synchronised before the chunk is read.
            unsafe {
                drv::memcpy_dtoh_async(
                    chunk,
                    src.ptr + (c * Self::CHUNK) as u64,
                    stream.cu_stream(),
                )
            }?;
            self.done[i].record(stream)?;
            stream.synchronize()?;
            part.copy_from_slice(chunk);
        }
        Ok(host)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.bytes > 0 {
            // SAFETY: allocated by malloc_sync and freed only here; a job
            // synchronises its streams before its buffers go out of scope
            // (on an error path cuMemFree waits for the work in flight).
            unsafe {
                let _ = drv::free_sync(self.ptr);
            }
        }
    }
}

pub fn cfg(blocks: u32, threads: u32, smem: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks.max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: smem,
    }
}

/// An event for ordering only.
pub(crate) fn plain_event(ctx: &Arc<CudaContext>) -> Result<CudaEvent, CudaError> {
    Ok(ctx.new_event(None)?)
}

/// A timing event recorded on `stream` now.
pub(crate) fn mark(ctx: &Arc<CudaContext>, stream: &CudaStream) -> Result<CudaEvent, CudaError> {
    let ev = ctx.new_event(Some(drv_sys::CUevent_flags::CU_EVENT_DEFAULT))?;
    ev.record(stream)?;
    Ok(ev)
}

/// GPU time between pairs of events, in seconds.
#[derive(Default)]
pub(crate) struct Spans(Vec<(CudaEvent, CudaEvent)>);

impl Spans {
    pub fn push(&mut self, start: CudaEvent, end: CudaEvent) {
        self.0.push((start, end));
    }

    pub fn seconds(&self) -> Result<f64, CudaError> {
        self.0
            .iter()
            .try_fold(0.0, |sum, (a, b)| Ok(sum + a.elapsed_ms(b)? as f64 / 1e3))
    }
}
