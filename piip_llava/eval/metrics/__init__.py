"""Benchmark-independent scoring rules: answer normalisation, soft VQA accuracy, option-letter
extraction and yes/no statistics. Each reproduces the reference implementation LLaVA-1.5's
numbers were computed with; the benchmark modules in :mod:`piip_llava.eval.benchmarks` use them.
"""

from .answer_processing import normalize_answer
from .binary import BinaryStats, binary_stats
from .choice_extraction import infer_option, infer_option_from_text, infer_option_letter
from .vqa_accuracy import soft_score, unique_answer_scores

__all__ = [
    "BinaryStats",
    "binary_stats",
    "infer_option",
    "infer_option_from_text",
    "infer_option_letter",
    "normalize_answer",
    "soft_score",
    "unique_answer_scores",
]
