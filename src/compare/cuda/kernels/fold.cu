// The per-tile fold: one pass over a tile of product scores (rows = probes
// of the block, columns = gallery rows, row-major), straight after its
// product, so that only small results leave the GPU.
//
// Compiled per top-k length: TOPK (candidates kept per probe) and BLOCK
// (threads per block) come as -D options.
//
// A warp owns a row for the whole launch (launches are ordered on one
// stream), so per-row state needs no atomics. Each lane reads 4 adjacent
// scores per step; the lanes of a warp cover 128 consecutive columns.
//
// Decisions are made on decision scores (warp_dot32 over the fp32 rows),
// never on products, which may be bf16, fp16, tf32 or cuBLAS's own fp32
// order: a product within `margin` of a decision's bar is rescored, the
// warp together, one such score at a time (few: those near a bar), so
// every precision decides as the decision scores do.
//
// main pass (do_main):
//   * impostor histogram of the products: counts in shared memory for the
//     window of bins [win_lo, win_lo + win_len) where nearly all impostor
//     scores fall, global 64-bit atomics outside it; flushed once per
//     block (the host moves the pairs of the exact tail to the bins of
//     their decision scores);
//   * mate rank: non-mates whose decision score is >= the probe's best
//     mate score (a decision score too);
//   * top-k by decision score: the row's list, spread over the warp's
//     registers (entry q = 32·slot + lane), which a candidate enters only
//     when it beats the k-th entry: rare after the first columns. Two
//     registers per lane per 32 entries, at every k: no local memory.
// score bands (main pass): an impostor pair whose product is within the
//   margin of a band is rescored; its product's and its decision score's
//   bins are counted (moved_out, moved_in: the host moves the pair between
//   them in the histogram, after the tail store has used it), and a
//   decision score inside the band is counted by its value.
// tail pass (do_tail): impostor pairs whose product, raised by twice the
//   margin, has a bin >= the tail state's bin are appended to the tail
//   store with both scores (tail.cu says why that bound never drops a pair
//   the exact tail needs, and how an overflowing tile is redone).
// "Impostor" for the histogram and tail means: labels differ and, in the
// all-distinct pairing, the column's global index is above the row's, so
// each unordered pair counts once. The rank counts every non-mate.
//
// The triangle (all distinct pairs with no top-k, TOPK 0): the host folds
// only the tiles that reach above the diagonal, and each pair above it
// ranks both its rows: its row in the warp's count, its column with a
// global atomic, one per non-mate scoring at least the column's mate
// score (rare where the model is any good).

#ifndef TOPK
#error "compile with -DTOPK=<k>"
#endif
#ifndef BLOCK
#define BLOCK 512
#endif
#define WARPS (BLOCK / 32)
#define SLOTS ((TOPK + 31) / 32)

__device__ __forceinline__ bool better(float a, u32 ia, float b, u32 ib) {
    return a > b || (a == b && ia < ib);
}

#if TOPK > 0
// A row's top-k, best first, over the warp: slot s of lane l is entry
// 32·s + l; entries past TOPK stay empty (-inf, no index).
struct WarpList {
    float s[SLOTS];
    u32 j[SLOTS];
};

__device__ __forceinline__ void list_load(WarpList& L, const float* ts, const u32* tj, int lane) {
#pragma unroll
    for (int k = 0; k < SLOTS; ++k) {
        const int q = 32 * k + lane;
        L.s[k] = q < TOPK ? ts[q] : -INFINITY;
        L.j[k] = q < TOPK ? tj[q] : 0xffffffffu;
    }
}

__device__ __forceinline__ void list_store(const WarpList& L, float* ts, u32* tj, int lane) {
#pragma unroll
    for (int k = 0; k < SLOTS; ++k) {
        const int q = 32 * k + lane;
        if (q < TOPK) {
            ts[q] = L.s[k];
            tj[q] = L.j[k];
        }
    }
}

// The k-th entry, on every lane.
__device__ __forceinline__ void list_last(const WarpList& L, float& s, u32& j) {
    s = __shfl_sync(FULL_MASK, L.s[(TOPK - 1) / 32], (TOPK - 1) % 32);
    j = __shfl_sync(FULL_MASK, L.j[(TOPK - 1) / 32], (TOPK - 1) % 32);
}

// Inserts (cs, cj), the same on every lane and better than the k-th
// entry: entries from its place on move down one, the k-th drops out.
__device__ __forceinline__ void list_insert(WarpList& L, float cs, u32 cj, int lane) {
    int place = 0;
#pragma unroll
    for (int k = 0; k < SLOTS; ++k) place += __popc(__ballot_sync(FULL_MASK, better(L.s[k], L.j[k], cs, cj)));
    // Each entry's predecessor, gathered before anything moves.
    float ps[SLOTS];
    u32 pj[SLOTS];
#pragma unroll
    for (int k = 0; k < SLOTS; ++k) {
        ps[k] = __shfl_up_sync(FULL_MASK, L.s[k], 1);
        pj[k] = __shfl_up_sync(FULL_MASK, L.j[k], 1);
        if (k > 0) {
            const float ws = __shfl_sync(FULL_MASK, L.s[k - 1], 31);
            const u32 wj = __shfl_sync(FULL_MASK, L.j[k - 1], 31);
            if (lane == 0) {
                ps[k] = ws;
                pj[k] = wj;
            }
        }
    }
#pragma unroll
    for (int k = 0; k < SLOTS; ++k) {
        const int q = 32 * k + lane;
        if (q < TOPK && q > place) {
            L.s[k] = ps[k];
            L.j[k] = pj[k];
        } else if (q == place) {
            L.s[k] = cs;
            L.j[k] = cj;
        }
    }
}
#endif

// Scores and gallery labels of columns c..c+3 (one 16-byte load each where
// all four exist; columns past the end read as mates, which count nowhere).
__device__ __forceinline__ void load4(const float* row, const u32* glabel, int c, int cols, u32 pl, float (&v)[4],
                                      u32 (&gl)[4]) {
    if (c + 3 < cols) {
        const float4 f = *reinterpret_cast<const float4*>(row + c);
        const uint4 l = *reinterpret_cast<const uint4*>(glabel + c);
        v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
        gl[0] = l.x; gl[1] = l.y; gl[2] = l.z; gl[3] = l.w;
    } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            v[e] = c + e < cols ? row[c + e] : 0.0f;
            gl[e] = c + e < cols ? glabel[c + e] : pl;
        }
    }
}

// A mate score as a bar: a row with no mate ranks nothing.
__device__ __forceinline__ float mate_bar(float m) { return m == -INFINITY ? INFINITY : m; }

// What a product near a bar needs its decision score for.
#define NEED_RANK 1u
#define NEED_TOP 2u
#define NEED_TAIL 4u
#define NEED_COLUMN 8u
#define NEED_BAND 16u

// Two blocks per multiprocessor (the host sizes the histogram window to
// fit): 32 warps streaming scores per SM, at most 64 registers a thread.
extern "C" __global__ void __launch_bounds__(BLOCK, 2) fold_tile(const FoldParams p) {
    extern __shared__ u32 sh_hist[];  // win_len counters
    if (p.redo_only && !p.tail->redo) return;  // the same for the whole grid
    const int lane = threadIdx.x & 31;
    const int win_len = p.do_main ? p.win_len : 0;
    for (int i = threadIdx.x; i < win_len; i += BLOCK) sh_hist[i] = 0;
    __syncthreads();
    const int tb = p.do_tail ? p.tail->bin : p.bins;
    const bool any_floor = p.all_distinct != 0;
    const u32 c_base = (u32)p.col0;
    float worst = 0.0f;

    for (int r = blockIdx.x * WARPS + (threadIdx.x >> 5); r < p.rows; r += gridDim.x * WARPS) {
        const float* row = p.scores + (u64)r * p.ld;
        const float* row32 = p.p32 + (u64)r * p.dim;
        const u32 pl = p.plabel[r];
        // Global indices fit in 32 bits (the host checks); the row's only
        // matters in the all-distinct pairing, where probes are the gallery.
        const u32 gi = (u32)(p.row0 + r);
        const float m = mate_bar(p.mate_best[r]);
        u32 rank_c = 0;
        u32 fresh_c = 0;  // impostors in bins >= the tail's bound (fused pass)
#if TOPK > 0
        WarpList L;
        float ks = INFINITY;
        u32 kj = 0;
        bool changed = false;
        if (p.do_main) {
            list_load(L, p.top_s + (u64)r * TOPK, p.top_j + (u64)r * TOPK, lane);
            list_last(L, ks, kj);
        }
#endif
        for (int base = 0; base < p.cols; base += 128) {
            const int c0 = base + lane * 4;
            float v[4];
            u32 gl[4];
            load4(row, p.glabel, c0, p.cols, pl, v, gl);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const bool valid = c0 + e < p.cols;
                const float s = v[e];
                const u32 gj = c_base + (u32)(c0 + e);
                const bool non_mate = valid && gl[e] != pl;
                const bool pair = non_mate && (!any_floor || gj > gi);
                u32 need = 0;
                const int bin = score_bin(s, p.half_bins, p.bins);
                if (p.do_main) {
                    fresh_c += pair && bin >= tb;
                    if (pair) {
                        const int w = bin - p.win_lo;
                        if (w >= 0 && w < win_len)
                            atomicAdd(&sh_hist[w], 1u);
                        else
                            atomicAdd(&p.hist[w + p.win_lo], 1ull);
                    }
                    // A product a margin above the mate score is above it
                    // as a decision score too; one within it is rescored.
#if TOPK == 0
                    const bool ranked = p.triangle ? pair : non_mate;
                    if (p.triangle && pair) {
                        const float mc = mate_bar(p.mate_all[gj]);
                        if (__fsub_rn(s, p.margin) >= mc)
                            atomicAdd(&p.rank_all[gj], 1ull);
                        else if (__fadd_rn(s, p.margin) >= mc)
                            need |= NEED_COLUMN;
                    }
#else
                    const bool ranked = non_mate;
#endif
                    if (ranked && __fsub_rn(s, p.margin) >= m)
                        ++rank_c;
                    else if (ranked && __fadd_rn(s, p.margin) >= m)
                        need |= NEED_RANK;
#if TOPK > 0
                    if (valid && !(any_floor && gj == gi) && __fadd_rn(s, p.margin) >= ks) need |= NEED_TOP;
#endif
                    for (int q = 0; pair && q < p.n_bands; ++q)
                        if (s >= p.bands[q].reach_lo && s <= p.bands[q].reach_hi) need |= NEED_BAND;
                }
                u64 pos = 0;
                if (p.do_tail) {
                    const bool keep = pair && score_bin(__fadd_rn(s, p.margin2), p.half_bins, p.bins) >= tb;
                    const u32 mask = __ballot_sync(FULL_MASK, keep);
                    if (mask) {
                        // Every entry is counted; those past the capacity
                        // are not stored (the maintenance redoes the tile).
                        const int leader = __ffs(mask) - 1;
                        u64 first = 0;
                        if (lane == leader) first = atomicAdd(&p.tail->count, (u64)__popc(mask));
                        first = __shfl_sync(FULL_MASK, first, leader);
                        pos = first + __popc(mask & ((1u << lane) - 1u));
                        if (keep && pos < p.tail_cap) need |= NEED_TAIL;
                    }
                }
                u32 mask = __ballot_sync(FULL_MASK, need != 0);
                while (mask) {
                    const int src = __ffs(mask) - 1;
                    mask &= mask - 1;
                    const u32 what = __shfl_sync(FULL_MASK, need, src);
                    const float cs = __shfl_sync(FULL_MASK, s, src);
                    const int c = base + src * 4 + e;
                    const float x = warp_dot32(row32, p.g32 + (u64)c * p.dim, p.dim, lane);
                    worst = fmaxf(worst, fabsf(__fsub_rn(cs, x)));
                    if ((what & NEED_RANK) && lane == 0 && x >= m) ++rank_c;
                    const u32 cj = c_base + (u32)c;
#if TOPK == 0
                    if ((what & NEED_COLUMN) && lane == 0 && x >= mate_bar(p.mate_all[cj]))
                        atomicAdd(&p.rank_all[cj], 1ull);
#else
                    if ((what & NEED_TOP) && better(x, cj, ks, kj)) {
                        list_insert(L, x, cj, lane);
                        list_last(L, ks, kj);
                        changed = true;
                    }
#endif
                    const u64 at = __shfl_sync(FULL_MASK, pos, src);
                    if ((what & NEED_TAIL) && lane == 0) p.tail_buf[at] = TailEntry{cs, x, gi, cj};
                    if ((what & NEED_BAND) && lane == 0) {
                        atomicAdd(&p.moved_out[score_bin(cs, p.half_bins, p.bins)], 1ull);
                        atomicAdd(&p.moved_in[score_bin(x, p.half_bins, p.bins)], 1ull);
                        for (int q = 0; q < p.n_bands; ++q) {
                            const BandSpec b = p.bands[q];
                            if (x >= b.lo && x <= b.hi)
                                atomicAdd(&p.band_counts[b.offset + (descending_key(x) - b.first)], 1ull);
                        }
                    }
                }
            }
        }

        if (p.do_main) {
            for (int o = 16; o > 0; o >>= 1) {
                rank_c += __shfl_xor_sync(FULL_MASK, rank_c, o);
                fresh_c += __shfl_xor_sync(FULL_MASK, fresh_c, o);
            }
            if (lane == 0) p.rank_count[r] += rank_c;
            if (lane == 0 && p.do_tail && fresh_c) atomicAdd(&p.tail->fresh, (u64)fresh_c);
#if TOPK > 0
            if (changed) list_store(L, p.top_s + (u64)r * TOPK, p.top_j + (u64)r * TOPK, lane);
#endif
        }
    }

    // The bound's check: the host refuses the job if a rescored product
    // strayed further from its decision score than the margin.
    for (int o = 16; o > 0; o >>= 1) worst = fmaxf(worst, __shfl_xor_sync(FULL_MASK, worst, o));
    if (lane == 0 && worst > 0.0f) atomicMax(p.worst, __float_as_uint(worst));

    if (win_len) {
        __syncthreads();
        for (int i = threadIdx.x; i < win_len; i += BLOCK) {
            const u32 c = sh_hist[i];
            if (c) atomicAdd(&p.hist[p.win_lo + i], (u64)c);
        }
    }
}
