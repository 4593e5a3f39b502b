#!/bin/bash
# ScienceQA-IMG test (scripts/v1_5/eval/sqa.sh)
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/sqa.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked scienceqa "$@"
