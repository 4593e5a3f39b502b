"""TextVQA: reader, LLaVA's prompt processor and m4c soft accuracy, against LLaVA's own outputs."""

from __future__ import annotations

import json

import pytest

from piip_llava.eval.benchmarks import textvqa
from piip_llava.eval.benchmarks.common import EvalDataError, UnknownQuestionError

from .helpers import FIXTURES, answer, read_jsonl, write_jsonl

DIR = FIXTURES / "textvqa"
ANNOTATIONS = DIR / "TextVQA_fixture_val.json"
ANSWERS = DIR / "answers_fixture.jsonl"


@pytest.fixture(scope="module")
def results():
    return textvqa.score(ANSWERS, ANNOTATIONS)


def test_overall_accuracy_is_bit_identical(results):
    summary = json.loads((DIR / "expected_summary.json").read_text())
    assert results["samples"] == summary["samples"] == 300
    assert results["accuracy"] == summary["accuracy"]
    assert results["main_score"] == summary["accuracy_percent"]
    assert f"Accuracy: {results['main_score']:.2f}%" in summary["printed_by_eval_textvqa"]


def test_score_counts(results):
    summary = json.loads((DIR / "expected_summary.json").read_text())
    scores = [q["score"] for q in results["per_question"]]
    assert scores.count(1.0) == summary["n_score_1"]
    assert scores.count(0.0) == summary["n_score_0"]
    assert len(scores) - scores.count(1.0) - scores.count(0.0) == summary["n_partial"]


def test_every_question_matches(results):
    expected = read_jsonl(DIR / "expected_per_question.jsonl")
    assert len(expected) == len(results["per_question"])
    for got, exp in zip(results["per_question"], expected):
        assert got["question_id"] == exp["question_id"]
        assert got["question"] == exp["question_from_prompt"]
        assert got["gt_answers"] == exp["gt_answers"]
        assert got["pred_normalized"] == exp["pred_normalized"]
        assert got["score"] == exp["score"], exp


def test_unique_answer_scores_match():
    from piip_llava.eval.metrics import normalize_answer, unique_answer_scores

    for exp in read_jsonl(DIR / "expected_per_question.jsonl"):
        normalized = [normalize_answer(a) for a in exp["gt_answers"]]
        assert normalized == exp["gt_answers_normalized"]
        assert unique_answer_scores(normalized) == exp["unique_answer_scores"]


PROMPT_CASES = read_jsonl(DIR / "prompt_processor.jsonl")


@pytest.mark.parametrize("case", PROMPT_CASES, ids=[str(i) for i in range(len(PROMPT_CASES))])
def test_prompt_processor(case):
    if case["error"] is None:
        assert textvqa.question_from_prompt(case["prompt"]) == case["question"]
    else:
        with pytest.raises(ValueError):
            textvqa.question_from_prompt(case["prompt"])


def test_reader_reproduces_answer_prompts(tmp_path):
    (tmp_path / "train_images").mkdir()
    questions = textvqa.read_questions(DIR / "question_file_fixture.jsonl", tmp_path / "train_images")
    answers = read_jsonl(ANSWERS)
    assert len(questions) == len(answers) == 300
    for q, a in zip(questions, answers):
        assert q.question_id == a["question_id"]
        assert q.image == tmp_path / "train_images" / f"{a['question_id']}.jpg"
        assert "<image>" not in q.prompt_text
        assert q.answer_record(a["text"], "m")["prompt"] == a["prompt"]
    assert questions[0].prompt_text == (
        "what brand of soda is this?\nReference OCR token: Coca-Cola, Classic, 12, FL, OZ\n"
        "Answer the question using a single word or phrase."
    )


def test_no_ocr_variant_strips_the_ocr_line_and_still_scores(tmp_path):
    questions = textvqa.read_questions(DIR / "question_file_fixture.jsonl", None, no_ocr=True)
    assert (
        questions[0].prompt_text
        == "what brand of soda is this?\nAnswer the question using a single word or phrase."
    )
    assert all("Reference OCR token" not in q.prompt_text for q in questions)
    # Same predictions with no-OCR prompts give the same score: the join reads the 2-line form.
    texts = [a["text"] for a in read_jsonl(ANSWERS)]
    path = write_jsonl(tmp_path / "a.jsonl", [q.answer_record(t, "m") for q, t in zip(questions, texts)])
    assert textvqa.score(path, ANNOTATIONS)["accuracy"] == textvqa.score(ANSWERS, ANNOTATIONS)["accuracy"]


def test_unknown_question_names_line_and_id(tmp_path):
    rows = read_jsonl(ANSWERS)[:3]
    rows[2]["question_id"] = "deadbeef"
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    with pytest.raises(UnknownQuestionError, match=r"a.jsonl:3: no annotation for image_id 'deadbeef'"):
        textvqa.score(path, ANNOTATIONS)


def test_unparseable_prompt_is_reported(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [answer("90d6a053bd23453f", "x", prompt="one line only")])
    with pytest.raises(EvalDataError, match=r"a.jsonl:1: cannot recover the question"):
        textvqa.score(path, ANNOTATIONS)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="TextVQA annotation file not found"):
        textvqa.score(ANSWERS, tmp_path / "TextVQA_0.5.1_val.json")


def test_bad_annotation_layout(tmp_path):
    bad = tmp_path / "ann.json"
    bad.write_text(json.dumps({"data": [{"image_id": "x", "question": "q"}]}))
    with pytest.raises(EvalDataError, match=r"data\[0\] is missing key\(s\) \['answers'\]"):
        textvqa.score(ANSWERS, bad)
