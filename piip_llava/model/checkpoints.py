"""Checkpoint I/O: our own format, official PIIP-LLaVA / LLaVA-1.5 releases, and base weights.

* **Ours**: ``save_pretrained`` output (``config.json`` with ``model_type: piip_llava``, safetensors,
  tokenizer). Loaded by ``from_pretrained`` or :func:`load_pretrained_model`.
* **Official releases** (``model_type`` ``llava_llama`` for PIIP-LLaVA, ``llava`` for LLaVA-1.5): the
  architecture is rebuilt from the registry by the name in ``mm_vision_tower`` (a ``configs/<name>.py``
  path for PIIP) and the keys are mapped -- no base weights, no network.
* **Base weights** for training from scratch: HF CLIP folders, timm and open_clip checkpoint files,
  given as local paths in each branch's ``pretrained`` field.

The format is decided by ``config.json``'s ``model_type`` field, never by a folder name. Every key
mismatch is reported in full (missing, unexpected, wrong shape) instead of being skipped.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ..constants import IMAGE_PLACEHOLDER
from ..errors import PiipLlavaError

OFFICIAL_MODEL_TYPES = ("llava_llama", "llava")
_LAYER_SCALE = re.compile(r"(convnext_model\.stages\.\d+\.blocks\.\d+)\.weight$")
_LAYER_SCALE_OURS = re.compile(r"(convnext_model\.stages\.\d+\.blocks\.\d+)\.gamma$")


class CheckpointError(PiipLlavaError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the architecture; the message says how."""


# ------------------------------------------------------------------------------------- file reading


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as error:
        raise CheckpointError(f"{path}: not found. Is this a model directory?") from error
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}.") from error


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a directory. Pass the folder that holds config.json and the weights.")
    return _read_json(directory / "config.json")


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path}: weight file listed by the checkpoint is missing (incomplete download?).")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch raise several unrelated types for corrupt files
        raise CheckpointError(f"{path}: cannot be read as a weight file ({type(error).__name__}: {error}).") from error
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}.")
    return state


def load_weight_files(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a directory: ``model.safetensors``, a sharded index, or ``pytorch_model*.bin``."""
    directory = Path(directory)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (directory / index_name).exists():
            index = _read_json(directory / index_name)
            if "weight_map" not in index:
                raise CheckpointError(f"{directory / index_name}: no 'weight_map' entry.")
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(index["weight_map"].values())):
                state.update(_load_file(directory / shard))
            missing = sorted(set(index["weight_map"]) - set(state))
            if missing:
                raise CheckpointError(f"{directory}: {len(missing)} tensors named in {index_name} are absent from the shards: {_preview(missing)}.")
            return state
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).exists():
            return _load_file(directory / name)
    raise CheckpointError(
        f"{directory}: no weights found (looked for model.safetensors[.index.json] and pytorch_model.bin[.index.json])."
    )


def _preview(keys: Iterable[str], limit: int = 12) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


# ------------------------------------------------------------------------------------- key mapping


def official_to_ours(key: str, model_type: str) -> str | None:
    """Map an official (LLaVA-layout) key to our module names; ``None`` for keys we do not keep."""
    if key.startswith("model.vision_tower.vision_tower."):
        rest = key[len("model.vision_tower.vision_tower.") :]
        if model_type == "llava":  # LLaVA-1.5: a whole HF CLIPVisionModel
            if not rest.startswith("vision_model."):
                return None
            rest = "branch1.clip_model." + rest[len("vision_model.") :]
        if rest.endswith("embeddings.position_ids"):
            return None
        return "vision_tower." + _LAYER_SCALE.sub(r"\1.gamma", rest)
    if key.startswith("model.mm_projector."):
        return "projector." + key[len("model.mm_projector.") :]
    if key.startswith("model."):
        return "language_model." + key
    if key.startswith("lm_head."):
        return "language_model." + key
    return None


def ours_to_official(key: str, model_type: str = "llava_llama") -> str:
    """Inverse of :func:`official_to_ours` (used to write official-layout test checkpoints and exports)."""
    if key.startswith("vision_tower."):
        rest = _LAYER_SCALE_OURS.sub(r"\1.weight", key[len("vision_tower.") :])
        if model_type == "llava":
            rest = "vision_model." + rest[len("branch1.clip_model.") :]
        return "model.vision_tower.vision_tower." + rest
    if key.startswith("projector."):
        return "model.mm_projector." + key[len("projector.") :]
    if key.startswith("language_model."):
        return key[len("language_model.") :]
    raise KeyError(key)


@dataclass
class KeyReport:
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, source: str) -> str:
        lines = [f"{source} does not fit the architecture:"]
        if self.missing:
            lines.append(f"  missing ({len(self.missing)}): {_preview(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected ({len(self.unexpected)}): {_preview(self.unexpected)}")
        if self.mismatched:
            lines.append(
                f"  wrong shape ({len(self.mismatched)}): "
                + _preview(f"{k} checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.mismatched)
            )
        lines.append("  Check that the checkpoint and the architecture name (mm_vision_tower / --arch) belong together.")
        return "\n".join(lines)


def compare_keys(model_state: Mapping[str, Any], checkpoint: Mapping[str, torch.Tensor], ignore_missing: Iterable[str] = ()) -> KeyReport:
    ignore = tuple(ignore_missing)
    missing = sorted(k for k in model_state if k not in checkpoint and not k.startswith(ignore))
    unexpected = sorted(k for k in checkpoint if k not in model_state)
    mismatched = sorted(
        (k, tuple(checkpoint[k].shape), tuple(model_state[k].shape))
        for k in checkpoint
        if k in model_state and tuple(checkpoint[k].shape) != tuple(model_state[k].shape)
    )
    return KeyReport(missing, unexpected, mismatched)


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, ignore_missing: Iterable[str] = ()) -> None:
    """``load_state_dict`` that refuses any missing, unexpected or mis-shaped key, listing them."""
    report = compare_keys(module.state_dict(), state, ignore_missing)
    if not report.ok:
        raise CheckpointError(report.describe(source))
    module.load_state_dict(state, strict=False, assign=any(p.is_meta for p in module.parameters()))


# ------------------------------------------------------------------------------------- official releases


def _text_config_from_official(config: Mapping[str, Any]):
    """The Vicuna/LLaMA config embedded in a LLaVA-layout ``config.json``."""
    from transformers import LlamaConfig

    keys = (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "vocab_size", "max_position_embeddings", "rms_norm_eps", "hidden_act", "initializer_range", "pad_token_id",
        "bos_token_id", "eos_token_id", "tie_word_embeddings", "rope_theta", "attention_bias", "rope_scaling",
    )
    values = {k: config[k] for k in keys if k in config and config[k] is not None}
    if "hidden_size" not in values or "num_hidden_layers" not in values:
        raise CheckpointError("config.json lacks the LLaMA fields (hidden_size, num_hidden_layers, ...) of the language model.")
    return LlamaConfig(**values)


def official_architecture(config: Mapping[str, Any]) -> str:
    """Registry name of a PIIP-LLaVA release (``mm_vision_tower`` = ``configs/<name>.py``)."""
    from ..vision.registry import ARCHITECTURES

    tower = config.get("mm_vision_tower") or config.get("vision_tower_name") or config.get("vision_tower")
    if not tower:
        raise CheckpointError("config.json has no 'mm_vision_tower': cannot tell which PIIP architecture this is.")
    name = Path(str(tower)).name
    name = name[:-3] if name.endswith(".py") else name
    if name not in ARCHITECTURES:
        raise CheckpointError(f"mm_vision_tower {tower!r} names no registered architecture; known: {', '.join(ARCHITECTURES)}.")
    return name


def clip_config_from_folder(path: str | os.PathLike):
    """``ClipViTBranchConfig`` from an HF CLIP folder's ``config.json`` (CLIPModel or CLIPVisionModel)."""
    from ..vision.branches import ClipViTBranchConfig

    config = _read_json(Path(path) / "config.json")
    vision = config.get("vision_config", config)
    try:
        return ClipViTBranchConfig(
            image_size=vision["image_size"], hidden_size=vision["hidden_size"], num_layers=vision["num_hidden_layers"],
            num_heads=vision["num_attention_heads"], intermediate_size=vision["intermediate_size"],
            patch_size=vision["patch_size"], pretrained_image_size=vision["image_size"],
            layer_norm_eps=vision.get("layer_norm_eps", 1e-5), hidden_act=vision.get("hidden_act", "quick_gelu"),
        )
    except KeyError as error:
        raise CheckpointError(f"{path}/config.json: missing CLIP vision field {error}; is this a CLIP folder?") from error


def llava_tower(config: Mapping[str, Any], vision_tower_path: str | os.PathLike):
    """LLaVA-1.5's tower as LLaVA builds it: the CLIP folder's geometry, ``mm_vision_select_layer``,
    patch tokens only, CLIP statistics; plus the projector type."""
    from ..vision.registry import ArchitectureSpec
    from ..vision.tower import VisionTowerConfig, llava_baseline_stats

    feature = config.get("mm_vision_select_feature", "patch")
    if feature != "patch":
        raise CheckpointError(f"mm_vision_select_feature {feature!r} is not supported (LLaVA-1.5 uses 'patch').")
    projector = config.get("mm_projector_type", "linear")
    if projector not in ("mlp2x_gelu", "linear"):
        raise CheckpointError(f"mm_projector_type {projector!r} is not supported (mlp2x_gelu or linear).")
    tower = VisionTowerConfig(branches=[clip_config_from_folder(vision_tower_path)], kind="single",
                              select_layer=config.get("mm_vision_select_layer", -2), **llava_baseline_stats())
    name = "llava-v1.5-clip-l-336" if tower.branches[0].hidden_size == 1024 and tower.image_size == 336 else "llava-custom"
    return ArchitectureSpec(name, tower, projector, config["hidden_size"], config.get("_name_or_path", "llava"))


def load_official(
    directory: str | os.PathLike,
    *,
    vision_tower_path: str | os.PathLike | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str = "sdpa",
):
    """Build our model from an official PIIP-LLaVA or LLaVA-1.5 release directory, offline.

    Returns ``(model, tokenizer)`` (a :class:`~piip_llava.data.tokenizer.LoadedTokenizer`); the tokenizer gains the ``<image>`` token and the embedding
    matrices one row for it (its embedding is never read: those positions hold visual tokens).
    LLaVA-1.5 releases do not contain the CLIP weights; pass ``vision_tower_path`` (an HF
    ``clip-vit-large-patch14-336`` folder) for them.
    """
    from accelerate import init_empty_weights

    from ..data.tokenizer import load_tokenizer
    from .configuration import PiipLlavaConfig
    from .modeling import PiipLlavaForConditionalGeneration

    directory = Path(directory)
    config = read_config(directory)
    model_type = config.get("model_type")
    if model_type not in OFFICIAL_MODEL_TYPES:
        raise CheckpointError(f"{directory}: model_type {model_type!r} is not an official LLaVA layout {OFFICIAL_MODEL_TYPES}.")
    if model_type == "llava":
        if vision_tower_path is None:
            raise CheckpointError(
                f"{directory}: LLaVA-1.5 releases do not contain the CLIP vision tower; pass --vision-tower PATH to a "
                f"local copy of {config.get('mm_vision_tower', 'openai/clip-vit-large-patch14-336')}."
            )
        architecture = llava_tower(config, vision_tower_path)
    else:
        architecture = official_architecture(config)
    state = {}
    for key, tensor in load_weight_files(directory).items():
        mapped = official_to_ours(key, model_type)
        if mapped is not None:
            state[mapped] = tensor
        elif not key.endswith("position_ids"):
            state[key] = tensor  # reported as unexpected below

    text_config = _text_config_from_official(config)
    ours = PiipLlavaConfig.from_architecture(
        architecture, text_config, image_token_id=text_config.vocab_size,
        conversation_template="vicuna_v1",
        image_aspect_mode="pad" if config.get("image_aspect_ratio", "pad") == "pad" else "square",
    )
    ours._attn_implementation = attn_implementation
    with init_empty_weights(include_buffers=False):
        model = PiipLlavaForConditionalGeneration(ours)

    if model_type == "llava" and not any(k.startswith("vision_tower.") for k in state):
        state.update({"vision_tower.branch1." + k: v for k, v in read_clip_folder(vision_tower_path).items()})
    load_checked(model, state, f"{directory}")
    if dtype is not None:
        model = model.to(dtype)

    tokenizer = load_tokenizer(directory, model_max_length=config.get("tokenizer_model_max_length") or 2048, padding_side="right")
    image_token_id = tokenizer.image_token_id
    if image_token_id != text_config.vocab_size:
        raise CheckpointError(f"{directory}: tokenizer has {image_token_id} tokens before {IMAGE_PLACEHOLDER}, the model {text_config.vocab_size}.")
    model.resize_token_embeddings(image_token_id + 1, mean_resizing=True)
    model.config.image_token_id = image_token_id
    model.tie_weights()
    model.eval()
    return model, tokenizer


# ------------------------------------------------------------------------------------- base weights


def read_clip_folder(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """HF CLIP checkpoint folder -> ``clip_model.*`` keys (vision side only; text tower dropped)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"CLIP weights {path}: not found. Download the HF folder once and pass its local path.")
    state = load_weight_files(path) if path.is_dir() else _load_file(path)
    out = {}
    bare = ("embeddings.", "pre_layrnorm.", "encoder.", "post_layernorm.")  # transformers 5 CLIPVisionModel
    for key, tensor in state.items():
        for prefix in ("vision_model.", "model.vision_model.", "vision_tower.vision_model.", ""):
            if key.startswith(prefix) and (prefix or key.startswith(bare)):
                rest = key[len(prefix) :]
                if not rest.endswith("position_ids"):
                    out["clip_model." + rest] = tensor
                break
    if not out:
        raise CheckpointError(f"CLIP weights {path}: no 'vision_model.*' tensors found; is this a CLIP checkpoint?")
    return out


def read_timm_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """timm ConvNeXt checkpoint file -> ``convnext_model.*`` keys (classifier ``head.fc`` dropped)."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / n for n in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")]
        path = next((c for c in candidates if c.exists()), candidates[0])
    state = _load_file(path)
    if any(k.startswith("visual.trunk.") for k in state):  # open_clip checkpoint of a ConvNeXt model
        state = {k[len("visual.trunk.") :]: v for k, v in state.items() if k.startswith("visual.trunk.")}
    state = {_LAYER_SCALE.sub(r"\1.gamma", "convnext_model." + k): v for k, v in state.items() if not k.startswith("head.fc.")}
    return state


def read_open_clip_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """open_clip checkpoint -> ``open_clip_model.*`` keys of the visual tower."""
    state = _load_file(Path(path))
    out = {"open_clip_model." + k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    if not out:
        raise CheckpointError(f"{path}: no 'visual.*' tensors; is this an open_clip checkpoint?")
    return out


def load_base_weights(tower: nn.Module) -> list[str]:
    """Load each branch's ``pretrained`` weights (local paths). Returns a line per branch for logs.

    Interaction units and projectors have no base weights and keep their (identity-gated) init.
    """
    from ..vision.branches import ClipViTBranch, ConvNeXtBranch, OpenClipViTBranch

    messages = []
    for k, branch in enumerate(tower.branches, start=1):
        path = branch.config.pretrained
        if path is None:
            messages.append(f"branch{k}: random init (no 'pretrained' path configured)")
            continue
        if isinstance(branch, ClipViTBranch):
            state = read_clip_folder(path)
        elif isinstance(branch, ConvNeXtBranch):
            state = read_timm_file(path)
        elif isinstance(branch, OpenClipViTBranch):
            state = read_open_clip_file(path)
        else:
            raise CheckpointError(f"branch{k}: no base-weight reader for {type(branch).__name__}.")
        load_checked(branch, state, f"base weights {path} for branch{k}")
        messages.append(f"branch{k}: loaded {len(state)} tensors from {path}")
    return messages


def load_tower_weights(tower: nn.Module, path: str | os.PathLike) -> str:
    """Load a whole tower (branches, interactions) from one ``.safetensors`` state dict, e.g. one written by
    ``safetensors.torch.save_file(tower.state_dict(), path)``; every key and shape must match."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"tower weights {file} not found; pass a .safetensors file holding the tower's state dict.")
    state = _load_file(file)
    load_checked(tower, state, f"tower weights {file} (written for a different tower config?)")
    return f"vision tower: loaded {len(state)} tensors from {file}"
