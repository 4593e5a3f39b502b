"""Stage 0 of the comparison: a tower pretrained on the scenes' attributes, saved, and loaded into a model."""

from __future__ import annotations

import pytest
import torch

from piip_llava.evidence import experiment, synthetic
from piip_llava.evidence.experiment import _labelled
from piip_llava.train.tower_pretraining import (
    LabelledImages,
    PretrainSettings,
    pretrain_tower,
)
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
    record = pretrain_tower(tower_config, _labelled(data, "stage1"), out, PretrainSettings(steps=3, batch_size=4, freeze_gates=freeze),
                            seed=0, test=_labelled(data, "test"))
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
    train, test = _labelled(data, "stage1"), _labelled(data, "test")
    first = pretrain_tower(tower_config, train, tmp_path / "one.safetensors", settings, seed=3, test=test)
    second = pretrain_tower(tower_config, train, tmp_path / "two.safetensors", settings, seed=3, test=test)
    assert first["probe_accuracy"] == second["probe_accuracy"]
    assert (tmp_path / "one.safetensors").read_bytes() == (tmp_path / "two.safetensors").read_bytes()


def test_mismatched_or_missing_weights_are_named(data, tmp_path):
    out = tmp_path / "a.safetensors"
    record = pretrain_tower(experiment.variants()["a"].tower, _labelled(data, "stage1"), out, PretrainSettings(steps=1, batch_size=4), seed=0)
    assert record["probe_accuracy"] is None  # no test images given
    with pytest.raises(CheckpointError, match="different tower config"):
        load_tower_weights(build_vision_tower(experiment.variants()["c"].tower), out)
    with pytest.raises(CheckpointError, match="not found"):
        load_tower_weights(build_vision_tower(experiment.variants()["a"].tower), tmp_path / "missing.safetensors")


def test_labels_must_fit_their_images_and_vocabulary(data):
    images = _labelled(data, "stage1")
    with pytest.raises(ValueError, match="3 labels for 8 images"):
        LabelledImages(images.paths, {"pattern": ["plain"] * 3}, images.vocab)
    with pytest.raises(ValueError, match="'stripes'"):
        LabelledImages(images.paths, {"pattern": ["stripes"] * 8}, images.vocab)
