// Runs fold.cu and tail.cu under emu.h over a few tiles and probe blocks,
// the way the engine sequences them (src/compare/cuda/run.rs), and
// compares histogram, mate rank counts, top-k and impostor tail with a
// brute-force computation. Built and run by tests/kernel_emulation.rs with
// -DTOPK and -DBLOCK.
#include "emu.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "common.cuh"
u32 sh_hist[1 << 17];  // the fold's dynamic shared memory
#include "fold.emu.cu"
#include "tail.emu.cu"

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
};

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

static void run(const Config& c, unsigned seed) {
    const int failures_before = failures;
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> q(-64, 64);  // coarse scores (/ 128): many exact ties
    const int R = c.rows, C = c.cols;
    std::vector<float> S((size_t)R * C);
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j) {
            const int shift = c.order == Ascending ? j * 64 / C : 0;
            S[(size_t)i * C + j] = (q(rng) + shift) / 128.0f;
        }
    std::vector<u32> pl(R), gl(C + 4, 0xffffffffu);
    for (int i = 0; i < R; ++i) pl[i] = c.all_distinct ? i % 9 : i % 7;
    for (int j = 0; j < C; ++j) gl[j] = c.all_distinct ? j % 9 : j % 11;
    if (c.all_distinct)
        for (int i = 0; i < R; ++i) {
            S[(size_t)i * C + i] = 1.0f;
            for (int j = 0; j < i; ++j) S[(size_t)i * C + j] = S[(size_t)j * C + i];
        }
    auto mate = [&](int i, int j) { return pl[i] == gl[j] && !(c.all_distinct && i == j); };
    std::vector<float> best(R, -INFINITY);
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j)
            if (mate(i, j)) best[i] = std::max(best[i], S[(size_t)i * C + j]);

    const float half_bins = c.bins * 0.5f;
    std::vector<u64> hist(c.bins, 0), rank(R, 0);
    std::vector<float> top_s((size_t)R * TOPK + 1, -INFINITY);
    std::vector<u32> top_j((size_t)R * TOPK + 1, 0xffffffffu);
    const u64 cap = c.want ? 2 * c.want + c.tail_slack : 0;
    const u64 high_water = c.want + (cap - c.want) / 2;
    std::vector<float> tail(cap + 1);
    TailState state{};

    int compactions = 0;
    const int ld = (c.tile_cols + 3) / 4 * 4;
    std::vector<float> tile((size_t)c.block_rows * ld);
    for (int p0 = 0; p0 < R; p0 += c.block_rows) {
        const int rows = std::min(c.block_rows, R - p0);
        for (int g0 = 0; g0 < C; g0 += c.tile_cols) {
            const int cols = std::min(c.tile_cols, C - g0);
            for (int i = 0; i < rows; ++i)
                for (int j = 0; j < cols; ++j) tile[(size_t)i * ld + j] = S[(size_t)(p0 + i) * C + g0 + j];
            FoldParams f{};
            f.scores = tile.data();
            f.ld = ld;
            f.row0 = p0;
            f.col0 = g0;
            f.plabel = pl.data() + p0;
            f.glabel = gl.data() + g0;
            f.mate_best = best.data() + p0;
            f.hist = hist.data();
            f.top_s = top_s.data() + (size_t)p0 * TOPK;
            f.top_j = top_j.data() + (size_t)p0 * TOPK;
            f.rank_count = rank.data() + p0;
            f.tail_buf = tail.data();
            f.tail = &state;
            f.tail_cap = cap;
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
                TailParams t{hist.data(), tail.data(), &state, c.want, cap, high_water, half_bins, c.bins, after_redo, 0};
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

    // Brute force.
    std::vector<u64> want_hist(c.bins, 0);
    std::vector<float> want_tail;
    for (int i = 0; i < R; ++i) {
        u64 above = 0;
        std::vector<std::pair<float, u32>> cand;
        for (int j = 0; j < C; ++j) {
            const float s = S[(size_t)i * C + j];
            const bool non_mate = pl[i] != gl[j];
            if (non_mate && (!c.all_distinct || j > i)) {
                want_hist[score_bin(s, half_bins, c.bins)]++;
                want_tail.push_back(s);
            }
            if (non_mate && best[i] != -INFINITY && s >= best[i]) ++above;
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
    std::sort(want_tail.begin(), want_tail.end(), std::greater<float>());
    if (want_tail.size() > c.want) want_tail.resize(c.want);
    CHECK(compactions > 0 || !std::strstr(c.name, "compaction"), "the store was never compacted");
    CHECK((state.redone > 0) == c.expect_redo, "%d tiles redone", state.redone);
    CHECK(state.count <= cap, "count %llu past the capacity %llu", state.count, cap);
    CHECK((state.overflow != 0) == c.expect_overflow, "tail store overflow %d (%llu for %llu)", state.overflow,
          state.count, cap);
    if (c.want && !state.overflow) {
        u64 above = 0;
        for (int b = state.bin; b < c.bins; ++b) above += want_hist[b];
        CHECK(state.above == above, "running count %llu, want %llu", state.above, above);
        std::vector<float> got(tail.begin(), tail.begin() + state.count);
        std::sort(got.begin(), got.end(), std::greater<float>());
        if (got.size() > c.want) got.resize(c.want);
        CHECK(got == want_tail, "tail differs (%zu vs %zu scores)", got.size(), want_tail.size());
    }
    std::printf("%s (top-%d, %d threads a block): %s\n", c.name, TOPK, BLOCK,
                failures > failures_before ? "FAILED" : "ok");
}

int main() {
    // name, rows, cols, probe block rows, tile cols, bins, window start, window length, all distinct, order,
    // tail wanted, tail slack, grid, redo expected, overflow expected. Scores take 129 values, so bins hold
    // many ties; the slack (2^20 in the engine) is sized here to hold the ties of one bin, except in the
    // last case (8 bins). The capacity, 2·want + slack, is below the impostors of a first tile wherever a
    // redo is expected.
    run({"probe-gallery, window inside the bins", 37, 301, 37, 128, 64, 20, 24, false, Random, 150, 2048, 2, true, false}, 1);
    run({"probe-gallery, one tile, whole window", 20, 90, 20, 90, 1000, 0, 1000, false, Random, 0, 0, 1, false, false}, 2);
    run({"all-distinct, three tiles", 70, 70, 70, 32, 128, 40, 60, true, Random, 40, 64, 3, true, false}, 3);
    run({"all-distinct, probe blocks with a row offset", 70, 70, 24, 32, 128, 40, 60, true, Random, 40, 64, 3, true, false}, 7);
    run({"probe-gallery, probe blocks with a row offset", 45, 200, 16, 64, 256, 100, 80, false, Random, 60, 400, 2, true, false}, 8);
    run({"probe-gallery, tail beyond the pairs", 9, 40, 9, 16, 32, 0, 32, false, Random, 100000, 8, 1, false, false}, 4);
    run({"probe-gallery, many tiles, compaction", 16, 640, 16, 64, 4096, 1000, 2000, false, Random, 100, 200, 2, true, false}, 5);
    run({"probe-gallery, ascending scores, compaction", 16, 640, 8, 64, 4096, 1000, 2000, false, Ascending, 100, 200, 2, true, false}, 9);
    run({"probe-gallery, ties beyond the store", 37, 301, 37, 128, 8, 0, 8, false, Random, 150, 16, 2, true, true}, 6);
    return failures ? 1 : 0;
}
