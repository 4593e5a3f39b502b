#!/usr/bin/env bash
# Stage 1 (feature alignment): projector only, `plain` template, LLaVA-558K captions, lr 1e-3,
# global batch 256, ZeRO-2, 1 epoch -- the official PIIP-LLaVA / LLaVA-1.5 recipe.
set -euo pipefail
source "$(dirname "$0")/common.sh"

ARCH=${ARCH:-piip-llava_clip-bl_512-256_7B}
LLM=${LLM:-./checkpoints/vicuna-7b-v1.5}                      # local HF folder
VISION_PRETRAINED=${VISION_PRETRAINED:-"./checkpoints/clip-vit-large-patch14to16-224 ./checkpoints/clip-vit-base-patch16"}
DATA=${DATA:-./playground/data/LLaVA-Pretrain/blip_laion_cc_sbu_558k.json}
IMAGES=${IMAGES:-./playground/data/LLaVA-Pretrain/images}
OUT=${OUT:-./checkpoints/${ARCH}_pretrain}
PER_DEVICE=${PER_DEVICE:-32}
GRAD_ACC=${GRAD_ACC:-1}
global_batch_check 256 "$PER_DEVICE" "$GRAD_ACC"

launch \
    --deepspeed "$SCRIPT_DIR/zero2.json" \
    --stage pretrain \
    --llm "$LLM" --architecture "$ARCH" --vision_pretrained $VISION_PRETRAINED \
    --conversation_template vicuna_v1 \
    --data_path "$DATA" --image_folder "$IMAGES" --template plain --image_aspect_ratio square \
    --bf16 True --tf32 True \
    --output_dir "$OUT" \
    --num_train_epochs 1 \
    --per_device_train_batch_size "$PER_DEVICE" --gradient_accumulation_steps "$GRAD_ACC" \
    --learning_rate 1e-3 --weight_decay 0. --warmup_steps 0.03 --lr_scheduler_type cosine \
    --model_max_length 2048 --gradient_checkpointing True \
    --save_strategy steps --save_steps 24000 --save_total_limit 1 \
    --logging_steps 1 --dataloader_num_workers 4 --report_to none "$@"
