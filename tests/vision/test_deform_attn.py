import torch
from safetensors.torch import load_file

from conftest import VISION_FIXTURES
from piip_llava.vision.deform_attn import MSDeformAttn, ms_deform_attn_core, reference_points

CASES = load_file(VISION_FIXTURES / "deform_attn.safetensors")


def _core_args(dtype):
    shapes = [tuple(int(v) for v in hw) for hw in CASES["core.spatial_shapes"]]
    return (CASES["core.value"].to(dtype), shapes, CASES["core.sampling_locations"].to(dtype), CASES["core.attention_weights"].to(dtype))


def test_core_matches_official_fp32():
    out = ms_deform_attn_core(*_core_args(torch.float32))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, CASES["core.output"], atol=1e-6, rtol=1e-6)


def test_core_matches_official_fp64():
    out = ms_deform_attn_core(*_core_args(torch.float64))
    torch.testing.assert_close(out, CASES["core.output_fp64"], atol=1e-12, rtol=1e-12)


def test_core_runs_in_fp32_for_half_inputs():
    out = ms_deform_attn_core(*_core_args(torch.bfloat16))
    assert out.dtype == torch.float32


def _module(dtype=torch.float32):
    module = MSDeformAttn(64, n_levels=1, n_heads=16, n_points=4, ratio=0.5)
    state = {k[len("module.param."):]: v for k, v in CASES.items() if k.startswith("module.param.")}
    module.load_state_dict(state)
    return module.to(dtype).eval()


def test_module_matches_official():
    shapes = [tuple(int(v) for v in hw) for hw in CASES["module.input_spatial_shapes"]]
    with torch.no_grad():
        out = _module()(CASES["module.query"], CASES["module.reference_points"], CASES["module.input_flatten"], shapes)
    torch.testing.assert_close(out, CASES["module.output"], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        out64 = _module(torch.float64)(
            CASES["module.query"].double(), reference_points(3, 4, dtype=torch.float64), CASES["module.input_flatten"].double(), shapes
        )
    torch.testing.assert_close(out64, CASES["module.output_fp64"], atol=1e-10, rtol=1e-10)


def test_reference_points_are_the_official_ones():
    torch.testing.assert_close(reference_points(3, 4), CASES["module.reference_points"], atol=0, rtol=0)


def test_gradients_flow_and_batch_is_unrestricted():
    module = MSDeformAttn(32, n_heads=4)
    query = torch.randn(5, 6, 32, requires_grad=True)
    feat = torch.randn(5, 20, 32, requires_grad=True)
    out = module(query, reference_points(2, 3), feat, [(4, 5)])
    out.square().sum().backward()
    assert query.grad is not None and feat.grad.abs().sum() > 0
    assert module.sampling_offsets.weight.grad.abs().sum() > 0


def test_value_width_must_divide_heads():
    import pytest

    with pytest.raises(ValueError, match="not divisible"):
        MSDeformAttn(24, n_heads=16)


def test_custom_core_seam():
    calls = []

    def core(value, shapes, locations, weights):
        calls.append(value.shape)
        return ms_deform_attn_core(value, shapes, locations, weights)

    module = MSDeformAttn(32, n_heads=4, core=core)
    module(torch.randn(1, 6, 32), reference_points(2, 3), torch.randn(1, 20, 32), [(4, 5)])
    assert calls == [torch.Size([1, 20, 4, 4])]
