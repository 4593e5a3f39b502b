"""POPE (object hallucination; COCO adversarial / popular / random splits): reader and scorer.

Files (``playground/data/eval/pope/``): ``llava_pope_test.jsonl`` (questions, each with a
``category`` naming its split), ``val2014/`` (COCO images) and ``coco/coco_pope_{split}.json``
(the POPE label files: one JSON object per line with a ``label``).

Scoring follows ``llava/eval/eval_pope.py``:

* :func:`answer_is_no` -- keep the text before the first ``.``, delete commas, split on single
  spaces; the answer is "no" iff a token is exactly ``No``, ``not`` or ``no``. Everything else,
  including ``NO`` and ``No!``, counts as "yes".
* Labels: ``"no"`` -> 0, anything else -> 1. The k-th label line of a split belongs to the k-th
  question of that split. LLaVA pairs labels with answers by their *position in the answers
  file*; here answers are looked up by question id and put in question-file order, which is the
  same pairing for a normal run and stays correct if chunk files were merged out of order.
* Metrics per split with "yes" as positive; LLaVA-1.5 reports the mean F1 over the splits.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..metrics.binary import binary_stats
from .common import (
    EvalDataError,
    EvalQuestion,
    MissingAnswersError,
    PathLike,
    UnknownQuestionError,
    index_answers,
    iter_jsonl,
    read_answers,
    read_llava_questions,
    require_dir,
)

SPLITS = ("adversarial", "popular", "random")
_LABEL_FILE = re.compile(r"^coco_pope_(.+)\.json$")


def read_questions(question_file: PathLike, image_folder: PathLike | None) -> list[EvalQuestion]:
    """Read ``llava_pope_test.jsonl`` (``extra["category"]`` is the split)."""
    return read_llava_questions(question_file, image_folder)


def answer_is_no(text: str) -> bool:
    """LLaVA's yes/no rule (see module docstring)."""
    first_sentence = text.split(".")[0]
    words = first_sentence.replace(",", "").split(" ")
    return "No" in words or "not" in words or "no" in words


def _read_labels(label_file: Path) -> list[int]:
    labels = []
    for lineno, obj in iter_jsonl(label_file, "POPE label file"):
        if "label" not in obj:
            raise EvalDataError("POPE label line has no 'label'.", path=label_file, line=lineno)
        labels.append(0 if obj["label"] == "no" else 1)
    return labels


def score(answers_file: PathLike, question_file: PathLike, annotation_dir: PathLike) -> dict:
    """Per-split accuracy / precision / recall / F1 / yes-ratio and their means over the splits.

    Every ``coco_pope_{split}.json`` in ``annotation_dir`` is scored; each needs exactly one
    answer per question of that split.
    """
    label_dir = require_dir(annotation_dir, "POPE annotation folder (coco/)")
    label_files = {}
    for path in sorted(label_dir.iterdir()):
        match = _LABEL_FILE.match(path.name)
        if match:
            label_files[match.group(1)] = path
    if not label_files:
        raise FileNotFoundError(
            f"no coco_pope_<split>.json label files in {label_dir}. Download them from the POPE "
            "repository (output/coco/). See eval/README.md."
        )

    questions = read_llava_questions(question_file, None)
    known = {q.question_id for q in questions}
    answers = index_answers(read_answers(answers_file))
    for ans in answers.values():
        if ans.question_id not in known:
            raise UnknownQuestionError(
                f"question_id {ans.question_id!r} is not in {question_file}.", path=ans.path, line=ans.line
            )

    per_split = {}
    for split, label_path in label_files.items():
        split_questions = [q for q in questions if q.extra.get("category") == split]
        labels = _read_labels(label_path)
        if len(labels) != len(split_questions):
            raise EvalDataError(
                f"{len(labels)} labels but the question file has {len(split_questions)} questions "
                f"with category {split!r}; the question file and label files must match.",
                path=label_path,
            )
        missing = [q.question_id for q in split_questions if q.question_id not in answers]
        if missing:
            raise MissingAnswersError(
                f"{len(missing)} {split} question(s) have no answer, e.g. {missing[:5]}.", path=answers_file
            )
        preds = [0 if answer_is_no(answers[q.question_id].text) else 1 for q in split_questions]
        per_split[split] = binary_stats(preds, labels).as_dict()

    n = len(per_split)
    mean_f1 = sum(s["f1"] for s in per_split.values()) / n
    mean_acc = sum(s["accuracy"] for s in per_split.values()) / n
    return {
        "benchmark": "pope",
        "answers_file": str(Path(answers_file)),
        "samples": sum(s["n"] for s in per_split.values()),
        "per_split": per_split,
        "f1": mean_f1,
        "accuracy": mean_acc,
        "main_metric": "f1",
        "main_score": 100.0 * mean_f1,
    }


def summary_line(stats: dict) -> str:
    """LLaVA's printed summary ``"F1, acc, precision, recall, yes-ratio"`` (3 decimals)."""
    return "%.3f, %.3f, %.3f, %.3f, %.3f" % (
        stats["f1"],
        stats["accuracy"],
        stats["precision"],
        stats["recall"],
        stats["yes_ratio"],
    )
