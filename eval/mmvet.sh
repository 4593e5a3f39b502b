#!/bin/bash
# MM-Vet (scripts/v1_5/eval/mmvet.sh): writes results/<CKPT>.json for the GPT-4 grader
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/mmvet.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked mmvet "$@"
