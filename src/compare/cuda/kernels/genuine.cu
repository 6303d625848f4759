// Genuine comparisons: each probe row against its mates (gallery rows of its
// identity), listed in CSR form. Few next to the all-pairs products, so a
// warp computes each one as a decision score (warp_dot32, fp32 rows,
// whatever the products' precision): the genuine scores, and each probe's
// best mate score, against which the fold ranks its non-mates in the same
// arithmetic. Run before the fold so that each mate score is known when
// its non-mates are counted.
//
// One launch covers a probe block against one gallery block
// [col0, col0 + cols); mates outside it are left to the launch that holds
// them. A warp owns a row for the whole launch, and launches are ordered on
// one stream, so the running maximum needs no atomics.

extern "C" __global__ void genuine(const float* __restrict__ probes, const float* __restrict__ gallery, u64 dim,
                                   int rows, u64 col0, u64 cols, const u64* __restrict__ mate_ptr,
                                   const u32* __restrict__ mate_idx, float* __restrict__ pair_score,
                                   float* __restrict__ mate_best) {
    const int lane = threadIdx.x & 31;
    const int warps = blockDim.x >> 5;
    for (int r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
        const float* p = probes + (u64)r * dim;
        float best = mate_best[r];
        for (u64 e = mate_ptr[r]; e < mate_ptr[r + 1]; ++e) {
            const u64 j = mate_idx[e];
            if (j < col0 || j >= col0 + cols) continue;
            const float s = warp_dot32(p, gallery + (j - col0) * dim, dim, lane);
            if (lane == 0) pair_score[e] = s;
            best = fmaxf(best, s);
        }
        if (lane == 0) mate_best[r] = best;
    }
}
