"""Binary yes/no classification statistics (POPE).

POPE reports precision, recall, F1, accuracy and the fraction of "yes" predictions with "yes" as
the positive class. LLaVA's script divides by zero when the model never says "yes"; here an
undefined ratio is reported as 0.0 (scikit-learn's ``zero_division`` convention) so a degenerate
split still yields numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BinaryStats:
    """Confusion counts and derived ratios, with 1 = "yes" as the positive class."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.n)

    @property
    def yes_ratio(self) -> float:
        return _ratio(self.tp + self.fp, self.n)

    def as_dict(self) -> dict[str, float | int]:
        """Counts plus every ratio, as plain JSON-serialisable values."""
        d: dict[str, float | int] = {k.upper(): v for k, v in asdict(self).items()}
        d.update(
            n=self.n,
            accuracy=self.accuracy,
            precision=self.precision,
            recall=self.recall,
            f1=self.f1,
            yes_ratio=self.yes_ratio,
        )
        return d


def _ratio(num: int, den: int) -> float:
    return 0.0 if den == 0 else float(num) / float(den)


def binary_stats(predictions: Sequence[int], labels: Sequence[int]) -> BinaryStats:
    """Count TP/FP/TN/FN of 0/1 ``predictions`` against 0/1 ``labels`` (same length)."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    tp = sum(1 for p, y in zip(predictions, labels) if p == 1 and y == 1)
    fp = sum(1 for p, y in zip(predictions, labels) if p == 1 and y == 0)
    tn = sum(1 for p, y in zip(predictions, labels) if p == 0 and y == 0)
    fn = sum(1 for p, y in zip(predictions, labels) if p == 0 and y == 1)
    return BinaryStats(tp=tp, fp=fp, tn=tn, fn=fn)
