"""GQA testdev-balanced (LLaVA-1.5 protocol): reader, prediction conversion and accuracy.

Files (``playground/data/eval/gqa/``): ``llava_gqa_testdev_balanced.jsonl`` (LLaVA's question
file), ``data/images/`` and ``data/testdev_balanced_questions.json`` (official GQA questions).

LLaVA converts each answer with ``text.rstrip('.').lower()`` into
``data/testdev_balanced_predictions.json`` (``[{"questionId", "prediction"}]``) and runs GQA's
``eval.py --tier testdev_balanced``. :func:`score` reimplements that script's answer-based
metrics: exact-match accuracy over the *balanced* questions, the binary / open split (structural
type ``query`` is open, the rest binary), accuracy per structural type, semantic type, number of
reasoning steps and number of words, and the answer-distribution chi-square score. Consistency,
validity, plausibility and grounding need scene graphs / choices / attention maps and are left
to the official script.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .common import (
    EvalDataError,
    EvalQuestion,
    MissingAnswersError,
    PathLike,
    UnknownQuestionError,
    index_answers,
    load_json,
    read_answers,
    read_llava_questions,
    write_json,
)

_STEP_FREE_OPERATIONS = ("exist", "query: name", "choose name")


def read_questions(question_file: PathLike, image_folder: PathLike | None) -> list[EvalQuestion]:
    """Read ``llava_gqa_testdev_balanced.jsonl``."""
    return read_llava_questions(question_file, image_folder)


def convert_prediction(text: str) -> str:
    """LLaVA's GQA post-processing: strip trailing periods, lower-case."""
    return text.rstrip(".").lower()


def convert_predictions(answers_file: PathLike) -> list[dict]:
    """``[{"questionId", "prediction"}]`` in answers-file order (``convert_gqa_for_eval.py``)."""
    return [
        {"questionId": a.question_id, "prediction": convert_prediction(a.text)}
        for a in read_answers(answers_file)
    ]


def export_predictions(answers_file: PathLike, out_file: PathLike) -> Path:
    """Write ``testdev_balanced_predictions.json`` for GQA's official ``eval.py``."""
    return write_json(out_file, convert_predictions(answers_file))


def _steps(question: dict) -> int:
    return sum(
        1
        for op in question.get("semantic", [])
        if not any(o in f"{op['operation']}: {op['argument']}" for o in _STEP_FREE_OPERATIONS)
    )


def _chi_square(gold: dict, predicted: dict) -> float | None:
    weighted, overall_total = 0.0, 0
    for group, gold_counts in gold.items():
        group_score, group_total = 0.0, 0
        for answer, expected in gold_counts.items():
            observed = predicted[group].get(answer, 0)
            group_score += float(observed - expected) ** 2 / expected
            group_total += expected
        weighted += group_score * group_total
        overall_total += group_total
    return None if overall_total == 0 else weighted / overall_total


def _avg_percent(scores: list[float]) -> float:
    return 0.0 if not scores else float(sum(scores)) / len(scores) * 100


def score(answers_file: PathLike, questions_file: PathLike) -> dict:
    """GQA accuracy metrics over the balanced questions of ``testdev_balanced_questions.json``.

    Every balanced question needs a prediction (GQA's script raises otherwise); answers whose id
    is not in the questions file raise :class:`UnknownQuestionError`.
    """
    questions = load_json(questions_file, "GQA questions file")
    if not isinstance(questions, dict):
        raise EvalDataError("expected GQA's {questionId: question} mapping.", path=questions_file)
    answers = index_answers(read_answers(answers_file), key=lambda a: str(a.question_id))
    for key, ans in answers.items():
        if key not in questions:
            raise UnknownQuestionError(
                f"question_id {ans.question_id!r} is not in {questions_file}.", path=ans.path, line=ans.line
            )

    balanced = {qid: q for qid, q in questions.items() if q.get("isBalanced")}
    missing = [qid for qid in balanced if qid not in answers]
    if missing:
        raise MissingAnswersError(
            f"{len(missing)} balanced question(s) have no prediction, e.g. {missing[:5]}.", path=answers_file
        )

    scores: dict[str, list[float]] = {"accuracy": [], "binary": [], "open": []}
    per: dict[str, dict] = {
        "structural_type": defaultdict(list),
        "semantic_type": defaultdict(list),
        "steps": defaultdict(list),
        "words": defaultdict(list),
    }
    gold_dist: dict = defaultdict(lambda: defaultdict(int))
    pred_dist: dict = defaultdict(lambda: defaultdict(int))
    for qid, q in balanced.items():
        gold = q["answer"]
        predicted = convert_prediction(answers[qid].text)
        s = float(predicted == gold)
        structural = q["types"]["structural"]
        scores["accuracy"].append(s)
        scores["open" if structural == "query" else "binary"].append(s)
        per["structural_type"][structural].append(s)
        per["semantic_type"][q["types"]["semantic"]].append(s)
        per["steps"][_steps(q)].append(s)
        per["words"][len(q["question"].split())].append(s)
        global_group = q.get("groups", {}).get("global")
        if global_group is not None:
            gold_dist[global_group][gold] += 1
            pred_dist[global_group][predicted] += 1

    chi = _chi_square(gold_dist, pred_dist)
    accuracy = _avg_percent(scores["accuracy"])
    return {
        "benchmark": "gqa",
        "answers_file": str(Path(answers_file)),
        "samples": len(balanced),
        "accuracy": accuracy,
        "binary": _avg_percent(scores["binary"]),
        "open": _avg_percent(scores["open"]),
        "distribution": None if chi is None else chi / 100,
        **{
            f"accuracy_per_{name}": {
                k: {"accuracy": _avg_percent(v), "count": len(v)} for k, v in sorted(d.items())
            }
            for name, d in per.items()
        },
        "main_metric": "accuracy",
        "main_score": accuracy,
    }
