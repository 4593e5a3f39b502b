"""POPE: LLaVA's yes/no rule and per-split metrics, against eval_pope.py's own output."""

from __future__ import annotations

import json

import pytest

from piip_llava.eval.benchmarks import pope
from piip_llava.eval.benchmarks.common import EvalDataError, MissingAnswersError, UnknownQuestionError

from .helpers import FIXTURES, answer, read_jsonl, write_jsonl

DIR = FIXTURES / "pope"
E2E = DIR / "e2e"
RULE_CASES = read_jsonl(DIR / "yes_no_rule.jsonl")


@pytest.mark.parametrize("case", RULE_CASES, ids=[repr(c["text"])[:30] for c in RULE_CASES])
def test_yes_no_rule(case):
    assert ("no" if pope.answer_is_no(case["text"]) else "yes") == case["pred"]


def test_rule_case_count():
    assert len(RULE_CASES) == 58


@pytest.fixture(scope="module")
def results():
    return pope.score(E2E / "answers_fixture.jsonl", E2E / "llava_pope_fixture.jsonl", E2E / "coco")


def test_per_split_metrics_are_exact(results):
    expected = json.loads((DIR / "expected_metrics.json").read_text())
    assert set(results["per_split"]) == set(expected["per_category"]) == set(pope.SPLITS)
    for split, exp in expected["per_category"].items():
        got = results["per_split"][split]
        for key in ("n", "TP", "FP", "TN", "FN", "accuracy", "precision", "recall", "f1", "yes_ratio"):
            assert got[key] == exp[key], (split, key)
        assert pope.summary_line(got) == exp["summary_line"]
        assert exp["summary_line"] in expected["printed"]


def test_means_over_splits(results):
    expected = json.loads((DIR / "expected_metrics.json").read_text())
    assert results["f1"] == pytest.approx(expected["mean_f1_over_categories"], abs=1e-12)
    assert results["accuracy"] == pytest.approx(expected["mean_accuracy_over_categories"], abs=1e-12)
    assert results["main_score"] == pytest.approx(100 * expected["mean_f1_over_categories"], abs=1e-10)
    assert results["samples"] == 30


def test_answers_out_of_order_pair_by_question(tmp_path, results):
    rows = read_jsonl(E2E / "answers_fixture.jsonl")
    path = write_jsonl(tmp_path / "shuffled.jsonl", rows[::-1])
    shuffled = pope.score(path, E2E / "llava_pope_fixture.jsonl", E2E / "coco")
    assert shuffled["per_split"] == results["per_split"]


def _degenerate_layout(tmp_path):
    case = json.loads((DIR / "degenerate_all_no.json").read_text())
    n = len(case["labels"])
    questions = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"question_id": i, "image": f"{i}.jpg", "text": "Is there a dog?", "category": "random"}
            for i in range(n)
        ],
    )
    write_jsonl(tmp_path / "coco" / "coco_pope_random.json", [{"label": lab} for lab in case["labels"]])
    answers = write_jsonl(tmp_path / "a.jsonl", [answer(i, t) for i, t in enumerate(case["answers"])])
    return case, questions, answers


def test_degenerate_all_no_does_not_crash(tmp_path):
    # LLaVA prints the counts and then raises ZeroDivisionError; undefined ratios are 0.0 here.
    case, questions, answers = _degenerate_layout(tmp_path)
    stats = pope.score(answers, questions, tmp_path / "coco")["per_split"]["random"]
    assert case["printed_before_error"] == "TP\tFP\tTN\tFN\t\n{}\t{}\t{}\t{}\n".format(
        stats["TP"], stats["FP"], stats["TN"], stats["FN"]
    )
    assert stats["precision"] == stats["f1"] == 0.0


def test_missing_answer(tmp_path):
    rows = read_jsonl(E2E / "answers_fixture.jsonl")[:-1]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    with pytest.raises(MissingAnswersError, match=r"1 random question\(s\) have no answer, e.g. \[29\]"):
        pope.score(path, E2E / "llava_pope_fixture.jsonl", E2E / "coco")


def test_unknown_question(tmp_path):
    rows = read_jsonl(E2E / "answers_fixture.jsonl") + [answer(12345, "Yes")]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    with pytest.raises(UnknownQuestionError, match=r"a.jsonl:31: question_id 12345"):
        pope.score(path, E2E / "llava_pope_fixture.jsonl", E2E / "coco")


def test_label_count_mismatch(tmp_path):
    case, questions, answers = _degenerate_layout(tmp_path)
    write_jsonl(tmp_path / "coco" / "coco_pope_random.json", [{"label": "yes"}])
    with pytest.raises(EvalDataError, match=r"1 labels but the question file has 3 questions"):
        pope.score(answers, questions, tmp_path / "coco")


def test_missing_label_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="POPE annotation folder"):
        pope.score(E2E / "answers_fixture.jsonl", E2E / "llava_pope_fixture.jsonl", tmp_path / "coco")
    (tmp_path / "coco").mkdir()
    with pytest.raises(FileNotFoundError, match="no coco_pope_<split>.json"):
        pope.score(E2E / "answers_fixture.jsonl", E2E / "llava_pope_fixture.jsonl", tmp_path / "coco")
