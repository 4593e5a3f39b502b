"""Multi-scale deformable attention (Deformable DETR's ``MSDeformAttn``) in pure PyTorch.

PIIP's interaction units let each query token look at a handful of learned sampling points on the
*other* branch's feature map. The official code ships a CUDA extension that has to be compiled; the
same maths is one ``grid_sample`` per level, which runs on CPU, CUDA and MPS with any batch size and
is differentiable everywhere. A fused kernel can be plugged in through :class:`MSDeformAttn`'s
``core`` argument without touching the module (the "seam").

Conventions (identical to the official implementation):

* ``value``: (N, S, M, D) -- S = sum of H_l * W_l over levels, M heads, D channels per head;
* ``sampling_locations``: (N, Lq, M, L, P, 2) as normalised (x, y) in [0, 1] (pixel centres at
  (i + 0.5) / size); outside points read zeros (bilinear, ``align_corners=False``);
* ``attention_weights``: (N, Lq, M, L, P), already softmax-normalised over L * P;
* output: (N, Lq, M * D).

The core always runs in float32 (or float64 when given float64), as the official code casts value,
locations and weights to fp32 before sampling: bf16 sampling coordinates are too coarse for large maps.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

DeformCore = Callable[[torch.Tensor, Sequence[tuple[int, int]], torch.Tensor, torch.Tensor], torch.Tensor]


def ms_deform_attn_core(
    value: torch.Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Bilinear sampling of every (query, head, level, point) and the attention-weighted sum."""
    batch, _, heads, head_dim = value.shape
    _, num_queries, _, levels, points, _ = sampling_locations.shape
    compute_dtype = torch.float64 if value.dtype == torch.float64 else torch.float32
    value = value.to(compute_dtype)
    sampling_grids = 2.0 * sampling_locations.to(compute_dtype) - 1.0  # grid_sample wants [-1, 1]
    sizes = [int(h) * int(w) for h, w in spatial_shapes]
    value_levels = value.split(sizes, dim=1)

    sampled_levels = []
    for level, (height, width) in enumerate(spatial_shapes):
        # (N, S_l, M, D) -> (N*M, D, H_l, W_l): each head is an independent D-channel image.
        value_l = value_levels[level].flatten(2).transpose(1, 2).reshape(batch * heads, head_dim, int(height), int(width))
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2): queries x points form the output "image".
        grid_l = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled_levels.append(
            F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False)
        )  # (N*M, D, Lq, P)
    # (N, Lq, M, L, P) -> (N*M, 1, Lq, L*P)
    weights = attention_weights.to(compute_dtype).transpose(1, 2).reshape(batch * heads, 1, num_queries, levels * points)
    output = (torch.stack(sampled_levels, dim=-2).flatten(-2) * weights).sum(-1)  # (N*M, D, Lq)
    return output.view(batch, heads * head_dim, num_queries).transpose(1, 2).contiguous()


def reference_points(
    height: int, width: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Normalised (x, y) centres of an H x W query grid in raster order, shape (1, H*W, 1, 2).

    Built with ``linspace`` exactly like the official ``get_reference_points`` so that the float32
    values agree bit for bit. Always float32 (an official fp32 island) unless float64 is asked for.
    """
    ref_y, ref_x = torch.meshgrid(
        torch.linspace(0.5, height - 0.5, height, dtype=dtype, device=device),
        torch.linspace(0.5, width - 0.5, width, dtype=dtype, device=device),
        indexing="ij",
    )
    ref = torch.stack((ref_x.reshape(-1) / width, ref_y.reshape(-1) / height), dim=-1)
    return ref[None, :, None]


class MSDeformAttn(nn.Module):
    """Deformable attention with the official parameterisation (ViT-Adapter / PIIP variant).

    ``ratio`` shrinks the value width to ``int(ratio * d_model)`` (PIIP uses 0.5) to halve the cost of
    the sampled features; ``output_proj`` maps back to ``d_model``.
    """

    def __init__(
        self,
        d_model: int,
        n_levels: int = 1,
        n_heads: int = 16,
        n_points: int = 4,
        ratio: float = 0.5,
        core: DeformCore = ms_deform_attn_core,
    ):
        super().__init__()
        value_dim = int(d_model * ratio)
        if value_dim % n_heads != 0:
            raise ValueError(
                f"deformable attention: value width int({ratio} * {d_model}) = {value_dim} is not divisible by "
                f"{n_heads} heads; choose deform_num_heads dividing {value_dim}."
            )
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.value_dim = value_dim
        self.core = core
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, value_dim)
        self.output_proj = nn.Linear(value_dim, d_model)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Deformable DETR's init: offsets start on a ring around the reference point, one direction per
        head and growing radius per point; uniform attention; Xavier projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        grid *= torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        bias = self.sampling_offsets.bias
        # On the meta device, or partitioned by DeepSpeed ZeRO-3 (empty local shard), the values come from
        # the checkpoint being loaded; there is nothing to write.
        if bias.device.type != "meta" and bias.numel() == grid.numel():
            bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> torch.Tensor:
        """query (N, Lq, d_model); reference_points (N|1, Lq, L, 2); input_flatten (N, S, d_model)."""
        batch, num_queries, _ = query.shape
        num_values = input_flatten.shape[1]
        expected = sum(int(h) * int(w) for h, w in spatial_shapes)
        if expected != num_values:
            raise ValueError(f"deformable attention: value has {num_values} tokens but spatial shapes {spatial_shapes} give {expected}.")
        value = self.value_proj(input_flatten).view(batch, num_values, self.n_heads, self.value_dim // self.n_heads)
        offsets = self.sampling_offsets(query).view(batch, num_queries, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(batch, num_queries, self.n_heads, self.n_levels * self.n_points)
        weights = weights.softmax(-1).view(batch, num_queries, self.n_heads, self.n_levels, self.n_points)
        # Offsets are in value-map pixels: divide by (W, H) of each level to get normalised units.
        normalizer = torch.tensor([[w, h] for h, w in spatial_shapes], dtype=offsets.dtype, device=offsets.device)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        output = self.core(value, spatial_shapes, locations, weights)
        return self.output_proj(output.to(query.dtype))
