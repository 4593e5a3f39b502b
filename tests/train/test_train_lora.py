"""Stage 2 with LoRA, then ``piip-llava merge-lora``: the merged checkpoint computes what the adapted model does."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from piip_llava.cli import main as cli_main

from .conftest import train_in_process

LORA_FILES = ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "tokenizer.model")


@pytest.fixture(scope="module")
def lora_run(tiny_checkpoint, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "run"
    result = train_in_process([
        "--stage", "finetune", "--model_name_or_path", str(tiny_checkpoint), "--template", "vicuna_v1",
        "--data_path", str(tiny_data["finetune"]), "--image_folder", str(tiny_data["images"]),
        "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
        "--learning_rate", "5e-3", "--mm_projector_lr", "1e-3", "--per_device_train_batch_size", "2", "--max_steps", "3",
        "--save_strategy", "no", "--output_dir", str(out),
    ])
    return out, result


def _batch(model, tokenizer_dir: Path, images_dir: Path):
    """Two left-padded prompts, one with an image and one text-only (a blank image keeps the batch rectangular)."""
    from PIL import Image

    from piip_llava.data.preprocess import tokenize_prompt_for_generation
    from piip_llava.data.tokenizer import load_tokenizer

    loaded = load_tokenizer(tokenizer_dir, padding_side="left")
    prompts = [[{"role": "user", "content": "<image>\nWhat is in the image?"}], [{"role": "user", "content": "Hello there, who are you?"}]]
    ids = [tokenize_prompt_for_generation(p, loaded, "vicuna_v1", num_image_tokens=model.num_image_tokens) for p in prompts]
    width = max(map(len, ids))
    input_ids = torch.full((2, width), loaded.pad_token_id)
    mask = torch.zeros((2, width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, width - len(seq):] = torch.tensor(seq)
        mask[row, width - len(seq):] = 1
    image = Image.open(images_dir / "img0.png").convert("RGB")
    pixel_values = model.image_processor()([image, image], "pad")
    return {"input_ids": input_ids, "attention_mask": mask, "pixel_values": pixel_values,
            "image_sample_mask": torch.tensor([True, False])}


def test_lora_run_output_has_what_merge_needs(lora_run, tiny_checkpoint):
    out, result = lora_run
    for name in LORA_FILES:
        assert (out / name).is_file(), name
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == os.path.abspath(tiny_checkpoint)  # absolute: merge works from any cwd
    assert config["r"] == 4 and config["lora_alpha"] == 8
    assert sorted(config["modules_to_save"]) == ["projector", "vision_tower"]
    assert result.trainable["language_model"] == 0  # the LLM's base weights are frozen; peft owns the adapters
    assert [entry["loss"] for entry in result.log_history if "loss" in entry]


def test_merge_lora_matches_peft_logits(lora_run, tiny_checkpoint, tiny_data, tokenizer_dir, tmp_path):
    from peft import PeftModel

    from piip_llava.data.tokenizer import load_tokenizer
    from piip_llava.model import PiipLlavaForConditionalGeneration

    out, _ = lora_run
    merged_dir = tmp_path / "merged"
    assert cli_main(["merge-lora", "--adapter", str(out), "--output", str(merged_dir)]) == 0
    assert not (merged_dir / "adapter_config.json").exists()
    merged = PiipLlavaForConditionalGeneration.from_pretrained(merged_dir, dtype=torch.float32).eval()
    assert not any("lora_" in n or "modules_to_save" in n for n, _ in merged.named_parameters())

    base = PiipLlavaForConditionalGeneration.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()
    batch = _batch(base, tokenizer_dir, tiny_data["images"])
    with torch.no_grad():
        base_logits = base(**batch).logits
    peft_model = PeftModel.from_pretrained(
        PiipLlavaForConditionalGeneration.from_pretrained(tiny_checkpoint, dtype=torch.float32), out).eval()
    with torch.no_grad():
        peft_logits = peft_model(**batch).logits
        merged_logits = merged(**batch).logits
    assert (peft_logits - base_logits).abs().max() > 1e-4  # training changed something (else the test proves nothing)
    torch.testing.assert_close(merged_logits, peft_logits, atol=1e-5, rtol=0)

    # The trained projector / tower (modules_to_save) are in the merged checkpoint, not the base's copies.
    trained = dict(peft_model.get_base_model().projector.named_parameters())  # peft's wrapper routes to the trained copy
    for name, parameter in merged.projector.named_parameters():
        match = [v for k, v in trained.items() if k.endswith(name) and "modules_to_save" in k]
        assert match and torch.equal(parameter, match[0]), name

    # The LLaVA-exact tokenizer travels along (SentencePiece model + legacy flag), identical ids.
    reference, saved = load_tokenizer(tiny_checkpoint), load_tokenizer(merged_dir)
    assert (merged_dir / "tokenizer.model").is_file()
    assert type(saved.encoder).__name__ == "SentencePieceLlamaEncoder"
    text = "USER: <image>\n  Hello   world ASSISTANT:"
    assert saved.encoder.encode(text) == reference.encoder.encode(text)
    assert saved.image_token_id == merged.config.image_token_id


def test_merge_lora_with_explicit_base(lora_run, tiny_checkpoint, tmp_path):
    from piip_llava.commands.merge_lora import merge_lora

    out, _ = lora_run
    summary = merge_lora(str(out), str(tmp_path / "m"), base=str(tiny_checkpoint), dtype="float32")
    assert summary["lora_modules"] == 2 * 7  # 2 layers x q/k/v/o/gate/up/down
    assert summary["modules_to_save"] == ["projector", "vision_tower"]
    assert (tmp_path / "m" / "config.json").is_file()


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_merge_lora_missing_adapter_dir(tmp_path, capsys):
    assert cli_main(["merge-lora", "--adapter", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "--adapter" in line and "not found" in line


def test_merge_lora_full_checkpoint_is_not_an_adapter(tiny_checkpoint, tmp_path, capsys):
    assert cli_main(["merge-lora", "--adapter", str(tiny_checkpoint), "--output", str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "no adapter_config.json" in line and "full checkpoint" in line


def test_merge_lora_mismatched_base(lora_run, tokenizer_dir, tmp_path, capsys):
    from piip_llava.testing import make_tiny_checkpoint

    other = make_tiny_checkpoint(tmp_path / "other", tokenizer_dir, hidden_size=32)
    out, _ = lora_run
    assert cli_main(["merge-lora", "--adapter", str(out), "--base", str(other), "--output", str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "does not fit base" in line and "--base" in line
    assert not (tmp_path / "o").exists()


def test_merge_lora_recorded_base_gone(lora_run, tmp_path, capsys):
    import shutil

    out, _ = lora_run
    moved = tmp_path / "adapter"
    shutil.copytree(out, moved)
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "deleted_stage1")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    assert cli_main(["merge-lora", "--adapter", str(moved), "--output", str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert "deleted_stage1" in line and "--base" in line
