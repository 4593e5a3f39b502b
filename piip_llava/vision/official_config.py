"""Translate the official PIIP ``backbone`` config dict into a :class:`VisionTowerConfig`.

The official ``configs/<name>.py`` files describe a tower as a dict passed to
``PIIPTwoBranchConfig(**backbone)``: per-branch ``model_type`` (``clip_hf`` / ``convnext_timm``),
``img_size``, ``interaction_indexes``, ``pretrained`` (a hub name, or for CLIP a
``CLIPVisionConfig`` kwargs dict) and the interaction hyper-parameters. Accepting that dict lets
users bring custom official configs, and lets the tests build towers straight from the fixtures.
"""

from __future__ import annotations

from typing import Any, Mapping

from .branches import BranchConfig, ClipViTBranchConfig, ConvNeXtBranchConfig
from .interaction import InteractionConfig
from .tower import VisionTowerConfig

KNOWN_CLIP = {
    "OpenGVLab/clip-vit-large-patch14to16-224": dict(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096, pretrained_image_size=224),
    "OpenGVLab/clip-vit-large-patch14to16-336": dict(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096, pretrained_image_size=336),
    "openai/clip-vit-base-patch16": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072, pretrained_image_size=224),
}
"""Geometry of the CLIP checkpoints the released configs name (HF ``config.json`` values)."""

KNOWN_TIMM = {
    "convnext_base.clip_laiona_augreg_320": ("convnext_base", (128, 256, 512, 1024)),
    "convnext_large_mlp.clip_laion2b_ft_320": ("convnext_large_mlp", (192, 384, 768, 1536)),
}


def _clip_branch(branch: Mapping[str, Any]) -> ClipViTBranchConfig:
    pretrained = branch.get("pretrained")
    if isinstance(pretrained, Mapping):
        geometry = dict(
            hidden_size=pretrained["hidden_size"], num_layers=pretrained["num_hidden_layers"],
            num_heads=pretrained["num_attention_heads"], intermediate_size=pretrained["intermediate_size"],
            pretrained_image_size=pretrained["image_size"], layer_norm_eps=pretrained.get("layer_norm_eps", 1e-5),
            hidden_act=pretrained.get("hidden_act", "quick_gelu"),
        )
        path = None
    elif pretrained in KNOWN_CLIP:
        geometry, path = dict(KNOWN_CLIP[pretrained]), None
    else:
        raise ValueError(f"official CLIP branch names {pretrained!r}; known: {sorted(KNOWN_CLIP)} or a CLIPVisionConfig dict.")
    return ClipViTBranchConfig(
        image_size=branch["img_size"], patch_size=branch.get("patch_size", 16),
        interaction_indexes=[tuple(r) for r in branch["interaction_indexes"]], pretrained=path, **geometry,
    )


def _convnext_branch(branch: Mapping[str, Any]) -> ConvNeXtBranchConfig:
    name = branch.get("pretrained")
    if name not in KNOWN_TIMM:
        raise ValueError(f"official ConvNeXt branch names {name!r}; known: {sorted(KNOWN_TIMM)}.")
    timm_name, dims = KNOWN_TIMM[name]
    dims = tuple(branch.get("timm_kwargs", {}).get("dims", dims))
    return ConvNeXtBranchConfig(
        image_size=branch["img_size"], interaction_indexes=[tuple(r) for r in branch["interaction_indexes"]],
        timm_name=timm_name, dims=dims,
    )


def tower_config_from_official(backbone: Mapping[str, Any]) -> VisionTowerConfig:
    """Official ``backbone`` dict (``model_cls`` ``2branch_v1`` / ``2branch_mix``) -> our tower config."""
    if backbone.get("interact_attn_type", "deform") != "deform":
        raise ValueError(f"interact_attn_type {backbone['interact_attn_type']!r} is not supported (only 'deform').")
    branches: list[BranchConfig] = []
    k = 1
    while f"branch{k}" in backbone:
        branch = backbone[f"branch{k}"]
        kind = branch.get("model_type")
        if kind == "clip_hf":
            branches.append(_clip_branch(branch))
        elif kind == "convnext_timm":
            branches.append(_convnext_branch(branch))
        else:
            raise ValueError(f"branch{k}: official model_type {kind!r} is not supported (clip_hf, convnext_timm).")
        k += 1
    interaction = InteractionConfig(
        deform_num_heads=backbone.get("deform_num_heads", 16), n_points=backbone.get("n_points", 4),
        deform_ratio=backbone.get("deform_ratio", 0.5), cffn_ratio=backbone.get("cffn_ratio", 0.25),
        with_cffn=backbone.get("with_cffn", True), drop_path_rate=backbone.get("interaction_drop_path_rate", 0.4),
    )
    return VisionTowerConfig(branches=branches, kind="piip", interaction=interaction)
