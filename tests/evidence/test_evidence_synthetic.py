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
    return synthetic.build(tmp_path_factory.mktemp("syn"), seed=3, stage1_images=12, stage2_images=60, test_images=36)


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
    domains = {"big_color": set(synthetic.COLORS), "big_side": {"left", "right"}, "big_shape": {"yes", "no"},
               "pattern": set(synthetic.PATTERNS)}
    for split, scenes in (("stage2", 60), ("test", 36)):
        histogram = meta["answer_histogram"][split]
        assert set(histogram) == set(domains)
        for kind, counts in histogram.items():
            assert set(counts) == domains[kind], (split, kind)
            assert sum(counts.values()) == scenes
            assert len(set(counts.values())) == 1, (split, kind, counts)  # multiples of 12: exactly uniform


def test_question_types_and_scopes(built):
    rows = [json.loads(line) for line in built.test.read_text().splitlines()]
    assert len(rows) == built.num_test == 36 * 4
    assert {r["question_type"] for r in rows} == set(synthetic.QUESTION_TYPES)
    assert {r["question_type"] for r in rows if r["scope"] == "detail"} == {"pattern"}
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
    assert len(stage2) == built.num_stage2_conversations == 60 and built.num_stage2_questions == 240
    for record in stage1:
        human, gpt = record["conversations"]
        assert human == {"from": "human", "value": "<image>"} and gpt["from"] == "gpt"
        assert "The box has " in gpt["value"] and " on the " in gpt["value"]
        assert record["image"].startswith("images/stage1/")
    for record in stage2:
        turns = record["conversations"]
        assert len(turns) == 8 and [t["from"] for t in turns] == ["human", "gpt"] * 4
        assert turns[0]["value"].startswith("<image>\n") and all("<image>" not in t["value"] for t in turns[1:])
        assert record["image"].startswith("images/stage2/")
    images = {r["image"] for r in stage1} | {r["image"] for r in stage2}
    test_images = {json.loads(line)["image"] for line in built.test.read_text().splitlines()}
    assert not images & test_images
    reopened = synthetic.files_of(built.root)
    assert (reopened.num_stage1, reopened.num_stage2_conversations, reopened.num_test) == (12, 60, 144)


def test_caption_and_answers_describe_the_scene():
    words = {"horizontal": "horizontal lines", "vertical": "vertical lines", "checkered": "checkered", "plain": "no pattern"}
    for scene in synthetic.sample_scenes(random.Random(0), 24, 128):
        text = synthetic.caption(scene)
        assert scene.big_color in text and scene.big_shape in text and scene.big_side in text and words[scene.pattern] in text
        qa = {q["question_type"]: q for q in synthetic.questions(scene, random.Random(1), True)}
        assert qa["pattern"]["answer"] == scene.pattern and qa["big_color"]["answer"] == scene.big_color
        assert qa["big_shape"]["answer"] == "yes" and scene.big_shape in qa["big_shape"]["text"]
        no = {q["question_type"]: q for q in synthetic.questions(scene, random.Random(1), False)}["big_shape"]
        assert no["answer"] == "no" and scene.big_shape not in no["text"]


def test_box_sits_on_the_grid_in_the_other_half():
    for scene in synthetic.sample_scenes(random.Random(4), 200, 128):
        x, y = scene.box_xy
        side = synthetic.box_size(128)
        assert x % synthetic.GRID == 0 and y % synthetic.GRID == 0 and side % synthetic.GRID == 0
        assert 1 <= x - 1 and x + side <= 126 and 1 <= y - 1 and y + side <= 126  # outline inside the image
        assert (x >= 64) == (scene.big_side == "left")


@pytest.mark.parametrize("pattern", synthetic.PATTERNS)
def test_pattern_blocks_share_their_mean(pattern):
    block = synthetic.pattern_pixels(pattern, 28).astype(float)
    pairs = block.reshape(14, 2, 14, 2).mean(axis=(1, 3))
    assert (pairs == (synthetic.INK + synthetic.PAPER) / 2).all()


def test_patterns_vanish_at_the_low_resolution_branches():
    """What makes the task detail-dependent: the tower's own downsample (bilinear, no antialias)
    turns the four patterns into the same pixels at 64 and 32 px, while they differ at 128 px."""
    from piip_llava.vision.image_processor import PiipImageProcessor
    from piip_llava.vision.tower import branch_input

    processor = PiipImageProcessor(128)
    for scene in synthetic.sample_scenes(random.Random(2), 6, 128):
        pixels = {p: processor([synthetic.render(replace(scene, pattern=p), 128)]) for p in synthetic.PATTERNS}
        for pattern in synthetic.PATTERNS[1:]:
            a, b = pixels["horizontal"], pixels[pattern]
            assert (a - b).abs().max() > 1.0  # distinct at full resolution
            for size in (64, 32):
                assert (branch_input(a, size) - branch_input(b, size)).abs().max() < 1e-5, (pattern, size)
            assert (branch_input(a, 48) - branch_input(b, 48)).abs().max() > 0.5  # a non-integer factor aliases


def test_unknown_pattern_is_named():
    with pytest.raises(ValueError, match="unknown pattern 'stripes'"):
        synthetic.pattern_pixels("stripes", 8)


@pytest.mark.parametrize(("raw", "expected"), [
    (" Red.", "red"), ("Three", "3"), ("the left\nmore", "left"), ("Checkered.", "checkered"), ("Yes!", "yes"), ("", ""),
])
def test_normalize_answer(raw, expected):
    assert synthetic.normalize_answer(raw) == expected
