#!/usr/bin/env bash
# The one command for a GPU machine (x86-64 Linux, NVIDIA driver, CUDA 13,
# PyTorch whose nvidia-* wheels hold libnvrtc and libcublas; no Rust, no
# network). Runs the prebuilt GPU tests (CUDA engine against brute force
# and the CPU engine), then the benchmarks: the tail store's former
# overflow case (10^6 × 512, all pairs, FMR 1e-5), top-k 64, and 10^12
# comparisons in each precision, each with cuBLAS alone, the overlap ratio
# and peak GPU memory; and prints a short table. Stage it with scripts/build-gpu-check.sh, which puts this
# script next to the two executables it runs.
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
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
for lib in libnvrtc.so.13 libcublas.so.13 libcuda.so.1; do
    found=$(for d in ${LD_LIBRARY_PATH//:/ }; do ls "$d/$lib" 2>/dev/null; done | head -n 1)
    [ -z "$found" ] && found=$(ldconfig -p 2>/dev/null | grep -m1 "$lib" | sed 's/.*=> //')
    echo "$lib: ${found:-NOT FOUND}"
done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader 2>&1 | head -n 2

echo "== GPU tests (CUDA engine vs brute force and vs CPU engine)"
start=$(date +%s)
"$here/gpu-tests" --test-threads=1 --nocapture >"$logs/gpu-tests.log" 2>&1
tests_rc=$?
tests_s=$(( $(date +%s) - start ))
grep -E "agrees|skipped|sampled error|panicked|^test |test result" "$logs/gpu-tests.log"

# Each benchmark: name, then its arguments. Sized to finish in under 8
# minutes on one H200 (the fp32 10^12 run is the longest, about 20 s of
# products at cuBLAS's fp32 rate).
benches=(
    "overflow-case|--n 1000000 --all-pairs --tail 5000000 --precision bf16"
    "top-k-64|--n 200000 --top-k 64 --precision fp32,bf16"
    "10^12|--n 1000000 --precision bf16,fp16,tf32,fp32 --repeats 3"
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
# pass overflowed the store and ran again.
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
