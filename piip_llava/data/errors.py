"""Bad-sample errors and the skip report.

LLaVA's data code keeps a sample whose labels it could not line up, after silently setting every label to
-100 (it prints a warning that scrolls away): the sample costs compute and teaches nothing. Here every such
case is a :class:`BadSampleError` naming the sample and a short machine-readable ``reason``. The dataset's
``on_bad_sample`` policy decides what happens next: ``"raise"`` stops with the message, ``"skip"`` drops the
sample, counts it under its reason in a :class:`DataReport` and (optionally) appends it to a JSON-lines skip
log, so the numbers can be summed over DataLoader workers and ranks at the end of training.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

OnBadSample = Literal["raise", "skip"]

REASONS: dict[str, str] = {
    "malformed_json": "the record is not valid JSON",
    "malformed_record": "the record is not a LLaVA record ({id, image?, conversations: [...]})",
    "empty_conversation": "the conversation has no turns",
    "unknown_role": "a turn's 'from' is not human/gpt (or user/assistant)",
    "roles_not_alternating": "turns do not alternate user/assistant",
    "ends_with_user_turn": "the last turn is a user turn with no answer",
    "template_mismatch": "the conversation does not fit the template (e.g. 'plain' needs one image + one answer)",
    "image_tag_without_image": "<image> appears but the record has no image",
    "too_many_image_tags": "more <image> tags than images",
    "image_without_tag": "the record has an image but no <image> tag",
    "image_tag_in_answer": "<image> appears in an assistant message",
    "reserved_text": "a message contains the template's separators or role markers",
    "no_supervised_tokens": "no label would be trained on (empty answer, or answer truncated away)",
    "image_truncated": "truncation to max_length would cut image placeholders",
    "tokenization_mismatch": "span-by-span tokenisation differs from whole-prompt tokenisation",
    "llava_mismatch": "LLaVA's preprocess_v1 length check fails: LLaVA silently zeroed this sample's labels",
    "missing_image": "the image file does not exist",
    "corrupt_image": "the image cannot be read or decoded",
}
"""Every reason code with what it means."""


class BadSampleError(ValueError):
    """A sample that cannot be trained on as written; ``reason`` is a key of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str, sample_id: str | None = None, location: str | None = None):
        if reason not in REASONS:
            raise ValueError(f"unknown bad-sample reason {reason!r}")
        self.reason = reason
        self.detail = detail
        self.sample_id = sample_id
        self.location = location
        super().__init__(self._format())

    def _format(self) -> str:
        where = f"sample {self.sample_id!r}" if self.sample_id is not None else "sample"
        if self.location:
            where += f" ({self.location})"
        return f"{where}: {self.detail} [{self.reason}]"

    def __reduce__(self):
        # Exceptions pickle their ``args`` (the formatted message); rebuild from the fields instead.
        return (BadSampleError, (self.reason, self.detail, self.sample_id, self.location))

    def with_context(self, sample_id: str | None = None, location: str | None = None) -> BadSampleError:
        """A copy with the sample id / file location filled in where they were unknown."""
        return BadSampleError(
            self.reason,
            self.detail,
            self.sample_id if self.sample_id is not None else sample_id,
            self.location if self.location is not None else location,
        )

    def to_dict(self) -> dict:
        return {"reason": self.reason, "sample_id": self.sample_id, "location": self.location, "detail": self.detail}


@dataclass
class DataReport:
    """Counts of skipped samples per reason (with a few examples each) and of truncated samples."""

    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    truncated: int = 0
    max_examples: int = 5

    def add_skip(self, error: BadSampleError) -> None:
        self.skipped[error.reason] += 1
        bucket = self.examples.setdefault(error.reason, [])
        if len(bucket) < self.max_examples:
            bucket.append(str(error))

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: DataReport) -> DataReport:
        merged = DataReport(skipped=self.skipped + other.skipped, truncated=self.truncated + other.truncated)
        for source in (self.examples, other.examples):
            for reason, items in source.items():
                bucket = merged.examples.setdefault(reason, [])
                bucket.extend(items[: max(0, merged.max_examples - len(bucket))])
        return merged

    def format(self) -> str:
        """A human-readable summary, one line per reason."""
        lines = [f"skipped {self.num_skipped} sample(s); truncated {self.truncated} sample(s) to max_length"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  {reason}: {count} -- {REASONS[reason]}")
            for example in self.examples.get(reason, []):
                lines.append(f"      e.g. {example}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"skipped": dict(self.skipped), "truncated": self.truncated, "examples": self.examples}

    @classmethod
    def from_skip_logs(cls, paths: Iterable[str | os.PathLike[str]]) -> DataReport:
        """Sum the JSON-lines skip logs written by datasets in several workers/ranks (see ``skip_log_path``).

        A record met by several workers (or epochs) is counted once: entries are keyed by file location.
        """
        report = cls()
        seen: set[tuple] = set()
        for path in paths:
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        continue
                    entry = json.loads(line)
                    key = (entry.get("event"), entry.get("reason"), entry.get("location"), entry.get("sample_id"))
                    if key in seen:
                        continue
                    seen.add(key)
                    if entry.get("event") == "truncated":
                        report.truncated += 1
                    else:
                        report.add_skip(
                            BadSampleError(
                                entry["reason"], entry["detail"], entry.get("sample_id"), entry.get("location")
                            )
                        )
        return report
