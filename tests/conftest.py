"""Shared test helpers. Everything the tests read lives under tests/fixtures (self-contained clone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
VISION_FIXTURES = FIXTURES / "vision_tower"
TOWER_CASES = ("clip_bl_tiny", "convnext_clip_tiny", "convnext_clip_tiny_640pattern")


def load_tower_case(name: str):
    """(tower, projector, io tensors, intermediates) for a golden case, weights loaded from the fixture."""
    from safetensors.torch import load_file

    from piip_llava.model.checkpoints import official_to_ours
    from piip_llava.model.projector import ProjectorConfig, build_projector
    from piip_llava.vision.official_config import tower_config_from_official
    from piip_llava.vision.tower import build_vision_tower

    folder = VISION_FIXTURES / name
    config = json.loads((folder / "config.json").read_text())
    official = config["official_config"]
    tower = build_vision_tower(tower_config_from_official(official["backbone"]), "sdpa").eval()
    projector = build_projector(ProjectorConfig("piip_gn_mlp"), tower.out_dims, official["llm_hidden_size"]).eval()
    state = {official_to_ours(k, "llava_llama"): v for k, v in load_file(folder / "weights.safetensors").items()}
    tower.load_state_dict({k[len("vision_tower."):]: v for k, v in state.items() if k.startswith("vision_tower.")}, strict=True)
    projector.load_state_dict({k[len("projector."):]: v for k, v in state.items() if k.startswith("projector.")}, strict=True)
    return tower, projector, load_file(folder / "io.safetensors"), load_file(folder / "intermediates.safetensors")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
