"""The synthetic detail-VQA generator: determinism, balance, question mix, file formats."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from piip_llava.evidence import synthetic


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> synthetic.SyntheticFiles:
    return synthetic.build(tmp_path_factory.mktemp("syn"), seed=3, stage1_images=12, stage2_images=60, test_images=30)


def test_same_seed_gives_identical_bytes(tmp_path):
    kwargs = {"seed": 5, "stage1_images": 6, "stage2_images": 6, "test_images": 6}
    first = _all_bytes(synthetic.build(tmp_path / "one", **kwargs).root)
    second = _all_bytes(synthetic.build(tmp_path / "two", **kwargs).root)
    assert first.keys() == second.keys()
    assert len([k for k in first if k.endswith(".png")]) == 18
    assert first == second
    other = _all_bytes(synthetic.build(tmp_path / "three", **{**kwargs, "seed": 6}).root)
    assert other.keys() == first.keys()
    assert other["stage1.json"] != first["stage1.json"]
    assert other["images/test/00000.png"] != first["images/test/00000.png"]


def test_answers_are_balanced(built):
    meta = json.loads(built.meta.read_text())
    domains = {
        "big_color": set(synthetic.COLORS), "small_color": set(synthetic.COLORS), "big_side": {"left", "right"},
        "big_shape": {"yes", "no"}, "digit": {str(d) for d in range(10)}, "count": {"0", "1", "2", "3", "4"},
    }
    for split, scenes in (("stage2", 60), ("test", 30)):
        histogram = meta["answer_histogram"][split]
        assert set(histogram) == set(domains)
        for kind, counts in histogram.items():
            assert set(counts) == domains[kind], (split, kind)
            assert sum(counts.values()) == scenes
            assert len(set(counts.values())) == 1, (split, kind, counts)  # multiples of 30: exactly uniform


def test_question_types_and_scopes(built):
    rows = [json.loads(line) for line in built.test.read_text().splitlines()]
    assert len(rows) == built.num_test == 30 * 6
    assert {r["question_type"] for r in rows} == set(synthetic.QUESTION_TYPES)
    assert {r["question_type"] for r in rows if r["scope"] == "detail"} == {"digit", "small_color", "count"}
    assert {r["question_type"] for r in rows if r["scope"] == "global"} == {"big_color", "big_side", "big_shape"}
    per_image: dict[str, set] = {}
    for row in rows:
        per_image.setdefault(row["image"], set()).add(row["question_type"])
        assert (built.root / row["image"]).is_file()
        assert row["answer"] == row["answer"].lower() and " " not in row["answer"]
    assert all(kinds == set(synthetic.QUESTION_TYPES) for kinds in per_image.values())
    assert sorted(r["question_id"] for r in rows) == list(range(len(rows)))


def test_llava_format_files(built):
    stage1 = json.loads(built.stage1.read_text())
    stage2 = json.loads(built.stage2.read_text())
    assert len(stage1) == built.num_stage1 == 12
    assert len(stage2) == built.num_stage2_conversations == 60 and built.num_stage2_questions == 360
    for record in stage1:
        human, gpt = record["conversations"]
        assert human == {"from": "human", "value": "<image>"} and gpt["from"] == "gpt"
        assert "Tag " in gpt["value"] and "triangle" in gpt["value"] and "square" in gpt["value"]
        assert record["image"].startswith("images/stage1/")
    for record in stage2:
        turns = record["conversations"]
        assert len(turns) == 12 and [t["from"] for t in turns] == ["human", "gpt"] * 6
        assert turns[0]["value"].startswith("<image>\n") and all("<image>" not in t["value"] for t in turns[1:])
        assert record["image"].startswith("images/stage2/")
    images = {r["image"] for r in stage1} | {r["image"] for r in stage2}
    test_images = {json.loads(line)["image"] for line in built.test.read_text().splitlines()}
    assert not images & test_images
    reopened = synthetic.files_of(built.root)
    assert (reopened.num_stage1, reopened.num_stage2_conversations, reopened.num_test) == (12, 60, 180)


def test_caption_and_answers_describe_the_scene(built):
    scenes, asked = synthetic.sample_scenes(random.Random(0), 30, 128)
    for scene, shape in zip(scenes, asked):
        text = synthetic.caption(scene)
        assert scene.big_color in text and scene.big_shape in text and scene.big_side in text and f"Tag {scene.digit}" in text
        qa = {q["question_type"]: q for q in synthetic.questions(scene, random.Random(1), True, shape)}
        assert qa["digit"]["answer"] == scene.digit and qa["count"]["answer"] == str(scene.count)
        assert qa["big_shape"]["answer"] == "yes" and scene.big_shape in qa["big_shape"]["text"]
        assert qa["small_color"]["answer"] == (scene.triangle_color if shape == "triangle" else scene.square_color)
        assert shape in qa["small_color"]["text"]


def test_details_are_small_and_lost_at_low_resolution(built):
    """The digit is a few pixels tall; a 2x downsample keeps the big shape but not the digit's identity."""
    import numpy as np
    from PIL import Image

    scene = synthetic.sample_scenes(random.Random(2), 1, 128)[0][0]
    image = np.asarray(synthetic.render(scene, 128)).astype(int)
    tag_w, tag_h = synthetic._tag_size(128)
    x, y = scene.tag_xy
    ink = (image[y : y + tag_h, x : x + tag_w].sum(-1) < 200).nonzero()
    assert 4 <= np.ptp(ink[0]) + 1 <= 10 and 3 <= np.ptp(ink[1]) + 1 <= 8  # glyph height / width in px
    renders = {}
    for digit in ("3", "8"):
        full = synthetic.render(replace(scene, digit=digit), 128)
        renders[digit] = (np.asarray(full).astype(int), np.asarray(full.resize((32, 32), Image.BICUBIC)).astype(int))
    assert np.abs(renders["3"][0] - renders["8"][0]).max() > 100  # distinct at full resolution
    assert np.abs(renders["3"][1] - renders["8"][1]).max() < 60  # nearly identical at a quarter


@pytest.mark.parametrize(("raw", "expected"), [
    (" Red.", "red"), ("Three", "3"), ("the left\nmore", "left"), ("7", "7"), ("Yes!", "yes"), ("", ""),
])
def test_normalize_answer(raw, expected):
    assert synthetic.normalize_answer(raw) == expected
