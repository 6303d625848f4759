//! Device memory and ordering helpers of the CUDA engine: plain
//! allocations, copies bounded by cudarc's `DeviceRepr`, launch shapes and
//! timing events.

use std::sync::Arc;

use cudarc::driver::{
    result as drv, sys as drv_sys, CudaContext, CudaEvent, CudaStream, DeviceRepr, LaunchConfig,
};

use super::CudaError;

/// A plain device allocation (cuMemAlloc), freed on drop. The engine orders
/// its two streams with its own events, so cudarc's per-slice tracking is
/// not used.
pub struct DeviceBuffer {
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
    pub fn upload<T: DeviceRepr>(
        stream: &CudaStream,
        host: &[T],
    ) -> Result<DeviceBuffer, CudaError> {
        let buf = DeviceBuffer::new(std::mem::size_of_val(host))?;
        copy_to(stream, host, buf.ptr, &buf)?;
        Ok(buf)
    }

    /// The first `n` values of type T, once the stream has caught up.
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        stream: &CudaStream,
        n: usize,
    ) -> Result<Vec<T>, CudaError> {
        if n * std::mem::size_of::<T>() > self.bytes {
            return Err(CudaError::Job(format!(
                "read-back of {n} values past a {}-byte buffer",
                self.bytes
            )));
        }
        let mut host = vec![T::default(); n];
        if n > 0 {
            // SAFETY: the buffer holds at least n values of T (checked
            // above); T is plain data (DeviceRepr); the stream is
            // synchronised before `host` is read or dropped.
            unsafe { drv::memcpy_dtoh_async(&mut host, self.ptr, stream.cu_stream()) }?;
            stream.synchronize()?;
        }
        Ok(host)
    }
}

/// Copies `host` to `dst`, an address inside `within`, on `stream`. The
/// copy is pageable: it has read `host` when this returns.
pub fn copy_to<T: DeviceRepr>(
    stream: &CudaStream,
    host: &[T],
    dst: u64,
    within: &DeviceBuffer,
) -> Result<(), CudaError> {
    let bytes = std::mem::size_of_val(host);
    let end = dst.checked_sub(within.ptr).map(|off| off as usize + bytes);
    if end.is_none_or(|end| end > within.bytes) {
        return Err(CudaError::Job(format!(
            "a {bytes}-byte upload past its {}-byte buffer",
            within.bytes
        )));
    }
    if bytes > 0 {
        // SAFETY: [dst, dst + bytes) lies inside `within` (checked above);
        // T is plain data; a pageable copy is staged before it returns.
        unsafe { drv::memcpy_htod_async(dst, host, stream.cu_stream()) }?;
    }
    Ok(())
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
pub fn plain_event(ctx: &Arc<CudaContext>) -> Result<CudaEvent, CudaError> {
    Ok(ctx.new_event(None)?)
}

/// A timing event recorded on `stream` now.
pub fn mark(ctx: &Arc<CudaContext>, stream: &CudaStream) -> Result<CudaEvent, CudaError> {
    let ev = ctx.new_event(Some(drv_sys::CUevent_flags::CU_EVENT_DEFAULT))?;
    ev.record(stream)?;
    Ok(ev)
}

/// GPU time between pairs of events, in seconds.
#[derive(Default)]
pub struct Spans(Vec<(CudaEvent, CudaEvent)>);

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
