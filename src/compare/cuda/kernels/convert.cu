// Operand preparation for the reduced-precision products, and the sampled
// read-back that measures their error.

extern "C" __global__ void f32_to_bf16(const float* __restrict__ in, u16* __restrict__ out, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        u16 v;
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(v) : "f"(in[i]));
        out[i] = v;
    }
}

extern "C" __global__ void f32_to_f16(const float* __restrict__ in, u16* __restrict__ out, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        u16 v;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(v) : "f"(in[i]));
        out[i] = v;
    }
}

// out[k] = S[row[k] * ld + col[k]]: a few scores of a product tile, to
// compare with float64 dot products on the host.
extern "C" __global__ void gather_scores(const float* __restrict__ s, u64 ld, const u32* __restrict__ row,
                                         const u32* __restrict__ col, int n, float* __restrict__ out) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k < n) out[k] = s[row[k] * ld + col[k]];
}
