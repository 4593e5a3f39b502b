"""Which parameters train in each stage, and which learning rate / weight decay each one gets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from piip_llava.errors import ConfigError
from piip_llava.train.policies import TrainablePolicy, apply_policy, trainable_summary
from piip_llava.train.trainer import parameter_groups

GATES = ("ca_weight", "cffn_weight")


@pytest.fixture()
def model():
    from transformers import LlamaConfig

    from piip_llava.model import PiipLlavaConfig, PiipLlavaForConditionalGeneration

    text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=4, vocab_size=128)
    return PiipLlavaForConditionalGeneration(PiipLlavaConfig.from_architecture("tiny-piip-vit", text, image_token_id=127))


def trainable(model, prefix: str) -> set[bool]:
    return {p.requires_grad for n, p in model.named_parameters() if n.startswith(prefix)}


def total(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_pretrain_trains_projector_only(model):
    counts = apply_policy(model, TrainablePolicy("pretrain"))
    assert trainable(model, "projector.") == {True}
    assert trainable(model, "vision_tower.") == {False}
    assert trainable(model, "language_model.") == {False}
    assert counts == {"vision_tower": 0, "projector": total(model.projector), "language_model": 0}


def test_pretrain_ignores_train_llm(model):
    """Stage 1 never trains the LLM, whatever train_llm says (LoRA off, freeze_llm off)."""
    apply_policy(model, TrainablePolicy("pretrain", train_llm=True))
    assert trainable(model, "language_model.") == {False}


def test_finetune_trains_everything(model):
    for p in model.parameters():
        p.requires_grad_(False)
    counts = apply_policy(model, TrainablePolicy("finetune"))
    assert all(p.requires_grad for p in model.parameters())
    assert counts == trainable_summary(model)
    assert counts["vision_tower"] == total(model.vision_tower) and counts["language_model"] == total(model.language_model)


def test_vision_trainable_interactions(model):
    apply_policy(model, TrainablePolicy("finetune", vision_trainable="interactions"))
    assert trainable(model, "vision_tower.interactions.") == {True}
    assert trainable(model, "vision_tower.branch") == {False}
    assert trainable(model, "projector.") == {True}
    assert trainable(model, "language_model.") == {True}


def test_vision_trainable_none(model):
    apply_policy(model, TrainablePolicy("finetune", vision_trainable="none"))
    assert trainable(model, "vision_tower.") == {False}
    assert trainable(model, "projector.") == {True} and trainable(model, "language_model.") == {True}


def test_vision_trainable_all_in_pretrain(model):
    """For towers without pretrained weights: the whole tower trains in stage 1 too; the LLM still does not."""
    apply_policy(model, TrainablePolicy("pretrain", vision_trainable="all"))
    assert trainable(model, "vision_tower.") == {True}
    assert trainable(model, "language_model.") == {False}


def test_freeze_llm(model):
    counts = apply_policy(model, TrainablePolicy("finetune", train_llm=False))
    assert trainable(model, "language_model.") == {False}
    assert counts["language_model"] == 0
    assert trainable(model, "vision_tower.") == {True} and trainable(model, "projector.") == {True}


@pytest.mark.parametrize("vision", ["all", "interactions"])
def test_freeze_interaction_gates(model, vision):
    apply_policy(model, TrainablePolicy("finetune", vision_trainable=vision, freeze_interaction_gates=True))
    gates = {n: p for n, p in model.named_parameters() if n.endswith(GATES)}
    assert gates and not any(p.requires_grad for p in gates.values())
    assert all(torch.count_nonzero(p) == 0 for p in gates.values())  # zero-initialised gates stay zero = no interaction
    others = [p for n, p in model.named_parameters() if n.startswith("vision_tower.interactions.") and not n.endswith(GATES)]
    assert others and all(p.requires_grad for p in others)


def test_bad_policy_names():
    with pytest.raises(ConfigError, match="stage"):
        TrainablePolicy("pretraining")
    with pytest.raises(ConfigError, match="vision_trainable"):
        TrainablePolicy("finetune", vision_trainable="branches")


# -- optimizer groups ------------------------------------------------------------------------------------------


def _args(**kw):
    base = {"mm_projector_lr": None, "vision_tower_lr": None, "weight_decay": 0.1, "learning_rate": 1e-3}
    base.update(kw)
    return SimpleNamespace(**base)


def _group_of(groups) -> dict[int, dict]:
    out = {}
    for group in groups:
        for p in group["params"]:
            assert id(p) not in out, "a parameter is in two groups"
            out[id(p)] = group
    return out


def test_param_groups_learning_rates_and_decay(model):
    apply_policy(model, TrainablePolicy("finetune"))
    groups = parameter_groups(model, _args(mm_projector_lr=2e-5, vision_tower_lr=3e-6))
    by_param = _group_of(groups)
    assert len(by_param) == sum(1 for p in model.parameters() if p.requires_grad)
    for name, p in model.named_parameters():
        group = by_param[id(p)]
        if name.startswith("projector."):
            assert group["lr"] == 2e-5 and group["name"].startswith("projector"), name
        elif name.startswith("vision_tower."):
            assert group["lr"] == 3e-6 and group["name"].startswith("vision_tower"), name
        else:
            assert "lr" not in group and group["name"].startswith("default"), name  # the optimizer's --learning_rate
        no_decay = p.ndim < 2 or "norm" in name.lower() or name.endswith(".bias") or name.endswith(GATES)
        assert group["weight_decay"] == (0.0 if no_decay else 0.1), name
    names = {g["name"] for g in groups}
    assert names == {"default", "default_no_decay", "projector", "projector_no_decay", "vision_tower", "vision_tower_no_decay"}


def test_param_groups_no_decay_on_norms_biases_gates(model):
    apply_policy(model, TrainablePolicy("finetune"))
    by_param = _group_of(parameter_groups(model, _args()))
    checked = {"norm": 0, "bias": 0, "gate": 0, "matrix": 0}
    for name, p in model.named_parameters():
        decay = by_param[id(p)]["weight_decay"]
        if "norm" in name.lower():
            checked["norm"] += 1
            assert decay == 0.0, name
        elif name.endswith(".bias"):
            checked["bias"] += 1
            assert decay == 0.0, name
        elif name.endswith(GATES):
            checked["gate"] += 1
            assert decay == 0.0, name
        elif p.ndim >= 2:
            checked["matrix"] += 1
            assert decay == 0.1, name
    assert all(checked.values()), checked  # the tiny model really has all four kinds


def test_param_groups_without_component_lrs_use_default(model):
    apply_policy(model, TrainablePolicy("finetune"))
    groups = parameter_groups(model, _args())
    assert {g["name"] for g in groups} == {"default", "default_no_decay"}
    assert all("lr" not in g for g in groups)


def test_param_groups_skip_frozen(model):
    apply_policy(model, TrainablePolicy("pretrain"))
    groups = parameter_groups(model, _args(mm_projector_lr=2e-5, vision_tower_lr=3e-6))
    params = [p for g in groups for p in g["params"]]
    assert len(params) == sum(1 for _ in model.projector.parameters())
    assert {g["name"] for g in groups} == {"projector", "projector_no_decay"}


def test_trainer_optimizer_uses_groups(model, tmp_path):
    """The real PiipTrainer builds its optimizer from these groups (lr per component, decay per kind)."""
    from piip_llava.train.arguments import PiipTrainingArguments
    from piip_llava.train.trainer import PiipTrainer

    apply_policy(model, TrainablePolicy("finetune", vision_trainable="interactions"))
    args = PiipTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", learning_rate=1e-4,
                                 weight_decay=0.05, mm_projector_lr=2e-5, vision_tower_lr=1e-5)
    trainer = PiipTrainer(model=model, args=args)
    optimizer = trainer.create_optimizer()
    lrs = {g["name"]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups}
    assert lrs["default"] == (1e-4, 0.05) and lrs["default_no_decay"] == (1e-4, 0.0)
    assert lrs["projector"] == (2e-5, 0.05) and lrs["projector_no_decay"] == (2e-5, 0.0)
    assert lrs["vision_tower"] == (1e-5, 0.05) and lrs["vision_tower_no_decay"] == (1e-5, 0.0)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    assert not any(id(p) in in_optimizer for p in model.vision_tower.branch1.parameters())
