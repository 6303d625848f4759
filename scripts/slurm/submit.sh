#!/usr/bin/env bash
# Submits the whole chain to Slurm, each step waiting for the one before
# (--dependency=afterok; a failed step cancels the rest):
#
#   embed (array of N) -> merge -> evaluate (array of N) -> merge -> report
#
#   MODEL=r50.onnx INPUTS="kface112/eval" WORK=/shared/run1 N=4 scripts/slurm/submit.sh
#
# Environment:
#   MODEL           the ONNX model (required)
#   INPUTS          what embed reads, space-separated (required)
#   WORK            a folder every node sees (required); the chain writes
#                   parts/, emb/, eval/, report/ and logs/ there
#   N               tasks per array (default 4)
#   FACEKIT         the facekit binary (default: facekit on PATH)
#   EMBED_FLAGS     more embed flags, e.g. "--flip"
#   EVALUATE_FLAGS  more evaluate flags, e.g. "--group-by camera"; for a
#                   gallery too large for one task, "--protocol probe-gallery
#                   --gallery-blocks G" with N a multiple of G (each task
#                   holds 1/G of the gallery)
#   STEPS           "embed" stops after the embeddings merge (default: all)
#   SBATCH_FLAGS    more sbatch flags for every step, e.g. "--partition=gpu"
#   WAIT=1          block until the last step ends; fail unless every job completed
#
# Prints the job ids, one per line, last step last.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${MODEL:?MODEL: the ONNX model}" "${INPUTS:?INPUTS: what to embed}" "${WORK:?WORK: a shared folder}"
export MODEL INPUTS WORK
export N="${N:-4}" FACEKIT="${FACEKIT:-facekit}"
export EMBED_FLAGS="${EMBED_FLAGS:-}" EVALUATE_FLAGS="${EVALUATE_FLAGS:-}"
steps="${STEPS:-all}"
mkdir -p "$WORK/logs" "$WORK/parts"

# shellcheck disable=SC2086 # SBATCH_FLAGS is a list
common=(--parsable --chdir="$WORK" --kill-on-invalid-dep=yes ${SBATCH_FLAGS:-})
array=(--array="0-$((N - 1))" --output="$WORK/logs/%x-%A_%a.out")
single=(--output="$WORK/logs/%x-%j.out")

submit() {
    local job
    job="$(sbatch "${common[@]}" "$@")"
    echo "${job%%;*}"
}

# Whether every job of the chain completed: `sbatch --wait` returns 0 for
# a job that Slurm cancelled because a step before it failed.
check() {
    local bad=0 job states
    for job in "$@"; do
        states="$(scontrol -o show job "$job" | grep -o 'JobState=[A-Z_]*' | sort -u | tr '\n' ' ')"
        if [ "$states" != "JobState=COMPLETED " ]; then
            echo "submit: job $job ended ${states% } (logs in $WORK/logs)" >&2
            bad=1
        fi
    done
    return "$bad"
}

jobs=()
jobs+=("$(submit "${array[@]}" "$here/embed.sbatch")")
if [ "$steps" != embed ]; then
    jobs+=("$(submit "${single[@]}" --dependency="afterok:${jobs[-1]}" \
        --export=ALL,KIND=emb,OUT=emb "$here/merge.sbatch")")
    jobs+=("$(submit "${array[@]}" --dependency="afterok:${jobs[-1]}" "$here/evaluate.sbatch")")
    jobs+=("$(submit "${single[@]}" --dependency="afterok:${jobs[-1]}" \
        --export=ALL,KIND=eval,OUT=eval "$here/merge.sbatch")")
    last=("$here/report.sbatch")
else
    last=(--export=ALL,KIND=emb,OUT=emb "$here/merge.sbatch")
fi
if [ "${WAIT:-0}" = 1 ]; then
    printf '%s\n' "${jobs[@]}"
    # The last step's exit status is checked below, with the others'.
    job="$(sbatch "${common[@]}" "${single[@]}" --dependency="afterok:${jobs[-1]}" --wait "${last[@]}" || true)"
    jobs+=("${job%%;*}")
    echo "${jobs[-1]}"
    check "${jobs[@]}"
else
    jobs+=("$(submit "${single[@]}" --dependency="afterok:${jobs[-1]}" "${last[@]}")")
    printf '%s\n' "${jobs[@]}"
fi
