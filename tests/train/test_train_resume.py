"""Exact resume: training from ``checkpoint-k`` logs the same losses as the uninterrupted run.

fp32, no DataLoader workers, a fixed seed, ``logging_steps 1``: after resuming, every logged loss, gradient
norm and learning rate equals the uninterrupted run's, and so do the final weights. Covered for both the
modality-grouped sampler (``--group_by_modality_length``, PiipTrainer's own DataLoader) and the stock random
sampler, with a resume point in the middle of the first epoch and a continuation across the epoch boundary.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from .conftest import train_in_process

STEPS, SAVE = 6, 3  # 8 samples / batch 2 = 4 steps an epoch: resume mid-epoch 1, then cross into epoch 2


def _argv(checkpoint, data, out, grouped: bool) -> list[str]:
    return [
        "--stage", "finetune", "--model_name_or_path", str(checkpoint), "--template", "vicuna_v1",
        "--data_path", str(data["finetune"]), "--image_folder", str(data["images"]),
        "--per_device_train_batch_size", "2", "--max_steps", str(STEPS), "--learning_rate", "1e-3",
        "--warmup_steps", "1", "--lr_scheduler_type", "cosine", "--weight_decay", "0.01",
        "--mm_projector_lr", "2e-3", "--vision_tower_lr", "5e-4",
        "--save_strategy", "steps", "--save_steps", str(SAVE), "--save_only_model", "False", "--output_dir", str(out),
        "--group_by_modality_length", str(grouped),
    ]


def _logged(history: list[dict]) -> dict[int, tuple[float, float, float]]:
    return {entry["step"]: (entry["loss"], entry["grad_norm"], entry["learning_rate"]) for entry in history if "loss" in entry}


def _assert_same_weights(dir_a, dir_b) -> None:
    from safetensors.torch import load_file

    a, b = load_file(dir_a / "model.safetensors"), load_file(dir_b / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("grouped", [True, False], ids=["modality_grouped", "random_sampler"])
def test_resume_matches_uninterrupted(tiny_checkpoint, tiny_data, tmp_path, grouped):
    full_dir = tmp_path / "full"
    full = train_in_process(_argv(tiny_checkpoint, tiny_data, full_dir, grouped))
    reference = _logged(full.log_history)
    assert sorted(reference) == list(range(1, STEPS + 1))
    assert (full_dir / f"checkpoint-{SAVE}").is_dir()

    if grouped:
        # An "interrupted" run whose output dir holds only checkpoint-k, resumed with "last".
        resumed_dir = tmp_path / "resumed"
        resumed_dir.mkdir()
        shutil.copytree(full_dir / f"checkpoint-{SAVE}", resumed_dir / f"checkpoint-{SAVE}")
        resume = "last"
    else:
        # A run resuming from another folder's checkpoint (explicit path).
        resumed_dir = tmp_path / "other"
        resume = str(full_dir / f"checkpoint-{SAVE}")
    resumed = train_in_process([*_argv(tiny_checkpoint, tiny_data, resumed_dir, grouped), "--resume_from_checkpoint", resume])
    after = _logged(resumed.log_history)  # the checkpoint's history (steps <= k) + the steps trained now
    assert sorted(after) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert after[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-9), (step, after[step], reference[step])
    # Steps after k were really trained again (not copied from somewhere): the runtime only covers them.
    assert resumed.log_history[-1]["train_runtime"] > 0

    state = json.loads((resumed_dir / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    assert _logged(state["log_history"]) == pytest.approx(reference, rel=1e-6, abs=1e-9)
    _assert_same_weights(full_dir, resumed_dir)
