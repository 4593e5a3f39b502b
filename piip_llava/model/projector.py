"""Projectors: vision features -> LLM embedding space.

``piip_gn_mlp`` (official ``separate_2branch_v1``): each branch's map is bilinearly resized to the
highest-resolution branch's grid, then passed through its own ``Linear -> GroupNorm(32) -> GELU ->
Linear``; the branch outputs are summed and read out in raster order. GroupNorm normalises over the
whole spatial grid, so each visual token depends on the entire image.

``mlp2x_gelu`` / ``linear``: LLaVA-1.5's projectors over the tokens of a single map.

Sequential indices 1, 3 and 6 carry the parameters, exactly as in the released checkpoints
(``mm_projector.branch1.1.weight`` ...); the parameter-free steps in between keep those indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..vision.branches import at_least_fp32

PROJECTOR_TYPES = ("piip_gn_mlp", "mlp2x_gelu", "linear")


@dataclass(frozen=True)
class ProjectorConfig:
    type: str = "piip_gn_mlp"
    """One of ``piip_gn_mlp`` (PIIP, official ``separate_2branch_v1``), ``mlp2x_gelu``, ``linear``."""
    groups: int = 32
    """GroupNorm groups (``piip_gn_mlp``)."""
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.type not in PROJECTOR_TYPES:
            raise ValueError(f"unknown projector type {self.type!r}; choose one of {PROJECTOR_TYPES}.")


class ToChannelsLast(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class ToChannelsFirst(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


def _gn_mlp(in_dim: int, out_dim: int, config: ProjectorConfig) -> nn.Sequential:
    if out_dim % config.groups != 0:
        raise ValueError(f"projector: LLM hidden size {out_dim} is not divisible by {config.groups} GroupNorm groups.")
    return nn.Sequential(
        ToChannelsLast(),  # 0
        nn.Linear(in_dim, out_dim),  # 1
        ToChannelsFirst(),  # 2
        nn.GroupNorm(config.groups, out_dim, eps=config.norm_eps),  # 3
        ToChannelsLast(),  # 4
        nn.GELU(),  # 5
        nn.Linear(out_dim, out_dim),  # 6
    )


class PiipProjector(nn.Module):
    """Per-branch GroupNorm MLPs on a shared grid, summed (official ``TwoBranchMLP``, N branches)."""

    def __init__(self, in_dims: list[int], out_dim: int, config: ProjectorConfig):
        super().__init__()
        self.num_branches = len(in_dims)
        for k, dim in enumerate(in_dims, start=1):
            self.add_module(f"branch{k}", _gn_mlp(dim, out_dim, config))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        target = features[-1].shape[-2:]
        out = None
        for k, feature in enumerate(features, start=1):
            if feature.shape[-2:] != target:
                feature = F.interpolate(at_least_fp32(feature), size=target, mode="bilinear", align_corners=False)
            mlp = getattr(self, f"branch{k}")
            y = mlp(feature.to(mlp[1].weight.dtype))  # (B, H, W, h)
            out = y if out is None else out + y
        return out.flatten(1, 2)  # raster order over the top branch's grid


class TokenMLPProjector(nn.Sequential):
    """LLaVA-1.5's ``mlp2x_gelu`` (Linear-GELU-Linear) or ``linear`` over one map's tokens.

    A ``Sequential`` so parameter names (``0.weight``, ``2.weight``) match LLaVA's ``mm_projector``.
    """

    def __init__(self, in_dim: int, out_dim: int, config: ProjectorConfig):
        if config.type == "linear":
            super().__init__(nn.Linear(in_dim, out_dim))
        else:
            super().__init__(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if len(features) != 1:
            raise ValueError(f"{type(self).__name__} takes one feature map, got {len(features)}.")
        tokens = features[0].flatten(2).transpose(1, 2)
        return super().forward(tokens.to(self[0].weight.dtype))


def build_projector(config: ProjectorConfig, in_dims: list[int], out_dim: int) -> nn.Module:
    if config.type == "piip_gn_mlp":
        return PiipProjector(in_dims, out_dim, config)
    return TokenMLPProjector(in_dims[0], out_dim, config)
