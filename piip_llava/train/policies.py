"""Which parameters train in each stage of the LLaVA-1.5 recipe.

* ``pretrain`` (stage 1): projector only. The tower -- interactions included -- and the LLM are frozen,
  so the projector learns to translate fixed visual features.
* ``finetune`` (stage 2): LLM + projector + the **whole** vision tower (PIIP trains its backbones and
  interactions end to end), with ``vision_trainable`` = ``interactions`` / ``none`` and ``freeze_llm``
  for cheaper variants. With LoRA the LLM's base weights stay frozen and peft owns the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError

STAGES = ("pretrain", "finetune")
VISION_TRAINABLE = ("all", "interactions", "none")


@dataclass(frozen=True)
class TrainablePolicy:
    stage: str
    vision_trainable: str | None = None
    """``None``: the recipe's default -- ``none`` in pretrain, ``all`` in finetune. Setting ``all`` in
    pretrain is for towers without pretrained weights (random init), where a frozen tower cannot work."""
    train_llm: bool = True
    freeze_interaction_gates: bool = False

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"unknown stage {self.stage!r}; use one of {STAGES}.")
        if self.vision_trainable is not None and self.vision_trainable not in VISION_TRAINABLE:
            raise ConfigError(f"unknown vision_trainable {self.vision_trainable!r}; use one of {VISION_TRAINABLE}.")

    @property
    def vision(self) -> str:
        if self.vision_trainable is not None:
            return self.vision_trainable
        return "none" if self.stage == "pretrain" else "all"


def _set(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def apply_policy(model: nn.Module, policy: TrainablePolicy) -> dict[str, int]:
    """Set ``requires_grad`` on ``model`` (a PiipLlavaForConditionalGeneration) and return trainable counts."""
    pretrain = policy.stage == "pretrain"
    _set(model.language_model, policy.train_llm and not pretrain)
    _set(model.projector, True)
    tower = model.vision_tower
    if policy.vision == "none":
        _set(tower, False)
    elif policy.vision == "all":
        _set(tower, True)
    else:
        _set(tower, False)
        if hasattr(tower, "interactions"):
            _set(tower.interactions, True)
    if policy.freeze_interaction_gates:
        freeze_interaction_gates(tower)
    return trainable_summary(model)


def freeze_interaction_gates(tower: nn.Module) -> None:
    """Keep every interaction gate at its value (zero when fresh): the no-interaction ablation."""
    if hasattr(tower, "interactions"):
        for name, parameter in tower.interactions.named_parameters():
            if name.endswith(("ca_weight", "cffn_weight")):
                parameter.requires_grad_(False)


def trainable_summary(model: nn.Module) -> dict[str, int]:
    out = {}
    for name in ("vision_tower", "projector", "language_model"):
        module = getattr(model, name)
        out[name] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return out
