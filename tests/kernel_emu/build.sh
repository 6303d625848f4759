#!/usr/bin/env bash
# Builds fold_test for one TOPK/BLOCK into $3 (genuine.cu, fold.cu, tail.cu): the kernels' shared-memory
# declarations become C++ statics (blocks run one at a time); the tail
# kernel runs with 64 threads (TB) to keep the thread count down.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kernels="$here/../../src/compare/cuda/kernels"
out="$3"
mkdir -p "$out"
for k in fold tail genuine; do
    sed -e 's/extern __shared__/extern/' -e 's/__shared__/static/' "$kernels/$k.cu" >"$out/$k.emu.cu"
done
cp "$kernels/common.cuh" "$here/emu.h" "$here/fold_test.cpp" "$out/"
"${CXX:-c++}" -std=c++20 -O1 -pthread -ffp-contract=off -DTOPK="$1" -DBLOCK="$2" -DTB=64 -o "$out/fold_test" "$out/fold_test.cpp"
