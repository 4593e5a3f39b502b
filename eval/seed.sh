#!/bin/bash
# SEED-Bench image accuracy (scripts/v1_5/eval/seed.sh): local score + answers_upload/<CKPT>.jsonl
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/seed.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked seed "$@"
