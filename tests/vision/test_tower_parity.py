"""The tower and projector reproduce the official PIIP-LLaVA code on the golden fixtures."""

import pytest
import torch

from conftest import TOWER_CASES, load_tower_case


@pytest.mark.parametrize("case", TOWER_CASES)
def test_tower_and_projector_match_official_fp32(case):
    tower, projector, io, _ = load_tower_case(case)
    with torch.no_grad():
        features = tower(io["pixel_values"])
        tokens = projector(features)
    torch.testing.assert_close(features[0], io["branch1_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(features[1], io["branch2_features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens, io["projector_output"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", TOWER_CASES)
def test_tower_matches_official_fp64(case):
    tower, projector, io, _ = load_tower_case(case)
    tower, projector = tower.double(), projector.double()
    with torch.no_grad():
        features = tower(io["pixel_values"].double())
        tokens = projector(features)
    torch.testing.assert_close(features[0], io["branch1_features_fp64"], atol=1e-10, rtol=0)
    torch.testing.assert_close(features[1], io["branch2_features_fp64"], atol=1e-10, rtol=0)
    torch.testing.assert_close(tokens, io["projector_output_fp64"], atol=1e-10, rtol=0)


@pytest.mark.parametrize("case", TOWER_CASES)
def test_gates_zero_path(case):
    tower, projector, io, _ = load_tower_case(case)
    with torch.no_grad():
        for name, param in tower.named_parameters():
            if name.endswith(("ca_weight", "cffn_weight")):
                param.zero_()
        tokens = projector(tower(io["pixel_values"]))
    torch.testing.assert_close(tokens, io["projector_output_gates_zero"], atol=1e-5, rtol=0)


def test_intermediates_of_every_interaction():
    tower, projector, io, inter = load_tower_case("convnext_clip_tiny")
    seen = {}

    def hook(index):
        def fn(module, args, output):
            seen[index] = (args[0], output)

        return fn

    for i, block in enumerate(tower.interactions):
        block.register_forward_hook(hook(i))
    with torch.no_grad():
        tower(io["pixel_values"])
    for i, (inputs, outputs) in seen.items():
        torch.testing.assert_close(inputs[0], inter[f"interaction.{i}.in.branch1"], atol=1e-5, rtol=0)
        torch.testing.assert_close(inputs[1], inter[f"interaction.{i}.in.branch2"], atol=1e-5, rtol=0)
        torch.testing.assert_close(outputs[0], inter[f"interaction.{i}.out.branch1"], atol=1e-5, rtol=0)
        torch.testing.assert_close(outputs[1], inter[f"interaction.{i}.out.branch2"], atol=1e-5, rtol=0)


def test_untrained_pyramid_is_two_independent_backbones():
    """Official init: zero gates make every interaction the identity."""
    from piip_llava.vision.registry import get_architecture
    from piip_llava.vision.tower import build_vision_tower

    tower = build_vision_tower(get_architecture("tiny-piip-vit").tower).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        full = tower(x)
        b1 = tower.branch1
        state = b1.run_blocks(b1.embed(torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)), 0, 3)
    torch.testing.assert_close(full[0], b1.features(state), atol=1e-6, rtol=0)


def test_gradients_reach_every_parameter_with_checkpointing():
    from piip_llava.vision.registry import get_architecture
    from piip_llava.vision.tower import build_vision_tower

    tower = build_vision_tower(get_architecture("tiny-piip-convnext").tower).train()
    for name, param in tower.named_parameters():
        if name.endswith(("ca_weight", "cffn_weight")):
            torch.nn.init.normal_(param, std=0.1)
    tower.set_gradient_checkpointing(True)
    x = torch.randn(2, 3, 160, 160)
    sum(f.square().mean() for f in tower(x)).backward()
    unused = ("post_layernorm", "head.norm")
    missing = [n for n, p in tower.named_parameters() if p.grad is None and not any(u in n for u in unused)]
    assert missing == []
