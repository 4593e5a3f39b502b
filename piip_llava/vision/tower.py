"""Vision towers: the parameter-inverted image pyramid, and LLaVA-1.5's single CLIP for comparison.

A PIIP tower has N >= 2 branches ordered from the *largest model at the lowest resolution*
(``branch1``) to the *smallest model at the highest resolution* (``branchN``). The image processor
works at branchN's resolution; every other branch's input is a bilinear downsample of that
normalised tensor. The schedule is::

    for each interaction i:
        run branch k's flat blocks interaction_indexes[k][i]    (k = 1..N)
        exchange features between adjacent branches (1<->2, then 2<->3, ...)

and the tower returns every branch's final feature map, for the projector to merge. With two
branches this is exactly the released PIIP-LLaVA; three-branch pyramids (the paper's tiny/small/base)
are configurations of the same class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from ..constants import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, PAD_COLOR
from .branches import Branch, BranchConfig, ClipViTBranchConfig, at_least_fp32, build_branch
from .image_processor import PiipImageProcessor
from .interaction import InteractionConfig, InteractionUnit


@dataclass
class VisionTowerConfig:
    """Everything needed to build a tower and its image processor."""

    branches: list[BranchConfig]
    """Branch configs, branch1 (large model, low resolution) first."""
    kind: str = "piip"
    """``piip`` (pyramid with interactions) or ``single`` (one CLIP, LLaVA-1.5 style)."""
    interaction: InteractionConfig = field(default_factory=InteractionConfig)
    select_layer: int = -1
    """``single`` only: which hidden state to output (LLaVA-1.5 uses -2). PIIP always uses the last."""
    run_unused_layers: bool = True
    """``single`` only: run the encoder to the end like LLaVA does (so FLOPs match the paper's
    accounting), even though layers after ``select_layer`` do not affect the output."""
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    pad_color: tuple[int, int, int] = PAD_COLOR
    input_size: int | None = None
    """The processor's resolution when it should exceed every branch's: each branch then takes its
    input with the same bilinear downsample a pyramid's lower levels use (:func:`branch_input`). Lets a
    single-resolution baseline see an image exactly as a pyramid's low-resolution branch does."""

    def __post_init__(self) -> None:
        if self.kind not in ("piip", "single"):
            raise ValueError(f"unknown tower kind {self.kind!r}; use 'piip' or 'single'.")
        if not self.branches:
            raise ValueError("a vision tower needs at least one branch.")
        if self.input_size is not None and self.input_size < max(b.image_size for b in self.branches):
            raise ValueError(f"input_size {self.input_size} is below the largest branch resolution; "
                             "leave it unset or make it at least as large.")
        if self.kind == "piip":
            if len(self.branches) < 2:
                raise ValueError("a PIIP tower needs at least two branches; use kind='single' for one.")
            counts = {len(b.interaction_indexes) for b in self.branches}
            if len(counts) != 1 or counts == {0}:
                raise ValueError(
                    "every branch must list the same, non-zero number of interaction ranges; got "
                    + ", ".join(f"branch{k + 1}: {len(b.interaction_indexes)}" for k, b in enumerate(self.branches))
                )
        elif len(self.branches) != 1:
            raise ValueError("a 'single' tower has exactly one branch.")

    @property
    def image_size(self) -> int:
        """The processor's resolution: ``input_size`` if set, else the highest branch resolution."""
        return self.input_size or max(b.image_size for b in self.branches)

    @property
    def num_interactions(self) -> int:
        return len(self.branches[0].interaction_indexes) if self.kind == "piip" else 0

    def image_processor(self) -> PiipImageProcessor:
        return PiipImageProcessor(self.image_size, tuple(self.image_mean), tuple(self.image_std), tuple(self.pad_color))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "branches": [b.to_dict() for b in self.branches],
            "interaction": dict(self.interaction.__dict__),
            "select_layer": self.select_layer,
            "run_unused_layers": self.run_unused_layers,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "pad_color": list(self.pad_color),
            **({"input_size": self.input_size} if self.input_size is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VisionTowerConfig":
        data = dict(data)
        data["branches"] = [BranchConfig.from_dict(b) for b in data["branches"]]
        data["interaction"] = InteractionConfig(**data.get("interaction", {}))
        for key in ("image_mean", "image_std", "pad_color"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def llava_baseline_stats() -> dict[str, tuple]:
    """LLaVA-1.5 normalises with CLIP statistics and pads with CLIP's mean colour (122, 116, 104)."""
    return {"image_mean": CLIP_MEAN, "image_std": CLIP_STD, "pad_color": tuple(int(255 * m) for m in CLIP_MEAN)}


class InteractionBlock(nn.Module):
    """All pairwise units of one interaction step (``interaction_units_12``, ``_23``, ...)."""

    def __init__(self, dims: list[int], config: InteractionConfig):
        super().__init__()
        self.num_branches = len(dims)
        for k in range(1, len(dims)):
            self.add_module(f"interaction_units_{k}{k + 1}", InteractionUnit(dims[k - 1], dims[k], config))

    def forward(self, tokens: list[torch.Tensor], grids: list[tuple[int, int]]) -> list[torch.Tensor]:
        tokens = list(tokens)
        for k in range(1, self.num_branches):
            unit = getattr(self, f"interaction_units_{k}{k + 1}")
            tokens[k - 1], tokens[k] = unit(tokens[k - 1], grids[k - 1], tokens[k], grids[k])
        return tokens


def branch_input(pixel_values: torch.Tensor, size: int) -> torch.Tensor:
    """A lower pyramid level: bilinear, no antialias, from the *normalised* top-level tensor (fp32)."""
    if size >= pixel_values.shape[-1]:
        return pixel_values
    return F.interpolate(at_least_fp32(pixel_values), size=(size, size), mode="bilinear", align_corners=False)


class PiipVisionTower(nn.Module):
    """N-branch parameter-inverted pyramid with interactions; returns each branch's final map."""

    def __init__(self, config: VisionTowerConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = config
        self.num_branches = len(config.branches)
        for k, branch_config in enumerate(config.branches, start=1):
            self.add_module(f"branch{k}", build_branch(branch_config, attn_implementation))
        self._validate_schedule()
        self.interactions = nn.ModuleList(
            InteractionBlock([b.dim_at(r[i][1]) for b, r in zip(self.branches, self._ranges)], config.interaction)
            for i in range(config.num_interactions)
        )
        self.gradient_checkpointing = False

    @property
    def branches(self) -> list[Branch]:
        return [getattr(self, f"branch{k}") for k in range(1, self.num_branches + 1)]

    @property
    def _ranges(self) -> list[list[tuple[int, int]]]:
        return [b.config.interaction_indexes for b in self.branches]

    def _validate_schedule(self) -> None:
        """Ranges must tile each branch's blocks exactly once, in order (nothing runs after the last unit)."""
        for k, branch in enumerate(self.branches, start=1):
            expected_start = 0
            for start, end in branch.config.interaction_indexes:
                if start != expected_start or end < start:
                    raise ValueError(
                        f"branch{k}: interaction ranges {branch.config.interaction_indexes} must be contiguous, "
                        f"start at 0 and be non-empty (range starting at {start}, expected {expected_start})."
                    )
                expected_start = end + 1
            if expected_start != branch.num_blocks:
                raise ValueError(
                    f"branch{k}: interaction ranges end at block {expected_start - 1}, but the backbone has "
                    f"{branch.num_blocks} blocks; the last range must end at {branch.num_blocks - 1}."
                )

    @property
    def out_dims(self) -> list[int]:
        return [b.out_dim for b in self.branches]

    @property
    def out_grids(self) -> list[tuple[int, int]]:
        return [b.grid_at(b.num_blocks - 1) for b in self.branches]

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.gradient_checkpointing = enabled
        for branch in self.branches:
            branch.gradient_checkpointing = enabled

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        branches = self.branches
        states = [b.embed(branch_input(pixel_values, b.config.image_size)) for b in branches]
        for i, block in enumerate(self.interactions):
            states = [b.run_blocks(s, *b.config.interaction_indexes[i]) for b, s in zip(branches, states)]
            tokens = [b.tokens(s) for b, s in zip(branches, states)]
            grids = [s.hw for s in states]
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, grids, use_reentrant=False)
            else:
                tokens = block(tokens, grids)
            states = [b.with_tokens(s, t) for b, s, t in zip(branches, states, tokens)]
        return [b.features(s) for b, s in zip(branches, states)]


class SingleBranchTower(nn.Module):
    """One backbone, one resolution: LLaVA-1.5's CLIP (select layer -2, cls dropped) and the
    single-branch baselines of the pyramid experiments."""

    def __init__(self, config: VisionTowerConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = config
        self.branch1 = build_branch(config.branches[0], attn_implementation)
        layers = self.branch1.num_blocks
        last = config.select_layer + layers if config.select_layer < 0 else config.select_layer - 1
        if not 0 <= last < layers:
            raise ValueError(f"select_layer {config.select_layer} is out of range for a {layers}-layer backbone.")
        self._last_used_block = last
        self.num_branches = 1

    @property
    def branches(self) -> list[Branch]:
        return [self.branch1]

    @property
    def out_dims(self) -> list[int]:
        return [self.branch1.dim_at(self._last_used_block)]

    @property
    def out_grids(self) -> list[tuple[int, int]]:
        return [self.branch1.grid_at(self._last_used_block)]

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.branch1.gradient_checkpointing = enabled

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        branch = self.branch1
        state = branch.run_blocks(branch.embed(branch_input(pixel_values, branch.config.image_size)), 0, self._last_used_block)
        if self.config.run_unused_layers and self._last_used_block < branch.num_blocks - 1:
            branch.run_blocks(state, self._last_used_block + 1, branch.num_blocks - 1)
        return [branch.features(state)]


def build_vision_tower(config: VisionTowerConfig, attn_implementation: str = "sdpa") -> nn.Module:
    if config.kind == "piip":
        return PiipVisionTower(config, attn_implementation)
    return SingleBranchTower(config, attn_implementation)


__all__ = [
    "ClipViTBranchConfig",
    "InteractionBlock",
    "PiipVisionTower",
    "SingleBranchTower",
    "VisionTowerConfig",
    "build_vision_tower",
    "llava_baseline_stats",
]
