"""MM-Vet (LLaVA-1.5 protocol): reader and export for the official GPT-4 grader.

Files (``playground/data/eval/mm-vet/``): ``llava-mm-vet.jsonl`` (LLaVA's question file; open-ended
prompts without an instruction suffix, generated with ``model_vqa`` and up to 1024 new tokens)
and ``images/``.

The export follows ``scripts/convert_mmvet_for_eval.py``: a JSON object
``{"v1_<question_id>": answer text}``, indented by 2, which the MM-Vet evaluator (GPT-4 based,
run separately) grades. There is no local scorer.
"""

from __future__ import annotations

from pathlib import Path

from .common import EvalQuestion, PathLike, index_answers, read_answers, read_llava_questions, write_json


def read_questions(question_file: PathLike, image_folder: PathLike | None) -> list[EvalQuestion]:
    """Read ``llava-mm-vet.jsonl``."""
    return read_llava_questions(question_file, image_folder)


def export_submission(answers_file: PathLike, out_file: PathLike) -> Path:
    """Write ``{"v1_<question_id>": text}`` in answers-file order."""
    answers = index_answers(read_answers(answers_file))
    return write_json(out_file, {f"v1_{a.question_id}": a.text for a in answers.values()}, indent=2)
