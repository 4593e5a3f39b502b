"""LengthGroupedSampler: LLaVA's modality/length grouping, deterministic, usable with several ranks."""

from __future__ import annotations

import random

import pytest
import torch

from piip_llava.data.sampler import (
    LengthGroupedSampler,
    get_length_grouped_indices,
    split_to_even_chunks,
)


def _lengths(n_image=203, n_text=77, seed=0):
    rng = random.Random(seed)
    lengths = [rng.randint(10, 500) for _ in range(n_image)] + [-rng.randint(10, 500) for _ in range(n_text)]
    rng.shuffle(lengths)
    return lengths


def test_permutation_and_determinism():
    lengths = _lengths()
    a = list(LengthGroupedSampler(lengths, batch_size=4, world_size=2, seed=3))
    b = list(LengthGroupedSampler(lengths, batch_size=4, world_size=2, seed=3))
    assert a == b and sorted(a) == list(range(len(lengths)))
    assert a != list(LengthGroupedSampler(lengths, batch_size=4, world_size=2, seed=4))


def test_independent_of_global_rng():
    lengths = _lengths()
    torch.manual_seed(0)
    a = list(LengthGroupedSampler(lengths, batch_size=4, world_size=2, seed=1))
    torch.manual_seed(12345)
    torch.rand(100)
    assert a == list(LengthGroupedSampler(lengths, batch_size=4, world_size=2, seed=1))


def test_epochs_differ_reproducibly():
    sampler = LengthGroupedSampler(_lengths(), batch_size=4, world_size=2, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    sampler.set_epoch(0)
    assert list(sampler) == first


@pytest.mark.parametrize("world_size,batch_size", [(1, 8), (2, 4), (4, 3)])
def test_megabatches_are_single_modality_and_sorted(world_size, batch_size):
    lengths = _lengths()
    order = list(LengthGroupedSampler(lengths, batch_size=batch_size, world_size=world_size, seed=7))
    size = world_size * batch_size
    n_image = sum(1 for x in lengths if x > 0)
    n_text = len(lengths) - n_image
    full = (n_image // size) + (n_text // size) - (n_image % size == 0) - (n_text % size == 0)
    megabatches = [order[i : i + size] for i in range(0, len(order), size)]
    for megabatch in megabatches[:full]:
        signs = {lengths[i] > 0 for i in megabatch}
        assert len(signs) == 1, "a full megabatch mixes modalities"
        # Dealt longest-first: every rank's first sample is among the megabatch's `world_size` longest.
        magnitudes = sorted((abs(lengths[i]) for i in megabatch), reverse=True)
        for rank in range(world_size):
            assert abs(lengths[megabatch[rank * batch_size]]) >= magnitudes[world_size - 1]
    # The leftovers of both modalities form the mixed last megabatch(es), sorted by index as in LLaVA.
    tail = order[full * size :]
    assert tail == sorted(tail)


def test_ranks_balanced_by_length():
    lengths = [abs(x) for x in _lengths(n_image=256, n_text=0)]
    chunks = split_to_even_chunks(sorted(range(16), key=lambda i: lengths[i], reverse=True), lengths, 4)
    assert all(len(c) == 4 for c in chunks)
    totals = [sum(lengths[i] for i in c) for c in chunks]
    assert max(totals) - min(totals) <= max(lengths[:16])


def test_single_modality_data():
    lengths = [-x for x in range(1, 41)]
    order = list(LengthGroupedSampler(lengths, batch_size=5, world_size=2, seed=0))
    assert sorted(order) == list(range(40))
    generator = torch.Generator().manual_seed(0)
    assert order == get_length_grouped_indices(list(range(1, 41)), 5, 2, generator)


def test_rank_shards_cover_everything_once():
    lengths = _lengths(n_image=101, n_text=50)
    world, batch = 3, 4
    global_order = list(LengthGroupedSampler(lengths, batch_size=batch, world_size=world, seed=2))
    shards = [
        list(LengthGroupedSampler(lengths, batch_size=batch, world_size=world, seed=2, rank=r)) for r in range(world)
    ]
    assert sorted(i for shard in shards for i in shard) == list(range(len(lengths)))
    assert shards[1][:batch] == global_order[batch : 2 * batch]
    for rank in range(world):
        sampler = LengthGroupedSampler(lengths, batch_size=batch, world_size=world, seed=2, rank=rank)
        assert len(sampler) == len(shards[rank])


def test_rejects_zero_and_bad_arguments():
    with pytest.raises(ValueError, match="non-zero"):
        list(LengthGroupedSampler([3, 0, -2], batch_size=1))
    with pytest.raises(ValueError):
        LengthGroupedSampler([1], batch_size=0)
    with pytest.raises(ValueError, match="rank"):
        LengthGroupedSampler([1], batch_size=1, world_size=2, rank=2)


def test_dataset_modality_lengths_feed_the_sampler(golden):
    lengths = [case["modality_length"] for case in golden("dataset_lengths.jsonl")]
    order = list(LengthGroupedSampler(lengths, batch_size=2, world_size=2, seed=0))
    assert sorted(order) == list(range(len(lengths)))
