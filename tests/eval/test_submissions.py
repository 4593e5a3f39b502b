"""VQAv2, VizWiz and MM-Vet submission files (LLaVA's convert_*_for_submission scripts)."""

from __future__ import annotations

import json

import pytest

from piip_llava.eval.benchmarks import mmvet, vizwiz, vqav2
from piip_llava.eval.benchmarks.common import MissingAnswersError, UnknownQuestionError

from .helpers import answer, write_jsonl


def test_vqav2_covers_the_full_test_split(tmp_path):
    split = write_jsonl(
        tmp_path / "test2015.jsonl", [{"question_id": i, "image": f"{i}.jpg", "text": "q"} for i in (1, 2, 3)]
    )
    answers = write_jsonl(tmp_path / "merge.jsonl", [answer(2, "Two dogs."), answer(1, "Yes")])
    out = vqav2.export_submission(answers, split, tmp_path / "up" / "m.json")
    assert json.loads(out.read_text()) == [
        {"question_id": 1, "answer": "yes"},
        {"question_id": 2, "answer": "2 dogs"},
        {"question_id": 3, "answer": ""},
    ]
    bad = write_jsonl(tmp_path / "bad.jsonl", [answer(9, "x")])
    with pytest.raises(UnknownQuestionError, match=r"bad.jsonl:1: question_id 9 is not in the test split"):
        vqav2.export_submission(bad, split, tmp_path / "x.json")


def test_vizwiz_needs_every_answer(tmp_path):
    qfile = write_jsonl(
        tmp_path / "llava_test.jsonl",
        [{"question_id": i, "image": f"VizWiz_test_{i:08d}.jpg", "text": "q"} for i in (0, 1)],
    )
    answers = write_jsonl(tmp_path / "a.jsonl", [answer(1, "Unanswerable"), answer(0, "A red can.")])
    out = vizwiz.export_submission(answers, qfile, tmp_path / "m.json")
    assert json.loads(out.read_text()) == [
        {"image": "VizWiz_test_00000000.jpg", "answer": "red can"},
        {"image": "VizWiz_test_00000001.jpg", "answer": "unanswerable"},
    ]
    partial = write_jsonl(tmp_path / "p.jsonl", [answer(1, "x")])
    with pytest.raises(MissingAnswersError, match=r"1 VizWiz question\(s\) have no answer, e.g. \[0\]"):
        vizwiz.export_submission(partial, qfile, tmp_path / "m.json")


def test_mmvet_layout(tmp_path):
    answers = write_jsonl(tmp_path / "a.jsonl", [answer(0, "A cat."), answer(12, "Two")])
    out = mmvet.export_submission(answers, tmp_path / "results" / "m.json")
    assert out.read_text() == json.dumps({"v1_0": "A cat.", "v1_12": "Two"}, indent=2)
