"""ScienceQA-IMG (LLaVA-1.5 protocol): reader and scorer.

Files (``playground/data/eval/scienceqa/``): ``llava_test_CQM-A.json`` (LLaVA-format conversations,
one per test problem), ``images/test/`` and the official ``problems.json`` + ``pid_splits.json``.

Prompt (``model_vqa_science.py --single-pred-prompt``): the first human turn with ``<image>``
removed and stripped, then ``"\\nAnswer with the option's letter from the given choices directly."``.
Problems without an image are asked as text only. The answers file stores the prompt with
``"<image>\\n"`` in front for image problems, which is how the scorer tells them apart.

Scoring (``llava/eval/eval_science_qa.py``), options ``A``-``E``:

1. no prediction -> "FAILED" (and not multimodal);
2. the text is exactly a letter -> that letter (``" B"``, ``"b"``, ``"B."`` are not);
3. text of 3+ characters starting with a letter followed by ``". "`` -> that letter;
4. exactly one match of ``The answer is ([A-Z]).`` (the final ``.`` matches any character);
5. otherwise "FAILED".

The letter counts only if it is among the problem's first ``len(choices)`` letters. LLaVA-1.5's
headline number is ``img_accuracy``: accuracy over the problems whose prompt had an image.
"""

from __future__ import annotations

import re
from pathlib import Path

from .common import (
    EvalDataError,
    EvalQuestion,
    PathLike,
    UnknownQuestionError,
    index_answers,
    load_json,
    percent,
    read_answers,
    require_dir,
    require_keys,
)

OPTIONS = ("A", "B", "C", "D", "E")
SUFFIX = "Answer with the option's letter from the given choices directly."
FAILED = "FAILED"
_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def read_questions(
    question_file: PathLike, image_folder: PathLike | None, *, single_pred_prompt: bool = True
) -> list[EvalQuestion]:
    """Read ``llava_test_CQM-A.json``; text-only problems get ``image=None``."""
    data = load_json(question_file, "ScienceQA question file")
    if not isinstance(data, list):
        raise EvalDataError("expected a JSON list of LLaVA conversation records.", path=question_file)
    folder = None if image_folder is None else require_dir(image_folder, "ScienceQA image folder")
    questions = []
    for i, item in enumerate(data):
        try:
            qid = item["id"]
            first_turn = item["conversations"][0]["value"]
        except (KeyError, IndexError, TypeError) as exc:
            raise EvalDataError(
                f"record #{i} lacks 'id' or a first conversation turn ({exc!r}).", path=question_file
            ) from exc
        prompt = first_turn.replace("<image>", "").strip()
        if single_pred_prompt:
            prompt = f"{prompt}\n{SUFFIX}"
        image = None
        stored_prompt = prompt
        if "image" in item:
            image = Path(item["image"]) if folder is None else folder / item["image"]
            stored_prompt = "<image>\n" + prompt
        questions.append(
            EvalQuestion(
                question_id=qid,
                image=image,
                prompt_text=prompt,
                extra={"has_image": image is not None},
                answer_prompt=stored_prompt,
            )
        )
    return questions


def parse_answer(text: str) -> str:
    """Extract the option letter from a prediction, or ``"FAILED"`` (rules 2-5 above)."""
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    matches = _ANSWER_IS.findall(text)
    return matches[0] if len(matches) == 1 else FAILED


def option_index(letter: str, num_choices: int) -> int:
    """Index of ``letter`` among the problem's first ``num_choices`` options, or -1."""
    return OPTIONS.index(letter) if letter in OPTIONS[:num_choices] else -1


def score(answers_file: PathLike, base_dir: PathLike, *, split: str = "test") -> dict:
    """Accuracy over the split and over its multimodal problems (``img_accuracy``, the headline)."""
    base = require_dir(base_dir, "ScienceQA base folder")
    splits = load_json(base / "pid_splits.json", "ScienceQA pid_splits.json")
    problems = load_json(base / "problems.json", "ScienceQA problems.json")
    if split not in splits:
        raise EvalDataError(
            f"split {split!r} not found; available: {sorted(splits)}.", path=base / "pid_splits.json"
        )
    split_ids = [str(pid) for pid in splits[split]]
    unknown_pids = [pid for pid in split_ids if pid not in problems]
    if unknown_pids:
        raise EvalDataError(
            f"split ids missing from problems.json: {unknown_pids[:5]}.", path=base / "problems.json"
        )
    for pid in split_ids:
        require_keys(
            problems[pid],
            ("choices", "answer"),
            path=base / "problems.json",
            line=None,
            what=f"problem {pid!r}",
        )

    # Problem ids are strings in problems.json; an int id in the answers would never match in
    # LLaVA's script (every problem would silently fail), so ids are compared as strings.
    answers = index_answers(read_answers(answers_file), key=lambda a: str(a.question_id))
    in_split = set(split_ids)
    for key, ans in answers.items():
        if key not in in_split:
            raise UnknownQuestionError(
                f"question_id {ans.question_id!r} is not a {split!r} problem in pid_splits.json.",
                path=ans.path,
                line=ans.line,
            )

    per_question = []
    for pid in split_ids:
        problem = problems[pid]
        ans = answers.get(pid)
        text = FAILED if ans is None else ans.text
        prompt = "Unknown" if ans is None else ans.prompt
        parsed = parse_answer(text)
        pred_idx = option_index(parsed, len(problem["choices"]))
        per_question.append(
            {
                "question_id": pid,
                "pred": text,
                "parsed_ans": parsed,
                "ground_truth": OPTIONS[problem["answer"]],
                "pred_idx": pred_idx,
                "is_multimodal": "<image>" in prompt,
                "correct": pred_idx == problem["answer"],
                "missing": ans is None,
            }
        )

    total = len(per_question)
    correct = sum(q["correct"] for q in per_question)
    mm = [q for q in per_question if q["is_multimodal"]]
    mm_correct = sum(q["correct"] for q in mm)
    img_accuracy = percent(mm_correct, len(mm))
    return {
        "benchmark": "scienceqa",
        "answers_file": str(Path(answers_file)),
        "samples": total,
        "correct": correct,
        "accuracy": percent(correct, total),
        "img_samples": len(mm),
        "img_correct": mm_correct,
        "img_accuracy": img_accuracy,
        "missing": [q["question_id"] for q in per_question if q["missing"]],
        "main_metric": "img_accuracy",
        "main_score": img_accuracy,
        "per_question": per_question,
    }
