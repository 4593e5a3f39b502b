#!/bin/bash
# Shared by eval/*.sh (sourced, not run). Mirrors LLaVA-1.5's scripts/v1_5/eval/*.sh:
#
#   MODEL=checkpoints/piip-llava_clip-bl_512-256_7B bash eval/textvqa.sh
#   CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 MODEL=... CKPT=my-run bash eval/gqa.sh --batch-size 16
#
# MODEL     checkpoint folder (required): ours, or an official PIIP-LLaVA / LLaVA-1.5 release.
# CKPT      name for answers files (default: LLaVA's rule, the folder name of MODEL).
# EVAL_ROOT LLaVA's data root (default ./playground/data/eval; see eval/README.md).
# Extra arguments are passed to every `piip-llava eval` call (e.g. --batch-size 16 --dtype bfloat16).
#
# With several GPUs in CUDA_VISIBLE_DEVICES the questions are split into one contiguous chunk per
# GPU (LLaVA's --num-chunks/--chunk-idx pattern), each chunk runs as its own process, and a final
# --score-only call merges the chunk files in question order and scores them. A failed or killed
# chunk resumes where it stopped when the script is run again.
set -euo pipefail

: "${MODEL:?set MODEL=/path/to/checkpoint}"
CKPT="${CKPT:-$(basename "${MODEL%/}")}"
EVAL_ROOT="${EVAL_ROOT:-./playground/data/eval}"
PIIP_LLAVA="${PIIP_LLAVA:-piip-llava}"

run_chunked() {
    local bench="$1"
    shift
    local gpu_list="${CUDA_VISIBLE_DEVICES:-0}"
    local -a gpus
    IFS=',' read -ra gpus <<< "$gpu_list"
    local chunks=${#gpus[@]}
    local -a common=(--model "$MODEL" --model-name "$CKPT" --eval-root "$EVAL_ROOT")

    if [ "$chunks" -le 1 ]; then
        $PIIP_LLAVA eval "$bench" "${common[@]}" "$@"
        return
    fi
    local -a pids=()
    local idx
    for idx in $(seq 0 $((chunks - 1))); do
        CUDA_VISIBLE_DEVICES="${gpus[$idx]}" $PIIP_LLAVA eval "$bench" "${common[@]}" \
            --num-chunks "$chunks" --chunk-idx "$idx" --no-progress "$@" &
        pids+=($!)
    done
    local failed=0 pid
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    if [ "$failed" -ne 0 ]; then
        echo "eval/$bench: a chunk failed; fix the error and rerun this script (finished answers are kept)." >&2
        return 1
    fi
    $PIIP_LLAVA eval "$bench" "${common[@]}" --num-chunks "$chunks" --score-only "$@"
}
