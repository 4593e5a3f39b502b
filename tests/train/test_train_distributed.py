"""Both stages end to end through the real entry point: ``torchrun --nproc_per_node 2 -m piip_llava.train``
with DeepSpeed ZeRO-2 (and ZeRO-3 for stage 2) on CPU, then load the outputs and generate.

DeepSpeed runs on CPU with ``DS_ACCELERATOR=cpu`` + ``--use_cpu True`` under torchrun (gloo + its shared-memory
comm op, JIT-built into ~/.cache/torch_extensions on the very first run, which takes about a minute once).
"""

from __future__ import annotations

import json

import pytest
import torch

from .conftest import check_ok, run_entry

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _stage1(tiny_llm, tiny_data, out):
    return run_entry([
        "--deepspeed", "scripts/zero2.json", "--stage", "pretrain", "--llm", str(tiny_llm), "--architecture", "tiny-piip-vit",
        "--template", "plain", "--conversation_template", "vicuna_v1", "--image_aspect_ratio", "square",
        "--data_path", str(tiny_data["pretrain"]), "--image_folder", str(tiny_data["images"]),
        "--per_device_train_batch_size", "2", "--max_steps", "2", "--learning_rate", "1e-3", "--save_strategy", "no",
        "--output_dir", str(out),
    ], nproc=2)


def _stage2(stage1, tiny_data, out, zero: str):
    return run_entry([
        "--deepspeed", f"scripts/{zero}.json", "--stage", "finetune", "--model_name_or_path", str(stage1),
        "--template", "vicuna_v1", "--group_by_modality_length", "True",
        "--data_path", str(tiny_data["finetune"]), "--image_folder", str(tiny_data["images"]),
        "--per_device_train_batch_size", "2", "--max_steps", "2", "--learning_rate", "1e-4", "--mm_projector_lr", "1e-3",
        "--save_strategy", "no", "--output_dir", str(out),
    ], nproc=2)


@pytest.fixture(scope="module")
def stage1_dir(tiny_llm, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "stage1"
    check_ok(_stage1(tiny_llm, tiny_data, out))
    return out


def _generate(model_dir) -> torch.Tensor:
    from PIL import Image

    from piip_llava.inference import Generator, load_pretrained_model, user_message

    loaded = load_pretrained_model(str(model_dir), device="cpu", dtype="float32")
    generator = Generator(loaded)
    image = Image.new("RGB", (50, 30), (200, 40, 40))
    inputs = generator.batch([[user_message("What is this?", 1)], [{"role": "user", "content": "Hi!"}]], [[image], []])
    with torch.inference_mode():
        output = loaded.model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                                       pad_token_id=loaded.tokenizer.pad_token_id)
    return output[:, inputs["input_ids"].shape[1]:]


def _check_stage1(stage1):
    from safetensors.torch import load_file

    from piip_llava.model import PiipLlavaForConditionalGeneration

    model = PiipLlavaForConditionalGeneration.from_pretrained(stage1)
    assert model.config.conversation_template == "vicuna_v1"
    assert (stage1 / "tokenizer.model").is_file()
    assert json.loads((stage1 / "data_report.json").read_text())["skipped"] == {}
    return model, load_file(stage1 / "model.safetensors")


@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_two_stages_under_torchrun_deepspeed(stage1_dir, tiny_llm, tiny_data, tmp_path, zero):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from piip_llava.model import PiipLlavaForConditionalGeneration

    _, stage1_state = _check_stage1(stage1_dir)
    # Stage 1 trained the projector only: the LLM is the --llm folder's, bit for bit (+ the <image> row).
    llm = AutoModelForCausalLM.from_pretrained(tiny_llm).state_dict()
    assert torch.equal(stage1_state["language_model.model.layers.0.mlp.up_proj.weight"], llm["model.layers.0.mlp.up_proj.weight"])
    assert stage1_state["language_model.model.embed_tokens.weight"].shape[0] == llm["model.embed_tokens.weight"].shape[0] + 1

    stage2_dir = tmp_path / "stage2"
    result = _stage2(stage1_dir, tiny_data, stage2_dir, zero)
    check_ok(result)
    assert result.stdout.count("saved to") >= 1
    model = PiipLlavaForConditionalGeneration.from_pretrained(stage2_dir)
    stage2_state = load_file(stage2_dir / "model.safetensors")
    assert stage2_state.keys() == stage1_state.keys()
    # Stage 2 trained the LLM, the projector and the tower (ZeRO-3 gathered full weights on save).
    for key in ("language_model.model.layers.0.mlp.up_proj.weight", "projector.branch1.1.weight",
                "vision_tower.branch1.clip_model.encoder.layers.0.mlp.fc1.weight"):
        assert stage2_state[key].shape == stage1_state[key].shape
        assert not torch.equal(stage2_state[key], stage1_state[key]), key
    assert model.config.num_image_tokens == PiipLlavaForConditionalGeneration.from_pretrained(stage1_dir).config.num_image_tokens
    new_tokens = _generate(stage2_dir)
    assert new_tokens.shape == (2, 4)
