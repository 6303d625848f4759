// Runs CUDA kernels of src/compare/cuda/kernels on the CPU, one std::thread
// per CUDA thread, warps in lockstep at every warp intrinsic, blocks one
// after another. It checks the kernels' logic (indexing, ballots, merges,
// scans) where no GPU is at hand; it says nothing of speed or of the GPU
// memory model. Only the intrinsics those kernels use are here.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
#undef INFINITY

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define asm(...) ((void)0)

struct Dim {
    unsigned x = 0, y = 0, z = 0;
};
struct float4 {
    float x, y, z, w;
};
struct uint4 {
    unsigned x, y, z, w;
};
struct float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }

inline Dim gridDim, blockDim;
inline thread_local Dim threadIdx, blockIdx;

// A warp's lanes post values to one of two slot rows, in turn: a lane can
// only write a row again after every lane has passed the barrier that
// follows the reads of it, so one barrier per exchange is enough.
struct Warp {
    std::barrier<> bar{32};
    uint64_t slot[2][32];
};
struct Block {
    std::barrier<> bar;
    std::vector<std::unique_ptr<Warp>> warps;
    explicit Block(int threads) : bar(threads) {
        for (int w = 0; w < threads / 32; ++w) warps.emplace_back(new Warp);
    }
};
inline thread_local Block* this_block;

inline int lane_id() { return threadIdx.x & 31; }
inline Warp& this_warp() { return *this_block->warps[threadIdx.x >> 5]; }

template <class T>
uint64_t to_bits(T v) {
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}
inline thread_local int exchange_row;  // this lane's next slot row
// Every lane posts a value, then reads lane `src`'s.
template <class T>
T exchange(T v, int src) {
    Warp& w = this_warp();
    uint64_t* row = w.slot[exchange_row ^= 1];
    row[lane_id()] = to_bits(v);
    w.bar.arrive_and_wait();
    return from_bits<T>(row[src]);
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int o) { return exchange(v, lane_id() ^ o); }
template <class T>
T __shfl_sync(unsigned, T v, int src) { return exchange(v, src); }
template <class T>
T __shfl_up_sync(unsigned, T v, int d) {
    T r = exchange(v, lane_id() >= d ? lane_id() - d : lane_id());
    return lane_id() >= d ? r : v;
}
inline unsigned __ballot_sync(unsigned, bool p) {
    Warp& w = this_warp();
    uint64_t* row = w.slot[exchange_row ^= 1];
    row[lane_id()] = p;
    w.bar.arrive_and_wait();
    unsigned m = 0;
    for (int l = 0; l < 32; ++l) m |= (row[l] ? 1u : 0u) << l;
    return m;
}
inline bool __any_sync(unsigned mask, bool p) { return __ballot_sync(mask, p) != 0; }
inline void __syncwarp() { this_warp().bar.arrive_and_wait(); }
inline void __syncthreads() { this_block->bar.arrive_and_wait(); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_add(v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return std::atomic_ref<unsigned long long>(*p).fetch_add(v);
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
    std::atomic_ref<unsigned> a(*p);
    unsigned old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {
    }
    return old;
}
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline unsigned __float_as_uint(float f) { return from_bits<unsigned>(to_bits(f)); }
inline float __int_as_float(int i) { return from_bits<float>((uint32_t)i); }
inline float __uint_as_float(unsigned i) { return from_bits<float>(i); }
using std::fmaxf;
using std::min;

// Runs `kernel` over a grid, blocks in turn, a thread per CUDA thread.
inline void launch(unsigned grid, unsigned threads, const std::function<void()>& kernel) {
    gridDim = {grid, 1, 1};
    blockDim = {threads, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        Block block((int)threads);
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < threads; ++t)
            pool.emplace_back([&, b, t] {
                blockIdx = {b, 0, 0};
                threadIdx = {t, 0, 0};
                this_block = &block;
                kernel();
            });
        for (auto& th : pool) th.join();
    }
}
