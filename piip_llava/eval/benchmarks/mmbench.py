"""MMBench (EN and CN) in LLaVA-1.5's single-prediction protocol: reader, local scorer, xlsx export.

Files: ``playground/data/eval/mmbench/mmbench_dev_20230712.tsv`` (EN) and
``playground/data/eval/mmbench_cn/mmbench_dev_cn_20231003.tsv`` (CN), from OpenCompass. Columns:
``index, question, hint, A, B, C, D, answer, category, image (base64), source, l2-category,
comment, split``. Rows with ``index >= 1e6`` are *circular copies*: the same question with
rotated options, grouped with their base row by ``index % 1e6``.

Prompt (``model_vqa_mmbench.py --single-pred-prompt``): the options are columns A-D up to the
first missing one; the hint, when present, goes on its own line before the question; each option
follows as ``"\\n{letter}. {text}"``; the instruction suffix is appended on a new line. Every row,
copies included, is asked once.

Scoring reproduces the MMBench server's rule-based stage (lmms-eval's ``MMBench_Evaluator``):
letters are extracted with :func:`~piip_llava.eval.metrics.choice_extraction.infer_option`, and a
group of circular copies is right only if every copy is right. A group with no wrong copy but
some undecidable reply would go to the server's GPT judge; it is reported as ``judge_required``
and counted as wrong in ``accuracy`` -- never guessed. Submit the xlsx export for official numbers.

pandas (and openpyxl for the export) are optional dependencies: ``pip install 'piip-llava[eval]'``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..metrics.choice_extraction import infer_option, infer_option_from_text, infer_option_letter
from .common import (
    Answer,
    EvalDataError,
    EvalQuestion,
    MissingAnswersError,
    PathLike,
    UnknownQuestionError,
    index_answers,
    read_answers,
    require_file,
)

OPTION_COLUMNS = ("A", "B", "C", "D")
CIRCULAR_STRIDE = 1_000_000
SUFFIX = {
    "en": "Answer with the option's letter from the given choices directly.",
    "cn": "请直接回答选项字母。",
}
JUDGE_REQUIRED = "judge_required"
_REQUIRED_COLUMNS = ("index", "question", "hint", "A", "B", "image")
_DROPPED_FOR_UPLOAD = ("hint", "category", "source", "image", "comment", "l2-category")


def _import_pandas():
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "MMBench needs pandas (and openpyxl for the xlsx export). "
            "Install them with: pip install 'piip-llava[eval]'"
        ) from exc
    return pd


def is_missing(value: Any) -> bool:
    """LLaVA's ``is_none``: ``None``, float NaN, or the strings "nan"/"none" in any case."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.lower() in ("nan", "none")


def read_table(tsv_file: PathLike):
    """Load an MMBench TSV with pandas.

    pandas' default NA strings (empty, ``NA``, ``N/A``, ``None``, ``nan``, ``null``, ...) become
    NaN as in LLaVA. Text columns are read as strings: LLaVA lets pandas turn an all-numeric
    option column into floats and then crashes concatenating them; here ``"3"`` stays ``"3"``.
    """
    pd = _import_pandas()
    path = require_file(tsv_file, "MMBench TSV file")
    try:
        df = pd.read_table(path, dtype=str)
    except Exception as exc:  # pandas raises several parser error types
        raise EvalDataError(f"cannot parse the MMBench TSV ({exc}).", path=path) from exc
    missing = [c for c in _REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise EvalDataError(
            f"missing column(s) {missing}; found {list(df.columns)}. Use the official MMBench TSV.",
            path=path,
        )
    try:
        df["index"] = df["index"].astype("int64")
    except (TypeError, ValueError) as exc:
        raise EvalDataError(f"the 'index' column must hold integers ({exc}).", path=path) from exc
    return df


def _cell(row, column: str) -> Any:
    value = row.get(column) if column in row else None
    return None if is_missing(value) else value


def row_options(row) -> list[str]:
    """Option texts of a row: columns A-D in order, stopping at the first missing one."""
    options = []
    for column in OPTION_COLUMNS:
        value = _cell(row, column)
        if value is None:
            break
        options.append(value)
    return options


def row_choices(row) -> dict[str, str]:
    """Every present option A-D (no stop at a gap), as the scorer's text rule sees them."""
    return {c: row[c] for c in OPTION_COLUMNS if c in row and not _is_nan(row[c])}


def _is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def build_question(question: str, hint: Any, options: list[str]) -> str:
    """The prompt body LLaVA stores as ``prompt``: optional hint line, question, lettered options."""
    text = question if is_missing(hint) else f"{hint}\n{question}"
    for letter, option in zip(OPTION_COLUMNS, options):
        text += f"\n{letter}. {option}"
    return text


def read_questions(tsv_file: PathLike, *, lang: str = "en", all_rounds: bool = False) -> list[EvalQuestion]:
    """One :class:`EvalQuestion` per TSV row (circular copies are separate rows already).

    ``lang`` picks the instruction suffix ("en" or "cn"). ``all_rounds=True`` reproduces
    LLaVA's ``--all-rounds`` mode (one question per option rotation, ``round_id`` 0..n-1); the
    v1.5 scripts do not use it and :func:`score` does not accept its answers.
    """
    if lang not in SUFFIX:
        raise ValueError(f"lang must be one of {sorted(SUFFIX)}, got {lang!r}")
    df = read_table(tsv_file)
    questions = []
    for _, row in df.iterrows():
        index = int(row["index"])
        try:
            image = base64.b64decode(row["image"], validate=False)
        except (binascii.Error, TypeError) as exc:
            raise EvalDataError(
                f"row index {index}: the 'image' cell is not valid base64 ({exc}).", path=tsv_file
            ) from exc
        options = row_options(row)
        letters = list(OPTION_COLUMNS[: len(options)])
        extra = {
            "index": index,
            "answer": _cell(row, "answer"),
            "category": _cell(row, "category"),
            "l2-category": _cell(row, "l2-category"),
        }
        for round_id in range(len(options) if all_rounds else 1):
            body = build_question(row["question"], row["hint"], options)
            questions.append(
                EvalQuestion(
                    question_id=index,
                    image=image,
                    prompt_text=f"{body}\n{SUFFIX[lang]}",
                    extra=extra,
                    answer_prompt=body,
                    answer_fields={
                        "round_id": round_id,
                        "options": list(options),
                        "option_char": list(letters),
                    },
                )
            )
            options = options[1:] + options[:1]
            letters = letters[1:] + letters[:1]
    return questions


def _predictions_by_index(answers_file: PathLike, valid_indices: set[int]) -> dict[int, Answer]:
    answers = read_answers(answers_file)
    for ans in answers:
        if ans.record.get("round_id", 0) != 0:
            raise EvalDataError(
                "answers from LLaVA's --all-rounds mode (round_id > 0) cannot be scored or "
                "submitted; regenerate with one prediction per row.",
                path=ans.path,
                line=ans.line,
            )
        if not isinstance(ans.question_id, int) or isinstance(ans.question_id, bool):
            raise EvalDataError(
                f"MMBench question_id must be the integer TSV index, got {ans.question_id!r}.",
                path=ans.path,
                line=ans.line,
            )
        if ans.question_id not in valid_indices:
            raise UnknownQuestionError(
                f"question_id {ans.question_id} is not an index of the TSV. Score against the same "
                "TSV the answers were generated from.",
                path=ans.path,
                line=ans.line,
            )
    return index_answers(answers)


def score(answers_file: PathLike, tsv_file: PathLike) -> dict:
    """Circular-evaluation accuracy, overall and per ``category`` / ``l2-category``.

    Returns (fractions in ``[0, 1]``): ``accuracy`` (``judge_required`` groups counted wrong),
    ``accuracy_if_judged_correct`` (the same groups counted right: the upper bound the GPT judge
    could reach), ``judge_required`` (their count), ``category_accuracy``,
    ``l2_category_accuracy``, ``groups`` and ``rows`` with every decision.
    """
    df = read_table(tsv_file)
    if "answer" not in df.columns or df["answer"].isna().all():
        raise EvalDataError(
            "this TSV has no ground-truth 'answer' column (a test split?). Local scoring needs the "
            "dev split; for test splits submit the xlsx from export_submission().",
            path=tsv_file,
        )
    df = df.sort_values("index", kind="stable")
    preds = _predictions_by_index(answers_file, set(df["index"].tolist()))
    missing = [int(i) for i in df["index"] if int(i) not in preds]
    if missing:
        raise MissingAnswersError(
            f"{len(missing)} TSV row(s) have no answer, e.g. index {missing[:5]}. "
            "Circular evaluation needs an answer for every row, copies included.",
            path=answers_file,
        )

    rows_by_group: dict[int, list[dict]] = defaultdict(list)
    base_rows = {}
    for _, row in df.iterrows():
        index = int(row["index"])
        prediction = preds[index].text
        choices = row_choices(row)
        by_letter = infer_option_letter(prediction)
        by_text = None if by_letter else infer_option_from_text(prediction, choices)
        inferred = infer_option(prediction, choices)
        record = {
            "index": index,
            "group": index % CIRCULAR_STRIDE,
            "answer": row["answer"],
            "prediction": prediction,
            "by_letter": by_letter,
            "by_text": by_text,
            "inferred": inferred,
            "correct": None if inferred is None else inferred == row["answer"],
        }
        rows_by_group[record["group"]].append(record)
        if index < CIRCULAR_STRIDE:
            base_rows[index] = row

    orphan = sorted(set(rows_by_group) - set(base_rows))
    if orphan:
        raise EvalDataError(
            f"circular copies without a base row (index < 1e6) for group(s) {orphan[:5]}.", path=tsv_file
        )

    groups = []
    for group_id in sorted(base_rows):
        members = rows_by_group[group_id]
        verdict = group_verdict([m["inferred"] for m in members], [m["answer"] for m in members])
        base = base_rows[group_id]
        groups.append(
            {
                "group": group_id,
                "indices": [m["index"] for m in members],
                "answers": [m["answer"] for m in members],
                "inferred": [m["inferred"] for m in members],
                "verdict": verdict,
                "category": _cell(base, "category") or "uncategorized",
                "l2-category": _cell(base, "l2-category") or "uncategorized",
            }
        )

    hits = [1 if g["verdict"] == 1 else 0 for g in groups]
    judged = [0 if g["verdict"] == 0 else 1 for g in groups]
    n = len(groups)
    accuracy = sum(hits) / n
    return {
        "benchmark": "mmbench",
        "answers_file": str(Path(answers_file)),
        "samples": n,
        "rows": [r for g in sorted(rows_by_group) for r in rows_by_group[g]],
        "groups": groups,
        "accuracy": accuracy,
        "accuracy_if_judged_correct": sum(judged) / n,
        "judge_required": sum(1 for g in groups if g["verdict"] == JUDGE_REQUIRED),
        "category_accuracy": _mean_by(groups, hits, "category"),
        "l2_category_accuracy": _mean_by(groups, hits, "l2-category"),
        "main_metric": "accuracy",
        "main_score": 100.0 * accuracy,
    }


def group_verdict(inferred: list[str | None], answers: list[str]) -> int | str:
    """1 if every copy is right, 0 if any decided copy is wrong, else ``"judge_required"``."""
    if any(p is not None and p != gt for p, gt in zip(inferred, answers)):
        return 0
    if all(p is not None for p in inferred):
        return 1
    return JUDGE_REQUIRED


def _mean_by(groups: list[dict], hits: list[int], key: str) -> dict[str, float]:
    buckets: dict[str, list[int]] = defaultdict(list)
    for group, hit in zip(groups, hits):
        buckets[group[key]].append(hit)
    return {k: sum(v) / len(v) for k, v in sorted(buckets.items())}


def export_submission(answers_file: PathLike, tsv_file: PathLike, out_file: PathLike) -> Path:
    """Write the xlsx the MMBench server accepts (``convert_mmbench_for_submission.py``).

    Columns are the TSV's minus ``hint, category, source, image, comment, l2-category``, with
    ``prediction`` inserted as the 7th column. Rows without an answer get an empty prediction.
    """
    df = read_table(tsv_file)
    preds = _predictions_by_index(answers_file, set(df["index"].tolist()))
    upload = df.drop(columns=[c for c in _DROPPED_FOR_UPLOAD if c in df.columns])
    upload.insert(
        min(6, len(upload.columns)),
        "prediction",
        [preds[i].text if i in preds else None for i in upload["index"]],
    )
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        upload.to_excel(out, index=False, engine="openpyxl")
    except ImportError as exc:
        raise ImportError("Writing the MMBench xlsx needs openpyxl: pip install 'piip-llava[eval]'") from exc
    return out
