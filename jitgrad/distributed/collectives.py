"""Collectives over the world: ``barrier``, ``broadcast``, ``all_reduce``, ``all_gather_object``.

Arrays and Tensors are reduced and broadcast **in place** (and returned),
as in ``torch.distributed``; Python numbers and other objects come back as
new values. CUDA device arrays (and Tensors on ``"cuda"``) are staged
through host memory: copied to the host, reduced by MPI, copied back. This
works with any MPI, CUDA-aware or not, at the price of two PCIe copies per
call (see docs/distributed.md).

Every collective is a non-blocking MPI call followed by a timed wait, so a
rank that died or hangs ends the job after the world's timeout instead of
leaving the others waiting forever. With a world of one (no launcher)
every collective returns at once without touching MPI.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from jitgrad.distributed.world import _get, _wait

__all__ = ["barrier", "broadcast", "all_reduce", "all_gather_object", "REDUCE_OPS"]

#: Reduction names accepted by ``all_reduce``.
REDUCE_OPS = ("sum", "mean", "max", "min")


def _mpi_op(op: str) -> Any:
    from mpi4py import MPI

    return {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


def _check_op(op: Any, owner: str) -> None:
    if op not in REDUCE_OPS:
        raise ValueError(f"{owner}: op must be one of {', '.join(map(repr, REDUCE_OPS))}, got {op!r}")


def _split(value: Any) -> tuple[Any, Any]:
    """``(array, tensor_or_None)``: the array a Tensor wraps, or the value itself."""
    from jitgrad.autograd.tensor import Tensor

    if isinstance(value, Tensor):
        return value.data, value
    return value, None


def _is_device_array(array: Any) -> bool:
    return hasattr(array, "copy_to_host") and hasattr(array, "copy_to_device")


def _host_buffer(array: Any, owner: str) -> tuple[np.ndarray, bool]:
    """A C-contiguous host array holding ``array``'s values, and whether it must be copied back."""
    if _is_device_array(array):
        return np.ascontiguousarray(array.copy_to_host()), True
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{owner}: expected a Tensor, NumPy array, CUDA device array or number, "
                        f"got {type(array).__name__}")
    if not array.flags.writeable:
        raise ValueError(f"{owner}: the array is read-only; it is updated in place")
    if array.flags.c_contiguous:
        return array, False
    return np.ascontiguousarray(array), True


def _write_back(array: Any, host: np.ndarray) -> None:
    if _is_device_array(array):
        array.copy_to_device(np.ascontiguousarray(host.reshape(array.shape)))
    else:
        array[...] = host


def barrier() -> None:
    """Wait until every rank reaches this call (aborting the job after the timeout)."""
    world = _get()
    if world.size > 1:
        _wait([world.comm.Ibarrier()], "barrier()")


def all_reduce(value: Any, op: str = "sum") -> Any:
    """Reduce ``value`` over all ranks; every rank gets the result.

    Parameters
    ----------
    value : Tensor, numpy.ndarray, CUDA device array, or number
        Same shape and dtype on every rank. Arrays and Tensors are updated
        in place and returned; a number (Python or NumPy scalar) comes
        back as a new Python number (a float for ``"mean"``).
    op : {"sum", "mean", "max", "min"}
        ``"mean"`` is the sum divided by the world size (floating-point
        dtypes only).

    Returns
    -------
    The reduced value (``value`` itself for arrays and Tensors).
    """
    _check_op(op, "all_reduce")
    world = _get()
    if isinstance(value, (bool, int, float, np.generic)):
        scalar = np.array([value], dtype=np.float64 if op == "mean" else None)
        return all_reduce(scalar, op)[0].item()
    array, tensor = _split(value)
    host, copied = _host_buffer(array, "all_reduce")
    if op == "mean" and host.dtype.kind != "f":
        raise TypeError(f"all_reduce: op='mean' needs a floating-point array, got dtype {host.dtype}")
    if world.size > 1 and host.size:
        from mpi4py import MPI

        _wait([world.comm.Iallreduce(MPI.IN_PLACE, host, op=_mpi_op(op))], f"all_reduce(op={op!r})")
        if op == "mean":
            np.divide(host, host.dtype.type(world.size), out=host)
        if copied:
            _write_back(array, host)
    return value if tensor is None else tensor


def broadcast(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` on every rank.

    Parameters
    ----------
    value : Tensor, numpy.ndarray, CUDA device array, or any picklable object
        Arrays and Tensors must have the same shape and dtype on every rank
        and are overwritten in place (and returned). Anything else is
        pickled on ``src`` and the unpickled copy is returned (what other
        ranks pass is ignored).
    src : int
        The rank whose value wins.
    """
    world = _get()
    if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= src < world.size:
        raise ValueError(f"broadcast: src must be a rank in [0, {world.size}), got {src!r}")
    array, tensor = _split(value)
    if not (isinstance(array, np.ndarray) or _is_device_array(array)):
        if world.size == 1:
            return value
        payload = pickle.dumps(value) if world.rank == src else b""
        size = np.array([len(payload)], dtype=np.int64)
        _wait([world.comm.Ibcast(size, root=src)], "broadcast() of an object's size")
        data = np.frombuffer(payload, dtype=np.uint8).copy() if world.rank == src else np.empty(size[0], np.uint8)
        _wait([world.comm.Ibcast(data, root=src)], "broadcast() of an object")
        return value if world.rank == src else pickle.loads(data.tobytes())
    host, copied = _host_buffer(array, "broadcast")
    if world.size > 1 and host.size:
        _wait([world.comm.Ibcast(host, root=src)], "broadcast()")
        if copied and world.rank != src:
            _write_back(array, host)
    return value if tensor is None else tensor


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), as a list indexed by rank, on every rank."""
    world = _get()
    if world.size == 1:
        return [obj]
    from mpi4py import MPI

    payload = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    sizes = np.empty(world.size, dtype=np.int64)
    _wait([world.comm.Iallgather(np.array([payload.size], dtype=np.int64), sizes)],
          "all_gather_object() of the sizes")
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    received = np.empty(int(sizes.sum()), dtype=np.uint8)
    _wait([world.comm.Iallgatherv(payload, [received, (sizes, offsets), MPI.BYTE])], "all_gather_object()")
    return [pickle.loads(received[o:o + s].tobytes()) for o, s in zip(offsets, sizes)]
