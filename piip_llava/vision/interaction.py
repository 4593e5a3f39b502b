"""Interaction units: how the branches of the pyramid exchange information.

Between groups of backbone blocks, every pair of adjacent branches (a, b) swaps features in both
directions. Each direction is an *injector*: the receiving branch's tokens query the other branch's
(width-projected) tokens with deformable cross-attention, then refine with a small convolutional FFN.
Both residual paths are scaled by learnable per-channel gates that start at **zero**, so a freshly
initialised pyramid is exactly its independent pretrained backbones -- training opens the gates.

Both directions read the features from *before* either side is updated (``p12`` and ``p21`` are
computed first), as the official code does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.layers import DropPath
from torch import nn

from .deform_attn import MSDeformAttn, reference_points


@dataclass(frozen=True)
class InteractionConfig:
    """Hyper-parameters shared by every interaction unit of a tower (official defaults)."""

    deform_num_heads: int = 16
    """Heads of the deformable cross-attention; must divide ``int(deform_ratio * dim)`` of each branch."""
    n_points: int = 4
    """Sampling points per head (one feature level)."""
    deform_ratio: float = 0.5
    """Value width as a fraction of the query width."""
    cffn_ratio: float = 0.25
    """Hidden width of the ConvFFN as a fraction of the query width."""
    with_cffn: bool = True
    """Whether injectors refine with a ConvFFN after the cross-attention."""
    drop_path_rate: float = 0.4
    """Stochastic depth on the ConvFFN path only (never on the attention path)."""
    norm_eps: float = 1e-6
    """Epsilon of the three LayerNorms inside each injector."""


class DWConv(nn.Module):
    """Depthwise 3x3 convolution over tokens laid out on their (H, W) grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, tokens, channels = x.shape
        x = x.transpose(1, 2).reshape(batch, channels, height, width)
        return self.dwconv(x).flatten(2).transpose(1, 2)


class ConvFFN(nn.Module):
    """Linear -> depthwise 3x3 conv -> GELU -> Linear: an MLP with a little spatial context."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x), height, width)))


class Injector(nn.Module):
    """One direction of an interaction: queries of width ``dim`` attend to a feature map of width ``dim``."""

    def __init__(self, dim: int, config: InteractionConfig):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.feat_norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = MSDeformAttn(dim, n_levels=1, n_heads=config.deform_num_heads, n_points=config.n_points, ratio=config.deform_ratio)
        self.ca_weight = nn.Parameter(torch.zeros(dim))
        self.with_cffn = config.with_cffn
        if config.with_cffn:
            self.ffn = ConvFFN(dim, int(dim * config.cffn_ratio))
            self.ffn_norm = nn.LayerNorm(dim, eps=config.norm_eps)
            self.cffn_weight = nn.Parameter(torch.zeros(dim))
            self.drop_path = DropPath(config.drop_path_rate) if config.drop_path_rate > 0 else nn.Identity()

    def forward(
        self,
        query: torch.Tensor,
        query_hw: tuple[int, int],
        feat: torch.Tensor,
        feat_hw: tuple[int, int],
    ) -> torch.Tensor:
        ref_dtype = torch.float64 if query.dtype == torch.float64 else torch.float32
        ref = reference_points(*query_hw, device=query.device, dtype=ref_dtype)
        attn = self.attn(self.query_norm(query), ref, self.feat_norm(feat), [feat_hw])
        query = query + self.ca_weight * attn
        if self.with_cffn:
            query = query + self.cffn_weight * self.drop_path(self.ffn(self.ffn_norm(query), *query_hw))
        return query


class InteractionUnit(nn.Module):
    """Bidirectional exchange between two adjacent branches (official name ``interaction_units_12``)."""

    def __init__(self, dim1: int, dim2: int, config: InteractionConfig):
        super().__init__()
        self.branch1to2_proj = nn.Linear(dim1, dim2)
        self.branch2to1_proj = nn.Linear(dim2, dim1)
        self.branch1to2_injector = Injector(dim2, config)
        self.branch2to1_injector = Injector(dim1, config)

    def forward(
        self, x1: torch.Tensor, hw1: tuple[int, int], x2: torch.Tensor, hw2: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p12 = self.branch1to2_proj(x1)
        p21 = self.branch2to1_proj(x2)
        new_x1 = self.branch2to1_injector(x1, hw1, p21, hw2)
        new_x2 = self.branch1to2_injector(x2, hw2, p12, hw1)
        return new_x1, new_x2

