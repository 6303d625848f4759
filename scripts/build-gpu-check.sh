#!/usr/bin/env bash
# Builds, here, what scripts/gpu-check.sh runs on a GPU machine: the GPU
# test executable (tests/gpu.rs) and the benchmark (facekit-gpu-bench),
# release and stripped, and stages them with gpu-check.sh in one folder
# (default target/gpu-check, ignored by git) to carry to that machine:
#
#   scripts/build-gpu-check.sh
#   device run: carry ["target/gpu-check"], command "bash target/gpu-check/gpu-check.sh"
set -euo pipefail
cd "$(dirname "$0")/.."
stage="${1:-target/gpu-check}"
mkdir -p "$stage"

cargo build --release --features gpu-bench --bin facekit-gpu-bench
tests=$(cargo test --release --test gpu --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])')
[ -n "$tests" ] || { echo "build-gpu-check: no test executable for tests/gpu.rs" >&2; exit 1; }

cp "${CARGO_TARGET_DIR:-target}/release/facekit-gpu-bench" "$stage/facekit-gpu-bench"
cp "$tests" "$stage/gpu-tests"
cp scripts/gpu-check.sh "$stage/gpu-check.sh"
command -v strip >/dev/null && strip "$stage/facekit-gpu-bench" "$stage/gpu-tests"
chmod +x "$stage"/*
du -b "$stage"/* | awk '{ printf "%8.1f MiB  %s\n", $1 / 1048576, $2; total += $1 } END { printf "%8.1f MiB  in all\n", total / 1048576 }'
