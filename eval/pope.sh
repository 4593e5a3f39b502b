#!/bin/bash
# POPE, mean F1 over adversarial/popular/random (scripts/v1_5/eval/pope.sh)
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/pope.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked pope "$@"
