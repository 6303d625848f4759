// Genuine comparisons: each probe row against its mates (gallery rows of its
// identity), listed in CSR form. Few next to the all-pairs products, so a
// warp computes each dot product directly, in the operand type of the
// products (fp32 accumulation, fixed order: the result does not depend on
// the launch shape). Run before the fold so that each probe's best mate
// score is known when its non-mates are counted for the mate rank.
//
// One launch covers a probe block against one gallery block
// [col0, col0 + cols); mates outside it are left to the launch that holds
// them. A warp owns a row for the whole launch, and launches are ordered on
// one stream, so the running maximum needs no atomics.

#define GENUINE_KERNEL(NAME, T, LOAD)                                                                   \
    extern "C" __global__ void NAME(const T* __restrict__ probes, const T* __restrict__ gallery,        \
                                    int dim, int rows, u64 col0, u64 cols,                              \
                                    const u64* __restrict__ mate_ptr, const u32* __restrict__ mate_idx, \
                                    float* __restrict__ pair_score, float* __restrict__ mate_best) {    \
        const int lane = threadIdx.x & 31;                                                              \
        const int warps = blockDim.x >> 5;                                                              \
        for (int r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {       \
            const T* p = probes + (u64)r * dim;                                                         \
            float best = mate_best[r];                                                                  \
            for (u64 e = mate_ptr[r]; e < mate_ptr[r + 1]; ++e) {                                       \
                u64 j = mate_idx[e];                                                                    \
                if (j < col0 || j >= col0 + cols) continue;                                             \
                const T* g = gallery + (j - col0) * dim;                                                \
                float acc = 0.0f;                                                                       \
                for (int t = lane; t < dim; t += 32) acc = fmaf(LOAD(p[t]), LOAD(g[t]), acc);           \
                for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(FULL_MASK, acc, o);              \
                if (lane == 0) pair_score[e] = acc;                                                     \
                best = fmaxf(best, acc);                                                                \
            }                                                                                           \
            if (lane == 0) mate_best[r] = best;                                                         \
        }                                                                                               \
    }

#define LOAD_F32(x) (x)
GENUINE_KERNEL(genuine_f32, float, LOAD_F32)
GENUINE_KERNEL(genuine_bf16, u16, bf16_to_f32)
GENUINE_KERNEL(genuine_f16, u16, f16_to_f32)
