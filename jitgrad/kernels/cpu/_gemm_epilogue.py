"""The GEMM store's epilogue: bias and activation applied to each C tile just after the micro-kernel stored it.

``gemm_block`` (``_gemm_tile``) computes C tile by tile; with an epilogue
code ``epi`` (a small int, so one Numba specialisation serves every
combination) it passes each tile, after the last ``k`` slice and while it
is still in L1, through ``epilogue_tile``: a per-column bias added and the
activation applied, on vectors. (In the micro-kernel's registers it made
the store too large for LLVM to inline and slowed every product, fused or
not.) A per-row bias (the convolution's, one per output channel) is the
micro-kernel's initial accumulator instead (``has_bias``), which costs
nothing at all.

The codes are bits: ``EPI_RELU`` (``max(v, 0)`` with NaN passed through, as
``np.maximum`` and the ``relu`` kernel) and ``EPI_COL_BIAS`` (``v +
bias[col]``: a Linear layer's bias, whose C columns are the output
features). Products too small for the micro-kernel take ``apply_epilogue``
after a plain loop instead: the same arithmetic in the same order.
"""

from __future__ import annotations

from llvmlite import ir
from numba.extending import intrinsic

from jitgrad.kernels._constants import FUSED_ACTIVATIONS

from ._gemm_simd import SimdVector, _mark_vector_width
from ._jit import FASTMATH, njit

#: ``max(v, 0)`` after the bias (NaN stays NaN).
EPI_RELU = 1
#: ``v + bias[col]`` for column ``col`` of C.
EPI_COL_BIAS = 2

# A kernel's activation code (its index in ``_constants.FUSED_ACTIVATIONS``) is its epilogue bits.
assert FUSED_ACTIVATIONS.index("relu") == EPI_RELU


@intrinsic
def vrelu(typingctx, v):
    """``v`` where ``v >= 0`` or NaN, else 0, lane by lane (``select(v < 0, 0, v)``: one max instruction)."""
    if not isinstance(v, SimdVector):
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        zero = ir.Constant(args[0].type, None)
        # An ordered compare is false for NaN, so NaN lanes keep their value.
        return builder.select(builder.fcmp_ordered("<", args[0], zero), zero, args[0])

    return v(v), codegen


@njit(cache=True, fastmath=FASTMATH, nogil=True, error_model="numpy")
def apply_epilogue(c, bias, epi):
    """``c = act(c + bias[col])`` in place on a 2-D ``c``, by the bits of ``epi`` (the small-product path)."""
    m, n = c.shape
    zero = c.dtype.type(0)
    add_bias = (epi & EPI_COL_BIAS) != 0
    relu = (epi & EPI_RELU) != 0
    for i in range(m):
        for j in range(n):
            v = c[i, j]
            if add_bias:
                v += bias[j]
            if relu:
                v = zero if v < zero else v
            c[i, j] = v
