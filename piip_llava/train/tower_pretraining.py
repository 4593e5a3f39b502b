"""Stage 0: pretrain a tower on its own, before the LLaVA stages, when no pretrained weights exist.

Why it exists: the official recipe starts from *pretrained* towers (CLIP, ConvNeXt) and its stage 1
only has to fit a projector. Offline, every tower starts from random init, and a tower that has to
learn to see through a frozen 135 M LLM learns far too slowly for a CPU budget: measured with the
plain quickstart recipe on the evidence task, every variant stayed at chance, even on the big shape's
side. Stage 0 stands in for the missing pretraining: the tower gets a linear head per image attribute
on its flattened output tokens and learns to classify the training images; the heads are then thrown
away and the tower enters stage 1 through ``--vision_tower_weights``, exactly as a pretrained tower
would. Used by the pyramid comparison (:mod:`piip_llava.evidence.experiment`). Tried on the quickstart
too (easy-vqa's shape and colour as labels, 750 steps): it did not raise its accuracy (66.7 % vs
69.1 %), so the quickstart keeps training its tower in stage 1.

With ``test`` images, the held-out linear-probe accuracy is recorded too: it tells *what the tower
can see* apart from *what the LLM learns to read*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .policies import freeze_interaction_gates
from ..vision.tower import VisionTowerConfig, build_vision_tower


@dataclass(frozen=True)
class LabelledImages:
    """Images and, per attribute, each image's value (one of ``vocab[attribute]``)."""

    paths: list[Path]
    labels: dict[str, list[str]]
    vocab: dict[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        for name, values in self.labels.items():
            if len(values) != len(self.paths):
                raise ValueError(f"attribute {name!r} has {len(values)} labels for {len(self.paths)} images.")
            unknown = sorted(set(values) - set(self.vocab[name]))
            if unknown:
                raise ValueError(f"attribute {name!r}: values {unknown} are not in its vocabulary {self.vocab[name]}.")


@dataclass(frozen=True)
class PretrainSettings:
    steps: int = 750
    batch_size: int = 4
    lr: float = 1e-3
    bf16: bool = False
    freeze_gates: bool = False
    """Variant (d): the interaction gates stay at zero in stage 0 too."""


def _features(tower: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Every output token of every branch, flattened: a linear head then sees where things are."""
    return torch.cat([f.flatten(1).float() for f in tower(pixels)], dim=1)


def _tensors(images: LabelledImages, tower_config: VisionTowerConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    from PIL import Image

    loaded = []
    for path in images.paths:
        with Image.open(path) as image:
            loaded.append(image.convert("RGB"))
    labels = {name: torch.tensor([images.vocab[name].index(v) for v in values]) for name, values in images.labels.items()}
    return tower_config.image_processor()(loaded, aspect_mode="square"), labels


def pretrain_tower(tower_config: VisionTowerConfig, train: LabelledImages, out_file: Path | str, settings: PretrainSettings,
                   seed: int, test: LabelledImages | None = None) -> dict:
    """Build the tower from ``seed``, pretrain it on ``train``, save its state dict to ``out_file``
    (safetensors); return the stage's record (losses, probe accuracy on ``test`` per attribute, seconds)."""
    from safetensors.torch import save_file

    started = time.perf_counter()
    pixels, labels = _tensors(train, tower_config)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tower = build_vision_tower(tower_config)
    if settings.freeze_gates:
        freeze_interaction_gates(tower)
    with torch.no_grad():
        width = _features(tower, pixels[:1]).shape[1]
    heads = nn.ModuleDict({name: nn.Linear(width, len(train.vocab[name])) for name in labels})
    parameters = [p for p in tower.parameters() if p.requires_grad] + list(heads.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(settings.steps // 20, 1)))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16 and pixels.device.type == "cpu")
    losses, step = [], 0
    tower.train()
    while step < settings.steps:
        order = torch.randperm(len(pixels), generator=generator)
        for start in range(0, len(order) - settings.batch_size + 1, settings.batch_size):
            index = order[start : start + settings.batch_size]
            with autocast:
                features = _features(tower, pixels[index])
            loss = sum(nn.functional.cross_entropy(heads[name](features), labels[name][index]) for name in labels)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step % 50 == 0:
                losses.append([step, round(loss.detach().item() / len(labels), 4)])
            if step >= settings.steps:
                break
    tower.eval()
    probe = None
    if test is not None:
        test_pixels, test_labels = _tensors(test, tower_config)
        with torch.no_grad(), autocast:
            features = torch.cat([_features(tower, test_pixels[i : i + 64]) for i in range(0, len(test_pixels), 64)])
        probe = {name: round(float((heads[name](features.float()).argmax(-1) == test_labels[name]).float().mean()), 4)
                 for name in test_labels}
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in tower.state_dict().items()}, str(out_file))
    return {"steps": step, "loss_curve": losses, "probe_accuracy": probe, "seconds": round(time.perf_counter() - started, 1)}


__all__ = ["LabelledImages", "PretrainSettings", "pretrain_tower"]
