// Shared by every kernel file (prepended by the Rust side: NVRTC has no
// include path to this folder). No CUDA headers: NVRTC builds these alone.
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned short u16;

#define FULL_MASK 0xffffffffu
#define INFINITY __int_as_float(0x7f800000)

// The histogram bin of a score, bit for bit as HistogramSpec::bin in Rust:
// (s + 1) * (bins * 0.5) in f32 (the _rn intrinsics forbid contraction into
// an FMA), truncated, clamped to [0, bins - 1]. NaN lands in bin 0 there and
// here (fmaxf returns the non-NaN operand).
__device__ __forceinline__ int score_bin(float s, float half_bins, int bins) {
    float scaled = __fmul_rn(__fadd_rn(s, 1.0f), half_bins);
    int b = (int)fmaxf(scaled, 0.0f);  // cvt.rzi saturates, as Rust's `as`
    return min(b, bins - 1);
}

__device__ __forceinline__ float bf16_to_f32(u16 v) { return __uint_as_float(((u32)v) << 16); }

__device__ __forceinline__ float f16_to_f32(u16 v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
    return f;
}
