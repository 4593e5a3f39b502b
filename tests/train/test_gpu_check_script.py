"""``scripts/gpu_check.sh`` / ``benchmarks/gpu_check.py``: clean skip without CUDA, and the whole logic on CPU (--tiny)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO, subprocess_env

sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_check import TINY_LLM


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300, cwd=REPO,
                          env=subprocess_env(CUDA_VISIBLE_DEVICES="", **env))


def test_shell_script_skips_without_cuda(tmp_path):
    result = _run(["bash", "scripts/gpu_check.sh"], OUT=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "gpu_check: skipped: no CUDA device visible" in result.stdout
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_python_helper_skips_without_cuda():
    result = _run([sys.executable, "benchmarks/gpu_check.py"])
    assert result.returncode == 0, result.stderr
    assert "skipped: no CUDA device visible" in result.stdout and "Traceback" not in result.stderr


def test_tiny_run_on_cpu(tmp_path):
    result = _run(["bash", "scripts/gpu_check.sh", "--tiny"], OUT=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["env"]["tiny"] and report["env"]["device"] == "cpu" and not report["failures"]
    piip, llava = report["results"]
    assert (piip["arch"], llava["arch"]) == ("tiny-piip-vit", "tiny-llava")
    for r in (piip, llava):
        for stage in ("stage1", "stage2_lora"):
            assert r[stage]["finite"] and r[stage]["samples_per_s"] > 0
            assert len(r[stage]["losses"]) == 1 + report["env"]["steps"]
            assert r[stage]["seq_len"] == 1 + r["image_tokens"] + report["env"]["stage1_text" if stage == "stage1" else "stage2_text"]
        # stage 1 trains the projector only
        assert r["stage1"]["trainable_params"] == r["params"]["projector"]
        assert r["generate"]["new_tokens"] == report["env"]["new_tokens"] and r["generate"]["ttft_ms"] > 0
    assert piip["stage2_vision"] == "all" and llava["stage2_vision"] == "none"  # each model's own recipe
    # LoRA stage: adapters + projector (+ PIIP's tower) train; LLaVA's frozen tower keeps its count low
    # LoRA stage: adapters on all 7 projections of every LLM layer + projector (+ PIIP's whole tower) train
    llm = TINY_LLM
    per_layer = 4 * (llm["hidden_size"] * 2) + 2 * (llm["hidden_size"] + llm["intermediate_size"]) + (llm["intermediate_size"] + llm["hidden_size"])
    lora = report["env"]["lora_r"] * per_layer * llm["num_hidden_layers"]
    assert piip["stage2_lora"]["trainable_params"] == lora + piip["params"]["projector"] + piip["params"]["vision_tower"]
    assert llava["stage2_lora"]["trainable_params"] == lora + llava["params"]["projector"]
    for line in ("arch", "tiny-piip-vit", "tiny-llava", "S2-LoRA samp/s", "wrote"):
        assert line in result.stdout
