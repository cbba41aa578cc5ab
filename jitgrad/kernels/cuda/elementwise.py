"""Elementwise device operations with NumPy broadcasting: the array namespace of the CUDA autograd.

Every function mirrors its NumPy namesake (``add(a, b)`` is ``np.add(a, b)``)
on Numba device arrays, so an autograd backend can use this module as its
``xp``. Inputs are C-contiguous device arrays; binary operations also take a
Python scalar for either operand, which is cast to the array's dtype first
(NumPy 2's rule for Python scalars, so ``multiply(x32, 0.5)`` stays float32).

How broadcasting runs: shapes are right-aligned and left-padded to
``MAX_DIMS = 6`` dimensions; each input gets per-dimension strides (in
elements) that are 0 on its broadcast dimensions. One thread per output
element turns its flat index into an input offset with those strides. When an
input already has the output's shape the kernel skips that arithmetic.

Dropout masks come from a counter-based hash of ``(seed, index)`` evaluated on
the device (no RNG state, no host round-trip, reproducible from the seed and
identical on every GPU and in the simulator): see :func:`dropout_mask`.

This module is the namespace; the code lives in three files a reader can find
by what they look for:

- ``_broadcast.py``: shapes, strides and operands (what "broadcasting" means here);
- ``_elementwise_math.py``: ``add`` ... ``greater_equal``, ``negative`` ... ``reciprocal``;
- ``_elementwise_arrays.py``: ``where``, ``full``/``zeros``/``ones``, ``copy``, ``astype``,
  ``broadcast_to``, ``transpose``, ``dropout_mask``.
"""

from __future__ import annotations

from jitgrad.kernels.cuda._broadcast import MAX_DIMS, broadcast_shapes
from jitgrad.kernels.cuda._elementwise_arrays import (
    astype, broadcast_to, copy, dropout_mask, fill, full, ones, ones_like, transpose, where, zeros, zeros_like,
)
from jitgrad.kernels.cuda._elementwise_math import (  # noqa: A004 - NumPy's names, for an array namespace
    abs, absolute, add, divide, equal, exp, greater, greater_equal, less, less_equal, log, maximum, minimum,
    multiply, negative, not_equal, power, reciprocal, sign, sqrt, square, subtract,
)
# The broadcasting helpers the reductions and the CUDA autograd backend build on, under their old address.
from jitgrad.kernels.cuda._broadcast import _contiguous_strides, _offset, _padded  # noqa: F401

__all__: list[str] = [
    "MAX_DIMS", "broadcast_shapes",
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "negative", "exp", "log", "sqrt", "absolute", "abs", "square", "sign", "reciprocal",
    "where", "full", "zeros", "ones", "zeros_like", "ones_like", "fill", "copy", "astype",
    "broadcast_to", "transpose", "dropout_mask",
]
