#!/bin/bash
# MMBench-CN dev (scripts/v1_5/eval/mmbench_cn.sh): local score + answers_upload/*.xlsx
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/mmbench_cn.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked mmbench_cn "$@"
