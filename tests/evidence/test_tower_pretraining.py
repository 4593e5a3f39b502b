"""Stage 0 of the comparison: a tower pretrained on the scenes' attributes, saved, and loaded into a model."""

from __future__ import annotations

import pytest
import torch

from piip_llava.evidence import experiment, synthetic
from piip_llava.evidence.tower_pretraining import PretrainSettings, pretrain_tower
from piip_llava.model.checkpoints import CheckpointError, load_tower_weights
from piip_llava.vision.tower import build_vision_tower


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic.build(tmp_path_factory.mktemp("syn"), seed=1, stage1_images=8, stage2_images=4, test_images=4)


def _gates(tower) -> float:
    return sum(float(p.detach().abs().sum()) for n, p in tower.named_parameters() if n.endswith(("ca_weight", "cffn_weight")))


@pytest.mark.parametrize("freeze", [False, True])
def test_pretrained_tower_round_trips_and_gates_follow_the_variant(data, tmp_path, freeze):
    tower_config = experiment.variants()["c"].tower
    out = tmp_path / "tower.safetensors"
    record = pretrain_tower(tower_config, data.root, out, PretrainSettings(steps=3, batch_size=4, freeze_gates=freeze), seed=0)
    assert record["steps"] == 3 and set(record["probe_accuracy"]) == set(synthetic.LABELS)
    assert all(0.0 <= v <= 1.0 for v in record["probe_accuracy"].values())

    fresh = build_vision_tower(tower_config)
    assert _gates(fresh) == 0.0
    load_tower_weights(fresh, out)
    assert (_gates(fresh) == 0.0) == freeze  # (d) keeps its gates shut in stage 0 too; (c) opens them
    torch.manual_seed(0)
    reference = build_vision_tower(tower_config)
    changed = [k for k, v in reference.state_dict().items() if not torch.equal(v, fresh.state_dict()[k])]
    assert changed  # the loaded tower is the trained one, not a fresh init


def test_same_seed_same_tower(data, tmp_path):
    settings = PretrainSettings(steps=2, batch_size=4)
    tower_config = experiment.variants()["a"].tower
    first = pretrain_tower(tower_config, data.root, tmp_path / "one.safetensors", settings, seed=3)
    second = pretrain_tower(tower_config, data.root, tmp_path / "two.safetensors", settings, seed=3)
    assert first["probe_accuracy"] == second["probe_accuracy"]
    assert (tmp_path / "one.safetensors").read_bytes() == (tmp_path / "two.safetensors").read_bytes()


def test_mismatched_or_missing_weights_are_named(data, tmp_path):
    out = tmp_path / "a.safetensors"
    pretrain_tower(experiment.variants()["a"].tower, data.root, out, PretrainSettings(steps=1, batch_size=4), seed=0)
    with pytest.raises(CheckpointError, match="different tower config"):
        load_tower_weights(build_vision_tower(experiment.variants()["c"].tower), out)
    with pytest.raises(CheckpointError, match="not found"):
        load_tower_weights(build_vision_tower(experiment.variants()["a"].tower), tmp_path / "missing.safetensors")
