// The per-tile fold: one pass over a tile of cosine scores S (rows = probes
// of the block, columns = gallery rows, row-major, leading dimension ld),
// straight after its product, so that only small results leave the GPU.
//
// Compiled per top-k length: TOPK (candidates kept per probe) and BLOCK
// (threads per block) come as -D options, so each lane's candidate list
// lives in registers (indexed only by unrolled loops).
//
// A warp owns a row for the whole launch (launches are ordered on one
// stream), so per-row state needs no atomics. Each lane reads 4 adjacent
// scores per step; the lanes of a warp cover 128 consecutive columns.
//
// main pass (do_main):
//   * impostor histogram: counts in shared memory for the window of bins
//     [win_lo, win_lo + win_len) where nearly all impostor scores fall,
//     global 64-bit atomics outside it; flushed once per block;
//   * mate rank: non-mates scoring >= the probe's best mate score;
//   * top-k: per lane, the candidates that beat both its own k-th and the
//     row's stored k-th, merged into the stored list at the end of the row.
// tail pass (do_tail): impostor scores whose bin is >= *tail_bin go to the
//   tail store (see tail.cu for why that bound never drops a score that
//   belongs to the final top).
// "Impostor" for the histogram and tail means: labels differ and, in the
// all-distinct pairing, the column's global index is above the row's, so
// each unordered pair counts once. The rank counts every non-mate.

#ifndef TOPK
#error "compile with -DTOPK=<k>"
#endif
#ifndef BLOCK
#define BLOCK 512
#endif
#define WARPS (BLOCK / 32)

__device__ __forceinline__ bool better(float a, u32 ia, float b, u32 ib) {
    return a > b || (a == b && ia < ib);
}

#if TOPK > 0
// Inserts (s, j) into a sorted (best first) register list; the caller has
// checked that it beats the last entry, which drops out.
__device__ __forceinline__ void lane_insert(float (&ls)[TOPK], u32 (&lj)[TOPK], float s, u32 j) {
    bool placed = false;
#pragma unroll
    for (int q = TOPK - 1; q > 0; --q) {
        if (!placed) {
            if (better(s, j, ls[q - 1], lj[q - 1])) {
                ls[q] = ls[q - 1];
                lj[q] = lj[q - 1];
            } else {
                ls[q] = s;
                lj[q] = j;
                placed = true;
            }
        }
    }
    if (!placed) {
        ls[0] = s;
        lj[0] = j;
    }
}

__device__ __forceinline__ void lane_pop(float (&ls)[TOPK], u32 (&lj)[TOPK]) {
#pragma unroll
    for (int q = 0; q < TOPK - 1; ++q) {
        ls[q] = ls[q + 1];
        lj[q] = lj[q + 1];
    }
    ls[TOPK - 1] = -INFINITY;
    lj[TOPK - 1] = 0xffffffffu;
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

// Two blocks per multiprocessor (the host sizes the histogram window to
// fit): 32 warps streaming scores per SM, at most 64 registers a thread.
extern "C" __global__ void __launch_bounds__(BLOCK, 2) fold_tile(
    const float* __restrict__ S, int rows, int cols, u64 ld, u64 row0, u64 col0,
    const u32* __restrict__ plabel, const u32* __restrict__ glabel, int all_distinct,
    const float* __restrict__ mate_best, int do_main, u64* __restrict__ hist, int bins, float half_bins,
    int win_lo, int win_len, float* __restrict__ top_s, u32* __restrict__ top_j,
    u64* __restrict__ rank_count, int do_tail, const int* __restrict__ tail_bin,
    float* __restrict__ tail_buf, u64 tail_cap, u64* __restrict__ tail_count) {
    extern __shared__ u32 smem[];
    u32* sh_hist = smem;  // win_len counters
#if TOPK > 0
    float* out_s = (float*)(smem + win_len) + (threadIdx.x >> 5) * TOPK;
    u32* out_j = smem + win_len + WARPS * TOPK + (threadIdx.x >> 5) * TOPK;
#endif
    const int lane = threadIdx.x & 31;
    if (do_main) {
        for (int i = threadIdx.x; i < win_len; i += BLOCK) sh_hist[i] = 0;
        __syncthreads();
    }
    const int tb = do_tail ? *tail_bin : bins;

    for (int r = blockIdx.x * WARPS + (threadIdx.x >> 5); r < rows; r += gridDim.x * WARPS) {
        const float* row = S + (u64)r * ld;
        const u32 pl = plabel[r];
        // Global indices fit in 32 bits (the host checks); the row's only
        // matters in the all-distinct pairing, where probes are the gallery.
        const u32 gi = (u32)(row0 + r);
        const u32 c_base = (u32)col0;
        const bool any_floor = all_distinct != 0;
        float m = mate_best[r];
        if (m == -INFINITY) m = INFINITY;  // no mate: nothing to rank against
        u32 rank_c = 0;
#if TOPK > 0
        float ls[TOPK];
        u32 lj[TOPK];
#pragma unroll
        for (int q = 0; q < TOPK; ++q) {
            ls[q] = -INFINITY;
            lj[q] = 0xffffffffu;
        }
        const float stored_kth = do_main ? top_s[(u64)r * TOPK + TOPK - 1] : INFINITY;
        float thr = stored_kth;
#endif
        // (A prefetch of the next step's scores measured 24 bytes of
        // register spills at top-10 under the 64-register cap; two blocks
        // per SM hide the latency instead.)
        for (int base = 0; base < cols; base += 128) {
            const int c0 = base + lane * 4;
            float v[4];
            u32 gl[4];
            load4(row, glabel, c0, cols, pl, v, gl);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const bool valid = c0 + e < cols;
                const float s = v[e];
                const u32 gj = c_base + (u32)(c0 + e);
                const bool non_mate = valid && gl[e] != pl;
                const bool pair = non_mate && (!any_floor || gj > gi);
                const int b = score_bin(s, half_bins, bins);
                if (do_main) {
                    if (pair) {
                        const int w = b - win_lo;
                        if (w >= 0 && w < win_len)
                            atomicAdd(&sh_hist[w], 1u);
                        else
                            atomicAdd(&hist[b], 1ull);
                    }
                    rank_c += (non_mate && s >= m) ? 1u : 0u;
#if TOPK > 0
                    if (valid && s > thr && !(any_floor && gj == gi)) {
                        lane_insert(ls, lj, s, gj);
                        thr = fmaxf(stored_kth, ls[TOPK - 1]);
                    }
#endif
                }
                if (do_tail) {
                    const bool take = pair && b >= tb;
                    const u32 mask = __ballot_sync(FULL_MASK, take);
                    if (mask) {
                        const int leader = __ffs(mask) - 1;
                        u64 first = 0;
                        if (lane == leader) first = atomicAdd(tail_count, (u64)__popc(mask));
                        first = __shfl_sync(FULL_MASK, first, leader);
                        if (take) {
                            const u64 pos = first + __popc(mask & ((1u << lane) - 1u));
                            if (pos < tail_cap) tail_buf[pos] = s;
                        }
                    }
                }
            }
        }

        if (do_main) {
            for (int o = 16; o > 0; o >>= 1) rank_c += __shfl_xor_sync(FULL_MASK, rank_c, o);
            if (lane == 0) rank_count[r] += rank_c;
#if TOPK > 0
            // Merge the lanes' lists with the stored list: TOPK rounds, each
            // taking the best head. Skipped when no lane found a candidate.
            if (__any_sync(FULL_MASK, ls[0] > -INFINITY)) {
                const float* st_s = top_s + (u64)r * TOPK;
                const u32* st_j = top_j + (u64)r * TOPK;
                int p = 0;
                for (int q = 0; q < TOPK; ++q) {
                    float bs = ls[0];
                    u32 bj = lj[0];
                    int bl = lane;
                    for (int o = 16; o > 0; o >>= 1) {
                        const float os = __shfl_xor_sync(FULL_MASK, bs, o);
                        const u32 oj = __shfl_xor_sync(FULL_MASK, bj, o);
                        const int ol = __shfl_xor_sync(FULL_MASK, bl, o);
                        if (better(os, oj, bs, bj)) {
                            bs = os;
                            bj = oj;
                            bl = ol;
                        }
                    }
                    const float ss = st_s[p];
                    const u32 sj = st_j[p];
                    if (better(bs, bj, ss, sj)) {
                        if (lane == 0) {
                            out_s[q] = bs;
                            out_j[q] = bj;
                        }
                        if (lane == bl) lane_pop(ls, lj);
                    } else {
                        if (lane == 0) {
                            out_s[q] = ss;
                            out_j[q] = sj;
                        }
                        ++p;
                    }
                }
                __syncwarp();
                for (int q = lane; q < TOPK; q += 32) {
                    top_s[(u64)r * TOPK + q] = out_s[q];
                    top_j[(u64)r * TOPK + q] = out_j[q];
                }
                __syncwarp();
            }
#endif
        }
    }

    if (do_main) {
        __syncthreads();
        for (int i = threadIdx.x; i < win_len; i += BLOCK) {
            const u32 c = sh_hist[i];
            if (c) atomicAdd(&hist[win_lo + i], (u64)c);
        }
    }
}
