"""`DataLoader`: mini-batches of NumPy arrays, reshuffled reproducibly every epoch."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from jitgrad._checks import check_int, positive_int

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over a dataset in mini-batches; each ``iter()`` is one epoch.

    Parameters
    ----------
    dataset : tuple of numpy.ndarray, or indexable
        Either a tuple ``(x, y)`` (or more arrays) of equal length along
        axis 0, sliced in memory; or any object with ``__len__`` and
        ``__getitem__(i) -> (x_i, y_i)``, whose samples are stacked.
    batch_size : int
        Samples per batch (the last one may be smaller unless ``drop_last``).
    shuffle : bool
        Visit samples in a fresh random order every epoch.
    drop_last : bool
        Skip the final batch when it is smaller than ``batch_size``.
    seed : int, optional
        Seed of the shuffles. Epoch ``k``'s order depends only on
        ``(seed, k)``, so a run resumed at epoch ``k`` (see `set_epoch`) sees
        the same batches as an uninterrupted one. None draws a seed from the OS.
    transform : callable, optional
        Applied to each batch of inputs ``x``, e.g. ``Compose(to_float, normalize())``.
    target_transform : callable, optional
        Applied to each batch of targets ``y``, e.g. ``lambda y: one_hot(y, 10)``.
    device : str, optional
        ``"cpu"`` or ``"cuda"``: yield Tensors on that device instead of NumPy
        arrays (inputs *and* targets, after the transforms, which still see
        NumPy). One host-to-device copy per array per batch; the training
        step then never leaves the device. ``"cuda"`` without a GPU raises
        ``RuntimeError`` here, not at the first batch.
    rank, world_size : int, default 0 and 1
        Data-parallel sharding (pass ``jitgrad.distributed.get_rank()`` and
        ``get_world_size()``): every rank draws the same epoch permutation
        from ``seed`` and takes every ``world_size``-th index of it from
        ``rank`` on, so the shards are disjoint and batch ``b`` of all ranks
        together is batch ``b`` of one process with ``world_size`` times the
        batch size. The permutation is first padded by wrapping around (or,
        with ``drop_last``, cut) to a multiple of ``world_size``, so every
        rank runs the same number of steps. Give every rank the same seed.

    Yields
    ------
    tuple of numpy.ndarray, or of Tensor when ``device`` is given
        ``(x, y)``: C-contiguous batches, fresh copies (taken by one fancy
        index per array per batch), so a transform may work in place.

    Examples
    --------
    >>> x, y = np.zeros((10, 28, 28), np.uint8), np.arange(10)
    >>> loader = DataLoader((x, y), batch_size=4, shuffle=True, seed=0)
    >>> len(loader), [len(yb) for _, yb in loader]
    (3, [4, 4, 2])
    """

    def __init__(self, dataset: Sequence[np.ndarray] | Any, batch_size: int, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 target_transform: Callable[[np.ndarray], np.ndarray] | None = None,
                 device: str | None = None, rank: int = 0, world_size: int = 1) -> None:
        batch_size = positive_int("DataLoader", "batch_size", batch_size)
        if seed is not None:
            seed = check_int("DataLoader", "seed", seed, minimum=0, what="a non-negative int or None")
        rank, world_size = check_int("DataLoader", "rank", rank), check_int("DataLoader", "world_size", world_size)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"DataLoader: need world_size >= 1 and 0 <= rank < world_size, got rank={rank}, "
                             f"world_size={world_size}")
        for arg, fn in (("transform", transform), ("target_transform", target_transform)):
            if fn is not None and not callable(fn):
                raise TypeError(f"DataLoader: {arg} must be callable, got {type(fn).__name__}")
        self._arrays: tuple[np.ndarray, ...] | None = None
        if isinstance(dataset, tuple):
            if not dataset or not all(isinstance(a, np.ndarray) for a in dataset):
                raise TypeError("DataLoader: a tuple dataset must hold NumPy arrays, got "
                                f"({', '.join(type(a).__name__ for a in dataset)})")
            lengths = [len(a) if a.ndim else None for a in dataset]
            if None in lengths or len(set(lengths)) != 1:
                raise ValueError("DataLoader: the arrays of a tuple dataset must have the same length "
                                 f"along axis 0, got shapes {[a.shape for a in dataset]}")
            self._arrays = dataset
            self._n = lengths[0]
        elif hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
            self._n = len(dataset)
        else:
            raise TypeError("DataLoader: dataset must be a tuple of arrays or have __len__ and "
                            f"__getitem__, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        # Without a seed, one drawn now keeps epochs distinct yet the loader self-consistent.
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**63)
        self.transform = transform
        self.target_transform = target_transform
        if device is not None:
            # Imported here: jitgrad.data does not depend on the autograd unless asked for Tensors.
            from jitgrad.autograd.backend import get_backend

            if not isinstance(device, str):
                raise TypeError(f"DataLoader: device must be a str such as 'cuda', got {type(device).__name__}")
            device = get_backend(device).name  # ValueError for an unknown device, RuntimeError without a GPU
        self.device = device
        #: Index of the epoch the next ``iter()`` runs; advanced by each ``iter()``.
        self.epoch = 0

    def __len__(self) -> int:
        """Batches per epoch (of this rank)."""
        if self.drop_last:
            return self.shard_size // self.batch_size
        return -(-self.shard_size // self.batch_size)

    @property
    def shard_size(self) -> int:
        """Samples this rank visits per epoch (``num_samples`` with one rank)."""
        if self.drop_last:
            return self._n // self.world_size
        return -(-self._n // self.world_size)

    @property
    def num_samples(self) -> int:
        """Samples in the dataset."""
        return self._n

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` run epoch ``epoch`` (its order, when shuffling); e.g. to resume."""
        self.epoch = check_int("DataLoader.set_epoch", "epoch", epoch, minimum=0)

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices this rank visits in ``epoch``, in order (int64, shape (shard_size,))."""
        if not self.shuffle:
            order = np.arange(self._n)
        else:
            # A SeedSequence of (seed, epoch) gives independent, reproducible streams per epoch.
            order = np.random.default_rng([self.seed, epoch]).permutation(self._n)
        if self.world_size == 1:
            return order
        total = self.shard_size * self.world_size
        # Wrap around to pad (np.resize repeats the order), or cut the tail with drop_last.
        order = np.resize(order, total) if total > self._n else order[:total]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        # Not a generator function: the epoch advances when iter() is called, not at the first next().
        order = self.order(self.epoch)
        self.epoch += 1
        return (self._batch(order[b * self.batch_size:(b + 1) * self.batch_size]) for b in range(len(self)))

    def _batch(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        if self._arrays is not None:
            batch = [a[idx] for a in self._arrays]
        else:
            samples = [self.dataset[int(i)] for i in idx]
            batch = [np.stack([np.asarray(s[j]) for s in samples]) for j in range(len(samples[0]))]
        if self.transform is not None:
            batch[0] = self.transform(batch[0])
        if self.target_transform is not None and len(batch) > 1:
            batch[1] = self.target_transform(batch[1])
        if self.device is not None:
            from jitgrad.autograd.tensor import Tensor

            return tuple(Tensor(np.ascontiguousarray(b)).to(self.device) for b in batch)
        return tuple(batch)

    def __repr__(self) -> str:
        return (f"DataLoader(num_samples={self._n}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}"
                + (f", rank={self.rank}, world_size={self.world_size}" if self.world_size > 1 else "")
                + (f", device={self.device!r})" if self.device is not None else ")"))
