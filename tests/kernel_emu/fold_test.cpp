// Runs fold.cu and tail.cu under emu.h over a few tiles, the way the engine
// sequences them (src/compare/cuda/mod.rs), and compares histogram, mate
// rank counts, top-k and impostor tail with a brute-force computation.
// Built and run by tests/kernel_emulation.rs with -DTOPK and -DBLOCK.
#include "emu.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "common.cuh"
u32 smem[1 << 17];
#include "fold.emu.cu"
#include "tail.emu.cu"

struct Config {
    const char* name;
    int rows, cols, tile_cols, bins, win_lo, win_len;
    bool all_distinct;
    u64 want, tail_slack;
    unsigned grid;
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
    std::uniform_int_distribution<int> q(-64, 64);  // coarse scores: many exact ties
    const int R = c.rows, C = c.cols;
    std::vector<float> S((size_t)R * C);
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j) S[(size_t)i * C + j] = q(rng) / 64.0f;
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
    int tail_bin = 0, overflow = 0;
    u64 count = 0;

    int compactions = 0;
    const int ld = (c.tile_cols + 3) / 4 * 4;
    std::vector<float> tile((size_t)R * ld);
    for (int g0 = 0, t = 0; g0 < C; g0 += c.tile_cols, ++t) {
        const int cols = std::min(c.tile_cols, C - g0);
        for (int i = 0; i < R; ++i)
            for (int j = 0; j < cols; ++j) tile[(size_t)i * ld + j] = S[(size_t)i * C + g0 + j];
        auto fold = [&](int do_main, int do_tail) {
            launch(c.grid, BLOCK, [&] {
                fold_tile(tile.data(), R, cols, ld, 0, g0, pl.data(), gl.data() + g0, c.all_distinct,
                          best.data(), do_main, hist.data(), c.bins, half_bins, c.win_lo,
                          do_main ? c.win_len : 0, top_s.data(), top_j.data(), rank.data(), do_tail, &tail_bin,
                          tail.data(), cap, &count);
            });
        };
        auto maintain = [&] {
            const u64 before = count;
            launch(1, TB, [&] {
                tail_maintain(hist.data(), c.bins, half_bins, c.want, &tail_bin, tail.data(), cap, &count,
                              high_water, &overflow);
            });
            compactions += count < before;
        };
        if (c.want == 0) {
            fold(1, 0);
        } else if (t == 0) {
            fold(1, 0);
            maintain();
            fold(0, 1);
        } else {
            fold(1, 1);
            maintain();
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
    const bool overflowed = overflow || count > cap;
    CHECK(overflowed == c.expect_overflow, "tail store overflow %d (%llu for %llu)", overflowed, count, cap);
    if (!overflowed) {
        std::vector<float> got(tail.begin(), tail.begin() + count);
        std::sort(got.begin(), got.end(), std::greater<float>());
        if (got.size() > c.want) got.resize(c.want);
        CHECK(got == want_tail, "tail differs (%zu vs %zu scores)", got.size(), want_tail.size());
    }
    std::printf("%s (top-%d, %d threads a block): %s\n", c.name, TOPK, BLOCK,
                failures > failures_before ? "FAILED" : "ok");
}

int main() {
    // name, rows, cols, tile cols, bins, window start, window length, all distinct, tail wanted, tail slack,
    // grid, overflow expected. Scores take 129 values, so bins hold many ties; the slack (2^20 in the
    // engine) is sized here to hold them, except in the last case.
    run({"probe-gallery, window inside the bins", 37, 301, 128, 64, 20, 24, false, 150, 2048, 2, false}, 1);
    run({"probe-gallery, one tile, whole window", 20, 90, 90, 1000, 0, 1000, false, 0, 0, 1, false}, 2);
    run({"all-distinct, three tiles", 70, 70, 32, 128, 40, 60, true, 40, 512, 3, false}, 3);
    run({"probe-gallery, tail beyond the pairs", 9, 40, 16, 32, 0, 32, false, 100000, 8, 1, false}, 4);
    run({"probe-gallery, many tiles, compaction", 16, 640, 64, 4096, 1000, 2000, false, 100, 200, 2, false}, 5);
    run({"probe-gallery, ties beyond the store", 37, 301, 128, 64, 20, 24, false, 150, 16, 2, true}, 6);
    return failures ? 1 : 0;
}
