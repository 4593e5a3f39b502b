#!/bin/bash
# GQA testdev-balanced (scripts/v1_5/eval/gqa.sh): local accuracy + data/testdev_balanced_predictions.json
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/gqa.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked gqa "$@"
