"""DataLoader: batching, epochs, reproducible reshuffles, transforms, bad arguments."""

import numpy as np
import pytest

from jitgrad.data import Compose, DataLoader, normalize, one_hot, to_float


def _data(n=10):
    x = np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2)
    y = np.arange(n, dtype=np.int64)
    return x, y


@pytest.mark.parametrize("n, bs, drop_last, sizes", [
    (10, 4, False, [4, 4, 2]),
    (10, 4, True, [4, 4]),
    (8, 4, False, [4, 4]),
    (8, 4, True, [4, 4]),
    (3, 5, False, [3]),
    (3, 5, True, []),
])
def test_len_and_batch_sizes(n, bs, drop_last, sizes):
    loader = DataLoader(_data(n), bs, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [len(y) for _, y in loader] == sizes


def test_unshuffled_order_and_batches_are_contiguous_copies():
    x, y = _data()
    batches = list(DataLoader((x, y), 4))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    xb, yb = batches[0]
    np.testing.assert_array_equal(xb, x[:4])
    assert xb.flags.c_contiguous and not np.shares_memory(xb, x)


def test_every_sample_once_per_epoch_and_x_matches_y():
    x, y = _data(23)
    loader = DataLoader((x, y), 5, shuffle=True, seed=3)
    for _ in range(3):
        seen = []
        for xb, yb in loader:
            np.testing.assert_array_equal(xb, x[yb])  # pairs stay together
            seen.extend(yb.tolist())
        assert sorted(seen) == list(range(23))


def _epoch_orders(loader, epochs):
    return [np.concatenate([yb for _, yb in loader]) for _ in range(epochs)]


def test_reshuffles_every_epoch_reproducibly_from_the_seed():
    a = _epoch_orders(DataLoader(_data(50), 8, shuffle=True, seed=7), 3)
    b = _epoch_orders(DataLoader(_data(50), 8, shuffle=True, seed=7), 3)
    c = _epoch_orders(DataLoader(_data(50), 8, shuffle=True, seed=8), 1)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], np.arange(50))


def test_epoch_order_depends_only_on_seed_and_epoch():
    fresh = DataLoader(_data(50), 8, shuffle=True, seed=7)
    third = _epoch_orders(DataLoader(_data(50), 8, shuffle=True, seed=7), 3)[2]
    fresh.set_epoch(2)  # e.g. resuming a run at epoch 2
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in fresh]), third)
    assert fresh.epoch == 3


def test_without_seed_epochs_still_differ():
    loader = DataLoader(_data(50), 50, shuffle=True)
    first, second = _epoch_orders(loader, 2)
    assert not np.array_equal(first, second)


def test_transforms_apply_per_batch():
    x, y = _data(6)
    calls = []

    def spy(xb):
        calls.append(xb.shape)
        return xb

    loader = DataLoader((x, y), 4, transform=Compose(spy, to_float, normalize(0.5, 0.25)),
                        target_transform=lambda t: one_hot(t, 6))
    (xb, yb), _ = list(loader)
    assert calls == [(4, 2, 2), (2, 2, 2)]
    assert xb.dtype == np.float32
    np.testing.assert_allclose(xb, (x[:4] / 255 - 0.5) / 0.25, rtol=1e-6)
    np.testing.assert_array_equal(yb, np.eye(6, dtype=np.float32)[:4])


class _Squares:
    """An indexable dataset that computes its samples."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return np.full((2,), i * i, dtype=np.float32), i


def test_indexable_dataset_is_stacked():
    batches = list(DataLoader(_Squares(), 3, shuffle=True, seed=0))
    assert [b[0].shape for b in batches] == [(3, 2), (3, 2), (1, 2)]
    ys = np.concatenate([b[1] for b in batches])
    assert sorted(ys.tolist()) == list(range(7))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb ** 2)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(dataset=_data(), batch_size=0), ValueError, "batch_size must be a positive int, got 0"),
    (dict(dataset=_data(), batch_size=2.0), TypeError, "batch_size must be a positive int, got 2.0"),
    (dict(dataset=_data(), batch_size=2, seed=-1), ValueError, "seed must be a non-negative int or None, got -1"),
    (dict(dataset=(np.zeros(3), np.zeros(4)), batch_size=2), ValueError,
     r"same length along axis 0, got shapes \[\(3,\), \(4,\)\]"),
    (dict(dataset=(np.zeros(3), [1, 2, 3]), batch_size=2), TypeError, r"must hold NumPy arrays, got \(ndarray, list\)"),
    (dict(dataset=42, batch_size=2), TypeError, "dataset must be a tuple of arrays or have __len__ and __getitem__, got int"),
    (dict(dataset=_data(), batch_size=2, transform="norm"), TypeError, "transform must be callable, got str"),
    # A wrong type is a TypeError, a wrong value of the right type a ValueError (jitgrad/_checks.py).
    (dict(dataset=_data(), batch_size=2, seed=1.5), TypeError, "seed must be a non-negative int or None, got 1.5"),
    (dict(dataset=_data(), batch_size=True), TypeError, "batch_size must be a positive int, got True"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        DataLoader(**kwargs)


def test_bad_epoch():
    with pytest.raises(ValueError, match="epoch must be a non-negative int, got -1"):
        DataLoader(_data(), 2).set_epoch(-1)
    with pytest.raises(TypeError, match="DataLoader.set_epoch: epoch must be a non-negative int, got 1.0"):
        DataLoader(_data(), 2).set_epoch(1.0)
