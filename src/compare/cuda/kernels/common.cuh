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

// The decision score of two fp32 rows of `dim` values: every genuine and
// mate score, rank, top-k entry and tail score the engine gives is one,
// whatever the precision of the products. Its order is fixed, whatever the
// launch: lane l sums the terms l, l + 32, l + 64, ... with fused
// multiply-adds from 0, then the 32 partial sums meet in a butterfly
// (partners 16, 8, 4, 2, 1 lanes apart), after which every lane holds the
// same bits (addition commutes). `rescore::decision_score` is the same sum
// on the host. Called by the whole warp.
__device__ __forceinline__ float warp_dot32(const float* a, const float* b, u64 dim, int lane) {
    float acc = 0.0f;
    for (u64 t = lane; t < dim; t += 32) acc = fmaf(a[t], b[t], acc);
    for (int o = 16; o > 0; o >>= 1) acc = __fadd_rn(acc, __shfl_xor_sync(FULL_MASK, acc, o));
    return acc;
}

// The kernels' parameter blocks. Each mirrors a #[repr(C)] struct of
// src/compare/cuda/params.rs field for field (device pointers are u64
// there); the Rust side passes its sizes as -D options and the
// static_asserts below stop a build where the two have drifted apart.

// The key whose ascending order is the descending order of the scores,
// -0.0 keyed as 0.0, bit for bit as compare::descending_key in Rust.
__device__ __forceinline__ u32 descending_key(float s) {
    const u32 bits = __float_as_uint(__fadd_rn(s, 0.0f));
    const u32 ascending = (bits >> 31) ? ~bits : (bits | 0x80000000u);
    return ~ascending;
}

// A score band of the job (compare::ScoreBand): a product in [reach_lo,
// reach_hi] may have its decision score in [lo, hi], whose impostor
// decision scores are counted one counter per f32 value, at
// counts[offset + descending_key(x) - first].
struct BandSpec {
    float reach_lo, reach_hi;
    float lo, hi;
    u32 first;
    u32 pad;
    u64 offset;
};

// One entry of the impostor tail store: a pair's product score (what its
// place in the store and the histogram follow), its decision score, and
// its row and column (global indices), for the hardest pairs.
struct TailEntry {
    float product, decision;
    u32 row, col;
};

// The impostor tail store's state on the device (see tail.cu).
struct TailState {
    u64 count;       // entries appended; past the capacity they are counted, not stored
    u64 tile_start;  // count when the current tile's tail pass began
    u64 above;       // impostors folded so far in bins >= bin
    u64 fresh;       // impostors in bins >= bin that the current tile's fused pass met
    int bin;         // the bound: scores in lower bins cannot reach the final top
    int redo;        // 1: the last tile overflowed the store and is appended again
    int overflow;    // the store overflowed even so (ties within one bin)
    int redone;      // tiles redone so far
};

// One launch of the fold (fold.cu) over one tile.
struct FoldParams {
    const float* scores;  // the tile's products, row-major
    u64 ld;               // its leading dimension
    u64 row0, col0;       // global index of its first row and column
    const float* p32;     // fp32 rows of the tile's probes (row r at r * dim)
    const float* g32;     // fp32 rows of its columns (column c at c * dim)
    u64 dim;
    const u32* plabel;    // labels of the tile's rows
    const u32* glabel;    // labels of its columns (padded by 4)
    const float* mate_best;
    const float* mate_all;  // every row's mate score (the triangle's columns)
    u64* hist;
    float* top_s;
    u32* top_j;
    u64* rank_count;
    u64* rank_all;          // every row's rank count (the triangle's columns)
    TailEntry* tail_buf;
    TailState* tail;
    u64 tail_cap;
    u32* worst;           // largest |product − decision score| rescored (float bits)
    const BandSpec* bands;  // the job's score bands (n_bands of them)
    u64* band_counts;       // their counters
    u64* moved_out;         // per bin: band pairs whose product is in it
    u64* moved_in;          // per bin: band pairs whose decision score is in it
    float margin;         // bound on |product − decision score|, widened
    float margin2;        // twice that
    float half_bins;
    int rows, cols, bins, win_lo, win_len;
    int all_distinct;
    int triangle;   // all-distinct upper triangle only: each pair ranks both rows
    int do_main;    // histogram, mate rank, top-k
    int do_tail;    // append to the tail store
    int redo_only;  // run only if the tail state asks for a redo
    int n_bands;
};

// One launch of the tail store's maintenance (tail.cu).
struct TailParams {
    const u64* hist;
    TailEntry* buf;
    TailState* state;
    u64 want, cap, high_water;
    float half_bins;
    float margin2;   // the fold's: entries are kept by score_bin(product + margin2)
    int bins;
    int after_redo;  // 1: the maintenance after a redone tail pass
};

#ifdef TAIL_STATE_BYTES
static_assert(sizeof(BandSpec) == BAND_SPEC_BYTES, "BandSpec differs from params.rs");
static_assert(sizeof(TailEntry) == TAIL_ENTRY_BYTES, "TailEntry differs from params.rs");
static_assert(sizeof(TailState) == TAIL_STATE_BYTES, "TailState differs from params.rs");
static_assert(sizeof(FoldParams) == FOLD_PARAMS_BYTES, "FoldParams differs from params.rs");
static_assert(sizeof(TailParams) == TAIL_PARAMS_BYTES, "TailParams differs from params.rs");
#endif
