"""``LazySupervisedDataset``: LLaVA-format records -> tokenised samples + image tensors, one at a time.

Records are ``{"id": ..., "image": "relative/path.jpg" (optional), "conversations": [{"from": "human"|"gpt",
"value": ...}, ...]}`` in a ``.json`` array or a ``.jsonl`` file. The file is indexed once
(:class:`~piip_llava.data.records.RecordIndex`: byte offsets and a few numbers per record, not the parsed
records) and each ``__getitem__`` reads, validates, tokenises and loads one record.

Bad samples are never trained on silently. ``on_bad_sample="raise"`` stops with a message naming the sample,
its file location and the reason. ``on_bad_sample="skip"`` replaces the sample by the next good one (so the
batch keeps its size -- a batch with fewer samples than expected, or none, breaks small per-device batch
sizes), counts it per reason in :attr:`LazySupervisedDataset.report` and, with ``skip_log_path``, appends it
to a JSON-lines log that :meth:`DataReport.from_skip_logs` sums over DataLoader workers and ranks (each
worker process holds its own copy of the dataset, so in-memory counters alone would undercount).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch.utils.data import Dataset

from ..vision.image_processor import ImageLoadError, load_image
from .errors import BadSampleError, DataReport, OnBadSample
from .preprocess import TokenizedSample, tokenize_conversation
from .records import RecordIndex
from .templates import get_template
from .tokenizer import LoadedTokenizer

logger = logging.getLogger(__name__)

IMAGE_TOKENS_FOR_LENGTH = 128
"""LLaVA's ``lengths`` adds this for a record with an image (a rough stand-in for its visual tokens)."""


class ImageProcessor(Protocol):
    """``piip_llava.vision.image_processor.PiipImageProcessor``: images -> normalised (B, 3, S, S) tensor."""

    def __call__(self, images, aspect_mode: str = "pad") -> torch.Tensor: ...


@dataclass(frozen=True)
class SupervisedDataConfig:
    """Where the data is and how to turn it into samples."""

    data_path: str
    """LLaVA ``.json`` (a list of records) or ``.jsonl`` (one record per line)."""
    template: str
    """Conversation template name: ``plain`` (stage 1), ``vicuna_v1`` (stage 2), ``llava_v1``, ``chatml``, ``llama_3``."""
    num_image_tokens: int
    """How many tokens one image becomes in the LLM sequence (1024 for the CLIP-BL/1024-336 models, 400 for 640-224)."""
    max_length: int = 2048
    """``model_max_length``: samples are cut to this many tokens (image tokens included)."""
    image_folder: str | None = None
    """Folder that record ``image`` paths are relative to; required when any record has an image."""
    image_aspect_mode: str = "pad"
    """Passed to the image processor: ``pad`` (finetuning), ``square`` (pretraining: no padding), ``resize``."""
    on_bad_sample: OnBadSample = "raise"
    """``raise``: stop at the first bad sample. ``skip``: drop it, count it, report it (see module doc)."""
    skip_log_path: str | None = None
    """JSON-lines file every skipped/truncated sample is appended to (sum it with ``DataReport.from_skip_logs``)."""
    verify_tokenization: bool = True
    """Check span-by-span ids against the whole-prompt tokenisation (see ``preprocess``)."""
    max_consecutive_skips: int = 256
    """Under ``skip``, this many bad samples in a row is a configuration error (wrong image folder...), not data."""

    def __post_init__(self) -> None:
        get_template(self.template)  # raises with the valid names
        if self.num_image_tokens < 1:
            raise ValueError(f"num_image_tokens must be >= 1, got {self.num_image_tokens}")
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.on_bad_sample not in ("raise", "skip"):
            raise ValueError(f"on_bad_sample must be 'raise' or 'skip', got {self.on_bad_sample!r}")
        if self.max_consecutive_skips < 1:
            raise ValueError("max_consecutive_skips must be >= 1")


def _check_image_folder(folder: str | None, num_with_image: int) -> None:
    if num_with_image == 0:
        return
    if folder is None:
        raise ValueError(f"{num_with_image} record(s) have an 'image' but no image_folder was given")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder!r} does not exist or is not a directory")
    try:
        with os.scandir(folder) as entries:
            next(entries, None)
    except OSError as error:
        raise PermissionError(f"image folder {folder!r} cannot be read: {error.strerror}") from error


@dataclass
class _SkipState:
    """Per-process bookkeeping of bad samples (each DataLoader worker has its own)."""

    bad: dict[int, str] = field(default_factory=dict)
    truncated: set[int] = field(default_factory=set)
    warned: dict[str, int] = field(default_factory=dict)


class LazySupervisedDataset(Dataset):
    """LLaVA's ``LazySupervisedDataset`` with compact storage and explicit bad-sample handling.

    Items are dicts: ``input_ids`` and ``labels`` (1-D ``torch.long``), plus ``pixel_values`` (3, S, S) when the
    record has an image. Batch them with :class:`~piip_llava.data.collator.DataCollatorForSupervisedDataset`.
    """

    def __init__(
        self,
        config: SupervisedDataConfig,
        tokenizer: LoadedTokenizer,
        image_processor: ImageProcessor | None = None,
        *,
        image_loader: Callable[[str], object] = load_image,
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.template = get_template(config.template)
        self.image_processor = image_processor
        self.image_loader = image_loader
        self.report = DataReport()
        self._state = _SkipState()
        self.index = RecordIndex(config.data_path, on_malformed=config.on_bad_sample)
        for error in self.index.malformed:
            self._note_skip(error)
        if len(self.index) == 0:
            raise ValueError(f"no usable record in {config.data_path}")
        num_with_image = int(self.index.has_image.sum())
        if num_with_image and image_processor is None:
            raise ValueError(f"{num_with_image} record(s) have an 'image' but no image_processor was given")
        _check_image_folder(config.image_folder, num_with_image)

    # -- what LLaVA's trainer reads ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> list[int]:
        """LLaVA: words in all turns, +128 when the record has an image."""
        return (self.index.words + IMAGE_TOKENS_FOR_LENGTH * self.index.has_image).tolist()

    @property
    def modality_lengths(self) -> list[int]:
        """LLaVA: words in all turns, negated for text-only records (the sampler groups by the sign)."""
        return (self.index.words * (2 * self.index.has_image.astype("int32") - 1)).tolist()

    # -- items -----------------------------------------------------------------------------------------

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        if self.config.on_bad_sample == "raise":
            return self._load(index)
        last_error: BadSampleError | None = None
        for attempt in range(min(self.config.max_consecutive_skips, len(self))):
            candidate = (index + attempt) % len(self)
            if candidate in self._state.bad:
                continue
            try:
                return self._load(candidate)
            except BadSampleError as error:
                self._state.bad[candidate] = error.reason
                self._note_skip(error)
                last_error = error
        raise RuntimeError(
            f"{self.config.max_consecutive_skips} consecutive bad samples from index {index} "
            f"(last: {last_error}); this looks like a configuration problem (image_folder, template), not bad data"
        )

    def load_sample(self, index: int) -> dict[str, torch.Tensor]:
        """Load record ``index`` or raise :class:`BadSampleError`, whatever the policy (for tools and tests)."""
        return self._load(index)

    def tokenize_record(self, index: int) -> TokenizedSample:
        """The text half of ``__getitem__`` (no image is read)."""
        record, sample_id, location = self._read(index)
        return self._tokenize(index, record, sample_id, location)

    def _read(self, index: int) -> tuple[dict, str, str]:
        location = self.index.location(index)
        record = self.index.record(index)
        sample_id = str(record.get("id", f"#{index}"))
        return record, sample_id, location

    def _tokenize(self, index: int, record: dict, sample_id: str, location: str) -> TokenizedSample:
        try:
            sample = tokenize_conversation(
                record.get("conversations"),
                self.tokenizer,
                self.template,
                has_image="image" in record,
                image_token_id=self.tokenizer.image_token_id,
                num_image_tokens=self.config.num_image_tokens,
                max_length=self.config.max_length,
                verify=self.config.verify_tokenization,
            )
        except BadSampleError as error:
            raise error.with_context(sample_id, location) from None
        if sample.num_truncated_tokens and index not in self._state.truncated:
            self._state.truncated.add(index)
            self.report.truncated += 1
            self._log_event(
                {
                    "event": "truncated",
                    "sample_id": sample_id,
                    "location": location,
                    "dropped": sample.num_truncated_tokens,
                }
            )
        return sample

    def _load(self, index: int) -> dict[str, torch.Tensor]:
        record, sample_id, location = self._read(index)
        sample = self._tokenize(index, record, sample_id, location)
        item = {
            "input_ids": torch.tensor(sample.input_ids, dtype=torch.long),
            "labels": torch.tensor(sample.labels, dtype=torch.long),
        }
        if "image" in record:
            try:
                item["pixel_values"] = self._load_image(record["image"])
            except BadSampleError as error:
                raise error.with_context(sample_id, location) from None
        return item

    def image_path(self, image_field: object) -> str:
        """Resolve a record's ``image`` field against ``image_folder``."""
        if isinstance(image_field, list) and len(image_field) == 1:
            image_field = image_field[0]
        if isinstance(image_field, list):
            raise BadSampleError("malformed_record", f"{len(image_field)} images in one record are not supported")
        if not isinstance(image_field, str) or not image_field:
            raise BadSampleError("malformed_record", f"'image' must be a non-empty path string, got {image_field!r}")
        return os.path.join(self.config.image_folder or "", image_field)

    def _load_image(self, image_field: object) -> torch.Tensor:
        path = self.image_path(image_field)
        if not os.path.isfile(path):
            raise BadSampleError("missing_image", f"image file not found: {path}")
        try:
            image = self.image_loader(path)
            pixel_values = self.image_processor(image, aspect_mode=self.config.image_aspect_mode)
        except (ImageLoadError, OSError) as error:
            raise BadSampleError("corrupt_image", f"cannot load {path}: {error}") from error
        if pixel_values.ndim != 4 or pixel_values.shape[0] != 1:
            raise ValueError(f"image_processor must return (1, 3, S, S) for one image, got {tuple(pixel_values.shape)}")
        return pixel_values[0]

    # -- reporting -------------------------------------------------------------------------------------

    def _note_skip(self, error: BadSampleError) -> None:
        self.report.add_skip(error)
        warned = self._state.warned.get(error.reason, 0)
        if warned < 10:
            logger.warning("skipping %s", error)
            self._state.warned[error.reason] = warned + 1
        self._log_event({"event": "skip", **error.to_dict()})

    def _log_event(self, entry: dict) -> None:
        if self.config.skip_log_path is None:
            return
        entry["pid"] = os.getpid()
        with open(self.config.skip_log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def preflight(self, *, check_images: bool = True, decode_images: bool = False) -> DataReport:
        """Check every record up front (text, and image files unless ``check_images=False``).

        Under ``raise`` the first bad record raises; under ``skip`` all are checked, bad ones are remembered
        (never served) and the returned report lists them. ``decode_images`` also decodes every image (slow).
        """
        report = DataReport()
        for index in range(len(self)):
            try:
                record, sample_id, location = self._read(index)
                if self._tokenize(index, record, sample_id, location).num_truncated_tokens:
                    report.truncated += 1
                if check_images and "image" in record:
                    try:
                        if decode_images:
                            self._load_image(record["image"])
                        elif not os.path.isfile(self.image_path(record["image"])):
                            raise BadSampleError(
                                "missing_image", f"image file not found: {self.image_path(record['image'])}"
                            )
                    except BadSampleError as error:
                        raise error.with_context(sample_id, location) from None
            except BadSampleError as error:
                if self.config.on_bad_sample == "raise":
                    raise
                if index not in self._state.bad:
                    self._state.bad[index] = error.reason
                    self._note_skip(error)
                report.add_skip(error)
        return report
