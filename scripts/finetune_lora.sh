#!/usr/bin/env bash
# Stage 2 with LoRA on the LLM (r 128, alpha 256): projector and vision tower still train in full,
# lr 2e-4 for the adapters and 2e-5 for the projector, as LLaVA-1.5's finetune_lora.sh.
# Merge afterwards: piip-llava merge-lora --adapter "$OUT" --output "${OUT}_merged"
set -euo pipefail
source "$(dirname "$0")/common.sh"

ARCH=${ARCH:-piip-llava_clip-bl_512-256_7B}
STAGE1=${STAGE1:-./checkpoints/${ARCH}_pretrain}
DATA=${DATA:-./playground/data/llava_v1_5_mix665k.json}
IMAGES=${IMAGES:-./playground/data}
OUT=${OUT:-./checkpoints/${ARCH}_finetune_lora}
PER_DEVICE=${PER_DEVICE:-16}
GRAD_ACC=${GRAD_ACC:-1}
BITS=${BITS:-16}   # 4 or 8 for QLoRA (CUDA + bitsandbytes)
global_batch_check 128 "$PER_DEVICE" "$GRAD_ACC"

launch \
    --deepspeed "$SCRIPT_DIR/zero3.json" \
    --stage finetune \
    --lora_enable True --lora_r 128 --lora_alpha 256 --bits "$BITS" \
    --mm_projector_lr 2e-5 \
    --model_name_or_path "$STAGE1" \
    --data_path "$DATA" --image_folder "$IMAGES" --template vicuna_v1 --image_aspect_ratio pad \
    --group_by_modality_length True \
    --bf16 True --tf32 True \
    --output_dir "$OUT" \
    --num_train_epochs 1 \
    --per_device_train_batch_size "$PER_DEVICE" --gradient_accumulation_steps "$GRAD_ACC" \
    --learning_rate 2e-4 --weight_decay 0. --warmup_steps 0.03 --lr_scheduler_type cosine \
    --model_max_length 2048 --gradient_checkpointing True \
    --save_strategy steps --save_steps 50000 --save_total_limit 1 \
    --logging_steps 1 --dataloader_num_workers 4 --report_to none "$@"
