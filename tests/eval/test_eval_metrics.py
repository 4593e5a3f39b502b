"""Answer normalisation and soft accuracy against LLaVA's own m4c evaluator outputs."""

from __future__ import annotations

import json

import pytest

from piip_llava.eval.metrics import normalize_answer, soft_score, unique_answer_scores
from piip_llava.eval.metrics.binary import BinaryStats, binary_stats

from .helpers import FIXTURES, read_jsonl

NORMALIZATION = read_jsonl(FIXTURES / "textvqa" / "normalization.jsonl")


@pytest.mark.parametrize("case", NORMALIZATION, ids=[repr(c["raw"])[:40] for c in NORMALIZATION])
def test_normalization_matches_evalai(case):
    assert normalize_answer(case["raw"]) == case["normalized"]


def test_normalization_case_count():
    assert len(NORMALIZATION) == 98


def test_soft_score_by_annotator_count():
    expected = json.loads((FIXTURES / "textvqa" / "soft_score_by_count.json").read_text())
    for k, score in expected.items():
        k = int(k)
        gt = ["yes"] * k + [f"other{i}" for i in range(10 - k)]
        assert soft_score("yes", gt) == score


def test_soft_score_needs_ten_answers():
    with pytest.raises(ValueError, match="exactly 10"):
        unique_answer_scores(["a"] * 9)


def test_binary_stats_zero_division_is_zero():
    stats = binary_stats([0, 0, 0], [1, 0, 0])
    assert (stats.tp, stats.fp, stats.tn, stats.fn) == (0, 0, 2, 1)
    assert stats.precision == stats.recall == stats.f1 == stats.yes_ratio == 0.0
    assert stats.accuracy == 2 / 3
    assert BinaryStats(1, 1, 1, 1).as_dict()["n"] == 4
