"""In-place Relu, LeakyRelu, Add and Sum for the imported graph's inference path.

Under ``no_grad`` an activation or a residual add whose input buffer is dead
after it (made earlier in the same call, not a graph output, no later
reader) writes its result over that buffer instead of allocating a new one:
the Conv's output becomes the Relu's, and the residual ``Add``/``Sum`` adds
into one of its operands. Which input may be overwritten is decided once, at
load, by :func:`plan`; :func:`run` checks at call time that the arrays fit
(host, C-contiguous, float, same shape) and otherwise returns None so the
node runs as written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from jitgrad.autograd.tensor import Tensor
from jitgrad.config import FASTMATH
from jitgrad.kernels.cpu._jit import PRANGE_ONLY, njit
from jitgrad.kernels.cpu import activations as _act

__all__ = ["plan", "run", "INPLACE_OPS"]

#: The operators that may run in place over a dead input.
INPLACE_OPS = ("Relu", "LeakyRelu", "Add", "Sum")

# Operators whose output is always a new array (never an input, nor a view of one), whatever the arguments:
# a buffer they make belongs to the call; as readers of a buffer they keep no alias to it. Anything else
# (Reshape, Flatten, Identity, Squeeze, Concat of one input, Sum of one input, ...) may hand a view on.
_FRESH = frozenset({"Conv", "BatchNormalization", "Relu", "LeakyRelu", "Add", "Sub", "Mul", "Div", "Gemm",
                    "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Sigmoid", "Tanh"})

#: Below this many elements the serial add runs (waking a second thread costs more than it buys).
_PARALLEL_MIN_SIZE = 1 << 20

_FM = set(FASTMATH)


def _fresh(node: Any) -> bool:
    return node.op_type in _FRESH or (node.op_type == "Sum" and len(node.inputs) > 1)


def plan(nodes: list[Any], graph_outputs: list[str]) -> None:
    """Set ``node.inplace`` to the index of the input each node may overwrite under ``no_grad`` (-1: none).

    An input qualifies when a node of ``nodes`` (run in that order) made it
    with an operator that always returns a new array, it is not a graph
    output, this node reads it once and is its last reader, and no reader of
    it may keep a view of it. Graph inputs, parameters, buffers and constants
    are made by no node, so they never qualify.
    """
    producer: dict[str, Any] = {}
    last: dict[str, int] = {}
    readers: dict[str, list[Any]] = {}
    for k, node in enumerate(nodes):
        for name in node.inputs:
            if name:
                last[name] = k
                readers.setdefault(name, []).append(node)
        for name in node.outputs:
            if name:
                producer[name] = node
    outputs = set(graph_outputs)
    for k, node in enumerate(nodes):
        node.inplace = -1
        if node.op_type not in INPLACE_OPS or len([o for o in node.outputs if o]) != 1:
            continue
        if node.op_type == "Sum" and len(node.inputs) < 2:
            continue
        for i, name in enumerate(node.inputs[:2] if node.op_type == "Add" else node.inputs):
            src = producer.get(name)
            if (name and src is not None and _fresh(src) and name not in outputs and last[name] == k
                    and node.inputs.count(name) == 1 and all(_fresh(r) for r in readers[name])):
                node.inplace = i
                break


@njit(cache=True, error_model="numpy", fastmath=_FM, parallel=PRANGE_ONLY)
def _add_into(out, b):
    for i in prange(out.size):
        out[i] += b[i]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _add_into_serial(out, b):
    for i in range(out.size):
        out[i] += b[i]


def _host(t: Any) -> np.ndarray | None:
    a = t.data if isinstance(t, Tensor) else None
    if type(a) is not np.ndarray or a.dtype.kind != "f" or not a.flags.c_contiguous or not a.flags.writeable:
        return None
    return a


def run(node: Any, args: list) -> Any:
    """The node's output computed over ``args[node.inplace]``, or None where the arrays do not allow it."""
    target = _host(args[node.inplace])
    if target is None or target.dtype not in (np.float32, np.float64):
        return None
    flat = target.reshape(-1)
    if node.op_type == "Relu":
        # Elementwise, each element read then written at the same index: out may be x.
        (_act._relu_kernel if flat.size >= _act._RELU_PARALLEL_MIN_SIZE else _act._relu_kernel_serial)(flat, flat)
        return Tensor(target)
    if node.op_type == "LeakyRelu":
        slope = float(node.attrs.get("alpha", 0.01))
        _act._leaky_relu_kernel(flat, target.dtype.type(_act._check_negative_slope(slope)), flat)
        return Tensor(target)
    others = [a for j, a in enumerate(args) if j != node.inplace]
    arrays = [_host(a) for a in others]
    if any(a is None or a.dtype != target.dtype or a.shape != target.shape for a in arrays):
        return None  # broadcasting, mixed dtypes or devices: as written
    add = _add_into if flat.size >= _PARALLEL_MIN_SIZE else _add_into_serial
    for a in arrays:  # the operands of Add/Sum, summed left to right like the converter (up to rounding order)
        add(flat, a.reshape(-1))
    return Tensor(target)
