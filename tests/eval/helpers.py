"""Shared helpers for the benchmark-layer tests (CPU only, no model)."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def answer(qid, text, prompt="", **extra) -> dict:
    """An answers-file line in LLaVA's layout."""
    return {
        "question_id": qid,
        "prompt": prompt,
        "text": text,
        "answer_id": "x",
        "model_id": "m",
        "metadata": {},
        **extra,
    }
