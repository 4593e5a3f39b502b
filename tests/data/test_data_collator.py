"""DataCollatorForSupervisedDataset: LLaVA's collate batches, images, truncation guard."""

from __future__ import annotations

import json

import pytest
import torch

from piip_llava.constants import IGNORE_INDEX
from piip_llava.data.collator import DataCollatorForSupervisedDataset
from piip_llava.data.preprocess import tokenize_conversation

SOURCES = {2048: "expected_v1.jsonl", 64: "expected_v1_maxlen64.jsonl"}


def _batches(fixture_dir):
    return json.loads((fixture_dir / "collate_v1.json").read_text())


def test_matches_llava_collate_batches(fixture_dir, golden):
    """Instances exactly as LLaVA's preprocess made them -> exactly LLaVA's padded, cut batch."""
    for batch in _batches(fixture_dir):
        cases = {c["id"]: c for c in golden(SOURCES[batch["model_max_length"]])}
        instances = [
            {"input_ids": torch.tensor(cases[i]["input_ids"]), "labels": torch.tensor(cases[i]["labels"])}
            for i in batch["ids"]
        ]
        collator = DataCollatorForSupervisedDataset(
            pad_token_id=batch["pad_token_id"], max_length=batch["model_max_length"], image_token_id=-200
        )
        out = collator(instances)
        assert out["input_ids"].tolist() == batch["input_ids"]
        assert out["labels"].tolist() == batch["labels"]
        assert out["attention_mask"].tolist() == batch["attention_mask"]
        assert out["input_ids"].dtype == torch.long and "pixel_values" not in out


def test_our_samples_give_the_same_batches(fixture_dir, vicuna, records):
    """Our samples are already cut to max_length; the batch is identical."""
    for batch in _batches(fixture_dir):
        limit = batch["model_max_length"]
        instances = []
        for sample_id in batch["ids"]:
            record = records[sample_id]
            sample = tokenize_conversation(
                record["conversations"],
                vicuna,
                "v1",
                has_image="image" in record,
                image_token_id=-200,
                num_image_tokens=1,
                max_length=limit,
            )
            instances.append({"input_ids": torch.tensor(sample.input_ids), "labels": torch.tensor(sample.labels)})
        out = DataCollatorForSupervisedDataset(pad_token_id=0, max_length=limit)(instances)
        assert out["input_ids"].tolist() == batch["input_ids"]
        assert out["labels"].tolist() == batch["labels"]
        assert out["attention_mask"].tolist() == batch["attention_mask"]


def _item(n, image=None, token=5):
    item = {"input_ids": torch.full((n,), token), "labels": torch.full((n,), token)}
    if image is not None:
        item["pixel_values"] = image
    return item


def test_attention_mask_from_lengths_not_pad_id():
    """A genuine pad-id token (Vicuna's <unk>, or EOS where pad == eos) stays visible to attention."""
    out = DataCollatorForSupervisedDataset(pad_token_id=2)([_item(3, token=2), _item(1)])
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["labels"].tolist() == [[2, 2, 2], [5, IGNORE_INDEX, IGNORE_INDEX]]


def test_zeros_for_text_only_samples():
    image = torch.rand(3, 4, 4)
    out = DataCollatorForSupervisedDataset(pad_token_id=0)([_item(2, image), _item(3)])
    assert out["pixel_values"].shape == (2, 3, 4, 4)
    assert torch.equal(out["pixel_values"][0], image) and not out["pixel_values"][1].any()
    assert out["image_sample_mask"].tolist() == [True, False]


def test_all_text_batch_of_multimodal_data_keeps_tower_busy():
    out = DataCollatorForSupervisedDataset(pad_token_id=0, image_size=4)([_item(2), _item(3)])
    assert out["pixel_values"].shape == (2, 3, 4, 4) and out["image_sample_mask"].tolist() == [False, False]
    out = DataCollatorForSupervisedDataset(pad_token_id=0)([_item(2), _item(3)])
    assert "pixel_values" not in out and "image_sample_mask" not in out


def test_omit_mode_stacks_only_real_images():
    a, b = torch.rand(3, 4, 4), torch.rand(3, 4, 4)
    collator = DataCollatorForSupervisedDataset(pad_token_id=0, text_only_images="omit")
    out = collator([_item(2, a), _item(3), _item(1, b)])
    assert out["pixel_values"].shape == (2, 3, 4, 4) and torch.equal(out["pixel_values"][1], b)
    assert out["image_sample_mask"].tolist() == [True, False, True]
    assert "pixel_values" not in collator([_item(2)])


def test_truncation_refuses_to_cut_image_tokens():
    collator = DataCollatorForSupervisedDataset(pad_token_id=0, max_length=4, image_token_id=9)
    sample = {"input_ids": torch.tensor([1, 9, 9, 9, 9, 7]), "labels": torch.tensor([-100] * 5 + [7])}
    with pytest.raises(ValueError, match="image placeholders"):
        collator([sample])
    assert collator([_item(6)])["input_ids"].shape == (1, 4)


def test_left_padding_and_multiple_of():
    collator = DataCollatorForSupervisedDataset(pad_token_id=0, padding_side="left", pad_to_multiple_of=4)
    out = collator([_item(1), _item(3)])
    assert out["input_ids"].tolist() == [[0, 0, 0, 5], [0, 5, 5, 5]]
    assert out["attention_mask"].tolist() == [[0, 0, 0, 1], [0, 1, 1, 1]]


def test_mismatched_image_shapes_and_empty_batch():
    with pytest.raises(ValueError, match="share a shape"):
        DataCollatorForSupervisedDataset(pad_token_id=0)([_item(1, torch.rand(3, 4, 4)), _item(1, torch.rand(3, 5, 5))])
    with pytest.raises(ValueError, match="empty"):
        DataCollatorForSupervisedDataset(pad_token_id=0)([])
