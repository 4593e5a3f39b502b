"""SEED-Bench: exact-match accuracy per question type and the upload file, against LLaVA's script."""

from __future__ import annotations

import json

import pytest

from piip_llava.eval.benchmarks import seed
from piip_llava.eval.benchmarks.common import EvalDataError, MissingAnswersError

from .helpers import FIXTURES, read_jsonl, write_jsonl

DIR = FIXTURES / "seed"
ANN = DIR / "e2e" / "SEED-Bench-fixture.json"
ANSWERS = DIR / "e2e" / "answers_fixture.jsonl"
EXPECTED = json.loads((DIR / "expected.json").read_text())


def test_printed_accuracies():
    r = seed.score(ANSWERS, ANN)
    printed = "".join(f"{name}: {acc:.2f}%\n" for name, acc in r["per_question_type"].items())
    printed += f"Total accuracy: {r['accuracy']:.2f}%\n"
    printed += f"image accuracy: {r['image_accuracy']:.2f}%\nvideo accuracy: {r['video_accuracy']:.2f}%\n"
    assert printed == EXPECTED["printed"]
    assert r["main_score"] == r["image_accuracy"]


def test_per_question_join_and_correctness():
    r = seed.score(ANSWERS, ANN)
    for got, exp in zip(r["per_question"], EXPECTED["per_question"], strict=True):
        assert got["question_id"] == exp["question_id"]
        assert got["joined"] == exp["joined"]
        assert got["correct"] == exp["correct"]
    assert r["missing"] == ["109"]  # answered with the string id "109": not joined, as in LLaVA


def test_upload_file(tmp_path):
    out = seed.export_submission(ANSWERS, ANN, tmp_path / "up" / "m.jsonl")
    assert read_jsonl(out) == EXPECTED["upload_file"]


def test_upload_needs_every_answer(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", read_jsonl(ANSWERS)[:-1])
    with pytest.raises(
        MissingAnswersError, match=r"1 SEED-Bench question\(s\) have no answer, e.g. \['110'\]"
    ):
        seed.export_submission(path, ANN, tmp_path / "m.jsonl")


def test_bad_annotation(tmp_path):
    bad = tmp_path / "SEED-Bench.json"
    bad.write_text('{"questions": []}')
    with pytest.raises(EvalDataError, match="expected SEED-Bench.json"):
        seed.score(ANSWERS, bad)
    bad.write_text("{not json")
    with pytest.raises(EvalDataError, match="SEED-Bench.json: SEED-Bench annotation file is not valid JSON"):
        seed.score(ANSWERS, bad)
