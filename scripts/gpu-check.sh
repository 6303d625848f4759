#!/usr/bin/env bash
# The one command for a GPU machine (x86-64 Linux, NVIDIA driver, CUDA 13,
# PyTorch whose nvidia-* wheels hold libnvrtc and libcublas; no Rust, no
# network). One run answers what issue 17 asks of the first GPU:
#   * the GPU tests: the CUDA engine against brute force on its decision
#     scores (fp32, tf32, bf16, fp16: the same decisions, bit for bit), the
#     float64 definitions and the CPU engine (fp32 within 1e-5);
#   * the benchmarks, each precision after the first checked to make the
#     first's decisions at scale: the tail store's former overflow case
#     (10^6 × 512, all pairs, FMR 1e-5), the same with no top-k (the
#     triangle), top-k 64, and 10^12 comparisons in each precision; each
#     with cuBLAS alone over the same tiles, the overlap ratio (cuBLAS
#     alone over end to end) and peak GPU memory;
# and prints a short table. Sized for under 8 minutes on one H200. Stage
# it with scripts/build-gpu-check.sh, which puts this script next to the
# two executables it runs. Without a usable GPU it says so in one line and
# exits 1.
#
#   bash target/gpu-check/gpu-check.sh             # tests + benchmarks
#   BENCH_ARGS="--n 200000" bash .../gpu-check.sh  # smaller benchmarks
#
# Logs go to $OUT when it is set (the device tool's output folder), else to
# the staging folder.
set -uo pipefail
export RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0
here="$(cd "$(dirname "$0")" && pwd)"
logs="${OUT:-$here}"
mkdir -p "$logs"

# libnvrtc.so.13 and libcublas.so.13: PyTorch's nvidia-* wheels, then a
# CUDA toolkit. The loader reads LD_LIBRARY_PATH when a program starts.
dirs=""
for py in python3 /opt/torch/.venv/bin/python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    for sp in $("$py" -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null); do
        for d in "$sp"/nvidia/cu13/lib "$sp"/nvidia/cuda_nvrtc/lib "$sp"/nvidia/cublas/lib; do
            [ -d "$d" ] && dirs="$dirs:$d"
        done
    done
done
for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/lib64; do [ -d "$d" ] && dirs="$dirs:$d"; done
export LD_LIBRARY_PATH="${dirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    for lib in libnvrtc.so.13 libcublas.so.13 libcuda.so.1; do
        found=$(for d in ${LD_LIBRARY_PATH//:/ }; do ls "$d/$lib" 2>/dev/null; done | head -n 1)
        [ -z "$found" ] && found=$(ldconfig -p 2>/dev/null | grep -m1 "$lib" | sed 's/.*=> //')
        echo "$lib: ${found:-NOT FOUND}"
    done
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader 2>&1 | head -n 2
} >"$logs/machine.log"

# A small job first: no GPU, no driver or no library ends the run here, in
# one line.
if ! "$here/facekit-gpu-bench" --n 2000 --precision fp32 >"$logs/probe.md" 2>"$logs/probe.log"; then
    echo "gpu-check: the CUDA engine cannot run here: $(grep -v '^$' "$logs/probe.log" | tr '\n' ' ' | tr -s ' ' | sed 's/ $//')"
    exit 1
fi
cat "$logs/machine.log"

echo "== GPU tests (decisions vs brute force in every precision; CPU engine; ptxas figures)"
start=$(date +%s)
# A GPU or NVRTC test that skips here fails (tests/require).
FACEKIT_REQUIRE=gpu,nvrtc "$here/gpu-tests" --test-threads=1 --nocapture >"$logs/gpu-tests.log" 2>&1
tests_rc=$?
tests_s=$(( $(date +%s) - start ))
grep -E "agrees|same decisions|combine|SKIPPED|sampled error|panicked|^test |test result" "$logs/gpu-tests.log"

# Each benchmark: name, then its arguments. Sized to finish in under 8
# minutes on one H200 (the fp32 runs are the longest, about 20 s of
# products each for 10^12 scores at cuBLAS's fp32 rate).
benches=(
    "overflow-case|--n 1000000 --all-pairs --tail 5000000 --precision fp32,bf16"
    "triangle|--n 1000000 --all-pairs --top-k 0 --tail 5000000 --precision fp32,bf16"
    "top-k-64|--n 200000 --top-k 64 --precision fp32,bf16"
    "10^12|--n 1000000 --precision fp32,bf16,fp16,tf32 --repeats 3"
)
bench_rc=0
bench_rows=""
for b in "${benches[@]}"; do
    name="${b%%|*}"
    echo "== benchmark $name"
    start=$(date +%s)
    # shellcheck disable=SC2086 # the arguments are a word list on purpose
    "$here/facekit-gpu-bench" ${b#*|} ${BENCH_ARGS:-} >"$logs/bench-$name.md" 2>"$logs/bench-$name.log"
    rc=$?
    [ "$rc" = 0 ] || bench_rc=$rc
    cat "$logs/bench-$name.log"
    bench_rows="$bench_rows| benchmark $name | $rc | $(( $(date +%s) - start )) |
"
done

echo
echo "| step | exit | seconds |"
echo "|---|---|---|"
echo "| GPU tests | $tests_rc | $tests_s |"
printf "%s" "$bench_rows"
for b in "${benches[@]}"; do
    echo
    echo "### ${b%%|*}"
    cat "$logs/bench-${b%%|*}.md"
done
# "ratio" is cuBLAS alone over end to end: products and fold overlapping
# well bring it near 100%; "tail tiles redone" counts tiles whose tail
# pass overflowed the store and ran again; "margin" bounds |product −
# decision score| and "largest rescored gap" is the most seen; "decisions"
# compares each precision with the first (a difference fails the run).
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
