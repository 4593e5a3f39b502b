"""User mistakes through the real entry point end in one clear line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO, run_entry, subprocess_env


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-4000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_missing_data_file(tiny_checkpoint, tmp_path):
    result = run_entry(["--stage", "finetune", "--model_name_or_path", str(tiny_checkpoint),
                        "--data_path", str(tmp_path / "nope.jsonl"), "--output_dir", str(tmp_path / "out")])
    assert_one_line_error(result, "--data_path", "nope.jsonl", "not found")


def test_wrong_architecture_name(tiny_llm, tiny_data, tmp_path):
    result = run_entry(["--stage", "pretrain", "--llm", str(tiny_llm), "--architecture", "tiny-piip-vitt", "--template", "plain",
                        "--data_path", str(tiny_data["pretrain"]), "--image_folder", str(tiny_data["images"]),
                        "--output_dir", str(tmp_path / "out")])
    assert_one_line_error(result, "unknown architecture", "tiny-piip-vitt", "Did you mean tiny-piip-vit")


def test_bits_4_on_cpu(tiny_checkpoint, tiny_data, tmp_path):
    result = run_entry(["--stage", "finetune", "--model_name_or_path", str(tiny_checkpoint), "--lora_enable", "True", "--bits", "4",
                        "--data_path", str(tiny_data["finetune"]), "--image_folder", str(tiny_data["images"]),
                        "--output_dir", str(tmp_path / "out")])
    assert_one_line_error(result, "--bits", "CUDA")


def test_resume_last_without_checkpoint(tiny_checkpoint, tiny_data, tmp_path):
    (tmp_path / "out").mkdir()
    result = run_entry(["--stage", "finetune", "--model_name_or_path", str(tiny_checkpoint),
                        "--data_path", str(tiny_data["finetune"]), "--image_folder", str(tiny_data["images"]),
                        "--output_dir", str(tmp_path / "out"), "--resume_from_checkpoint", "last"])
    assert_one_line_error(result, "--resume_from_checkpoint last", "no checkpoint-*")


def test_cli_wrapper_reports_the_same_way(tmp_path):
    """``piip-llava train ...`` (the console script's code path) also prints one line: no output dir to resume from."""
    command = [sys.executable, "-c", "import sys; from piip_llava.cli import main; sys.exit(main())", "train",
               "--stage", "finetune", "--model_name_or_path", str(tmp_path), "--data_path", str(tmp_path / "missing.json"),
               "--output_dir", str(tmp_path / "out"), "--use_cpu", "True", "--report_to", "none"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120, env=subprocess_env(), cwd=REPO)
    assert_one_line_error(result, "missing.json", "not found")


@pytest.mark.parametrize("bits", ["3"])
def test_bad_bits_value_in_process(tiny_checkpoint, tiny_data, tmp_path, bits):
    from piip_llava.errors import ConfigError

    from .conftest import train_in_process

    with pytest.raises(ConfigError, match="--bits must be 4, 8 or 16"):
        train_in_process(["--model_name_or_path", str(tiny_checkpoint), "--data_path", str(tiny_data["finetune"]),
                          "--image_folder", str(tiny_data["images"]), "--output_dir", str(tmp_path), "--bits", bits])


def test_tower_weights_for_another_tower(tiny_llm, tiny_data, tmp_path):
    """--vision_tower_weights written for a different tower config: named, with the mismatching keys."""
    from safetensors.torch import save_file

    from piip_llava.vision.registry import get_architecture
    from piip_llava.vision.tower import build_vision_tower

    other = build_vision_tower(get_architecture("tiny-piip-convnext").tower)
    weights = tmp_path / "tower.safetensors"
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(weights))
    result = run_entry(["--stage", "pretrain", "--llm", str(tiny_llm), "--architecture", "tiny-piip-vit", "--template", "plain",
                        "--vision_tower_weights", str(weights), "--data_path", str(tiny_data["pretrain"]),
                        "--image_folder", str(tiny_data["images"]), "--output_dir", str(tmp_path / "out")])
    assert_one_line_error(result, "tower.safetensors", "different tower config")


def test_tower_weights_file_missing(tiny_llm, tiny_data, tmp_path):
    result = run_entry(["--stage", "pretrain", "--llm", str(tiny_llm), "--architecture", "tiny-piip-vit", "--template", "plain",
                        "--vision_tower_weights", str(tmp_path / "nope.safetensors"), "--data_path", str(tiny_data["pretrain"]),
                        "--image_folder", str(tiny_data["images"]), "--output_dir", str(tmp_path / "out")])
    assert_one_line_error(result, "nope.safetensors", "not found")
