// Runs genuine.cu, fold.cu and tail.cu under emu.h over a few tiles and
// probe blocks, the way the engine sequences them (src/compare/cuda/run.rs),
// and compares mate scores, histogram, mate rank counts, top-k and the
// impostor tail store with a brute-force computation on decision scores;
// where a case has a score band, also the band's counters and the bins its
// pairs move between.
// Built and run by tests/kernel_emulation.rs with -DTOPK and -DBLOCK:
//
//   fold_test ROWS.bin DIM OUT.bin   decision scores of every pair of the
//                                    rows (warp_dot32 in the genuine kernel)
//                                    into OUT.bin, for the Rust test to
//                                    compare with rescore::decision_score
//   fold_test                        the fold and tail cases
//
// The products the fold reads are the decision scores moved by up to 0.999
// of the margin (some by exactly that much, across the bars), so every
// decision near a bar needs its rescoring; rows on a coarse grid and
// repeated rows make many exact ties.
#include "emu.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <tuple>

#include "common.cuh"
u32 sh_hist[1 << 17];  // the fold's dynamic shared memory
#include "fold.emu.cu"
#include "genuine.emu.cu"
#include "tail.emu.cu"

// warp_dot32's order: lane sums with fused multiply-adds, then the butterfly.
static float ref_dot(const float* a, const float* b, int dim) {
    float part[32] = {};
    for (int t = 0; t < dim; ++t) part[t % 32] = std::fma(a[t], b[t], part[t % 32]);
    for (int o = 16; o > 0; o >>= 1) {
        float before[32];
        std::memcpy(before, part, sizeof part);
        for (int l = 0; l < 32; ++l) part[l] = before[l] + before[l ^ o];
    }
    return part[0];
}

// Mate lists in CSR form (every gallery row of the probe's label; itself
// excluded in the all-distinct pairing), as run.rs builds them.
struct Mates {
    std::vector<u64> ptr{0};
    std::vector<u32> idx;
};

// The genuine kernel over probe rows [p0, p0 + rows) against the whole
// gallery, in gallery blocks of `block` rows, as run.rs launches it.
static void genuine_pass(const std::vector<float>& probes, const std::vector<float>& gallery, int dim, int p0,
                         int rows, int ng, int block, const Mates& m, std::vector<float>& pair_score,
                         std::vector<float>& best) {
    for (int g0 = 0; g0 < ng; g0 += block) {
        const int cols = std::min(block, ng - g0);
        launch(2, 64, [&] {
            genuine(probes.data() + (size_t)p0 * dim, gallery.data() + (size_t)g0 * dim, dim, rows, g0, cols,
                    m.ptr.data() + p0, m.idx.data(), pair_score.data(), best.data() + p0);
        });
    }
}

enum Order { Random, Ascending };  // Ascending: later columns score higher

struct Config {
    const char* name;
    int rows, cols, block_rows, tile_cols, bins, win_lo, win_len;
    bool all_distinct;
    Order order;
    u64 want, tail_slack;
    unsigned grid;
    bool expect_redo;      // some tile must overflow its fused pass and be redone
    bool expect_overflow;  // the store too small for the ties: must be flagged
    int band_lo = 0, band_hi = 0;  // a score band of bins [band_lo, band_hi), if any
};

// The band of bins [lo, hi) as run.rs lays it out (ScoreBand::score_range
// in Rust): its highest and lowest score, the products within the margin
// of them, and its counters' first key.
static BandSpec band_spec(int lo_bin, int hi_bin, int bins, float margin) {
    const float half_bins = bins * 0.5f;
    auto inside = [&](float s) {
        const int b = score_bin(s, half_bins, bins);
        return b >= lo_bin && b < hi_bin;
    };
    auto edge = [&](int b) { return (float)(b * 2.0 / bins - 1.0); };
    float hi = edge(hi_bin), lo = edge(lo_bin);
    while (!inside(hi)) hi = std::nextafter(hi, -INFINITY);
    while (inside(std::nextafter(hi, INFINITY))) hi = std::nextafter(hi, INFINITY);
    while (!inside(lo)) lo = std::nextafter(lo, INFINITY);
    while (inside(std::nextafter(lo, -INFINITY))) lo = std::nextafter(lo, -INFINITY);
    return BandSpec{__fsub_rn(lo, margin), __fadd_rn(hi, margin), lo, hi, descending_key(hi), 0, 0};
}

static int failures = 0;
#define CHECK(cond, ...)                                     \
    do {                                                     \
        if (!(cond)) {                                       \
            if (failures++ < 10) {                           \
                std::printf("%s: ", c.name);                 \
                std::printf(__VA_ARGS__);                    \
                std::printf("\n");                           \
            }                                                \
        }                                                    \
    } while (0)

constexpr int DIM = 40;         // not a multiple of 32: some lanes sum one term
constexpr float MARGIN = 0.02f;  // above the score step of 1/64: products near each bar cross ties

// Rows of DIM values: most on a grid of 1/8 (exact sums, many ties), some
// random; every 5th repeats the one before. `Ascending` adds a weight on
// the last value that grows with the row, and a probe value that meets it.
static std::vector<float> make_rows(int n, std::mt19937& rng, Order order, bool probe) {
    std::uniform_int_distribution<int> q(-2, 2);
    std::uniform_real_distribution<float> u(-0.4f, 0.4f);
    std::vector<float> v((size_t)n * DIM);
    for (int i = 0; i < n; ++i) {
        float* row = v.data() + (size_t)i * DIM;
        if (i % 5 == 4) {
            std::memcpy(row, row - DIM, DIM * sizeof(float));
            continue;
        }
        const bool coarse = i % 3 != 0;
        for (int t = 0; t < DIM; ++t) row[t] = coarse ? q(rng) / 8.0f : u(rng);
        if (order == Ascending) row[DIM - 1] = probe ? 0.5f : 1.0f * i / n;
    }
    return v;
}

static void run(const Config& c, unsigned seed) {
    const int failures_before = failures;
    std::mt19937 rng(seed);
    const int R = c.rows, C = c.cols;
    const std::vector<float> P = make_rows(R, rng, c.order, true);
    const std::vector<float> G = c.all_distinct ? P : make_rows(C, rng, c.order, false);
    std::vector<u32> pl(R), gl(C + 4, 0xffffffffu);
    for (int i = 0; i < R; ++i) pl[i] = c.all_distinct ? i % 9 : i % 7;
    for (int j = 0; j < C; ++j) gl[j] = c.all_distinct ? j % 9 : j % 11;
    auto mate = [&](int i, int j) { return pl[i] == gl[j] && !(c.all_distinct && i == j); };

    // Decision scores, and products off them by up to 0.999 of the margin.
    std::vector<float> E((size_t)R * C), K((size_t)R * C);
    std::uniform_int_distribution<int> pick(0, 5);
    std::uniform_real_distribution<float> off(-0.999f, 0.999f);
    const float shifts[5] = {-0.999f, -0.5f, 0.0f, 0.5f, 0.999f};
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j) {
            const float e = ref_dot(&P[(size_t)i * DIM], &G[(size_t)j * DIM], DIM);
            const int p = pick(rng);
            E[(size_t)i * C + j] = e;
            K[(size_t)i * C + j] = e + MARGIN * (p < 5 ? shifts[p] : off(rng));
        }
    Mates m;
    for (int i = 0; i < R; ++i) {
        for (int j = 0; j < C; ++j)
            if (mate(i, j)) m.idx.push_back(j);
        m.ptr.push_back(m.idx.size());
    }

    const float half_bins = c.bins * 0.5f;
    std::vector<u64> hist(c.bins, 0), rank(R, 0);
    std::vector<float> top_s((size_t)R * TOPK + 1, -INFINITY), best(R, -INFINITY), pair_score(m.idx.size() + 1);
    std::vector<u32> top_j((size_t)R * TOPK + 1, 0xffffffffu);
    const u64 cap = c.want ? 3 * c.want + c.tail_slack : 0;
    const u64 high_water = c.want + (cap - c.want) / 2;
    std::vector<TailEntry> tail(cap + 1);
    TailState state{};
    u32 worst = 0;
    std::vector<BandSpec> bands;
    std::vector<u64> band_counts, moved_out(c.bins, 0), moved_in(c.bins, 0);
    if (c.band_hi > c.band_lo) {
        bands.push_back(band_spec(c.band_lo, c.band_hi, c.bins, MARGIN));
        band_counts.assign(descending_key(bands[0].lo) - bands[0].first + 1, 0);
    }

    int compactions = 0;
    const int ld = (c.tile_cols + 3) / 4 * 4;
    std::vector<float> tile((size_t)c.block_rows * ld);
    // All distinct pairs with no top-k: the triangle, every mate score first.
    const bool triangle = TOPK == 0 && c.all_distinct;
    for (int p0 = 0; triangle && p0 < R; p0 += c.block_rows)
        genuine_pass(P, G, DIM, p0, std::min(c.block_rows, R - p0), C, c.tile_cols, m, pair_score, best);
    for (int p0 = 0; p0 < R; p0 += c.block_rows) {
        const int rows = std::min(c.block_rows, R - p0);
        if (!triangle) genuine_pass(P, G, DIM, p0, rows, C, c.tile_cols, m, pair_score, best);
        for (int g0 = triangle ? p0 / c.tile_cols * c.tile_cols : 0; g0 < C; g0 += c.tile_cols) {
            const int cols = std::min(c.tile_cols, C - g0);
            for (int i = 0; i < rows; ++i)
                for (int j = 0; j < cols; ++j) tile[(size_t)i * ld + j] = K[(size_t)(p0 + i) * C + g0 + j];
            FoldParams f{};
            f.scores = tile.data();
            f.ld = ld;
            f.row0 = p0;
            f.col0 = g0;
            f.p32 = P.data() + (size_t)p0 * DIM;
            f.g32 = G.data() + (size_t)g0 * DIM;
            f.dim = DIM;
            f.plabel = pl.data() + p0;
            f.glabel = gl.data() + g0;
            f.mate_best = best.data() + p0;
            f.mate_all = best.data();
            f.rank_all = rank.data();
            f.triangle = triangle;
            f.hist = hist.data();
            f.top_s = top_s.data() + (size_t)p0 * TOPK;
            f.top_j = top_j.data() + (size_t)p0 * TOPK;
            f.rank_count = rank.data() + p0;
            f.tail_buf = tail.data();
            f.tail = &state;
            f.tail_cap = cap;
            f.worst = &worst;
            f.bands = bands.data();
            f.band_counts = band_counts.data();
            f.moved_out = moved_out.data();
            f.moved_in = moved_in.data();
            f.n_bands = (int)bands.size();
            f.margin = MARGIN;
            f.margin2 = 2 * MARGIN;
            f.half_bins = half_bins;
            f.rows = rows;
            f.cols = cols;
            f.bins = c.bins;
            f.win_lo = c.win_lo;
            f.win_len = c.win_len;
            f.all_distinct = c.all_distinct;
            auto fold = [&](int do_main, int do_tail, int redo_only) {
                FoldParams g = f;
                g.do_main = do_main;
                g.do_tail = do_tail;
                g.redo_only = redo_only;
                launch(c.grid, BLOCK, [&] { fold_tile(g); });
            };
            auto maintain = [&](int after_redo) {
                const u64 before = state.count;
                TailParams t{hist.data(), tail.data(), &state, c.want, cap, high_water, half_bins, 2 * MARGIN,
                             c.bins, after_redo};
                launch(1, TB, [&] { tail_maintain(t); });
                compactions += state.count < before && !state.redo;
            };
            if (c.want == 0) {
                fold(1, 0, 0);
            } else {
                fold(1, 1, 0);
                maintain(0);
                fold(0, 1, 1);
                maintain(1);
            }
        }
    }

    // Brute force on decision scores (products only for the histogram).
    std::vector<u64> want_hist(c.bins, 0), want_out(c.bins, 0), want_in(c.bins, 0);
    std::vector<u64> want_counts(band_counts.size(), 0);
    std::vector<TailEntry> impostors;
    for (int i = 0; i < R; ++i) {
        float want_best = -INFINITY;
        for (u64 e = m.ptr[i]; e < m.ptr[i + 1]; ++e) {
            const float s = E[(size_t)i * C + m.idx[e]];
            CHECK(pair_score[e] == s, "genuine score of row %d, column %u: %a, want %a", i, m.idx[e], pair_score[e], s);
            want_best = std::max(want_best, s);
        }
        CHECK(best[i] == want_best, "row %d mate score %g, want %g", i, best[i], want_best);
        u64 above = 0;
        std::vector<std::pair<float, u32>> cand;
        for (int j = 0; j < C; ++j) {
            const float s = E[(size_t)i * C + j], k = K[(size_t)i * C + j];
            const bool non_mate = pl[i] != gl[j];
            if (non_mate && (!c.all_distinct || j > i)) {
                want_hist[score_bin(k, half_bins, c.bins)]++;
                impostors.push_back(TailEntry{k, s, (u32)i, (u32)j});
                for (const BandSpec& b : bands) {
                    if (k >= b.reach_lo && k <= b.reach_hi) {
                        want_out[score_bin(k, half_bins, c.bins)]++;
                        want_in[score_bin(s, half_bins, c.bins)]++;
                    }
                    if (s >= b.lo && s <= b.hi) {
                        CHECK(k >= b.reach_lo && k <= b.reach_hi, "pair (%d, %d) in the band, its product not", i, j);
                        want_counts[descending_key(s) - b.first]++;
                    }
                }
            }
            if (non_mate && want_best != -INFINITY && s >= want_best) ++above;
            if (!(c.all_distinct && i == j)) cand.push_back({s, (u32)j});
        }
        CHECK(rank[i] == above, "row %d rank count %llu, want %llu", i, rank[i], above);
        std::sort(cand.begin(), cand.end(), [](auto a, auto b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
        for (int k = 0; k < TOPK; ++k) {
            const float ws = k < (int)cand.size() ? cand[k].first : -INFINITY;
            const u32 wj = k < (int)cand.size() ? cand[k].second : 0xffffffffu;
            CHECK(top_s[(size_t)i * TOPK + k] == ws && top_j[(size_t)i * TOPK + k] == wj,
                  "row %d top[%d] = (%g, %u), want (%g, %u)", i, k, top_s[(size_t)i * TOPK + k],
                  top_j[(size_t)i * TOPK + k], ws, wj);
        }
    }
    for (int b = 0; b < c.bins; ++b) CHECK(hist[b] == want_hist[b], "bin %d: %llu, want %llu", b, hist[b], want_hist[b]);
    if (!bands.empty()) {
        CHECK(moved_out == want_out && moved_in == want_in, "the band pairs' bins differ");
        CHECK(band_counts == want_counts, "the band's counters differ");
        u64 counted = 0;
        for (u64 n : want_counts) counted += n;
        CHECK(counted > 0, "no pair in the band: the case tests nothing");
    }
    CHECK(__uint_as_float(worst) <= MARGIN && worst > 0, "largest rescored gap %g", __uint_as_float(worst));
    CHECK(compactions > 0 || !std::strstr(c.name, "compaction"), "the store was never compacted");
    CHECK((state.redone > 0) == c.expect_redo, "%d tiles redone", state.redone);
    CHECK(state.count <= cap, "count %llu past the capacity %llu", state.count, cap);
    CHECK((state.overflow != 0) == c.expect_overflow, "tail store overflow %d (%llu for %llu)", state.overflow,
          state.count, cap);
    if (c.want && !state.overflow) {
        u64 above = 0;
        for (int b = state.bin; b < c.bins; ++b) above += want_hist[b];
        CHECK(state.above == above, "running count %llu, want %llu", state.above, above);
        // The store holds every pair with product + 2m >= X, X the want-th
        // highest product (those rescore::exact_tail takes), with its row
        // and column, and so the want highest decision scores.
        auto by_product = [](TailEntry a, TailEntry b) {
            return std::make_tuple(-a.product, -a.decision, a.row, a.col) <
                   std::make_tuple(-b.product, -b.decision, b.row, b.col);
        };
        std::vector<TailEntry> got(tail.begin(), tail.begin() + state.count);
        std::sort(got.begin(), got.end(), by_product);
        std::sort(impostors.begin(), impostors.end(), by_product);
        const float x = impostors.size() > c.want ? impostors[c.want - 1].product : -INFINITY;
        std::vector<TailEntry> near, kept;
        for (auto t : impostors)
            if (t.product + 2 * MARGIN >= x) near.push_back(t);
        std::set_intersection(got.begin(), got.end(), near.begin(), near.end(), std::back_inserter(kept), by_product);
        CHECK(kept.size() == near.size(), "the store holds %zu of the %zu pairs near the tail", kept.size(), near.size());
        auto top = [&](std::vector<TailEntry> v) {
            std::vector<float> s;
            for (auto t : v) s.push_back(t.decision);
            std::sort(s.begin(), s.end(), std::greater<float>());
            if (s.size() > c.want) s.resize(c.want);
            return s;
        };
        CHECK(top(got) == top(impostors), "the store's highest decision scores differ");
    }
    std::printf("%s (top-%d, %d threads a block): %s\n", c.name, TOPK, BLOCK,
                failures > failures_before ? "FAILED" : "ok");
}

// The genuine kernel's decision scores of every pair of the rows in
// `path` (n × dim floats), written to `out` row-major.
static int decision_scores(const char* path, int dim, const char* out) {
    FILE* f = std::fopen(path, "rb");
    if (!f) return 2;
    std::vector<float> rows;
    float v;
    while (std::fread(&v, sizeof v, 1, f) == 1) rows.push_back(v);
    std::fclose(f);
    const int n = (int)(rows.size() / dim);
    Mates m;
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) m.idx.push_back(j);
        m.ptr.push_back(m.idx.size());
    }
    std::vector<float> scores(m.idx.size()), best(n, -INFINITY);
    genuine_pass(rows, rows, dim, 0, n, n, n, m, scores, best);
    FILE* o = std::fopen(out, "wb");
    if (!o || std::fwrite(scores.data(), sizeof(float), scores.size(), o) != scores.size()) return 2;
    return std::fclose(o) == 0 ? 0 : 2;
}

int main(int argc, char** argv) {
    if (argc == 4) return decision_scores(argv[1], std::atoi(argv[2]), argv[3]);
    // name, rows, cols, probe block rows, tile cols, bins, window start, window length, all distinct, order,
    // tail wanted, tail slack, grid, redo expected, overflow expected. The slack (2^20 in the engine) is
    // sized here to hold the ties of one bin and the margin's band, except in the last case (8 bins). The
    // capacity, 3·want + slack, is below the impostors of a first tile wherever a redo is expected.
    run({"probe-gallery, window inside the bins", 37, 301, 37, 128, 64, 20, 24, false, Random, 150, 2048, 2, true, false}, 1);
    run({"probe-gallery, a score band", 37, 301, 37, 128, 64, 20, 24, false, Random, 150, 2048, 2, true, false, 40, 44}, 11);
    run({"probe-gallery, one tile, whole window", 20, 90, 20, 90, 1000, 0, 1000, false, Random, 0, 0, 1, false, false}, 2);
    run({"all-distinct, three tiles", 70, 70, 70, 32, 128, 40, 60, true, Random, 40, 64, 3, true, false}, 3);
    run({"all-distinct, probe blocks with a row offset", 70, 70, 24, 32, 128, 40, 60, true, Random, 40, 64, 3, true, false}, 7);
    run({"all-distinct, small blocks (the triangle without a top-k)", 96, 96, 16, 16, 128, 40, 60, true, Random, 50, 64, 2, true, false}, 10);
    run({"all-distinct, a score band", 96, 96, 16, 16, 128, 40, 60, true, Random, 50, 64, 2, true, false, 80, 84}, 12);
    run({"probe-gallery, probe blocks with a row offset", 45, 200, 16, 64, 256, 100, 80, false, Random, 60, 400, 2, true, false}, 8);
    run({"probe-gallery, tail beyond the pairs", 9, 40, 9, 16, 32, 0, 32, false, Random, 100000, 8, 1, false, false}, 4);
    run({"probe-gallery, many tiles, compaction", 16, 640, 16, 64, 4096, 1000, 2000, false, Random, 100, 200, 2, true, false}, 5);
    run({"probe-gallery, ascending scores, compaction", 16, 640, 16, 64, 4096, 1000, 2000, false, Ascending, 100, 200, 2, true, false}, 9);
    run({"probe-gallery, ties beyond the store", 37, 301, 37, 128, 8, 0, 8, false, Random, 150, 16, 2, true, true}, 6);
    return failures ? 1 : 0;
}
