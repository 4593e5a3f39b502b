"""Every released architecture has exactly the official state-dict layout (names and shapes)."""

import json

import pytest
import torch

from conftest import FIXTURES
from piip_llava.vision.registry import ARCHITECTURES, RELEASED, get_architecture

OFFICIAL_KEYS = FIXTURES / "official_keys"


def _build_meta(name: str):
    from accelerate import init_empty_weights
    from transformers import LlamaConfig

    from piip_llava.model import PiipLlavaConfig, PiipLlavaForConditionalGeneration

    spec = get_architecture(name)
    geometry = json.loads((OFFICIAL_KEYS / "llm_keys.json").read_text())["models"][spec.llm]["config"]
    text = LlamaConfig(**{k: geometry[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")})
    with init_empty_weights():
        return PiipLlavaForConditionalGeneration(PiipLlavaConfig.from_architecture(spec, text, image_token_id=32000))


def test_nine_released_configurations_are_registered():
    assert len(RELEASED) == 9
    assert all((OFFICIAL_KEYS / f"{name}.json").exists() for name in RELEASED)


@pytest.mark.parametrize("name", RELEASED)
def test_vision_and_projector_keys_match_official(name):
    from piip_llava.model.checkpoints import ours_to_official

    official = json.loads((OFFICIAL_KEYS / f"{name}.json").read_text())
    expected = {k: tuple(shape) for k, shape in official["tensors"]}
    model = _build_meta(name)
    ours = {
        ours_to_official(k): tuple(v.shape)
        for k, v in model.state_dict().items()
        if k.startswith(("vision_tower.", "projector."))
    }
    assert sorted(set(ours) - set(expected)) == []
    assert sorted(set(expected) - set(ours)) == []
    assert {k: s for k, s in ours.items() if expected[k] != s} == {}
    counts = official["param_counts"]
    tower_params = sum(v.numel() for k, v in model.state_dict().items() if k.startswith("vision_tower."))
    assert tower_params == counts["vision_tower_total"]


@pytest.mark.parametrize("name", ["piip-llava_clip-bl_512-256_7B", "piip-llava_convnext-b_clip-l_1024-336_13B"])
def test_llm_keys_match_vicuna(name):
    from piip_llava.model.checkpoints import ours_to_official

    spec = get_architecture(name)
    llm = json.loads((OFFICIAL_KEYS / "llm_keys.json").read_text())["models"][spec.llm]
    expected = {k: tuple(s) for k, s in llm["tensors"]}
    model = _build_meta(name)
    ours = {ours_to_official(k): tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("language_model.")}
    assert ours == expected
    assert sum(torch.Size(s).numel() for s in ours.values()) == llm["param_count"]


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(KeyError, match="Did you mean"):
        get_architecture("piip-llava_clip-bl_512-256_7b")


def test_official_config_path_resolves():
    assert get_architecture("configs/piip-llava_clip-bl_512-256_7B.py").name == "piip-llava_clip-bl_512-256_7B"


def test_every_registered_architecture_builds_on_meta():
    from piip_llava.vision.tower import build_vision_tower

    for name in ARCHITECTURES:
        with torch.device("meta"):
            build_vision_tower(get_architecture(name).tower)


def test_paper_three_branch_parameters():
    """Paper Table X: 12-layer branches 640/8 heads -> 59.6 M, 320/4 -> 15.1 M, 160/2 -> 4.0 M."""
    from piip_llava.flops import count_by_name

    params = count_by_name("piip-vit-3branch_512-256-128").params
    assert round(params["branch1"] / 1e6, 1) == 59.6
    assert round(params["branch2"] / 1e6, 1) == 15.1
    assert round(params["branch3"] / 1e6, 1) == 4.0


def test_input_size_feeds_a_single_branch_like_a_pyramid_level():
    """A single tower whose processor works above its branch resolution downsamples with the pyramid's
    bilinear ``branch_input`` -- the same pixels a PIIP low-resolution branch would get."""
    from dataclasses import replace

    from piip_llava.vision.tower import VisionTowerConfig, branch_input, build_vision_tower

    base = get_architecture("tiny-llava").tower
    branch = base.branches[0]
    config = replace(base, input_size=2 * branch.image_size)
    assert config.image_size == 2 * branch.image_size and base.image_size == branch.image_size
    assert VisionTowerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert "input_size" not in base.to_dict()  # existing configs serialise as before
    torch.manual_seed(0)
    tower = build_vision_tower(config).eval()
    large = torch.randn(2, 3, config.image_size, config.image_size)
    with torch.no_grad():
        assert torch.equal(tower(large)[0], tower(branch_input(large, branch.image_size))[0])
    with pytest.raises(ValueError, match="input_size"):
        replace(base, input_size=branch.image_size - 1)
