#!/bin/bash
# VizWiz test (scripts/v1_5/eval/vizwiz.sh): writes answers_upload/<CKPT>.json for EvalAI
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/vizwiz.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked vizwiz "$@"
