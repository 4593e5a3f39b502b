#!/usr/bin/env bash
# One-GPU check (H100/H200): PIIP-LLaVA-7B (piip-llava_clip-bl_512-256_7B) next to the LLaVA-1.5-7B baseline
# (llava-v1.5-clip-l-336), random bf16 weights, synthetic data: stage-1 steps (projector only), stage-2 LoRA steps
# (gradient checkpointing), generation. Prints a table; writes $OUT/gpu_check.json when $OUT is set.
# Skips with a message (exit 0) when no CUDA device is visible. Sized to finish in < 6 minutes on an H100
# (estimate: not yet timed on a GPU; lower --batch-size / --steps if it does not).
#
#   bash scripts/gpu_check.sh                    # defaults
#   bash scripts/gpu_check.sh --batch-size 4     # any option of benchmarks/gpu_check.py
#   bash scripts/gpu_check.sh --tiny             # the logic on CPU in seconds
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    case " $* " in
        *" --tiny "*) ;;
        *) echo "gpu_check: skipped: no CUDA device visible (needs one H100/H200; 'bash scripts/gpu_check.sh --tiny' runs the logic on CPU)."
           exit 0 ;;
    esac
fi
exec "$PYTHON" "$ROOT/benchmarks/gpu_check.py" "$@"
