"""LazySupervisedDataset + RecordIndex: parity of lengths, lazy items, and every bad-input case."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from piip_llava.data import records as records_module
from piip_llava.data.collator import DataCollatorForSupervisedDataset
from piip_llava.data.dataset import LazySupervisedDataset, SupervisedDataConfig
from piip_llava.data.errors import BadSampleError, DataReport
from piip_llava.data.preprocess import tokenize_conversation
from piip_llava.data.records import RecordIndex

N_IMAGE_TOKENS = 5


def _write_images(folder: Path, relative_paths) -> None:
    for index, relative in enumerate(relative_paths):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12 + index % 3, 10), (index * 7 % 255, 100, 50)).save(path, format="JPEG")


@pytest.fixture
def llava_files(tmp_path, fixture_dir):
    """The 34 golden records as .json and .jsonl, with an image folder holding every referenced image."""
    data = json.loads((fixture_dir / "conversations.json").read_text(encoding="utf-8"))
    images = tmp_path / "images"
    _write_images(images, sorted({r["image"] for r in data if "image" in r}))
    json_path = tmp_path / "data.json"
    json_path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    jsonl_path = tmp_path / "data.jsonl"
    jsonl_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8")
    return data, json_path, jsonl_path, images


def _dataset(path, images, vicuna, processor, **overrides):
    config = SupervisedDataConfig(
        data_path=str(path),
        template=overrides.pop("template", "v1"),
        num_image_tokens=N_IMAGE_TOKENS,
        max_length=overrides.pop("max_length", 2048),
        image_folder=None if images is None else str(images),
        **overrides,
    )
    return LazySupervisedDataset(config, vicuna, processor)


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_lengths_parity(kind, llava_files, vicuna, tiny_processor, golden):
    _, json_path, jsonl_path, images = llava_files
    dataset = _dataset(json_path if kind == "json" else jsonl_path, images, vicuna, tiny_processor)
    expected = golden("dataset_lengths.jsonl")
    assert len(dataset) == len(expected) == 34
    assert dataset.lengths == [e["length"] for e in expected]
    assert dataset.modality_lengths == [e["modality_length"] for e in expected]


def test_items_are_lazy_and_match_tokenizer(llava_files, vicuna, tiny_processor):
    data, json_path, _, images = llava_files
    dataset = _dataset(json_path, images, vicuna, tiny_processor)
    assert dataset.index.nbytes <= 25 * len(dataset)
    for index, record in enumerate(data):
        if record["id"].startswith("mismatch") or record["id"] == "empty_gpt_reply":
            continue
        item = dataset[index]
        expected = tokenize_conversation(
            record["conversations"],
            vicuna,
            "v1",
            has_image="image" in record,
            num_image_tokens=N_IMAGE_TOKENS,
            max_length=2048,
        )
        assert item["input_ids"].tolist() == expected.input_ids
        assert item["labels"].tolist() == expected.labels
        if "image" in record:
            assert item["pixel_values"].shape == (3, 8, 8)
            assert (item["input_ids"] == vicuna.image_token_id).sum() == N_IMAGE_TOKENS
        else:
            assert "pixel_values" not in item
    assert set(tiny_processor.modes) == {"pad"}
    assert dataset.report.truncated == 2  # long_answer_image (with 5 image tokens) and text_only_long


def test_raise_policy_names_sample_and_location(llava_files, vicuna, tiny_processor):
    data, _, jsonl_path, images = llava_files
    dataset = _dataset(jsonl_path, images, vicuna, tiny_processor)
    index = [r["id"] for r in data].index("mismatch_literal_unk")
    with pytest.raises(BadSampleError) as info:
        dataset[index]
    assert info.value.sample_id == "mismatch_literal_unk"
    assert info.value.location.startswith(f"{jsonl_path}:{index + 1}")


def test_skip_policy_counts_and_reports(llava_files, vicuna, tiny_processor, tmp_path):
    data, json_path, _, images = llava_files
    log = tmp_path / "skips.jsonl"
    dataset = _dataset(json_path, images, vicuna, tiny_processor, on_bad_sample="skip", skip_log_path=str(log))
    ids = [r["id"] for r in data]
    served = [dataset[i] for i in range(len(dataset))]
    assert len(served) == len(dataset)
    # A skipped sample is replaced by the next good one.
    empty = ids.index("empty_gpt_reply")
    assert torch.equal(served[empty]["input_ids"], dataset.load_sample(empty + 1)["input_ids"])
    assert dict(dataset.report.skipped) == {"no_supervised_tokens": 1, "reserved_text": 2, "llava_mismatch": 1}
    summary = dataset.report.format()
    assert "skipped 4 sample(s)" in summary and "mismatch_literal_unk" in summary
    from_log = DataReport.from_skip_logs([log])
    assert from_log.skipped == dataset.report.skipped and from_log.truncated == dataset.report.truncated


def test_skip_counts_survive_dataloader_workers(llava_files, vicuna, tiny_processor, tmp_path):
    _, json_path, _, images = llava_files
    log = tmp_path / "skips.jsonl"
    dataset = _dataset(json_path, images, vicuna, tiny_processor, on_bad_sample="skip", skip_log_path=str(log))
    collator = DataCollatorForSupervisedDataset(pad_token_id=vicuna.pad_token_id, max_length=2048, image_size=8)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collator)
    batches = list(loader)
    assert sum(b["input_ids"].shape[0] for b in batches) == len(dataset)
    assert DataReport.from_skip_logs([log]).num_skipped == 4


def test_malformed_jsonl_line(tmp_path, vicuna):
    path = tmp_path / "bad.jsonl"
    good = {"id": "a", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    path.write_text(json.dumps(good) + "\n\n" + '{"id": "b", "conversations": [}\n' + json.dumps(good) + "\n")
    with pytest.raises(BadSampleError) as info:
        _dataset(path, None, vicuna, None)
    assert info.value.reason == "malformed_json" and f"{path}:3" in str(info.value)
    dataset = _dataset(path, None, vicuna, None, on_bad_sample="skip")
    assert len(dataset) == 2 and dataset.report.skipped["malformed_json"] == 1
    assert dataset.index.location(1).startswith(f"{path}:4")


def test_malformed_json_array_always_raises(tmp_path, vicuna):
    path = tmp_path / "bad.json"
    path.write_text('[\n {"id": "a", "conversations": []},\n {"id": "b", "conversations": [,]}\n]')
    for policy in ("raise", "skip"):
        with pytest.raises(BadSampleError) as info:
            _dataset(path, None, vicuna, None, on_bad_sample=policy)
        assert f"{path}:3" in str(info.value)
    path.write_text('[{"id": "a", "conversations": []}')
    with pytest.raises(BadSampleError, match="not closed"):
        _dataset(path, None, vicuna, None)
    path.write_text('{"id": "a"}')
    with pytest.raises(BadSampleError, match="JSON array"):
        _dataset(path, None, vicuna, None)


def test_record_without_conversations(tmp_path, vicuna):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "x", "image": "a.jpg"}\n[1, 2]\n')
    with pytest.raises(BadSampleError) as info:
        _dataset(path, None, vicuna, None)
    assert info.value.reason == "malformed_record" and info.value.sample_id == "x"


def test_json_scan_with_tiny_read_chunks(tmp_path, monkeypatch, llava_files):
    """Records spanning read chunks and multi-byte characters split across chunks keep exact offsets."""
    data, json_path, _, _ = llava_files
    monkeypatch.setattr(records_module, "_READ_CHUNK", 7)
    index = RecordIndex(json_path)
    assert [index.record(i) for i in range(len(index))] == data
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    index = RecordIndex(compact)
    assert [index.record(i)["id"] for i in range(len(index))] == [r["id"] for r in data]
    assert set(index.lines.tolist()) == {1}


def test_data_file_changed_after_indexing(tmp_path, vicuna):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({"id": "a", "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]})
        + "\n"
    )
    dataset = _dataset(path, None, vicuna, None)
    path.write_text(path.read_text() * 2)
    with pytest.raises(RuntimeError, match="changed"):
        dataset[0]


def _image_record(image, value="<image>\nWhat is it?"):
    return {
        "id": f"rec-{image}",
        "image": image,
        "conversations": [{"from": "human", "value": value}, {"from": "gpt", "value": "A cat."}],
    }


def test_missing_and_corrupt_images(tmp_path, vicuna, tiny_processor):
    images = tmp_path / "img"
    _write_images(images, ["ok.jpg"])
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (images / "empty.png").write_bytes(b"")
    path = tmp_path / "d.jsonl"
    rows = [_image_record(name) for name in ("ok.jpg", "missing.jpg", "corrupt.jpg", "empty.png")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = _dataset(path, images, vicuna, tiny_processor)
    assert dataset[0]["pixel_values"].shape == (3, 8, 8)
    expectations = {1: "missing_image", 2: "corrupt_image", 3: "corrupt_image"}
    for index, reason in expectations.items():
        with pytest.raises(BadSampleError) as info:
            dataset[index]
        assert info.value.reason == reason and info.value.sample_id == rows[index]["id"]
        assert rows[index]["image"] in str(info.value)
    skipping = _dataset(path, images, vicuna, tiny_processor, on_bad_sample="skip")
    report = skipping.preflight(decode_images=True)
    assert dict(report.skipped) == {"missing_image": 1, "corrupt_image": 2}
    assert all(torch.equal(skipping[i]["input_ids"], dataset[0]["input_ids"]) for i in range(4))


@pytest.mark.parametrize(
    "value,image,reason",
    [
        ("Hi <image>", None, "image_tag_without_image"),
        ("<image> and <image>", "ok.jpg", "too_many_image_tags"),
        ("no tag", "ok.jpg", "image_without_tag"),
    ],
)
def test_image_tag_errors_name_sample(value, image, reason, tmp_path, vicuna, tiny_processor):
    images = tmp_path / "img"
    _write_images(images, ["ok.jpg"])
    record = _image_record(image or "x", value)
    if image is None:
        del record["image"]
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(record) + "\n")
    dataset = _dataset(path, images if image else None, vicuna, tiny_processor if image else None)
    with pytest.raises(BadSampleError) as info:
        dataset[0]
    assert info.value.reason == reason and info.value.sample_id == record["id"]


def test_empty_conversation_and_long_prompt(tmp_path, vicuna, tiny_processor):
    images = tmp_path / "img"
    _write_images(images, ["ok.jpg"])
    rows = [
        {"id": "empty", "conversations": []},
        _image_record("ok.jpg", "<image>\n" + "please " * 80),
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = _dataset(path, images, vicuna, tiny_processor, max_length=64)
    with pytest.raises(BadSampleError, match="'empty'.*empty_conversation"):
        dataset[0]
    with pytest.raises(BadSampleError) as info:
        dataset[1]
    assert info.value.reason == "no_supervised_tokens" and "max_length=64" in str(info.value)


def test_image_folder_problems(tmp_path, vicuna, tiny_processor, monkeypatch):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(_image_record("ok.jpg")) + "\n")
    with pytest.raises(ValueError, match="no image_folder"):
        _dataset(path, None, vicuna, tiny_processor)
    with pytest.raises(ValueError, match="no image_processor"):
        _dataset(path, tmp_path, vicuna, None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _dataset(path, tmp_path / "nope", vicuna, tiny_processor)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        _dataset(path, path, vicuna, tiny_processor)

    def unreadable(folder):
        raise PermissionError(13, "Permission denied", folder)

    monkeypatch.setattr(os, "scandir", unreadable)
    with pytest.raises(PermissionError, match="cannot be read"):
        _dataset(path, tmp_path, vicuna, tiny_processor)


def test_wrong_image_folder_under_skip_is_not_silent(tmp_path, vicuna, tiny_processor):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(_image_record(f"{i}.jpg")) + "\n" for i in range(5)))
    dataset = _dataset(path, tmp_path, vicuna, tiny_processor, on_bad_sample="skip", max_consecutive_skips=3)
    with pytest.raises(RuntimeError, match="configuration problem"):
        dataset[0]


def test_dataset_pickles_for_spawned_workers(llava_files, vicuna, tiny_processor):
    _, json_path, _, images = llava_files
    dataset = _dataset(json_path, images, vicuna, tiny_processor, template="plain", image_aspect_mode="square")
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[0]["input_ids"], dataset[0]["input_ids"])
    assert tiny_processor.modes[-1] == "square"


def test_config_validation():
    with pytest.raises(KeyError, match="valid names"):
        SupervisedDataConfig(data_path="x.json", template="vicuna", num_image_tokens=1)
    with pytest.raises(ValueError, match="on_bad_sample"):
        SupervisedDataConfig(data_path="x.json", template="v1", num_image_tokens=1, on_bad_sample="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_image_tokens"):
        SupervisedDataConfig(data_path="x.json", template="v1", num_image_tokens=0)


def test_unknown_suffix(tmp_path, vicuna):
    path = tmp_path / "d.txt"
    path.write_text("{}")
    with pytest.raises(ValueError, match=".jsonl"):
        _dataset(path, None, vicuna, None)
