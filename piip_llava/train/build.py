"""Assemble the model and tokenizer a training run starts from.

Either continue from a PIIP-LLaVA checkpoint (stage 2 from stage 1, or further finetuning), or build a
new model: a registered (or JSON-described) tower + projector on top of a local causal-LM folder, with
the ``<image>`` token added and each branch's base weights loaded from local paths.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ConfigError
from ..vision.registry import ArchitectureSpec, get_architecture
from ..vision.tower import VisionTowerConfig


def architecture_from_args(architecture: str | None, vision_config: str | None, llm_hidden_size: int) -> ArchitectureSpec:
    if bool(architecture) == bool(vision_config):
        raise ConfigError("a new model needs exactly one of --architecture NAME or --vision_config FILE.json.")
    if architecture:
        return get_architecture(architecture)
    path = Path(vision_config)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"--vision_config {path}: file not found.") from error
    except json.JSONDecodeError as error:
        raise ConfigError(f"--vision_config {path}: invalid JSON at line {error.lineno}: {error.msg}.") from error
    if "tower" not in data:
        raise ConfigError(f"--vision_config {path}: expected {{'tower': {{...}}, 'projector_type': ...}}.")
    return ArchitectureSpec(
        name=data.get("name", path.stem), tower=VisionTowerConfig.from_dict(data["tower"]),
        projector_type=data.get("projector_type", "piip_gn_mlp"), llm_hidden_size=llm_hidden_size, llm="custom",
        description=data.get("description", ""),
    )


def build_model(model_args, *, template: str | None, image_aspect_mode: str, dtype: torch.dtype | None = None,
                quantization=None):
    """Return ``(model, loaded_tokenizer)`` for training (``quantization``: a BitsAndBytesConfig for QLoRA)."""
    from transformers import AutoModelForCausalLM

    from ..data.tokenizer import load_tokenizer
    from ..model import PiipLlavaConfig, PiipLlavaForConditionalGeneration
    from ..model.checkpoints import load_base_weights, load_tower_weights

    if model_args.model_name_or_path:
        if model_args.llm or model_args.architecture or model_args.vision_config or model_args.vision_tower_weights:
            raise ConfigError("--model_name_or_path continues a checkpoint; do not also pass "
                              "--llm/--architecture/--vision_config/--vision_tower_weights.")
        extra = {"quantization_config": quantization, "dtype": dtype or torch.bfloat16} if quantization is not None else {"dtype": dtype}
        model = PiipLlavaForConditionalGeneration.from_pretrained(
            model_args.model_name_or_path, attn_implementation=model_args.attn_implementation, **extra
        )
        loaded = load_tokenizer(model_args.model_name_or_path)
        if loaded.image_token_id != model.config.image_token_id:
            raise ConfigError(
                f"{model_args.model_name_or_path}: tokenizer's <image> id {loaded.image_token_id} differs from the "
                f"model's {model.config.image_token_id}; the folder mixes files of different runs."
            )
        return model, loaded

    if not model_args.llm:
        raise ConfigError("pass --model_name_or_path (continue) or --llm PATH (new model).")
    loaded = load_tokenizer(model_args.llm)
    extra = {"quantization_config": quantization} if quantization is not None else {}
    language_model = AutoModelForCausalLM.from_pretrained(
        model_args.llm, attn_implementation=model_args.attn_implementation, dtype=dtype, **extra
    )
    language_model.resize_token_embeddings(loaded.vocab_size, mean_resizing=False)
    spec = architecture_from_args(model_args.architecture, model_args.vision_config, language_model.config.hidden_size)
    if model_args.vision_pretrained:
        if len(model_args.vision_pretrained) != len(spec.tower.branches):
            raise ConfigError(
                f"--vision_pretrained gives {len(model_args.vision_pretrained)} paths for {len(spec.tower.branches)} branches."
            )
        for branch, path in zip(spec.tower.branches, model_args.vision_pretrained):
            branch.pretrained = None if path == "-" else path
    config = PiipLlavaConfig.from_architecture(
        spec, language_model.config, image_token_id=loaded.image_token_id,
        conversation_template=model_args.conversation_template or template, image_aspect_mode=image_aspect_mode,
    )
    config._attn_implementation = model_args.attn_implementation
    model = PiipLlavaForConditionalGeneration(config, language_model=language_model)
    for line in load_base_weights(model.vision_tower):
        print(line)
    if model_args.vision_tower_weights:
        print(load_tower_weights(model.vision_tower, model_args.vision_tower_weights))
    if dtype is not None:
        model = model.to(dtype)
    eos = loaded.eos_token_id
    if eos is not None:
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = loaded.pad_token_id
    return model, loaded
