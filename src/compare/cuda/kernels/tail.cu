// The store of the highest impostor scores, and its maintenance after
// each tile. Entries are pairs (product, decision score); which are kept
// follows the products and the histogram of products, with the margin m
// that bounds |product − decision score| (the fold's `margin`).
//
// Why nothing the exact tail needs is lost: let b be the highest bin whose
// count from the top (bins >= b) reaches `want` in the histogram of the
// products folded so far, and X the want-th highest product of all pairs.
// Fewer than `want` products lie in bins above bin(X), so b <= bin(X). The
// exact tail is the want highest decision scores; its least, Y, is at
// least X − m (`want` pairs have products >= X, so decision scores >=
// X − m), so each of its pairs has a decision score >= X − m and a product
// >= X − 2m: product + 2m >= X, whose bin is >= b. The fold appends every
// impostor pair with bin(product + 2m) >= b, for a b of the tiles before,
// and compaction with a later b drops none of those either. The host then
// takes every stored pair with product + 2m >= X, moves each from the bin
// of its product to that of its decision score, and keeps the want
// highest decision scores (`rescore::exact_tail`).
//
// Why the store never overflows, whatever the order of the tiles: a tile's
// fused pass (histogram and tail together) appends with the bound of the
// tiles before it, which can let through far more than `want` scores (a
// first tile smaller than the second, or a gallery sorted by score). The
// fold counts every score it would append, stored or not. When the count
// passes the capacity, this kernel drops the tile's entries, raises the
// bound with the tile's own histogram counted, compacts, and asks for the
// tile's tail pass again (`redo`). Then the store holds only pairs with
// bin(product + 2m) >= the new bound b: fewer than want + hist[b] in bins
// >= b, and those of the band of 2m below bin b. The capacity,
// 3·want + 2^20 (`tail::store_capacity`), is passed only when the bin b
// and that band together hold more than 2·want + 2^20 impostors (ties, or
// a margin wide against the spread of the scores), which `overflow`
// reports.
//
// The bound rises with a running count (`above`, the impostors in bins
// >= bin), so each maintenance reads only the bins it passes: no rescan
// from the top after every tile.
//
// One block of TB threads: short next to a tile's products; the compaction
// only runs when the store passes its high-water mark or a tile is redone.

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

// Raises the bound while the bins above it still hold `want` impostors
// (warp 0, 32 bins a step). Returns the new bound; *above follows it.
__device__ int raise_bound(const TailParams& p, int b, u64* above) {
    const int lane = threadIdx.x & 31;
    u64 a = *above;
    for (;;) {
        const int i = b + lane;
        const u64 h = i < p.bins - 1 ? p.hist[i] : 0;
        u64 x = h;  // inclusive prefix over the lanes: the bins b..i
        for (int o = 1; o < 32; o <<= 1) {
            const u64 y = __shfl_up_sync(FULL_MASK, x, o);
            if (lane >= o) x += y;
        }
        // Passing bins b..i leaves a - x in bins > i: monotone in the lane.
        const u32 ok = __ballot_sync(FULL_MASK, i < p.bins - 1 && a - x >= p.want);
        const int n = __popc(ok);
        if (n) a -= __shfl_sync(FULL_MASK, x, n - 1);
        b += n;
        if (n < 32) break;
    }
    *above = a;
    return b;
}

extern "C" __global__ void __launch_bounds__(TB) tail_maintain(const TailParams p) {
    __shared__ u64 sh[32];
    __shared__ u64 n_sh;
    __shared__ int b_sh, compact_sh;
    TailState* st = p.state;
    const bool skip = p.after_redo && !st->redo;
    __syncthreads();  // every thread has read the flag before warp 0 clears it
    if (skip) return;

    if (threadIdx.x < 32) {
        u64 n = st->count;
        int b = st->bin;
        int compact = n > p.high_water;
        if (!p.after_redo) {
            // The fused pass counted the tile's impostors in bins >= the
            // old bound (it appended those of the band below it too).
            u64 above = st->above + st->fresh;
            b = raise_bound(p, b, &above);
            if (threadIdx.x == 0) {
                st->above = above;
                st->fresh = 0;
                st->bin = b;
                st->redo = n > p.cap;
                st->redone += n > p.cap;
            }
            if (n > p.cap) {
                n = st->tile_start;  // drop the tile's entries: its tail pass runs again
                compact = 1;
            }
        } else {
            if (threadIdx.x == 0) st->redo = 0;
            if (n > p.cap) {
                if (threadIdx.x == 0) st->overflow = 1;
                n = p.cap;
            }
        }
        if (threadIdx.x == 0) {
            n_sh = n;
            b_sh = b;
            compact_sh = compact;
        }
    }
    __syncthreads();
    u64 n = n_sh;
    const int b = b_sh;

    if (compact_sh) {
        // In place: each chunk is read into registers before the scan's
        // barriers and written at or below its own position.
        u64 out = 0;
        for (u64 start = 0; start < n; start += TB) {
            const u64 i = start + threadIdx.x;
            const TailEntry t = i < n ? p.buf[i] : TailEntry{0.0f, 0.0f, 0u, 0u};
            const bool keep = i < n && score_bin(__fadd_rn(t.product, p.margin2), p.half_bins, p.bins) >= b;
            u64 total;
            const u64 at = out + block_exclusive_scan(keep ? 1 : 0, &total, sh);
            if (keep) p.buf[at] = t;
            out += total;
            __syncthreads();
        }
        n = out;
    }
    if (threadIdx.x == 0) {
        st->count = n;
        st->tile_start = n;
    }
}
