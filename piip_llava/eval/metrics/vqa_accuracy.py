"""VQA soft accuracy as computed by m4c's ``TextVQAAccuracyEvaluator`` (used by LLaVA for TextVQA).

An answer given by ``k`` of the 10 annotators scores the mean, over the 10 leave-one-out subsets
of 9 annotators, of ``min(1, matches / 3)``: 0.3, 0.6, 0.9 for k = 1, 2, 3 and 1.0 for k >= 4.
The per-subset values are summed in annotator order, as the reference does, so the floats are
bit-identical to LLaVA's output and not just close.
"""

from __future__ import annotations

from collections.abc import Sequence

from .answer_processing import normalize_answer

NUM_ANNOTATORS = 10


def unique_answer_scores(normalized_gt: Sequence[str]) -> dict[str, float]:
    """Soft score of every distinct (already normalised) ground-truth answer."""
    if len(normalized_gt) != NUM_ANNOTATORS:
        raise ValueError(
            f"VQA soft accuracy needs exactly {NUM_ANNOTATORS} ground-truth answers, got {len(normalized_gt)}"
        )
    scores = {}
    for candidate in dict.fromkeys(normalized_gt):
        total_matches = sum(a == candidate for a in normalized_gt)
        # Leaving annotator i out removes one match exactly when annotator i gave the candidate.
        accs = [min(1, (total_matches - (a == candidate)) / 3) for a in normalized_gt]
        scores[candidate] = sum(accs) / len(accs)
    return scores


def soft_score(prediction: str, gt_answers: Sequence[str]) -> float:
    """Score one raw prediction against 10 raw ground-truth answers (both get normalised)."""
    scores = unique_answer_scores([normalize_answer(a) for a in gt_answers])
    return scores.get(normalize_answer(prediction), 0.0)
