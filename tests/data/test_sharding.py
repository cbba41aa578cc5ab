"""DataLoader(rank=, world_size=): disjoint shards of each epoch's permutation, same step count on every rank."""

import numpy as np
import pytest

from jitgrad.data import DataLoader


def _shards(n, world, batch, drop_last, shuffle=True, epoch=0):
    x = np.arange(n)
    loaders = [DataLoader((x, x), batch, shuffle=shuffle, seed=3, drop_last=drop_last, rank=r, world_size=world)
               for r in range(world)]
    for loader in loaders:
        loader.set_epoch(epoch)
    return loaders, [[yb for _, yb in loader] for loader in loaders]


@pytest.mark.parametrize("n, world, batch", [(23, 2, 3), (23, 3, 4), (24, 4, 2), (5, 3, 2), (2, 3, 1)])
def test_padded_shards_cover_the_epoch_and_run_the_same_steps(n, world, batch):
    loaders, shards = _shards(n, world, batch, drop_last=False)
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(loaders[0])
    per_rank = [np.concatenate(s) for s in shards]
    assert len({len(p) for p in per_rank}) == 1 and len(per_rank[0]) == loaders[0].shard_size == -(-n // world)
    assert set(np.concatenate(per_rank).tolist()) == set(range(n))


@pytest.mark.parametrize("n, world, batch", [(23, 2, 3), (23, 3, 4), (24, 4, 2)])
def test_dropped_shards_are_disjoint_and_the_global_batches_of_one_process(n, world, batch):
    _, shards = _shards(n, world, batch, drop_last=True, epoch=2)
    single = [yb for _, yb in _loader_at_epoch(DataLoader((np.arange(n),) * 2, batch * world, shuffle=True, seed=3,
                                                           drop_last=True), 2)]
    assert len(shards[0]) == len(single)
    for step, global_batch in enumerate(single):
        together = np.concatenate([s[step] for s in shards])
        assert len(set(together.tolist())) == len(together)
        assert sorted(together.tolist()) == sorted(global_batch.tolist())


def _loader_at_epoch(loader, epoch):
    loader.set_epoch(epoch)
    return loader


def test_shards_reshuffle_every_epoch_from_the_seed():
    _, first = _shards(40, 2, 4, drop_last=False, epoch=0)
    _, second = _shards(40, 2, 4, drop_last=False, epoch=1)
    _, again = _shards(40, 2, 4, drop_last=False, epoch=0)
    assert not np.array_equal(np.concatenate(first[0]), np.concatenate(second[0]))
    np.testing.assert_array_equal(np.concatenate(first[1]), np.concatenate(again[1]))


def test_unshuffled_shards_are_strided_and_repr_names_the_rank():
    loaders, shards = _shards(7, 2, 10, drop_last=False, shuffle=False)
    np.testing.assert_array_equal(shards[1][0], [1, 3, 5, 0])  # padded by wrapping round to 0
    assert "rank=1, world_size=2" in repr(loaders[1])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"rank": 2, "world_size": 2}, ValueError, "0 <= rank < world_size, got rank=2, world_size=2"),
    ({"rank": 0, "world_size": 0}, ValueError, "world_size >= 1"),
    ({"rank": -1, "world_size": 2}, ValueError, "got rank=-1"),
    ({"rank": 1.0, "world_size": 2}, TypeError, "DataLoader: rank must be an int, got 1.0"),
    ({"rank": 0, "world_size": True}, TypeError, "DataLoader: world_size must be an int, got True"),
])
def test_bad_rank_or_world_size(kwargs, error, message):
    with pytest.raises(error, match=message):
        DataLoader((np.arange(4),), 2, **kwargs)
