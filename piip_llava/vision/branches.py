"""Branches of the pyramid: pretrained backbones exposed as a flat list of blocks.

A PIIP tower runs each branch in *segments* (``interaction_indexes``) and lets the branches talk
between segments. Every branch therefore offers the same small interface on top of an unmodified
library backbone:

* ``embed(image) -> BranchState``: patch/stem embedding;
* ``run_blocks(state, start, end)``: run flat blocks ``start..end`` (inclusive);
* ``tokens(state)`` / ``with_tokens(state, tokens)``: the (B, N, C) view interactions work on;
* ``features(state)``: the final (B, C, H, W) map handed to the projector;
* ``dim_at(i)`` / ``grid_at(i)``: channel width and grid after flat block ``i`` (static, so the tower
  can size its interaction units without running anything).

The backbones come from the field's libraries -- transformers' CLIP layers, timm's ConvNeXt and
open_clip's visual towers -- and keep their native parameter names, so pretrained and released
checkpoints load without renaming (apart from the ConvNeXt layer-scale alias, see ``checkpoints``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

Range = tuple[int, int]


@dataclass
class BranchState:
    """A branch's running activations: ``x`` is (B, N, C) for ViTs or (B, C, H, W) for ConvNets."""

    x: torch.Tensor
    hw: tuple[int, int]
    cls: torch.Tensor | None = None


# --------------------------------------------------------------------------------------------- configs


@dataclass
class BranchConfig:
    """Fields every branch has. Subclasses add the backbone's own hyper-parameters."""

    kind: ClassVar[str] = ""
    image_size: int = 224
    """Run-time input resolution of this branch (the pyramid level it sees)."""
    interaction_indexes: list[Range] = field(default_factory=list)
    """Inclusive ranges of flat blocks run before each interaction; one range per interaction."""
    pretrained: str | None = None
    """Local path to base weights used when training from scratch (never downloaded)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind
        data["interaction_indexes"] = [list(r) for r in self.interaction_indexes]
        return data

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> "BranchConfig":
        data = dict(data)
        kind = data.pop("kind", None)
        if kind not in BRANCH_CONFIGS:
            raise ValueError(f"unknown branch kind {kind!r}; known kinds: {sorted(BRANCH_CONFIGS)}.")
        cls = BRANCH_CONFIGS[kind]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"branch config of kind {kind!r} has unknown fields {unknown}; known: {sorted(known)}.")
        data["interaction_indexes"] = [tuple(r) for r in data.get("interaction_indexes", [])]
        for key in ("dims", "depths"):
            if key in data and data[key] is not None:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass
class ClipViTBranchConfig(BranchConfig):
    """A CLIP ViT built from transformers' CLIP modules (HF ``CLIPVisionModel`` weights)."""

    kind: ClassVar[str] = "clip_vit"
    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    intermediate_size: int = 4096
    patch_size: int = 16
    pretrained_image_size: int = 224
    """Image size the stored position table was trained at; it is resized to the run-time grid."""
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"


@dataclass
class ConvNeXtBranchConfig(BranchConfig):
    """A timm ConvNeXt (e.g. ``convnext_base`` for ``convnext_base.clip_laiona_augreg_320``)."""

    kind: ClassVar[str] = "convnext"
    timm_name: str = "convnext_base"
    depths: tuple[int, ...] = (3, 3, 27, 3)
    dims: tuple[int, ...] = (128, 256, 512, 1024)


@dataclass
class OpenClipViTBranchConfig(BranchConfig):
    """The visual tower of an open_clip ViT (e.g. ``ViT-B-16``), built with random weights."""

    kind: ClassVar[str] = "open_clip_vit"
    model_name: str = "ViT-B-16"


@dataclass
class OpenClipConvNeXtBranchConfig(BranchConfig):
    """The timm trunk of an open_clip ConvNeXt (e.g. ``convnext_base_w``)."""

    kind: ClassVar[str] = "open_clip_convnext"
    model_name: str = "convnext_base"


BRANCH_CONFIGS: Mapping[str, type[BranchConfig]] = {
    c.kind: c for c in (ClipViTBranchConfig, ConvNeXtBranchConfig, OpenClipViTBranchConfig, OpenClipConvNeXtBranchConfig)
}


# --------------------------------------------------------------------------------------------- modules


class Branch(nn.Module):
    """Interface shared by all branches (see module docstring)."""

    config: BranchConfig
    gradient_checkpointing: bool = False

    @property
    def num_blocks(self) -> int:
        raise NotImplementedError

    def dim_at(self, index: int) -> int:
        raise NotImplementedError

    def grid_at(self, index: int) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def out_dim(self) -> int:
        return self.dim_at(self.num_blocks - 1)

    def embed(self, image: torch.Tensor) -> BranchState:
        raise NotImplementedError

    def run_blocks(self, state: BranchState, start: int, end: int) -> BranchState:
        raise NotImplementedError

    def tokens(self, state: BranchState) -> torch.Tensor:
        return state.x

    def with_tokens(self, state: BranchState, tokens: torch.Tensor) -> BranchState:
        return BranchState(tokens, state.hw, state.cls)

    def features(self, state: BranchState) -> torch.Tensor:
        batch, _, channels = state.x.shape
        return state.x.transpose(1, 2).reshape(batch, channels, *state.hw)

    def _run_with_cls(self, state: BranchState, blocks) -> BranchState:
        """Run ViT blocks with the cls token re-attached in front (it joins attention, not interactions)."""
        x = torch.cat([state.cls, state.x], dim=1)
        for block in blocks:
            x = self._call_block(block, x)
        return BranchState(x[:, 1:], state.hw, x[:, :1])

    def _call_block(self, block: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and x.requires_grad:
            return checkpoint(block, x, use_reentrant=False)
        return block(x)


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """The official fp32 "islands" (resizes, sampling) -- float64 passes through for reference runs."""
    return x if x.dtype == torch.float64 else x.float()


def vit_embed(patches: torch.Tensor, table: torch.Tensor, class_embedding: torch.Tensor, pre_norm: nn.Module) -> BranchState:
    """Patch map (B, C, H, W) -> cls + patch tokens with positions resized to (H, W), then ``pre_norm``.

    The cls position (row 0 of ``table``) is kept as is; the patch rows are resized bicubically.
    """
    hw = (patches.shape[-2], patches.shape[-1])
    patches = patches.flatten(2).transpose(1, 2)
    pos = interpolate_pos_embed(table[1:], math.isqrt(table.shape[0] - 1), hw).to(patches.dtype)
    cls = (class_embedding + table[0]).to(patches.dtype).expand(patches.shape[0], 1, -1)
    x = pre_norm(torch.cat([cls, patches + pos], dim=1))
    return BranchState(x[:, 1:], hw, x[:, :1])


def interpolate_pos_embed(pos: torch.Tensor, src_grid: int, dst_hw: tuple[int, int]) -> torch.Tensor:
    """Resize a (g*g, C) patch position table to ``dst_hw`` with bicubic (a=-0.75), in float32.

    The official tower does this on every forward so one checkpoint serves any resolution.
    """
    channels = pos.shape[-1]
    grid = at_least_fp32(pos).reshape(1, src_grid, src_grid, channels).permute(0, 3, 1, 2)
    if (src_grid, src_grid) != tuple(dst_hw):
        grid = F.interpolate(grid, size=dst_hw, mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, dst_hw[0] * dst_hw[1], channels)


class ClipVisionBackbone(nn.Module):
    """The children of transformers' ``CLIPVisionModel`` (embeddings, pre_layrnorm, encoder,
    post_layernorm) under their own names, whatever wrapper the installed transformers uses.

    Keeping the exact child names makes HF CLIP checkpoints and PIIP releases load as they are.
    """

    def __init__(self, config: ClipViTBranchConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel

        hf_config = CLIPVisionConfig(
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            image_size=config.pretrained_image_size,
            patch_size=config.patch_size,
            hidden_act=config.hidden_act,
            layer_norm_eps=config.layer_norm_eps,
        )
        hf_config._attn_implementation = attn_implementation
        # Built through CLIPVisionModel so a from-scratch branch gets CLIP's own initialisation
        # (e.g. position table std 0.02, not nn.Embedding's 1.0); older transformers nest the
        # children under ``vision_model``.
        hf_model = CLIPVisionModel(hf_config)
        source = getattr(hf_model, "vision_model", hf_model)
        self.embeddings = source.embeddings
        # Positions are resized to the run-time grid on every forward; the fixed index buffer is unused
        # and, being non-persistent, would come back uninitialised from meta-device loading.
        del self.embeddings.position_ids
        self.pre_layrnorm = source.pre_layrnorm
        self.encoder = source.encoder
        self.post_layernorm = source.post_layernorm  # stored (released checkpoints have it), never applied


class ClipViTBranch(Branch):
    """CLIP ViT branch: the cls token joins self-attention but never the interactions; the output is the
    last layer's patch tokens without ``post_layernorm`` (``mm_vision_select_layer`` plays no role)."""

    def __init__(self, config: ClipViTBranchConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = config
        self.clip_model = ClipVisionBackbone(config, attn_implementation)

    @property
    def num_blocks(self) -> int:
        return self.config.num_layers

    def dim_at(self, index: int) -> int:
        return self.config.hidden_size

    def grid_at(self, index: int) -> tuple[int, int]:
        side = self.config.image_size // self.config.patch_size
        return side, side

    def embed(self, image: torch.Tensor) -> BranchState:
        emb = self.clip_model.embeddings
        patches = emb.patch_embedding(image.to(emb.patch_embedding.weight.dtype))
        return vit_embed(patches, emb.position_embedding.weight, emb.class_embedding, self.clip_model.pre_layrnorm)

    def run_blocks(self, state: BranchState, start: int, end: int) -> BranchState:
        layers = self.clip_model.encoder.layers[start : end + 1]
        return self._run_with_cls(state, [partial(layer, attention_mask=None) for layer in layers])


class ConvNeXtBranch(Branch):
    """timm ConvNeXt viewed as 39 flat entries: stage-0 blocks, then per later stage its downsample
    followed by its blocks. Width and grid change inside an interaction range when it spans a
    downsample; the tower reads them from ``dim_at``/``grid_at``."""

    def __init__(self, config: ConvNeXtBranchConfig | OpenClipConvNeXtBranchConfig, trunk: nn.Module | None = None):
        super().__init__()
        self.config = config
        if trunk is None:
            import timm

            trunk = timm.create_model(
                config.timm_name, pretrained=False, num_classes=0, depths=config.depths, dims=config.dims
            )
        self.convnext_model = trunk
        self._entries: list[tuple[int, nn.Module]] = []  # (stage, module): plain list, not registered twice
        for stage_index, stage in enumerate(trunk.stages):
            if stage_index > 0:
                self._entries.append((stage_index, stage.downsample))
            self._entries.extend((stage_index, block) for block in stage.blocks)
        self._dims = [stage.blocks[-1].conv_dw.out_channels for stage in trunk.stages]
        stem_stride = trunk.stem[0].stride[0]
        self._strides = [stem_stride * 2**i for i in range(len(trunk.stages))]

    @property
    def num_blocks(self) -> int:
        return len(self._entries)

    def dim_at(self, index: int) -> int:
        return self._dims[self._entries[index][0]]

    def grid_at(self, index: int) -> tuple[int, int]:
        side = self.config.image_size // self._strides[self._entries[index][0]]
        return side, side

    def embed(self, image: torch.Tensor) -> BranchState:
        x = self.convnext_model.stem(image.to(self.convnext_model.stem[0].weight.dtype))
        return BranchState(x, (x.shape[-2], x.shape[-1]))

    def run_blocks(self, state: BranchState, start: int, end: int) -> BranchState:
        x = state.x
        for _, module in self._entries[start : end + 1]:
            x = self._call_block(module, x)
        return BranchState(x, (x.shape[-2], x.shape[-1]))

    def tokens(self, state: BranchState) -> torch.Tensor:
        return state.x.flatten(2).transpose(1, 2)

    def with_tokens(self, state: BranchState, tokens: torch.Tensor) -> BranchState:
        batch, _, channels = tokens.shape
        return BranchState(tokens.transpose(1, 2).reshape(batch, channels, *state.hw), state.hw)

    def features(self, state: BranchState) -> torch.Tensor:
        return state.x


class OpenClipViTBranch(Branch):
    """An open_clip ``VisionTransformer``: same semantics as :class:`ClipViTBranch` (cls in attention
    only, last block's patch tokens, no ``ln_post``/``proj``)."""

    def __init__(self, config: OpenClipViTBranchConfig):
        super().__init__()
        import open_clip

        self.config = config
        visual = open_clip.create_model(config.model_name, pretrained=None).visual
        if not hasattr(visual, "transformer") or not hasattr(visual, "conv1"):
            raise ValueError(f"open_clip model {config.model_name!r} does not have a ViT visual tower.")
        if not getattr(visual.transformer, "batch_first", True):
            raise ValueError("open_clip transformer must be batch_first (open_clip >= 2.24).")
        self.open_clip_model = visual

    @property
    def num_blocks(self) -> int:
        return len(self.open_clip_model.transformer.resblocks)

    def dim_at(self, index: int) -> int:
        return self.open_clip_model.conv1.out_channels

    def grid_at(self, index: int) -> tuple[int, int]:
        side = self.config.image_size // self.open_clip_model.conv1.stride[0]
        return side, side

    def embed(self, image: torch.Tensor) -> BranchState:
        visual = self.open_clip_model
        patches = visual.conv1(image.to(visual.conv1.weight.dtype))
        return vit_embed(patches, visual.positional_embedding, visual.class_embedding, visual.ln_pre)

    def run_blocks(self, state: BranchState, start: int, end: int) -> BranchState:
        return self._run_with_cls(state, self.open_clip_model.transformer.resblocks[start : end + 1])


def _open_clip_convnext(config: OpenClipConvNeXtBranchConfig) -> ConvNeXtBranch:
    import open_clip

    visual = open_clip.create_model(config.model_name, pretrained=None).visual
    trunk = getattr(visual, "trunk", None)
    if trunk is None or not hasattr(trunk, "stages"):
        raise ValueError(f"open_clip model {config.model_name!r} does not have a timm ConvNeXt trunk.")
    return ConvNeXtBranch(config, trunk=trunk)


def build_branch(config: BranchConfig, attn_implementation: str = "sdpa") -> Branch:
    """Instantiate the backbone for ``config`` with random weights (load real ones afterwards)."""
    if isinstance(config, ClipViTBranchConfig):
        return ClipViTBranch(config, attn_implementation)
    if isinstance(config, ConvNeXtBranchConfig):
        return ConvNeXtBranch(config)
    if isinstance(config, OpenClipViTBranchConfig):
        return OpenClipViTBranch(config)
    if isinstance(config, OpenClipConvNeXtBranchConfig):
        return _open_clip_convnext(config)
    raise TypeError(f"no branch implementation for config type {type(config).__name__}.")
