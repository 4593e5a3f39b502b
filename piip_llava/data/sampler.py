"""LLaVA's length-grouped sampler (``--group_by_modality_length``), deterministic under a seed.

LLaVA-1.5 finetuning mixes image conversations with text-only ShareGPT ones. Its ``LengthGroupedSampler``
(``group_by_modality=True``) keeps every *megabatch* (``world_size * batch_size`` samples: one optimisation
step across all ranks) single-modality, and inside a megabatch sorts by length and deals samples to ranks so
each rank gets a similar token count -- less padding, balanced ranks. The leftovers of both modalities form
one mixed megabatch at the end.

The algorithm here is LLaVA's (``get_modality_length_grouped_indices`` / ``get_length_grouped_indices`` /
``split_to_even_chunks``), with one fix: LLaVA draws the per-modality permutations from torch's *global* RNG
(``generator=None``) and only the megabatch shuffle from the sampler's generator, so its order depends on
whatever else consumed the global RNG. (It also sorts all-text-only data by the negative lengths, i.e.
shortest first; here magnitudes are used.) Here every draw comes from one generator seeded with
``seed + epoch`` (call :meth:`set_epoch`), so the order is a pure function of (lengths, sizes, seed, epoch).

The sampler yields the global order for all ranks, batch after batch, as LLaVA's does; the Hugging Face
Trainer / accelerate then hands consecutive batches to consecutive ranks. As in LLaVA's trainer, pass
``world_size * gradient_accumulation_steps`` as ``world_size``. For plain DDP without accelerate, give
``rank`` to get only that rank's share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def split_to_even_chunks(indices: Sequence[int], lengths: Sequence[int], num_chunks: int) -> list[list[int]]:
    """Deal ``indices`` (longest first) to ``num_chunks`` equally sized chunks, greedily balancing total length."""
    if len(indices) % num_chunks != 0:
        return [list(indices[i::num_chunks]) for i in range(num_chunks)]
    per_chunk = len(indices) // num_chunks
    chunks: list[list[int]] = [[] for _ in range(num_chunks)]
    totals = [0.0] * num_chunks
    for index in indices:
        shortest = totals.index(min(totals))
        chunks[shortest].append(index)
        totals[shortest] += lengths[index]
        if len(chunks[shortest]) == per_chunk:
            totals[shortest] = float("inf")
    return chunks


def get_length_grouped_indices(
    lengths: Sequence[int], batch_size: int, world_size: int, generator: torch.Generator
) -> list[int]:
    """Random megabatches, each sorted longest-first and split evenly across ranks."""
    permutation = torch.randperm(len(lengths), generator=generator).tolist()
    megabatch_size = world_size * batch_size
    out: list[int] = []
    for start in range(0, len(lengths), megabatch_size):
        megabatch = sorted(permutation[start : start + megabatch_size], key=lambda i: lengths[i], reverse=True)
        for chunk in split_to_even_chunks(megabatch, lengths, world_size):
            out.extend(chunk)
    return out


def get_modality_length_grouped_indices(
    lengths: Sequence[int], batch_size: int, world_size: int, generator: torch.Generator
) -> list[int]:
    """LLaVA's modality grouping: ``lengths`` > 0 for samples with an image, < 0 for text-only ones."""
    zeros = [i for i, length in enumerate(lengths) if length == 0]
    if zeros:
        raise ValueError(
            f"modality lengths must be non-zero (positive: with image, negative: text-only); index {zeros[0]} "
            f"(and {len(zeros) - 1} more) has 0: a record without any words -- fix or remove it"
        )
    if all(length > 0 for length in lengths) or all(length < 0 for length in lengths):
        return get_length_grouped_indices([abs(x) for x in lengths], batch_size, world_size, generator)
    mm_indices = [i for i, length in enumerate(lengths) if length > 0]
    mm_lengths = [length for length in lengths if length > 0]
    lang_indices = [i for i, length in enumerate(lengths) if length < 0]
    lang_lengths = [-length for length in lengths if length < 0]
    mm_order = [mm_indices[i] for i in get_length_grouped_indices(mm_lengths, batch_size, world_size, generator)]
    lang_order = [lang_indices[i] for i in get_length_grouped_indices(lang_lengths, batch_size, world_size, generator)]
    megabatch_size = world_size * batch_size
    mm_megabatches = [mm_order[i : i + megabatch_size] for i in range(0, len(mm_order), megabatch_size)]
    lang_megabatches = [lang_order[i : i + megabatch_size] for i in range(0, len(lang_order), megabatch_size)]
    leftover = mm_megabatches[-1] + lang_megabatches[-1]
    megabatches = mm_megabatches[:-1] + lang_megabatches[:-1]
    shuffled = [megabatches[i] for i in torch.randperm(len(megabatches), generator=generator).tolist()]
    if leftover:
        shuffled.append(sorted(leftover))
    return [i for megabatch in shuffled for i in megabatch]


class LengthGroupedSampler(Sampler[int]):
    """Yields dataset indices grouped by (modality and) length; see the module doc."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        world_size: int = 1,
        *,
        seed: int = 0,
        group_by_modality: bool = True,
        rank: int | None = None,
    ) -> None:
        if batch_size < 1 or world_size < 1:
            raise ValueError(f"batch_size and world_size must be >= 1, got {batch_size}, {world_size}")
        if rank is not None and not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        if len(lengths) == 0:
            raise ValueError("no lengths given")
        self.lengths = [int(x) for x in lengths]
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.group_by_modality = group_by_modality
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use a different (but reproducible) order for each epoch."""
        self.epoch = epoch

    def global_order(self) -> list[int]:
        """Every index once, in training order, for all ranks together."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        if self.group_by_modality:
            return get_modality_length_grouped_indices(self.lengths, self.batch_size, self.world_size, generator)
        return get_length_grouped_indices([abs(x) for x in self.lengths], self.batch_size, self.world_size, generator)

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        if self.rank is None:
            return iter(order)
        # Batch k of the global order belongs to rank k % world_size (how accelerate shards a batch sampler).
        mine = [
            index
            for start in range(0, len(order), self.batch_size)
            if (start // self.batch_size) % self.world_size == self.rank
            for index in order[start : start + self.batch_size]
        ]
        return iter(mine)

    def __len__(self) -> int:
        if self.rank is None:
            return len(self.lengths)
        full, rest = divmod(len(self.lengths), self.batch_size)
        batches = range(self.rank, full + (rest > 0), self.world_size)
        return sum(self.batch_size if batch < full else rest for batch in batches)
