"""ScienceQA-IMG: LLaVA's letter extraction and IMG accuracy, against eval_science_qa.py's output."""

from __future__ import annotations

import json

import pytest

from piip_llava.eval.benchmarks import scienceqa
from piip_llava.eval.benchmarks.common import EvalDataError, UnknownQuestionError

from .helpers import FIXTURES, answer, read_jsonl, write_jsonl

DIR = FIXTURES / "scienceqa"
E2E = DIR / "e2e"


@pytest.fixture(scope="module")
def results():
    return scienceqa.score(E2E / "answers_fixture.jsonl", E2E)


def test_every_question_matches(results):
    expected = read_jsonl(DIR / "expected_per_question.jsonl")
    assert len(results["per_question"]) == len(expected) == 20
    for got, exp in zip(results["per_question"], expected):
        for key, value in exp.items():
            assert got[key] == value, (exp["question_id"], key)


def test_summary_matches_printed_line(results):
    summary = json.loads((DIR / "expected_summary.json").read_text())
    assert results["accuracy"] == summary["acc"]
    assert results["correct"] == summary["correct"]
    assert results["samples"] == summary["count"]
    printed = (
        f"Total: {results['samples']}, Correct: {results['correct']}, Accuracy: {results['accuracy']:.2f}%, "
        f"IMG-Accuracy: {results['img_accuracy']:.2f}%\n"
    )
    assert printed == summary["printed"]
    assert results["main_score"] == results["img_accuracy"] == 7 / 12 * 100
    assert results["missing"] == ["17"]


def test_reader_prompts(tmp_path):
    (tmp_path / "images").mkdir()
    qfile = tmp_path / "llava_test_CQM-A.json"
    qfile.write_text(
        json.dumps(
            [
                {
                    "id": "1",
                    "image": "1/image.png",
                    "conversations": [
                        {"from": "human", "value": "<image>\nFixture question 1?\nA. cat\nB. dog"},
                        {"from": "gpt", "value": "A"},
                    ],
                },
                {
                    "id": "3",
                    "conversations": [{"from": "human", "value": "Fixture question 3?\nA. cat\nB. dog"}],
                },
            ]
        )
    )
    q1, q3 = scienceqa.read_questions(qfile, tmp_path / "images")
    expected = {a["question_id"]: a["prompt"] for a in read_jsonl(E2E / "answers_fixture.jsonl")}
    assert q1.image == tmp_path / "images" / "1" / "image.png"
    suffix = "Answer with the option's letter from the given choices directly."
    assert q1.prompt_text == f"Fixture question 1?\nA. cat\nB. dog\n{suffix}"
    assert q1.answer_record("A", "m")["prompt"] == expected["1"]
    assert q3.image is None
    assert q3.answer_record("A", "m")["prompt"] == expected["3"]


def test_unknown_problem(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [answer("999", "A")])
    with pytest.raises(UnknownQuestionError, match=r"a.jsonl:1: question_id '999' is not a 'test' problem"):
        scienceqa.score(path, E2E)


def test_unknown_split():
    with pytest.raises(EvalDataError, match="split 'val' not found"):
        scienceqa.score(E2E / "answers_fixture.jsonl", E2E, split="val")


def test_missing_problems_file(tmp_path):
    (tmp_path / "pid_splits.json").write_text('{"test": []}')
    with pytest.raises(FileNotFoundError, match="ScienceQA problems.json not found"):
        scienceqa.score(E2E / "answers_fixture.jsonl", tmp_path)
