"""VQAv2 test-dev (LLaVA-1.5 protocol): reader and EvalAI submission export.

Files (``playground/data/eval/vqav2/``): ``llava_vqav2_mscoco_test-dev2015.jsonl`` (the questions
LLaVA answers), ``llava_vqav2_mscoco_test2015.jsonl`` (the full test split: the EvalAI server
expects an entry for every test question even when only test-dev is evaluated) and
``test2015/`` (COCO test images).

The export follows ``scripts/convert_vqav2_for_submission.py``: every question of the full test
split gets ``{"question_id", "answer"}``, with the prediction passed through the EvalAI answer
normaliser (:func:`~piip_llava.eval.metrics.answer_processing.normalize_answer`) and ``""`` for
questions that were not answered. Scores come from the EvalAI server; there is no local scorer.
"""

from __future__ import annotations

from pathlib import Path

from ..metrics.answer_processing import normalize_answer
from .common import (
    EvalQuestion,
    PathLike,
    UnknownQuestionError,
    index_answers,
    iter_jsonl,
    read_answers,
    read_llava_questions,
    require_keys,
    write_json,
)


def read_questions(question_file: PathLike, image_folder: PathLike | None) -> list[EvalQuestion]:
    """Read ``llava_vqav2_mscoco_test-dev2015.jsonl``."""
    return read_llava_questions(question_file, image_folder)


def export_submission(answers_file: PathLike, test_split_file: PathLike, out_file: PathLike) -> Path:
    """Write the EvalAI upload JSON ``[{"question_id", "answer"}]`` over the full test split."""
    split_ids = []
    for lineno, obj in iter_jsonl(test_split_file, "VQAv2 test split file"):
        require_keys(obj, ("question_id",), path=test_split_file, line=lineno, what="test split line")
        split_ids.append(obj["question_id"])
    answers = index_answers(read_answers(answers_file))
    known = set(split_ids)
    for ans in answers.values():
        if ans.question_id not in known:
            raise UnknownQuestionError(
                f"question_id {ans.question_id!r} is not in the test split {test_split_file}.",
                path=ans.path,
                line=ans.line,
            )
    upload = [
        {"question_id": qid, "answer": normalize_answer(answers[qid].text) if qid in answers else ""}
        for qid in split_ids
    ]
    return write_json(out_file, upload)
