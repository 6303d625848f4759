//! The kernels' parameter blocks, passed by value as one kernel argument
//! each. Every struct mirrors the one of the same name in
//! `kernels/common.cuh`, field for field (device pointers are `u64` here);
//! [`struct_defines`] hands the sizes to NVRTC, whose `static_assert`s
//! refuse a build where the two have drifted apart.

use cudarc::driver::DeviceRepr;

/// The impostor tail store's state on the device (`tail.cu` says how it
/// is used).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TailState {
    pub count: u64,
    pub tile_start: u64,
    pub above: u64,
    pub fresh: u64,
    pub bin: i32,
    pub redo: i32,
    pub overflow: i32,
    pub redone: i32,
}

/// A score band as the fold reads it (`common.cuh` says how).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BandSpec {
    pub reach_lo: f32,
    pub reach_hi: f32,
    pub lo: f32,
    pub hi: f32,
    pub first: u32,
    pub pad: u32,
    pub offset: u64,
}

/// One entry of the impostor tail store (`common.cuh`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TailEntry {
    pub product: f32,
    pub decision: f32,
    pub row: u32,
    pub col: u32,
}

/// One launch of the fold over one tile (`fold.cu`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FoldParams {
    pub scores: u64,
    pub ld: u64,
    pub row0: u64,
    pub col0: u64,
    pub p32: u64,
    pub g32: u64,
    pub dim: u64,
    pub plabel: u64,
    pub glabel: u64,
    pub mate_best: u64,
    pub mate_all: u64,
    pub hist: u64,
    pub top_s: u64,
    pub top_j: u64,
    pub rank_count: u64,
    pub rank_all: u64,
    pub tail_buf: u64,
    pub tail: u64,
    pub tail_cap: u64,
    pub worst: u64,
    pub bands: u64,
    pub band_counts: u64,
    pub moved_out: u64,
    pub moved_in: u64,
    pub margin: f32,
    pub margin2: f32,
    pub half_bins: f32,
    pub rows: i32,
    pub cols: i32,
    pub bins: i32,
    pub win_lo: i32,
    pub win_len: i32,
    pub all_distinct: i32,
    pub triangle: i32,
    pub do_main: i32,
    pub do_tail: i32,
    pub redo_only: i32,
    pub n_bands: i32,
}

/// One launch of the tail store's maintenance (`tail.cu`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TailParams {
    pub hist: u64,
    pub buf: u64,
    pub state: u64,
    pub want: u64,
    pub cap: u64,
    pub high_water: u64,
    pub half_bins: f32,
    pub margin2: f32,
    pub bins: i32,
    pub after_redo: i32,
}

// SAFETY: plain #[repr(C)] data (integers, floats, device addresses), laid
// out as the C structs the kernels declare; checked by the static_asserts
// that `struct_defines` arms.
unsafe impl DeviceRepr for BandSpec {}
unsafe impl DeviceRepr for TailEntry {}
unsafe impl DeviceRepr for TailState {}
unsafe impl DeviceRepr for FoldParams {}
unsafe impl DeviceRepr for TailParams {}

/// The -D options that arm `common.cuh`'s size checks.
pub(crate) fn struct_defines() -> Vec<String> {
    use std::mem::size_of;
    vec![
        format!("-DBAND_SPEC_BYTES={}", size_of::<BandSpec>()),
        format!("-DTAIL_ENTRY_BYTES={}", size_of::<TailEntry>()),
        format!("-DTAIL_STATE_BYTES={}", size_of::<TailState>()),
        format!("-DFOLD_PARAMS_BYTES={}", size_of::<FoldParams>()),
        format!("-DTAIL_PARAMS_BYTES={}", size_of::<TailParams>()),
    ]
}
