"""CPU transposed 2-D convolution: the adjoint of ``conv2d``, run on the CPU conv kernels.

Forward is ``conv2d_backward_input``, the input gradient is ``conv2d``, the
weight gradient ``conv2d_backward_weight`` with the activations swapped
(contracts in ``jitgrad.kernels.reference.conv_transpose``). Grouped and
depthwise transposed convolutions take the grouped/depthwise conv paths.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.conv_transpose import (
    _hyper,
    check_conv_transpose2d_args,
    check_conv_transpose2d_backward_input_args,
    check_conv_transpose2d_backward_weight_args,
)

from . import conv as _conv

__all__: list[str] = kernel_names("conv_transpose")  # the one list: kernels/_constants.py


def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                     out: np.ndarray | None = None) -> np.ndarray:
    d = check_conv_transpose2d_args(x, w, b, stride, padding, output_padding, dilation, groups, out)
    out = _conv.conv2d_backward_input(x, w, input_shape=d.input_shape, out=out, **_hyper(d))
    if b is not None:
        out += b[:, None, None]
    return out


def conv_transpose2d_backward_input(grad_out: np.ndarray, w: np.ndarray, *,
                                    input_shape: tuple[int, int, int, int], stride: Any = 1, padding: Any = 0,
                                    output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                                    out: np.ndarray | None = None) -> np.ndarray:
    d = check_conv_transpose2d_backward_input_args(grad_out, w, input_shape, stride, padding, output_padding,
                                                   dilation, groups, out)
    return _conv.conv2d(grad_out, w, out=out, **_hyper(d))


def conv_transpose2d_backward_weight(x: np.ndarray, grad_out: np.ndarray, *,
                                     weight_shape: tuple[int, int, int, int], stride: Any = 1, padding: Any = 0,
                                     output_padding: Any = 0, dilation: Any = 1,
                                     groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
    d = check_conv_transpose2d_backward_weight_args(x, grad_out, weight_shape, stride, padding, output_padding,
                                                    dilation, groups)
    grad_w, _ = _conv.conv2d_backward_weight(grad_out, x, weight_shape=d.weight_shape, **_hyper(d))
    return grad_w, grad_out.sum(axis=(0, 2, 3))
