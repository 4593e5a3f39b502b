#!/bin/bash
# VQAv2 test-dev (scripts/v1_5/eval/vqav2.sh): writes answers_upload/.../<CKPT>.json for EvalAI
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/vqav2.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked vqav2 "$@"
