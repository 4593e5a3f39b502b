"""Command-line / JSON arguments of ``piip-llava train``, as dataclasses parsed by ``HfArgumentParser``.

Names follow LLaVA-1.5's ``train.py`` where they exist (``--mm_projector_lr``,
``--group_by_modality_length``, ``--lora_enable`` ...) so its launch scripts translate line by line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A PIIP-LLaVA checkpoint to continue from (e.g. the stage-1 output for stage 2)."}
    )
    llm: str | None = field(default=None, metadata={"help": "Local HF causal-LM folder, for a new model (stage 1)."})
    architecture: str | None = field(default=None, metadata={"help": "Registered tower name (see `piip-llava architectures`)."})
    vision_config: str | None = field(default=None, metadata={"help": "JSON file with a custom tower: {'tower': {...}, 'projector_type': ...}."})
    vision_pretrained: list[str] = field(
        default_factory=list, metadata={"help": "Base weights per branch (local paths; '-' for random init), branch1 first."}
    )
    vision_tower_weights: str | None = field(
        default=None,
        metadata={"help": "A .safetensors file with the whole tower's state dict (e.g. a tower you pretrained yourself); "
                          "loaded after --vision_pretrained, every key checked."},
    )
    conversation_template: str | None = field(default=None, metadata={"help": "Default chat template stored in the model config."})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa | eager | flash_attention_2"})


@dataclass
class DataArguments:
    data_path: str = field(default=None, metadata={"help": "LLaVA-format .json or .jsonl."})
    image_folder: str | None = field(default=None, metadata={"help": "Folder the records' image paths are relative to."})
    template: str = field(default="vicuna_v1", metadata={"help": "plain (stage 1), vicuna_v1 / v1, llava_v1, chatml, llama_3."})
    image_aspect_ratio: str = field(default="pad", metadata={"help": "pad (finetune), square (pretrain: no padding), resize."})
    on_bad_sample: str = field(default="raise", metadata={"help": "raise | skip (skipped samples are counted and reported)."})


@dataclass
class PiipTrainingArguments(TrainingArguments):
    stage: str = field(default="finetune", metadata={"help": "pretrain (projector only) | finetune (LLM + projector + tower)."})
    vision_trainable: str | None = field(
        default=None,
        metadata={"help": "all | interactions (branches frozen) | none. Default: none in pretrain, all in finetune."},
    )
    freeze_llm: bool = field(default=False, metadata={"help": "finetune: keep the language model frozen."})
    freeze_interaction_gates: bool = field(default=False, metadata={"help": "Keep all interaction gates at zero (ablation)."})
    mm_projector_lr: float | None = field(default=None, metadata={"help": "Learning rate of the projector (default: --learning_rate)."})
    vision_tower_lr: float | None = field(default=None, metadata={"help": "Learning rate of the vision tower (default: --learning_rate)."})
    model_max_length: int = field(default=2048, metadata={"help": "Samples are cut to this many tokens (image tokens included)."})
    group_by_modality_length: bool = field(default=False, metadata={"help": "Batch image and text-only samples separately, by length."})
    lora_enable: bool = field(default=False, metadata={"help": "Train LoRA adapters on the LLM instead of its full weights."})
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        metadata={"help": "LLM module names that get adapters (the vision tower and projector never do)."},
    )
    bits: int = field(default=16, metadata={"help": "4 or 8 for QLoRA (needs a CUDA GPU and bitsandbytes)."})
