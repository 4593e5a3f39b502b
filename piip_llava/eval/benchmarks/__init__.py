"""Benchmark files and scoring for LLaVA-1.5-style evaluation (no model needed).

For each benchmark there is a module with a question reader (LLaVA-1.5's eval layout ->
:class:`EvalQuestion`), a scorer (LLaVA answers JSONL -> results dict) and, where the benchmark is
scored by a server, a submission exporter. :data:`BENCHMARKS` ties them to names and to LLaVA's
default ``playground/data/eval/`` layout; the generation engine and CLI use that registry.
"""

from .common import (
    Answer,
    EvalDataError,
    EvalQuestion,
    MissingAnswersError,
    UnknownQuestionError,
    open_image,
    read_answers,
    write_jsonl,
)
from .registry import BENCHMARKS, DEFAULT_EVAL_ROOT, BenchmarkSpec, UnknownBenchmarkError, get_benchmark

__all__ = [
    "BENCHMARKS",
    "DEFAULT_EVAL_ROOT",
    "Answer",
    "BenchmarkSpec",
    "EvalDataError",
    "EvalQuestion",
    "MissingAnswersError",
    "UnknownBenchmarkError",
    "UnknownQuestionError",
    "get_benchmark",
    "open_image",
    "read_answers",
    "write_jsonl",
]
