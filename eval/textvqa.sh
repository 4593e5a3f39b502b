#!/bin/bash
# TextVQA val (scripts/v1_5/eval/textvqa.sh). BENCH=textvqa_no_ocr runs it without the OCR-token line.
# Usage: MODEL=/path/to/checkpoint [CKPT=name] [CUDA_VISIBLE_DEVICES=0,1,...] bash eval/textvqa.sh [piip-llava eval options]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

run_chunked "${BENCH:-textvqa}" "$@"
