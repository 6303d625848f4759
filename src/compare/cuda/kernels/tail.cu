// The exact store of the highest impostor scores. The fold appends every
// impostor score whose bin is >= *tail_bin; this kernel, run after each
// tile's fold, raises *tail_bin and compacts the store.
//
// Why nothing of the final top `want` is lost: let b be the highest bin
// whose count from the top (bins >= b) reaches `want` in the histogram of
// the scores folded so far, and x the want-th highest of those scores.
// Fewer than `want` scores lie in bins above bin(x), so b <= bin(x); any
// score s of the final top is >= x (else `want` scores already beat it), so
// bin(s) >= b. A tile folded with the bound computed before it therefore
// keeps every final-top score it holds, and compaction with a later bound
// drops none of them either.
//
// One block of TB threads: the histogram scan and the compaction are short
// next to a tile's products, and the compaction only runs when the store
// passes its high-water mark.

#ifndef TB
#define TB 1024  // the host launches it with this many threads
#endif

// Exclusive prefix sum over the block; *total gets the block's sum.
__device__ u64 block_exclusive_scan(u64 v, u64* total, u64* sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    u64 x = v;
    for (int o = 1; o < 32; o <<= 1) {
        const u64 y = __shfl_up_sync(FULL_MASK, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) sh[warp] = x;
    __syncthreads();
    if (warp == 0) {
        u64 w = lane < TB / 32 ? sh[lane] : 0;
        for (int o = 1; o < 32; o <<= 1) {
            const u64 y = __shfl_up_sync(FULL_MASK, w, o);
            if (lane >= o) w += y;
        }
        sh[lane] = w;
    }
    __syncthreads();
    const u64 before = warp ? sh[warp - 1] : 0;
    *total = sh[TB / 32 - 1];
    __syncthreads();
    return before + x - v;
}

extern "C" __global__ void __launch_bounds__(TB) tail_maintain(
    const u64* __restrict__ hist, int bins, float half_bins, u64 want, int* __restrict__ tail_bin,
    float* __restrict__ buf, u64 buf_cap, u64* __restrict__ count, u64 high_water, int* __restrict__ overflow) {
    __shared__ u64 sh[32];
    __shared__ int found;
    if (threadIdx.x == 0) found = -1;
    __syncthreads();

    // The highest bin whose count from the top reaches `want` (0 if none).
    u64 above = 0;
    for (int start = 0; start < bins; start += TB) {
        const int bin = bins - 1 - (start + (int)threadIdx.x);
        const u64 v = bin >= 0 ? hist[bin] : 0;
        u64 total;
        const u64 before = above + block_exclusive_scan(v, &total, sh);
        if (bin >= 0 && before < want && before + v >= want) found = bin;
        above += total;
        __syncthreads();
        if (found >= 0) break;
    }
    const int b = found >= 0 ? found : 0;
    if (threadIdx.x == 0) *tail_bin = b;

    u64 n = *count;
    if (n > buf_cap) {
        if (threadIdx.x == 0) *overflow = 1;
        n = buf_cap;
    }
    if (n <= high_water) return;

    // In-place compaction: each chunk is read into registers before the
    // scan's barriers and written at or below its own position.
    u64 out = 0;
    for (u64 start = 0; start < n; start += TB) {
        const u64 i = start + threadIdx.x;
        const float s = i < n ? buf[i] : 0.0f;
        const bool keep = i < n && score_bin(s, half_bins, bins) >= b;
        u64 total;
        const u64 at = out + block_exclusive_scan(keep ? 1 : 0, &total, sh);
        if (keep) buf[at] = s;
        out += total;
        __syncthreads();
    }
    if (threadIdx.x == 0) *count = out;
}
