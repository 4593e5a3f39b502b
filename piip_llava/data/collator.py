"""Batching: pad, cut to ``max_length``, attention mask, images.

Like LLaVA's ``DataCollatorForSupervisedDataset``: pad every sample to the longest in the batch (``input_ids``
with the pad id, ``labels`` with ``IGNORE_INDEX``), then cut the batch to ``max_length``. Two deliberate
differences:

* ``attention_mask`` comes from the sample lengths, not from ``input_ids != pad_token_id``. They agree on
  LLaVA's fixtures, but the latter hides every genuine pad-id token from attention -- a literal ``<unk>`` for
  Vicuna (pad = unk) or, worse, every EOS for tokenizers whose pad is their EOS.
* Text-only samples in a multimodal batch. ``text_only_images="zeros"`` (default, LLaVA's approach): every
  sample gets a ``pixel_values`` entry, an all-zero image for text-only ones, and ``image_sample_mask`` says
  which are real. The model runs the vision tower on all of them and scatters only the real ones' features
  into the image placeholders (text-only samples have none). Running the tower on every batch keeps all ranks
  doing the same collective operations under DeepSpeed ZeRO-3 when the tower is trained: with
  ``group_by_modality_length`` whole batches are text-only, and a rank that skipped the tower would hang the
  others. ``text_only_images="omit"``: ``pixel_values`` holds only the real images (in batch order), and is
  absent when there are none -- less compute, for setups without that constraint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ..constants import IGNORE_INDEX


@dataclass(frozen=True)
class DataCollatorForSupervisedDataset:
    """Collate dataset items (``input_ids``, ``labels``, optional ``pixel_values``) into a training batch.

    Output: ``input_ids``, ``labels``, ``attention_mask`` (B, T) ``long``; and when images are involved
    ``pixel_values`` (B or n_images, 3, S, S) and ``image_sample_mask`` (B,) ``bool``.
    """

    pad_token_id: int
    max_length: int | None = None
    """Cut the padded batch to this many tokens (LLaVA: ``model_max_length``)."""
    image_token_id: int | None = None
    """When given, cutting through image placeholders raises instead of silently dropping image tokens."""
    image_size: int | None = None
    """Side S of the zero image for text-only samples; needed for all-text batches of a multimodal dataset
    (otherwise taken from the batch's real images). ``None`` and no image in the batch: no ``pixel_values``."""
    text_only_images: Literal["zeros", "omit"] = "zeros"
    padding_side: Literal["right", "left"] = "right"
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        if self.text_only_images not in ("zeros", "omit"):
            raise ValueError(f"text_only_images must be 'zeros' or 'omit', got {self.text_only_images!r}")
        if self.padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {self.padding_side!r}")

    def __call__(self, instances: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if not instances:
            raise ValueError("cannot collate an empty list of samples")
        ids = [torch.as_tensor(item["input_ids"], dtype=torch.long) for item in instances]
        labels = [torch.as_tensor(item["labels"], dtype=torch.long) for item in instances]
        for position, (i, l) in enumerate(zip(ids, labels)):
            if i.ndim != 1 or i.shape != l.shape:
                raise ValueError(
                    f"sample {position}: input_ids {tuple(i.shape)} and labels {tuple(l.shape)} must be equal 1-D"
                )
        lengths = [len(i) for i in ids]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch_ids = torch.full((len(ids), width), self.pad_token_id, dtype=torch.long)
        batch_labels = torch.full((len(ids), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, (i, l, n) in enumerate(zip(ids, labels, lengths)):
            span = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
            batch_ids[row, span] = i
            batch_labels[row, span] = l
            mask[row, span] = 1
        if self.max_length is not None and width > self.max_length:
            keep = slice(0, self.max_length) if self.padding_side == "right" else slice(width - self.max_length, width)
            if self.image_token_id is not None:
                before = (batch_ids == self.image_token_id).sum(dim=1)
                after = (batch_ids[:, keep] == self.image_token_id).sum(dim=1)
                if not torch.equal(before, after):
                    rows = (before != after).nonzero().flatten().tolist()
                    raise ValueError(
                        f"cutting the batch to max_length={self.max_length} would cut image placeholders of "
                        f"sample(s) {rows}; tokenise with the same max_length so samples arrive already fitting"
                    )
            batch_ids, batch_labels, mask = batch_ids[:, keep], batch_labels[:, keep], mask[:, keep]
        batch = {"input_ids": batch_ids, "labels": batch_labels, "attention_mask": mask}
        batch.update(self._images(instances))
        return batch

    def _images(self, instances: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        images = [item.get("pixel_values") for item in instances]
        has_image = torch.tensor([image is not None for image in images], dtype=torch.bool)
        real = [image for image in images if image is not None]
        shapes = {tuple(image.shape) for image in real}
        if len(shapes) > 1:
            raise ValueError(f"images in one batch must share a shape, got {sorted(shapes)}")
        if self.text_only_images == "omit":
            if not real:
                return {}
            return {"pixel_values": torch.stack(real), "image_sample_mask": has_image}
        if real:
            shape, dtype = real[0].shape, real[0].dtype
            if self.image_size is not None and tuple(shape[-2:]) != (self.image_size, self.image_size):
                raise ValueError(f"images are {tuple(shape)} but image_size={self.image_size}")
        elif self.image_size is not None:
            shape, dtype = (3, self.image_size, self.image_size), torch.float32
        else:
            return {}
        pixel_values = torch.stack(
            [image if image is not None else torch.zeros(shape, dtype=dtype) for image in images]
        )
        return {"pixel_values": pixel_values, "image_sample_mask": has_image}
