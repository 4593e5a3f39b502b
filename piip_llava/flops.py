"""Parameters and vision-encoder compute of any registered architecture, without weights.

The tower and projector are built on the ``meta`` device (shapes only, no memory), one image is run
through them, and forward hooks count multiply-accumulates the way the PIIP paper reports them:

* ``nn.Linear``: input elements x out features (bias free; cls tokens included);
* ``nn.Conv2d``: k*k*Cin/groups * Cout * H_out*W_out, plus Cout*H_out*W_out for the bias;
* ``nn.LayerNorm`` / ``nn.GroupNorm`` (exact types only -- timm's LayerNorm2d counts 0): 2 x elements;
* ViT self-attention: 2 * N^2 * d per layer (N patches, cls excluded);
* deformable attention: 5 * Nq * n_points * C per direction per interaction (C = query width). For
  pyramids with a ConvNeXt branch, the official counter used the *first* interaction's ConvNeXt grid
  for the queries of every 1->2 direction; ``official_convnext_quirk`` reproduces that accounting.
* activations, softmax and interpolation: 0.

It also reports true FLOPs of the same forward via ``torch.utils.flop_counter`` for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .model.projector import ProjectorConfig, build_projector
from .vision.branches import ConvNeXtBranch
from .vision.interaction import Injector
from .vision.registry import ArchitectureSpec, get_architecture
from .vision.tower import PiipVisionTower, build_vision_tower

GIGA = 1e9


@dataclass
class FlopsReport:
    arch: str
    image_size: int
    num_visual_tokens: int
    macs_paper: float
    """Vision-encoder MACs in the paper's convention: branches + interactions (projector excluded,
    as in the paper's tables; it is listed separately in ``macs_by_component``)."""
    macs_by_component: dict[str, float]
    true_flops: float
    """``torch.utils.flop_counter`` FLOPs (2 per MAC of matmul/conv) of the same forward."""
    params: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "image_size": self.image_size,
            "num_visual_tokens": self.num_visual_tokens,
            "macs_paper_g": round(self.macs_paper / GIGA, 3),
            "macs_by_component_g": {k: round(v / GIGA, 3) for k, v in self.macs_by_component.items()},
            "true_flops_g": round(self.true_flops / GIGA, 3),
            "params_m": {k: round(v / 1e6, 3) for k, v in self.params.items()},
            "params": self.params,
            "notes": self.notes,
        }


class _Counter:
    """Forward hooks that add MACs to the component owning each module."""

    def __init__(self, official_convnext_quirk: bool):
        self.totals: dict[str, float] = {}
        self.quirk = official_convnext_quirk
        self.first_convnext_grid: int | None = None

    def add(self, component: str, macs: float) -> None:
        self.totals[component] = self.totals.get(component, 0.0) + float(macs)

    def hook(self, component: str):
        def fn(module: nn.Module, inputs: tuple, output: Any) -> None:
            x = inputs[0] if inputs else None
            if type(module) is nn.Linear:
                self.add(component, x.numel() * module.out_features)
            elif type(module) is nn.Conv2d:
                out_elems = output.shape[0] * output.shape[-2] * output.shape[-1]
                k = module.kernel_size[0] * module.kernel_size[1]
                macs = k * module.in_channels // module.groups * module.out_channels * out_elems
                if module.bias is not None:
                    macs += module.out_channels * out_elems
                self.add(component, macs)
            elif type(module) in (nn.LayerNorm, nn.GroupNorm):
                self.add(component, 2 * x.numel())

        return fn

    def attention_hook(self, component: str):
        def fn(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            x = args[0] if args else kwargs.get("hidden_states", kwargs.get("x", kwargs.get("q_x")))
            batch, tokens, dim = x.shape
            patches = tokens - 1  # cls excluded, as in the paper's count
            self.add(component, batch * 2 * patches * patches * dim)

        return fn


def _attention_modules(branch: nn.Module) -> list[nn.Module]:
    names = ("CLIPAttention", "ResidualAttentionBlock")
    return [m for m in branch.modules() if type(m).__name__ in names]


def count(spec: ArchitectureSpec, official_convnext_quirk: bool = True) -> FlopsReport:
    """Count parameters and MACs of ``spec``'s tower + projector for one image (meta device)."""
    with torch.device("meta"):
        tower = build_vision_tower(spec.tower, attn_implementation="eager")
        projector = build_projector(ProjectorConfig(spec.projector_type), tower.out_dims, spec.llm_hidden_size)
    tower.eval()
    counter = _Counter(official_convnext_quirk)
    handles = []
    components: dict[str, nn.Module] = {f"branch{k}": b for k, b in enumerate(tower.branches, start=1)}
    if isinstance(tower, PiipVisionTower):
        components["interactions"] = tower.interactions
    components["projector"] = projector
    for name, module in components.items():
        for sub in module.modules():
            if isinstance(sub, (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.GroupNorm)):
                handles.append(sub.register_forward_hook(counter.hook(name)))
        if name.startswith("branch"):
            for attn in _attention_modules(module):
                handles.append(attn.register_forward_hook(counter.attention_hook(name), with_kwargs=True))
    notes = []
    if isinstance(tower, PiipVisionTower):
        _hook_deformable(tower, counter, handles, notes)

    pixel_values = torch.empty(1, 3, spec.tower.image_size, spec.tower.image_size, device="meta")
    flop_mode = FlopCounterMode(display=False)
    with torch.no_grad(), flop_mode:
        features = tower(pixel_values)
        tokens = projector(features)
    for handle in handles:
        handle.remove()

    params = {name: sum(p.numel() for p in module.parameters()) for name, module in components.items()}
    params["vision_tower"] = sum(p.numel() for p in tower.parameters())
    return FlopsReport(
        arch=spec.name,
        image_size=spec.tower.image_size,
        num_visual_tokens=tokens.shape[1],
        macs_paper=sum(v for k, v in counter.totals.items() if k != "projector"),
        macs_by_component=dict(counter.totals),
        true_flops=float(flop_mode.get_total_flops()),
        params=params,
        notes=notes,
    )


def _hook_deformable(tower: PiipVisionTower, counter: _Counter, handles: list, notes: list[str]) -> None:
    """5 * Nq * n_points * C per injector call (the paper's deformable-attention term)."""
    convnext_index = next((k for k, b in enumerate(tower.branches) if isinstance(b, ConvNeXtBranch)), None)
    first_grid: dict[str, int] = {}

    for i, block in enumerate(tower.interactions):
        for unit_name, unit in block.named_children():
            k = int(unit_name[-2]) - 1  # interaction_units_{k+1}{k+2}
            for direction, injector in (("to_low", unit.branch2to1_injector), ("to_high", unit.branch1to2_injector)):
                query_branch = k if direction == "to_low" else k + 1
                quirk = counter.quirk and convnext_index == query_branch

                def fn(module: Injector, args: tuple, output: Any, quirk=quirk, key=f"{unit_name}") -> None:
                    query = args[0]
                    batch, num_queries, channels = query.shape
                    if quirk:
                        num_queries = first_grid.setdefault(key, num_queries)
                    counter.add("interactions", batch * 5 * num_queries * module.attn.n_points * channels)

                handles.append(injector.register_forward_hook(fn))
    if convnext_index is not None and counter.quirk:
        notes.append(
            "deformable term for ConvNeXt queries uses the first interaction's grid, as the official counter did"
        )


def param_count_llm(llm: str) -> int | None:
    """Parameters of the released LLM (Vicuna-7B/13B geometry built on the meta device)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    geometry = {
        "lmsys/vicuna-7b-v1.5": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
        "lmsys/vicuna-13b-v1.5": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40),
    }.get(llm)
    if geometry is None:
        return None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=32000, **geometry))
    return sum(p.numel() for p in model.parameters())


def count_by_name(name: str, with_llm: bool = False, official_convnext_quirk: bool = True) -> FlopsReport:
    spec = get_architecture(name)
    report = count(spec, official_convnext_quirk)
    if with_llm:
        llm_params = param_count_llm(spec.llm)
        if llm_params is not None:
            report.params["llm"] = llm_params
    return report
