"""Stage 0 of the miniature comparison: pretrain each tower on its own before the LLaVA stages.

Why it exists: the official recipe starts from *pretrained* towers (CLIP, ConvNeXt) and its stage 1
only has to fit a projector. Offline, every tower starts from random init, and a tower that has to
learn to see through a frozen 135 M LLM learns far too slowly for a CPU budget: measured with the
plain quickstart recipe (``tower_pretrain_steps=0``) on this task, every variant stayed at chance,
even on the big shape's side. Stage 0 stands in for the missing pretraining: the tower gets a linear
head per scene attribute (:data:`~piip_llava.evidence.synthetic.LABELS`) on its flattened output
tokens and is trained to classify the stage-1 scenes; the heads are then thrown away and the tower
enters stage 1 through ``--vision_tower_weights``, exactly as a pretrained tower would.

Stage 0 sees only stage-1 scenes (disjoint from the test scenes) and spends the same number of steps
on every variant. Its held-out probe accuracy is recorded too: it tells *what the tower can see*
apart from *what the LLM learns to read*.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..train.policies import freeze_interaction_gates
from ..vision.image_processor import PiipImageProcessor
from ..vision.tower import VisionTowerConfig, build_vision_tower
from .synthetic import ATTRIBUTES_FILE, LABELS


@dataclass(frozen=True)
class PretrainSettings:
    steps: int = 750
    batch_size: int = 4
    lr: float = 1e-3
    bf16: bool = False
    freeze_gates: bool = False
    """Variant (d): the interaction gates stay at zero in stage 0 too."""


def _labels(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {name: torch.tensor([values.index(row[name]) for row in rows]) for name, values in LABELS.items()}


def _features(tower: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Every output token of every branch, flattened: a linear head then sees where things are."""
    return torch.cat([f.flatten(1).float() for f in tower(pixels)], dim=1)


def _load_split(data_dir: Path, split: str, image_size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    from PIL import Image

    rows = json.loads((data_dir / ATTRIBUTES_FILE).read_text())[split]
    processor = PiipImageProcessor(image_size)
    images = []
    for row in rows:
        with Image.open(data_dir / row["image"]) as image:
            images.append(image.convert("RGB"))
    return processor(images, aspect_mode="square"), _labels(rows)


def pretrain_tower(tower_config: VisionTowerConfig, data_dir: Path | str, out_file: Path | str, settings: PretrainSettings,
                   seed: int, image_size: int = 128) -> dict:
    """Build the tower from ``seed``, pretrain it, save its state dict to ``out_file`` (safetensors);
    return the stage's record (losses, held-out probe accuracy per attribute, seconds)."""
    from safetensors.torch import save_file

    started = time.perf_counter()
    data_dir = Path(data_dir)
    pixels, labels = _load_split(data_dir, "stage1", image_size)
    test_pixels, test_labels = _load_split(data_dir, "test", image_size)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tower = build_vision_tower(tower_config)
    if settings.freeze_gates:
        freeze_interaction_gates(tower)
    with torch.no_grad():
        width = _features(tower, pixels[:1]).shape[1]
    heads = nn.ModuleDict({name: nn.Linear(width, len(values)) for name, values in LABELS.items()})
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
            loss = sum(nn.functional.cross_entropy(heads[name](features), labels[name][index]) for name in LABELS)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step % 50 == 0:
                losses.append([step, round(loss.detach().item() / len(LABELS), 4)])
            if step >= settings.steps:
                break
    tower.eval()
    with torch.no_grad(), autocast:
        features = torch.cat([_features(tower, test_pixels[i : i + 64]) for i in range(0, len(test_pixels), 64)])
    probe = {name: round(float((heads[name](features.float()).argmax(-1) == test_labels[name]).float().mean()), 4)
             for name in LABELS}
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in tower.state_dict().items()}, str(out_file))
    return {"steps": step, "loss_curve": losses, "probe_accuracy": probe, "seconds": round(time.perf_counter() - started, 1)}


__all__ = ["PretrainSettings", "pretrain_tower"]
