#!/bin/bash
# MME perception / cognition (scripts/v1_5/eval/mme.sh): local score + eval_tool/answers/<CKPT>/
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/mme.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked mme "$@"
