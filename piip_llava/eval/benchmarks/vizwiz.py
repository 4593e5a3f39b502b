"""VizWiz-VQA test (LLaVA-1.5 protocol): reader and EvalAI submission export.

Files (``playground/data/eval/vizwiz/``): ``llava_test.jsonl`` (LLaVA's question file; its
prompts ask the model to answer "Unanswerable" when the image does not allow an answer) and
``test/`` (the VizWiz test images).

The export follows ``scripts/convert_vizwiz_for_submission.py``: one ``{"image", "answer"}``
entry per question, in question-file order, with the prediction passed through the EvalAI
answer normaliser. Every question must be answered. Scores come from the EvalAI server.
"""

from __future__ import annotations

from pathlib import Path

from ..metrics.answer_processing import normalize_answer
from .common import (
    EvalQuestion,
    MissingAnswersError,
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
    """Read ``llava_test.jsonl``."""
    return read_llava_questions(question_file, image_folder)


def export_submission(answers_file: PathLike, question_file: PathLike, out_file: PathLike) -> Path:
    """Write the EvalAI upload JSON ``[{"image", "answer"}]``."""
    questions = []
    for lineno, obj in iter_jsonl(question_file, "VizWiz question file"):
        require_keys(obj, ("question_id", "image"), path=question_file, line=lineno, what="question line")
        questions.append(obj)
    answers = index_answers(read_answers(answers_file))
    known = {q["question_id"] for q in questions}
    for ans in answers.values():
        if ans.question_id not in known:
            raise UnknownQuestionError(
                f"question_id {ans.question_id!r} is not in {question_file}.", path=ans.path, line=ans.line
            )
    missing = [q["question_id"] for q in questions if q["question_id"] not in answers]
    if missing:
        raise MissingAnswersError(
            f"{len(missing)} VizWiz question(s) have no answer, e.g. {missing[:5]}; "
            "the server needs all of them.",
            path=answers_file,
        )
    upload = [
        {"image": q["image"], "answer": normalize_answer(answers[q["question_id"]].text)} for q in questions
    ]
    return write_json(out_file, upload)
