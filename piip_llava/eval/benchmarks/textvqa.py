"""TextVQA val (LLaVA-1.5 protocol): question reader and soft-accuracy scorer.

Files (``playground/data/eval/textvqa/``):

* ``llava_textvqa_val_v051_ocr.jsonl`` -- LLaVA's question file. Each ``text`` is
  ``"{question}\\nReference OCR token: {tokens}\\nAnswer the question using a single word or phrase."``
  and ``question_id`` holds the TextVQA **image_id**, not the question id.
* ``train_images/`` -- TextVQA's train/val images (val images live in the train folder).
* ``TextVQA_0.5.1_val.json`` -- the official annotations (10 answers per question).

Scoring follows ``llava/eval/eval_textvqa.py``: since ids are image ids and an image can carry
several questions, each answer is joined to its annotation by ``(image_id, question.lower())``,
with the question recovered from the stored prompt by :func:`question_from_prompt`. The
prediction is then scored with m4c's soft accuracy (:mod:`piip_llava.eval.metrics.vqa_accuracy`).

The ``no_ocr`` reader variant drops the "Reference OCR token:" line (lmms-eval's default TextVQA
prompt). Its prompts have two lines, which the same join understands.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ..metrics.answer_processing import normalize_answer
from ..metrics.vqa_accuracy import unique_answer_scores
from .common import (
    EvalDataError,
    EvalQuestion,
    PathLike,
    UnknownQuestionError,
    load_json,
    read_answers,
    read_llava_questions,
    require_keys,
)

OCR_LINE_PREFIX = "Reference OCR token:"
_BLIP_QUESTION = re.compile(r"Question: (.*?) Short answer:", re.DOTALL)


def strip_ocr_line(prompt: str) -> str:
    """Remove the ``Reference OCR token: ...`` line from a LLaVA TextVQA prompt."""
    return "\n".join(line for line in prompt.split("\n") if not line.startswith(OCR_LINE_PREFIX))


def read_questions(
    question_file: PathLike, image_folder: PathLike | None, *, no_ocr: bool = False
) -> list[EvalQuestion]:
    """Read ``llava_textvqa_val_v051_ocr.jsonl``; ``no_ocr=True`` strips the OCR-token line."""
    questions = read_llava_questions(question_file, image_folder)
    if not no_ocr:
        return questions
    return [replace(q, prompt_text=strip_ocr_line(q.prompt_text)) for q in questions]


def question_from_prompt(prompt: str) -> str:
    """Recover the (lower-cased) question from a stored prompt, as ``eval_textvqa.prompt_processor``.

    * BLIP-style ``"OCR tokens: ... Question: {q} Short answer:"`` -> ``q`` (may span lines);
    * 3 lines containing "Reference OCR token: " -> the line that is not the OCR line
      (line 2 when the prompt starts with it, else line 1);
    * 2 lines -> line 1.

    Anything else raises ``ValueError`` (the reference raises ``AssertionError``).
    """
    lines = prompt.split("\n")
    if prompt.startswith("OCR tokens: "):
        match = _BLIP_QUESTION.search(prompt)
        if match is None:
            raise ValueError("BLIP-style prompt without 'Question: ... Short answer:'")
        question = match.group(1)
    elif OCR_LINE_PREFIX + " " in prompt and len(lines) == 3:
        question = lines[1] if prompt.startswith(OCR_LINE_PREFIX) else lines[0]
    elif len(lines) == 2:
        question = lines[0]
    else:
        raise ValueError(
            f"cannot locate the question in a {len(lines)}-line prompt; expected "
            "'question\\n[Reference OCR token: ...\\n]Answer the question using a single word or phrase.'"
        )
    return question.lower()


def score(answers_file: PathLike, annotation_file: PathLike) -> dict:
    """Soft accuracy of ``answers_file`` against ``TextVQA_0.5.1_val.json``.

    Returns ``samples``, ``accuracy`` (a fraction, summed in answer-file order like LLaVA),
    ``main_score`` (accuracy in percent, what LLaVA prints) and ``per_question`` details.
    """
    data = load_json(annotation_file, "TextVQA annotation file")
    if not isinstance(data, dict) or "data" not in data:
        raise EvalDataError(
            "expected a TextVQA annotation file with a top-level 'data' list.", path=annotation_file
        )
    annotations = {}
    for i, entry in enumerate(data["data"]):
        require_keys(
            entry, ("image_id", "question", "answers"), path=annotation_file, line=None, what=f"data[{i}]"
        )
        # Later duplicates win, as in the reference's dict comprehension.
        annotations[(entry["image_id"], entry["question"].lower())] = entry

    per_question = []
    for ans in read_answers(answers_file):
        try:
            question = question_from_prompt(ans.prompt)
        except ValueError as exc:
            raise EvalDataError(
                f"cannot recover the question from 'prompt' ({exc}). TextVQA answers must keep the "
                "prompt exactly as the question file gave it.",
                path=ans.path,
                line=ans.line,
            ) from exc
        entry = annotations.get((ans.question_id, question))
        if entry is None:
            raise UnknownQuestionError(
                f"no annotation for image_id {ans.question_id!r} with question {question!r}. "
                "Check that the answers come from llava_textvqa_val_v051_ocr.jsonl and the "
                "annotation file is TextVQA_0.5.1_val.json.",
                path=ans.path,
                line=ans.line,
            )
        gt_normalized = [normalize_answer(a) for a in entry["answers"]]
        try:
            scores = unique_answer_scores(gt_normalized)
        except ValueError as exc:
            raise EvalDataError(f"annotation for {ans.question_id!r}: {exc}", path=annotation_file) from exc
        pred_normalized = normalize_answer(ans.text)
        per_question.append(
            {
                "question_id": ans.question_id,
                "question": question,
                "pred_answer": ans.text,
                "pred_normalized": pred_normalized,
                "gt_answers": list(entry["answers"]),
                "score": scores.get(pred_normalized, 0.0),
            }
        )

    if not per_question:
        raise EvalDataError("the answers file contains no answers.", path=answers_file)
    accuracy = sum(q["score"] for q in per_question) / len(per_question)
    return {
        "benchmark": "textvqa",
        "answers_file": str(Path(answers_file)),
        "samples": len(per_question),
        "accuracy": accuracy,
        "main_metric": "accuracy",
        "main_score": 100.0 * accuracy,
        "per_question": per_question,
    }
