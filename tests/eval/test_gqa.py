"""GQA: LLaVA's prediction conversion and the accuracy part of GQA's eval.py (synthetic data)."""

from __future__ import annotations

import json

import pytest

from piip_llava.eval.benchmarks import gqa
from piip_llava.eval.benchmarks.common import MissingAnswersError, UnknownQuestionError

from .helpers import answer, write_jsonl


def _q(question, ans, structural, semantic_type, ops, global_group, balanced=True):
    return {
        "question": question,
        "answer": ans,
        "isBalanced": balanced,
        "types": {"structural": structural, "semantic": semantic_type, "detailed": "x"},
        "semantic": [{"operation": o, "argument": a} for o, a in ops],
        "groups": {"global": global_group, "local": None},
    }


QUESTIONS = {
    "q1": _q(
        "Is the cat black?", "yes", "verify", "attr", [("select", "cat"), ("verify color", "black")], None
    ),
    "q2": _q(
        "What color is the car?", "red", "query", "attr", [("select", "car"), ("query", "color")], "color"
    ),
    "q3": _q(
        "What animal is it?", "dog", "query", "cat", [("select", "animal"), ("query", "name")], "animal"
    ),
    "q4": _q("Unbalanced?", "no", "verify", "rel", [], None, balanced=False),
}


@pytest.fixture
def files(tmp_path):
    qfile = tmp_path / "testdev_balanced_questions.json"
    qfile.write_text(json.dumps(QUESTIONS))
    answers = write_jsonl(
        tmp_path / "merge.jsonl", [answer("q1", "Yes."), answer("q2", "Blue"), answer("q3", "dog")]
    )
    return qfile, answers


def test_convert_predictions(files, tmp_path):
    _, answers = files
    out = gqa.export_predictions(answers, tmp_path / "data" / "testdev_balanced_predictions.json")
    assert json.loads(out.read_text()) == [
        {"questionId": "q1", "prediction": "yes"},
        {"questionId": "q2", "prediction": "blue"},
        {"questionId": "q3", "prediction": "dog"},
    ]
    assert gqa.convert_prediction("A Dog...") == "a dog"


def test_accuracy_metrics(files):
    qfile, answers = files
    r = gqa.score(answers, qfile)
    assert r["samples"] == 3  # the unbalanced question is not scored and needs no answer
    assert r["accuracy"] == pytest.approx(200 / 3)
    assert r["binary"] == 100.0 and r["open"] == 50.0
    assert r["accuracy_per_structural_type"] == {
        "query": {"accuracy": 50.0, "count": 2},
        "verify": {"accuracy": 100.0, "count": 1},
    }
    assert r["accuracy_per_semantic_type"]["cat"] == {"accuracy": 100.0, "count": 1}
    # "query: name" does not count as a reasoning step.
    assert r["accuracy_per_steps"] == {1: {"accuracy": 100.0, "count": 1}, 2: {"accuracy": 50.0, "count": 2}}
    assert r["accuracy_per_words"] == {4: {"accuracy": 100.0, "count": 2}, 5: {"accuracy": 0.0, "count": 1}}
    # chi-square: group "color" expected red=1, got blue -> 1; "animal" exact -> 0; weighted mean 0.5, /100.
    assert r["distribution"] == pytest.approx(0.005)
    assert r["main_score"] == r["accuracy"]


def test_missing_balanced_prediction(files, tmp_path):
    qfile, _ = files
    answers = write_jsonl(tmp_path / "a.jsonl", [answer("q1", "yes")])
    with pytest.raises(MissingAnswersError, match=r"2 balanced question\(s\) have no prediction"):
        gqa.score(answers, qfile)


def test_unknown_question(files, tmp_path):
    qfile, _ = files
    answers = write_jsonl(tmp_path / "a.jsonl", [answer("zzz", "yes")])
    with pytest.raises(UnknownQuestionError, match=r"a.jsonl:1: question_id 'zzz'"):
        gqa.score(answers, qfile)
