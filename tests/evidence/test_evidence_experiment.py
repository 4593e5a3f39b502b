"""The pyramid-vs-single comparison: tower configs, the MACs budget, the report, the CLI wiring."""

from __future__ import annotations

import ast
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from piip_llava.evidence import experiment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table():
    return experiment.compute_table()


def test_pyramid_fits_the_macs_budget(table):
    ratios = experiment.check_budget(table)
    assert ratios["a"] == 1.0
    assert ratios["c"] <= experiment.MAX_MACS_RATIO and ratios["d"] <= experiment.MAX_MACS_RATIO
    assert table["c"]["vision_macs"] == table["d"]["vision_macs"]
    assert ratios["b"] > 3.5  # the full-resolution single branch is the costly one
    assert {k: row["visual_tokens"] for k, row in table.items()} == {"a": 16, "b": 64, "c": 16, "d": 16}
    assert set(table["c"]["macs_by_component"]) == {"branch1", "branch2", "interactions", "projector"}


def test_budget_check_rejects_an_expensive_pyramid(table):
    expensive = {**table, "c": {**table["c"], "vision_macs": table["a"]["vision_macs"] * 1.2}}
    with pytest.raises(AssertionError, match=r"\(c\)"):
        experiment.check_budget(expensive)


def test_variants_are_the_designed_towers():
    variants = experiment.variants()
    a, b, c, d = (variants[k] for k in "abcd")
    assert a.tower.kind == b.tower.kind == "single" and c.tower.kind == d.tower.kind == "piip"
    assert a.projector_type == b.projector_type == "mlp2x_gelu" and c.projector_type == d.projector_type == "piip_gn_mlp"
    assert [x.freeze_interaction_gates for x in (a, b, c, d)] == [False, False, False, True]
    assert a.tower.branches[0].image_size == 64 and b.tower.branches[0].image_size == 128
    # every variant's processor works at 128 px: (a) downsamples like (c)'s low-resolution branch does
    assert {v.tower.image_size for v in variants.values()} == {128}
    large, small = c.tower.branches
    assert large.image_size < small.image_size and large.hidden_size > small.hidden_size  # parameter-inverted
    assert (large.hidden_size, large.num_layers) == (a.tower.branches[0].hidden_size, a.tower.branches[0].num_layers)
    assert c.tower.to_dict() == d.tower.to_dict()


def test_vision_config_json_builds_the_same_tower(tmp_path):
    from piip_llava.train.build import architecture_from_args

    for variant in experiment.variants().values():
        path = tmp_path / f"{variant.key}.json"
        path.write_text(json.dumps(variant.vision_config()))
        spec = architecture_from_args(None, str(path), experiment.LLM_HIDDEN)
        assert spec.tower.to_dict() == variant.tower.to_dict() and spec.projector_type == variant.projector_type


def test_config_validation():
    with pytest.raises(ValueError, match="scale"):
        experiment.ExperimentConfig(scale="huge")
    with pytest.raises(ValueError, match="variants"):
        experiment.ExperimentConfig(variants=("e",))
    with pytest.raises(ValueError, match="overrides"):
        experiment.ExperimentConfig(overrides={"epochs": 3})
    assert experiment.ExperimentConfig(scale="ci", overrides={"test_images": 10}).sizes.test_images == 10


def _fake_results(table) -> dict:
    runs = []
    for seed in (0, 1):
        for key in "abcd":
            accuracy = {m: 0.3 + 0.1 * seed + 0.05 * "abcd".index(key) for m in experiment.METRICS}
            runs.append({"variant": key, "seed": seed, "vision_gmacs": table[key]["vision_gmacs"],
                         "visual_tokens": table[key]["visual_tokens"], "accuracy": {**accuracy, "n": 30},
                         "stage0": {"probe_accuracy": {"big_color": 1.0, "pattern": 0.25 + 0.5 * (key in "cd") + 0.1 * seed}},
                         "seconds": {"total": 10.0}})
    ratios = experiment.check_budget(table)
    return {
        "claim": "test", "config": {"seeds": [0, 1], "image_size": 128, "llm": None,
                                    "sizes": asdict(experiment.SCALES["full"])},
        "data": {"stage1_captions": 8, "stage2_conversations": 8, "stage2_questions": 48, "test_questions": 30},
        "variants": {k: {"label": f"({k})", "description": k, "projector_type": "x", "vision_gmacs": table[k]["vision_gmacs"],
                         "macs_ratio_to_a": ratios[k], "visual_tokens": table[k]["visual_tokens"]} for k in "abcd"},
        "budget": {"max_ratio_to_a": 1.1}, "runs": runs, "summary": experiment.summarize(runs),
        "environment": {"bf16": False}, "seconds": 80.0,
    }


def test_summary_table_and_plot(tmp_path, table):
    results = _fake_results(table)
    summary = results["summary"]
    assert summary["a"]["overall"]["mean"] == pytest.approx(0.35)
    assert summary["a"]["overall"]["std"] == pytest.approx(0.0707, abs=1e-3)
    experiment.write_report(results, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "| (c) |" in text and "35.0 ± 7.1" in text and "pattern" in text
    assert "stage 0: tower pretrained" in text and "| (c) | 100.0 ± 0.0 | 80.0 ± 7.1 |" in text  # the probe table
    assert (tmp_path / experiment.PLOT_NAME).stat().st_size > 10_000


def test_paper_plot_takes_flops_from_the_counter(tmp_path):
    source = json.loads((ROOT / "docs" / "paper_textvqa.json").read_text())
    assert source["source"]
    subset = {**source, "models": [m for m in source["models"] if m["architecture"] in
                                   ("llava-v1.5-clip-l-336", "piip-llava_clip-bl_512-256_7B")] + [
        {"label": "unverified", "architecture": "piip-llava_clip-bl_512-448_7B", "llm": "7B", "textvqa": None}]}
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(subset))
    points = experiment.plot_paper_textvqa(tmp_path / "paper.png", path)
    assert (tmp_path / "paper.png").stat().st_size > 10_000
    by_label = {p["label"]: p for p in points}
    assert not by_label["unverified"]["plottable"]
    for point in points:
        if point.get("reported_gflops"):  # the counter agrees with the README's rounded FLOPs
            assert point["gflops_computed"] == pytest.approx(point["reported_gflops"], rel=0.02)


def test_cli_registration_and_light_imports():
    from piip_llava.cli import SUBCOMMANDS, build_parser

    assert SUBCOMMANDS["pyramid-repro"][0] == "piip_llava.commands.pyramid_repro"
    tree = ast.parse((ROOT / "piip_llava" / "commands" / "pyramid_repro.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {alias.name for n in top for alias in n.names}
    assert names <= {"annotations", "argparse"}
    args = build_parser().parse_args(["pyramid-repro", "--scale", "ci", "--variants", "a", "c", "--seeds", "1", "2"])
    assert (args.scale, args.variants, args.seeds, args.bf16) == ("ci", ["a", "c"], [1, 2], None)
