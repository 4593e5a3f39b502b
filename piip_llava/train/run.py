"""One training run (either stage): build, apply the stage policy, train, save, report.

Used by ``piip-llava train`` (and so by ``scripts/*.sh`` under torchrun / deepspeed) and by the
quickstart. The output directory is a normal checkpoint that ``chat``, ``demo``, ``eval`` and a
following ``train`` accept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError


@dataclass
class TrainResult:
    output_dir: str
    log_history: list[dict]
    trainable: dict[str, int]
    data_report: dict
    train_runtime: float


def _peft_wrap(model, args):
    from peft import LoraConfig, get_peft_model

    trainable_modules = [name for name in ("projector", "vision_tower") if any(p.requires_grad for p in getattr(model, name).parameters())]
    targets = "|".join(args.lora_target_modules)
    config = LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, bias="none", task_type="CAUSAL_LM",
        # Adapters go on the language model only; tower and projector train in full (as LLaVA does).
        target_modules=rf"language_model\..*\.({targets})",
        modules_to_save=trainable_modules,
    )
    return get_peft_model(model, config)


def _quantization(args):
    if args.bits not in (4, 8, 16):
        raise ConfigError(f"--bits must be 4, 8 or 16, got {args.bits}.")
    if args.bits == 16:
        return None
    if not torch.cuda.is_available():
        raise ConfigError("--bits 4/8 (QLoRA) needs a CUDA GPU and bitsandbytes; use --bits 16 (LoRA) on this machine.")
    if not args.lora_enable:
        raise ConfigError("--bits 4/8 quantises the frozen LLM and only makes sense with --lora_enable.")
    from transformers import BitsAndBytesConfig

    # Only the LLM is quantised: the tower, projector and output head stay in 16 bit and train in full.
    return BitsAndBytesConfig(load_in_4bit=args.bits == 4, load_in_8bit=args.bits == 8, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True,
                              llm_int8_skip_modules=["vision_tower", "projector", "lm_head"])


def train(model_args, data_args, training_args, callbacks=()) -> TrainResult:
    from transformers.trainer_utils import get_last_checkpoint

    from ..data import DataCollatorForSupervisedDataset, LazySupervisedDataset, SupervisedDataConfig
    from .build import build_model
    from .policies import TrainablePolicy, apply_policy
    from .trainer import PiipTrainer

    if data_args.data_path is None:
        raise ConfigError("--data_path is required.")
    # Checked before the (possibly 7B) model is loaded, so a typo fails in seconds with one line.
    if not os.path.isfile(data_args.data_path):
        raise ConfigError(f"--data_path {data_args.data_path}: file not found.")
    if data_args.image_folder is not None and not os.path.isdir(data_args.image_folder):
        raise ConfigError(f"--image_folder {data_args.image_folder}: folder not found.")
    resume = training_args.resume_from_checkpoint
    if resume in ("last", "true", "True"):
        resume = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if resume is None:
            raise ConfigError(f"--resume_from_checkpoint {training_args.resume_from_checkpoint}: no checkpoint-* folder in {training_args.output_dir}.")
    elif resume is not None and not os.path.isdir(resume):
        raise ConfigError(f"--resume_from_checkpoint {resume}: folder not found.")
    quantization = _quantization(training_args)
    if training_args.deepspeed and training_args.use_cpu and training_args.world_size > 1:
        # On GPUs accelerate sets up deepspeed.comm while parsing the arguments; its CPU path only starts
        # torch.distributed, and ZeRO-3's zero.Init (inside from_pretrained, before the Trainer exists)
        # would then see a world of 1. Wrap the existing process group (CPU / CI runs only).
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    policy = TrainablePolicy(
        stage=training_args.stage, vision_trainable=training_args.vision_trainable,
        train_llm=not (training_args.freeze_llm or training_args.lora_enable),
        freeze_interaction_gates=training_args.freeze_interaction_gates,
    )
    model, loaded = build_model(model_args, template=data_args.template, image_aspect_mode=data_args.image_aspect_ratio,
                                quantization=quantization)
    trainable = apply_policy(model, policy)
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=training_args.gradient_checkpointing)
        apply_policy(model, policy)  # prepare_model_for_kbit_training freezes everything
    if training_args.lora_enable:
        if model_args.model_name_or_path and os.path.isdir(model_args.model_name_or_path):
            # peft records this as the adapter's base_model_name_or_path (merge-lora reads it): make it absolute.
            model.name_or_path = os.path.abspath(model_args.model_name_or_path)
        model = _peft_wrap(model, training_args)
    if training_args.gradient_checkpointing:
        training_args.gradient_checkpointing_kwargs = training_args.gradient_checkpointing_kwargs or {"use_reentrant": False}
    base = model.get_base_model() if training_args.lora_enable else model
    data_config = SupervisedDataConfig(
        data_path=data_args.data_path, template=data_args.template, num_image_tokens=base.num_image_tokens,
        max_length=training_args.model_max_length, image_folder=data_args.image_folder,
        image_aspect_mode=data_args.image_aspect_ratio, on_bad_sample=data_args.on_bad_sample,
        skip_log_path=os.path.join(training_args.output_dir, f"skipped.rank{training_args.process_index}.jsonl")
        if data_args.on_bad_sample == "skip" else None,
    )
    try:
        dataset = LazySupervisedDataset(data_config, loaded, base.image_processor())
    except (OSError, ValueError) as error:  # unreadable file, no usable record, missing image folder ...
        raise ConfigError(f"--data_path {data_args.data_path}: {error}") from error
    collator = DataCollatorForSupervisedDataset(
        pad_token_id=loaded.pad_token_id, max_length=training_args.model_max_length, image_token_id=loaded.image_token_id,
        image_size=base.config.tower_config.image_size,
    )
    trainer = PiipTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator, callbacks=list(callbacks))
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    report = dataset.report
    if trainer.is_world_process_zero():
        loaded.save_pretrained(training_args.output_dir)
        Path(training_args.output_dir, "data_report.json").write_text(json.dumps(report.to_dict(), indent=2))
        if report.num_skipped:
            print(report.format())
    return TrainResult(training_args.output_dir, trainer.state.log_history, trainable, report.to_dict(), result.metrics.get("train_runtime", 0.0))
