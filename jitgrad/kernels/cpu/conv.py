"""CPU 2-D convolution (NCHW cross-correlation): im2col into packed GEMM panels, with Numba.

See ``_conv`` and ``_conv_weight`` for the algorithms. Every kernel is parallel over
(sample, slice) tasks, so batch 1 uses every thread too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numba
import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.conv import (
    check_conv2d_args,
    check_conv2d_backward_input_args,
    check_conv2d_backward_weight_args,
)

from . import _conv, _conv_weight, _depthwise
from ._gemm_epilogue import apply_epilogue
from ._isa import ISA
from ._jit import overlaps

__all__: list[str] = kernel_names("conv")  # the one list: kernels/_constants.py

#: The weight gradient of a unit-stride convolution with at most this many
#: taps (``C_in * kH * kW``) uses the dot kernel: as a GEMM its taps would
#: fill one B panel of 32 mostly with padding, and packing that panel costs
#: a gather per pixel. With more taps the GEMM is faster (it keeps one
#: operand in L1; the dot kernel streams both).
DOT_MAX_TAPS = 32

#: On the AVX-512 path the input gradient of a unit-stride, undilated, "same"-padded convolution
#: (padding ``(k - 1) / 2``) with at least this many input channels runs as a forward convolution
#: (:func:`_backward_input_as_forward`): the flipped problem has the forward's padding, and the
#: 8 x 32 tile, C_in rows, beat the backward kernel's GEMM and col2im. Zen 4, batch 128, the two
#: kernels in one process: 32 -> 64 at 28 x 28 25.7 -> 23.0 ms, 16 -> 16 at 28 x 28 4.65 -> 3.48,
#: 32 -> 32 at 14 x 14 3.59 -> 3.14, 64 -> 64 at 7 x 7 3.73 -> 3.39, 32 -> 32 5 x 5 at 16 x 16
#: 6.75 -> 4.79 (batch 64); 8 -> 16 at 28 x 28 2.30 -> 2.20, 3 -> 16 at 32 x 32 1.61 -> 2.88. Unpadded
#: convolutions lose (the flipped one pads by k - 1: 32 -> 64 at 13 x 13 4.3 -> 5.4 ms). Compiled for
#: AVX2 (6 x 16 tile) the backward kernel wins at 28 x 28 (23.1 against 27.1 ms; 8 -> 16: 2.25
#: against 3.26), so that path keeps it.
FORWARD_INPUT_GRAD_MIN_C_IN = 16 if ISA.name == "avx512" else 0


def _conv2d_backward_input_kernel(grad_out, w, d, out) -> None:
    (sh, sw), (ph, pw), (dh, dw) = d.stride, d.padding, d.dilation
    if d.groups != 1:
        if d.groups == d.c_in:
            if sh == sw == 1 and ph <= dh * (d.kh - 1) and pw <= dw * (d.kw - 1):
                _depthwise.depthwise_backward_input_unit(grad_out, w, ph, pw, dh, dw, out, numba.get_num_threads())
            else:
                _depthwise.depthwise_backward_input_scatter(grad_out, w, sh, sw, ph, pw, dh, dw, out)
        else:
            _grouped_backward_input(grad_out, w, d, out)
        return
    if not (sh == sw == 1 and _backward_input_as_forward(grad_out, w, d, out)):
        _conv.conv2d_backward_input(grad_out, w, sh, sw, ph, pw, dh, dw, out, numba.get_num_threads())


def _forward_is_faster(d, fh: int, fw: int) -> bool:
    """Whether a unit-stride input gradient runs faster as a forward convolution (FORWARD_INPUT_GRAD_MIN_C_IN)."""
    return (FORWARD_INPUT_GRAD_MIN_C_IN > 0 and d.c_in >= FORWARD_INPUT_GRAD_MIN_C_IN
            and d.dilation == (1, 1) and (fh, fw) == tuple(d.padding))


def _backward_input_as_forward(grad_out, w, d, out) -> bool:
    """A unit-stride input gradient by the forward kernel: where that is faster, or while the backward
    one is not compiled yet.

    ``grad_x = conv2d(grad_out, w')`` with ``w'[ci, co] = w[co, ci]`` flipped in both spatial axes and
    padding ``dilation * (k - 1) - padding`` (stride 1 only). During a tiered cold start
    (``_tier``) the first steps compile the forward kernel anyway, so the backward one's serial
    tree (~5 CPU-s on the 2-core Zen 3) is left to the background process, which compiles its
    parallel version for the steps after. Once that version is ready it takes every case but those
    of :func:`_forward_is_faster`. Returns False (nothing done) then, and where the identity does not
    hold as the backward kernel computes it: a padding wider than the dilated kernel, or non-finite
    weights (the forward kernel multiplies them by the zeros around ``grad_out``; the backward
    kernel never reads those).
    """
    (ph, pw), (dh, dw) = d.padding, d.dilation
    fh, fw = dh * (d.kh - 1) - ph, dw * (d.kw - 1) - pw
    if fh < 0 or fw < 0 or (_conv.conv2d_backward_input.ready() and not _forward_is_faster(d, fh, fw)):
        return False
    if not np.isfinite(w.sum()):  # after the cheap tests: a pass over w only where the identity would run
        return False
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    _conv.conv2d_forward(grad_out, flipped, np.zeros(1, dtype=w.dtype), False, 1, 1, fh, fw, dh, dw, out,
                         numba.get_num_threads(), np.intp(0))
    return True


def _conv2d_backward_weight_kernel(x, grad_out, d, grad_w, grad_b) -> None:
    (sh, sw), (ph, pw), (dh, dw) = d.stride, d.padding, d.dilation
    if d.groups != 1:
        if d.groups == d.c_in:
            _depthwise.depthwise_backward_weight(x, grad_out, sh, sw, ph, pw, dh, dw, grad_w, grad_b,
                                                 numba.get_num_threads())
        else:
            _grouped_backward_weight(x, grad_out, d, grad_w, grad_b)
        return
    # The dot kernel multiplies the input's pitch columns by zeros of grad_out: exact for finite
    # inputs, but 0 * inf is NaN where the reference has none. A finite sum means every element is
    # finite (one pass, no allocation); otherwise the GEMM path, which never reads those columns.
    # While a tiered cold start has not compiled the dot kernel yet (_tier), the GEMM one serves every
    # shape: one weight-gradient tree fewer to compile before the first steps (~4 CPU-s on the Zen 3).
    if (sh == 1 and sw == 1 and d.c_in * d.kh * d.kw <= DOT_MAX_TAPS and np.isfinite(x.sum())
            and _conv_weight.conv2d_backward_weight_unit.ready()):
        _conv_weight.conv2d_backward_weight_unit(x, grad_out, ph, pw, dh, dw, grad_w, grad_b, numba.get_num_threads())
    else:
        _conv_weight.conv2d_backward_weight(x, grad_out, sh, sw, ph, pw, dh, dw, grad_w, grad_b, numba.get_num_threads())


def _per_group(d):
    """The dims of one group's convolution (``C_in/G`` to ``C_out/G`` channels)."""
    return dataclasses.replace(d, c_in=d.c_in // d.groups, c_out=d.c_out // d.groups, groups=1)


def _group_major(a: np.ndarray, groups: int) -> np.ndarray:
    """``(G, N, C/G, H, W)`` C-contiguous copy of ``a`` (a view when ``N == 1``): group ``g``'s
    channels of every sample as one contiguous array, the layout the dense kernels take."""
    n, c, h, w = a.shape
    return np.ascontiguousarray(a.reshape(n, groups, c // groups, h, w).transpose(1, 0, 2, 3, 4))


def _grouped_forward(x, w, b, d, out) -> None:
    """Grouped (not depthwise) convolution: one dense convolution per group on channel slices.

    With batch 1 a group's channels are contiguous slices of ``x`` and ``out``; otherwise
    ``x`` is copied group-major first and the result copied back (O(size) next to the
    O(size * K) convolution).
    """
    gd, groups = _per_group(d), d.groups
    xg = _group_major(x, groups)
    yg = out.reshape(groups, d.c_out // groups, d.h_out, d.w_out)[:, None] if d.n == 1 else \
        np.empty((groups, d.n, d.c_out // groups, d.h_out, d.w_out), dtype=x.dtype)
    co = d.c_out // groups
    for g in range(groups):
        _conv2d_kernel(xg[g], w[g * co:(g + 1) * co], None if b is None else b[g * co:(g + 1) * co], gd, yg[g])
    if d.n != 1:
        out.reshape(d.n, groups, co, d.h_out, d.w_out)[...] = yg.transpose(1, 0, 2, 3, 4)


def _conv2d_kernel(x, w, b, d, out, epi: int = 0) -> None:
    """``out = conv2d(x, w, b)``, then the activation bits ``epi`` (``_gemm_epilogue``): in the GEMM's
    store on the dense path, a pass over ``out`` on the grouped and depthwise ones."""
    (sh, sw), (ph, pw), (dh, dw) = d.stride, d.padding, d.dilation
    if d.groups != 1:
        if d.groups == d.c_in:
            has_bias = b is not None
            bias = b if has_bias else np.zeros(1, dtype=x.dtype)
            _depthwise.depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, out, numba.get_num_threads())
        else:
            _grouped_forward(x, w, b, d, out)
        if epi:
            apply_epilogue(out.reshape(1, out.size), out.reshape(-1), epi)
        return
    has_bias = b is not None
    bias = b if has_bias else np.zeros(1, dtype=x.dtype)
    _conv.conv2d_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, out, numba.get_num_threads(), np.intp(epi))


def _grouped_backward_input(grad_out, w, d, out) -> None:
    gd, groups = _per_group(d), d.groups
    co, ci = d.c_out // groups, d.c_in // groups
    gg = _group_major(grad_out, groups)
    xg = out.reshape(groups, ci, d.h, d.w)[:, None] if d.n == 1 else \
        np.empty((groups, d.n, ci, d.h, d.w), dtype=out.dtype)
    for g in range(groups):
        _conv2d_backward_input_kernel(gg[g], w[g * co:(g + 1) * co], gd, xg[g])
    if d.n != 1:
        out.reshape(d.n, groups, ci, d.h, d.w)[...] = xg.transpose(1, 0, 2, 3, 4)


def _grouped_backward_weight(x, grad_out, d, grad_w, grad_b) -> None:
    gd, groups = _per_group(d), d.groups
    co = d.c_out // groups
    xg, gg = _group_major(x, groups), _group_major(grad_out, groups)
    for g in range(groups):
        _conv2d_backward_weight_kernel(xg[g], gg[g], gd, grad_w[g * co:(g + 1) * co], grad_b[g * co:(g + 1) * co])


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, out: np.ndarray | None = None, groups: int = 1) -> np.ndarray:
    return conv2d_validated(x, w, b, check_conv2d_args(x, w, b, stride, padding, dilation, out, groups), out)


def conv2d_validated(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, d: Any, out: np.ndarray | None,
                     epi: int = 0) -> np.ndarray:
    """``conv2d`` after validation (geometry ``d``), with the activation bits ``epi`` (``fused.conv2d_activation``)."""
    if overlaps(out, x, w, b):
        out[...] = conv2d_validated(x, w, b, d, None, epi)
        return out
    if out is None:
        out = np.empty(d.output_shape, dtype=x.dtype)
    if out.size:
        if x.size == 0:
            out[...] = 0 if b is None else b[:, None, None]
            if epi:
                apply_epilogue(out.reshape(1, out.size), out.reshape(-1), epi)
        else:
            _conv2d_kernel(x, w, b, d, out, epi)
    return out


def conv2d_backward_input(grad_out: np.ndarray, w: np.ndarray, *, input_shape: tuple[int, int, int, int],
                          stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                          out: np.ndarray | None = None, groups: int = 1, dims: Any = None) -> np.ndarray:
    d = check_conv2d_backward_input_args(grad_out, w, input_shape, stride, padding, dilation, out, groups, dims)
    if overlaps(out, grad_out, w):
        out[...] = conv2d_backward_input(grad_out, w, input_shape=input_shape, stride=stride, padding=padding,
                                         dilation=dilation, groups=groups)
        return out
    if out is None:
        out = np.empty(d.input_shape, dtype=w.dtype)
    if grad_out.size == 0:
        out.fill(0)  # no output channel (or no sample): an empty sum, and nothing for the kernel to do
    elif out.size:
        _conv2d_backward_input_kernel(grad_out, w, d, out)
    return out


def conv2d_backward_weight(x: np.ndarray, grad_out: np.ndarray, *, weight_shape: tuple[int, int, int, int],
                           stride: Any = 1, padding: Any = 0,
                           dilation: Any = 1, groups: int = 1, dims: Any = None) -> tuple[np.ndarray, np.ndarray]:
    d = check_conv2d_backward_weight_args(x, grad_out, weight_shape, stride, padding, dilation, groups, dims)
    grad_w = np.empty(d.weight_shape, dtype=x.dtype)
    grad_b = np.empty(d.c_out, dtype=x.dtype)
    if grad_out.size == 0 or grad_w.size == 0:
        # An empty batch or no channels: the kernels' sums would be empty (or have nowhere to go).
        grad_w.fill(0)
        grad_b[...] = grad_out.sum(axis=(0, 2, 3))
    else:
        _conv2d_backward_weight_kernel(x, grad_out, d, grad_w, grad_b)
    return grad_w, grad_b
