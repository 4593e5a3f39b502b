"""MME (yes/no perception and cognition subtasks): reader, scorer and eval_tool export.

Files (``playground/data/eval/MME/``): ``llava_mme.jsonl`` (LLaVA's question file; ``question_id``
and ``image`` are paths like ``artwork/images/10002.jpg`` relative to the benchmark folder) and
``MME_Benchmark_release_version/`` (the official release: one folder per subtask holding the
images and ``<image stem>.txt`` files of ``question<TAB>Yes|No`` lines, either side by side or
split into ``images/`` and ``questions_answers_YN/``).

LLaVA's ``convert_answer_to_mme.py`` finds each answer's ground truth by
``(subtask, <image stem>.txt, question)``, where the question is the stored prompt with the
"Answer the question using a single word or phrase." line removed and " Please answer yes or no."
re-appended (a few MME questions have two spaces before it). MME's ``calculation.py`` then scores:

* a reply is "yes"/"no" if it is exactly that (lower-cased), else if its first 4 characters
  contain "yes" (checked first) or "no", else "other" (always wrong);
* per subtask: ``acc`` = correct / questions, ``acc_plus`` = images with both questions correct /
  images, ``score = 100 * acc + 100 * acc_plus`` (max 200);
* Perception = sum of the 10 perception subtasks (max 2000), Cognition = sum of the 4 cognition ones.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .common import (
    SHORT_ANSWER_PROMPT,
    EvalDataError,
    EvalQuestion,
    MissingAnswersError,
    PathLike,
    UnknownQuestionError,
    read_answers,
    read_llava_questions,
    require_dir,
)

# fmt: off
PERCEPTION = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
    "artwork", "OCR",
)
# fmt: on
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
_YES_NO_SUFFIX = " Please answer yes or no."


def read_questions(question_file: PathLike, image_folder: PathLike | None) -> list[EvalQuestion]:
    """Read ``llava_mme.jsonl`` (images under ``MME_Benchmark_release_version/``)."""
    return read_llava_questions(question_file, image_folder)


def read_ground_truth(data_root: PathLike) -> dict[tuple[str, str, str], str]:
    """``{(subtask, txt file name, question): "Yes"/"No"}`` from the MME release folder."""
    root = require_dir(data_root, "MME_Benchmark_release_version folder")
    gt = {}
    for subtask_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        qa_dir = subtask_dir / "questions_answers_YN" if (subtask_dir / "images").is_dir() else subtask_dir
        if not qa_dir.is_dir():
            raise FileNotFoundError(f"MME subtask {subtask_dir.name!r} has images/ but no {qa_dir}.")
        for txt in sorted(qa_dir.glob("*.txt")):
            with txt.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    parts = line.strip().split("\t")
                    if len(parts) != 2:
                        raise EvalDataError("expected 'question<TAB>answer'.", path=txt, line=lineno)
                    gt[(subtask_dir.name, txt.name, parts[0])] = parts[1]
    if not gt:
        raise FileNotFoundError(f"no MME question/answer .txt files under {root}.")
    return gt


def parse_reply(text: str) -> str:
    """``calculation.py``'s reading of a reply: "yes", "no" or "other"."""
    reply = text.lower()
    if reply in ("yes", "no"):
        return reply
    head = reply[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def _subtask_and_file(question_id: str) -> tuple[str, str]:
    """``("artwork/images/10002.jpg")`` -> ``("artwork", "10002.txt")``."""
    return question_id.split("/")[0], question_id.split("/")[-1].split(".")[0] + ".txt"


def _gt_question(prompt: str) -> list[str]:
    """Candidate ground-truth question strings for a stored prompt, most likely first."""
    question = prompt
    if SHORT_ANSWER_PROMPT in question:
        question = question.replace(SHORT_ANSWER_PROMPT, "").strip()
    if _YES_NO_SUFFIX.strip() in question:
        return [question]
    return [question + _YES_NO_SUFFIX, question + " " + _YES_NO_SUFFIX]


def _join(answers_file: PathLike, data_root: PathLike) -> dict[str, list[tuple[str, str, str, str]]]:
    """``{subtask: [(txt file, question, gt, reply), ...]}`` in answers-file order."""
    gt = read_ground_truth(data_root)
    joined: dict[str, list] = defaultdict(list)
    for ans in read_answers(answers_file):
        if not isinstance(ans.question_id, str) or "/" not in ans.question_id:
            raise EvalDataError(
                "MME question_id must be an image path like 'artwork/images/1.jpg', "
                f"got {ans.question_id!r}.",
                path=ans.path,
                line=ans.line,
            )
        subtask, txt_name = _subtask_and_file(ans.question_id)
        for question in _gt_question(ans.prompt):
            if (subtask, txt_name, question) in gt:
                break
        else:
            raise UnknownQuestionError(
                f"no MME ground truth for {ans.question_id!r} with question {question!r} in "
                f"{subtask}/{txt_name}. The prompt must be the llava_mme.jsonl text unchanged.",
                path=ans.path,
                line=ans.line,
            )
        joined[subtask].append((txt_name, question, gt[(subtask, txt_name, question)], ans.text))
    return joined


def score(answers_file: PathLike, data_root: PathLike, *, allow_partial: bool = False) -> dict:
    """Per-subtask ``acc``, ``acc_plus`` and score, and the Perception / Cognition totals.

    Every subtask of both groups must be answered unless ``allow_partial=True`` (then the totals
    only cover the subtasks present and ``missing_subtasks`` lists the rest).
    """
    joined = _join(answers_file, data_root)
    missing = [t for t in PERCEPTION + COGNITION if t not in joined]
    if missing and not allow_partial:
        raise MissingAnswersError(
            f"no answers for MME subtask(s) {missing}; run the full llava_mme.jsonl "
            "or pass allow_partial=True.",
            path=answers_file,
        )

    subtasks = {}
    totals = {}
    for group_name, group in (("perception", PERCEPTION), ("cognition", COGNITION)):
        total = 0
        for task in group:
            if task not in joined:
                continue
            subtasks[task] = _score_subtask(task, joined[task], answers_file)
            total += subtasks[task]["score"]
        totals[group_name] = total
    return {
        "benchmark": "mme",
        "answers_file": str(Path(answers_file)),
        "samples": sum(s["questions"] for s in subtasks.values()),
        "perception": totals["perception"],
        "cognition": totals["cognition"],
        "subtasks": subtasks,
        "missing_subtasks": missing,
        "main_metric": "perception",
        "main_score": totals["perception"],
    }


def _score_subtask(task: str, items: list[tuple[str, str, str, str]], answers_file: PathLike) -> dict:
    by_image: dict[str, list[bool]] = defaultdict(list)
    n_correct, n_other = 0, 0
    for txt_name, _question, gt_answer, reply in items:
        gt_label = gt_answer.lower()
        if gt_label not in ("yes", "no"):
            raise EvalDataError(f"MME ground truth must be Yes/No, got {gt_answer!r} for {task}/{txt_name}.")
        pred = parse_reply(reply)
        n_other += pred == "other"
        n_correct += pred == gt_label
        by_image[txt_name].append(pred == gt_label)
    uneven = {img: len(v) for img, v in by_image.items() if len(v) != 2}
    if uneven:
        raise EvalDataError(
            f"MME scores two questions per image, but subtask {task!r} has a different number of "
            f"answers for {len(uneven)} image(s), e.g. {dict(list(uneven.items())[:3])}.",
            path=answers_file,
        )
    acc = n_correct / len(items)
    acc_plus = sum(all(v) for v in by_image.values()) / len(by_image)
    return {
        "questions": len(items),
        "images": len(by_image),
        "acc": acc,
        "acc_plus": acc_plus,
        "score": 0 + acc * 100 + acc_plus * 100,
        "other_answers": n_other,
    }


def export_eval_tool(answers_file: PathLike, data_root: PathLike, out_dir: PathLike) -> Path:
    """Write ``<subtask>.txt`` files (``image<TAB>question<TAB>gt<TAB>reply``) for MME's calculation.py."""
    joined = _join(answers_file, data_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for task, items in joined.items():
        with (out / f"{task}.txt").open("w", encoding="utf-8") as f:
            for txt_name, question, gt_answer, reply in items:
                # A tab or newline inside the reply would break calculation.py's line format.
                reply = reply.replace("\t", " ").replace("\n", " ")
                f.write("\t".join((txt_name, question, gt_answer, reply)) + "\n")
    return out
