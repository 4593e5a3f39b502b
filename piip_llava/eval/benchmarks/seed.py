"""SEED-Bench (LLaVA-1.5 protocol): reader, per-question-type scorer and upload file.

Files (``playground/data/eval/seed_bench/``): ``llava-seed-bench.jsonl`` (LLaVA's question file;
video questions use one extracted middle frame), ``SEED-Bench.json`` (official annotation:
``question_type`` name->id map and ``questions`` with ``answer``, ``data_type``,
``question_type_id``), and the images under ``SEED-Bench-image/`` / ``SEED-Bench-video-image/``
(the question file's ``image`` paths are relative to the ``seed_bench`` folder itself).

Scoring follows ``scripts/convert_seed_for_submission.py``:

* a prediction is right only if ``text`` **equals** the annotation's ``answer`` (no
  normalisation: ``"C."`` or ``" A"`` are wrong -- LLaVA prompts for the bare letter);
* answers are keyed by their ``question_id`` as written; each annotation id is looked up as
  ``int(id)`` when it parses as an integer, else as the string. So a numeric id written as a
  string in the answers file is *not* found; missing questions count as wrong;
* accuracy per ``question_type_id`` (sorted), overall, and for the image / video subsets.
  LLaVA-1.5 reports the image accuracy (SEED-IMG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import (
    EvalDataError,
    EvalQuestion,
    MissingAnswersError,
    PathLike,
    index_answers,
    load_json,
    percent,
    read_answers,
    read_llava_questions,
    require_keys,
    write_jsonl,
)


def read_questions(question_file: PathLike, image_folder: PathLike | None) -> list[EvalQuestion]:
    """Read ``llava-seed-bench.jsonl`` (image paths relative to the ``seed_bench`` folder)."""
    return read_llava_questions(question_file, image_folder)


def _lookup_key(question_id: Any) -> Any:
    try:
        return int(question_id)
    except (TypeError, ValueError):
        return question_id


def _load_annotation(annotation_file: PathLike) -> dict:
    data = load_json(annotation_file, "SEED-Bench annotation file")
    if not isinstance(data, dict) or "questions" not in data or "question_type" not in data:
        raise EvalDataError(
            "expected SEED-Bench.json with 'question_type' and 'questions'.", path=annotation_file
        )
    for i, q in enumerate(data["questions"]):
        require_keys(
            q,
            ("question_id", "question_type_id", "answer"),
            path=annotation_file,
            line=None,
            what=f"questions[{i}]",
        )
    return data


def score(answers_file: PathLike, annotation_file: PathLike) -> dict:
    """Exact-match accuracy per question type, overall, and for image / video questions (percent)."""
    data = _load_annotation(annotation_file)
    type_names = {type_id: name for name, type_id in data["question_type"].items()}
    answers = index_answers(read_answers(answers_file))

    per_question = []
    for q in data["questions"]:
        ans = answers.get(_lookup_key(q["question_id"]))
        per_question.append(
            {
                "question_id": q["question_id"],
                "question_type_id": q["question_type_id"],
                "data_type": q.get("data_type"),
                "answer": q["answer"],
                "prediction": None if ans is None else ans.text,
                "joined": ans is not None,
                "correct": ans is not None and ans.text == q["answer"],
            }
        )

    def accuracy_of(rows: list[dict]) -> float | None:
        return percent(sum(r["correct"] for r in rows), len(rows))

    per_type = {}
    for type_id in sorted({r["question_type_id"] for r in per_question}):
        rows = [r for r in per_question if r["question_type_id"] == type_id]
        per_type[type_names.get(type_id, str(type_id))] = accuracy_of(rows)

    image_accuracy = accuracy_of([r for r in per_question if r["data_type"] == "image"])
    return {
        "benchmark": "seed",
        "answers_file": str(Path(answers_file)),
        "samples": len(per_question),
        "per_question_type": per_type,
        "accuracy": accuracy_of(per_question),
        "image_accuracy": image_accuracy,
        "video_accuracy": accuracy_of([r for r in per_question if r["data_type"] == "video"]),
        "missing": [r["question_id"] for r in per_question if not r["joined"]],
        "main_metric": "image_accuracy",
        "main_score": image_accuracy,
        "per_question": per_question,
    }


def export_submission(answers_file: PathLike, annotation_file: PathLike, out_file: PathLike) -> Path:
    """Write the SEED-Bench upload JSONL: ``{question_id, prediction}`` per annotation question.

    Each result is looked up by the raw annotation id, then by ``int(id)``; a question with no
    result raises :class:`MissingAnswersError` (the leaderboard needs every question).
    """
    data = _load_annotation(annotation_file)
    answers = index_answers(read_answers(answers_file))
    lines, missing = [], []
    for q in data["questions"]:
        qid = q["question_id"]
        ans = answers.get(qid)
        if ans is None:
            ans = answers.get(_lookup_key(qid))
        if ans is None:
            missing.append(qid)
            continue
        lines.append({"question_id": qid, "prediction": ans.text})
    if missing:
        raise MissingAnswersError(
            f"{len(missing)} SEED-Bench question(s) have no answer, e.g. {missing[:5]}.", path=answers_file
        )
    return write_jsonl(out_file, lines)
