import itertools

import pytest

from regionspot.data.samplers import MultiDatasetSampler
from regionspot.errors import RegionSpotError

SIZES = [50, 7, 200]


def take(sampler, n):
    return list(itertools.islice(sampler, n))


def test_each_batch_comes_from_one_dataset_with_valid_indices():
    sampler = MultiDatasetSampler(SIZES, [1.0, 1.0, 1.0], batch_size=4, seed=3)
    for dataset, indices in take(sampler, 200):
        assert len(indices) == 4
        assert all(0 <= i < SIZES[dataset] for i in indices)


def test_same_seed_same_stream_other_seed_differs():
    a = take(MultiDatasetSampler(SIZES, [1, 2, 3], batch_size=3, seed=0), 50)
    b = take(MultiDatasetSampler(SIZES, [1, 2, 3], batch_size=3, seed=0), 50)
    c = take(MultiDatasetSampler(SIZES, [1, 2, 3], batch_size=3, seed=1), 50)
    assert a == b
    assert a != c


def test_weights_are_respected():
    sampler = MultiDatasetSampler(SIZES, [0.6, 0.1, 0.3], batch_size=2, seed=0)
    counts = [0, 0, 0]
    for dataset, _ in take(sampler, 4000):
        counts[dataset] += 1
    fractions = [c / 4000 for c in counts]
    assert fractions == pytest.approx([0.6, 0.1, 0.3], abs=0.03)
    zero = MultiDatasetSampler(SIZES, [1.0, 0.0, 1.0], batch_size=2, seed=0)
    assert all(d != 1 for d, _ in take(zero, 300))


def test_epoch_covers_dataset_without_repeats():
    sampler = MultiDatasetSampler([12], [1.0], batch_size=4, seed=5)
    first_epoch = [i for _, idx in take(sampler, 3) for i in idx]
    assert sorted(first_epoch) == list(range(12))
    second_epoch = [i for _, idx in take(sampler, 3) for i in idx]
    assert sorted(second_epoch) == list(range(12))
    assert second_epoch != first_epoch  # a fresh permutation each epoch


def test_ranks_are_disjoint_and_share_dataset_choice():
    world = 3
    samplers = [MultiDatasetSampler([90, 120], [1, 1], batch_size=5, seed=7, rank=r, world_size=world) for r in range(world)]
    seen = {0: [], 1: []}
    for _ in range(6):
        batches = [next(s) for s in samplers]
        assert len({d for d, _ in batches}) == 1  # all ranks on the same dataset at a step
        for d, idx in batches:
            seen[d].extend(idx)
    # 6 steps x 15 indices: within one epoch of each dataset nothing repeats across ranks.
    for d, size in ((0, 90), (1, 120)):
        indices = seen[d]
        assert len(indices) <= size
        assert len(set(indices)) == len(indices)
    # Per-rank streams differ.
    r0 = take(MultiDatasetSampler([30, 90], [1, 1], 5, seed=7, rank=0, world_size=2), 5)
    r1 = take(MultiDatasetSampler([30, 90], [1, 1], 5, seed=7, rank=1, world_size=2), 5)
    assert all(set(a[1]).isdisjoint(b[1]) for a, b in zip(r0, r1, strict=True))


@pytest.mark.parametrize("k", [0, 1, 13, 40])
def test_resume_continues_exact_stream(k):
    uninterrupted = MultiDatasetSampler(SIZES, [1, 2, 1], batch_size=6, seed=11, rank=1, world_size=2)
    expected = take(uninterrupted, k + 25)[k:]
    first = MultiDatasetSampler(SIZES, [1, 2, 1], batch_size=6, seed=11, rank=1, world_size=2)
    take(first, k)
    state = first.state_dict()
    resumed = MultiDatasetSampler(SIZES, [1, 2, 1], batch_size=6, seed=11, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert take(resumed, 25) == expected


def test_mismatched_state_and_bad_arguments_raise():
    state = MultiDatasetSampler(SIZES, [1, 1, 1], 2, seed=0).state_dict()
    with pytest.raises(RegionSpotError, match="seed"):
        MultiDatasetSampler(SIZES, [1, 1, 1], 2, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="one weight per dataset"):
        MultiDatasetSampler(SIZES, [1, 1], 2)
    with pytest.raises(RegionSpotError, match="not all zero"):
        MultiDatasetSampler(SIZES, [0, 0, 0], 2)
    with pytest.raises(RegionSpotError, match="empty"):
        MultiDatasetSampler([0, 5], [1, 1], 2)
    with pytest.raises(ValueError, match="rank"):
        MultiDatasetSampler(SIZES, [1, 1, 1], 2, rank=2, world_size=2)
