"""CUDA transposed 2-D convolution: the adjoint of ``conv2d``, run on the CUDA conv kernels.

Forward is ``conv2d_backward_input``, the input gradient is ``conv2d``, the
weight gradient ``conv2d_backward_weight`` with the activations swapped
(contracts in ``jitgrad.kernels.reference.conv_transpose``). Grouped and
depthwise transposed convolutions take the direct grouped conv kernel.
"""

from __future__ import annotations

from typing import Any

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.conv_transpose import (
    _hyper,
    check_conv_transpose2d_args,
    check_conv_transpose2d_backward_input_args,
    check_conv_transpose2d_backward_weight_args,
)

from . import conv as _conv
from . import elementwise, reduction

__all__: list[str] = kernel_names("conv_transpose")  # the one list: kernels/_constants.py


def conv_transpose2d(x: Any, w: Any, b: Any = None, *, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                     out: Any = None) -> Any:
    d = check_conv_transpose2d_args(x, w, b, stride, padding, output_padding, dilation, groups, out)
    out = _conv.conv2d_backward_input(x, w, input_shape=d.input_shape, out=out, **_hyper(d))
    if b is not None:
        elementwise.add(out, b.reshape(b.shape[0], 1, 1), out=out)
    return out


def conv_transpose2d_backward_input(grad_out: Any, w: Any, *,
                                    input_shape: tuple[int, int, int, int], stride: Any = 1, padding: Any = 0,
                                    output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                                    out: Any = None) -> Any:
    d = check_conv_transpose2d_backward_input_args(grad_out, w, input_shape, stride, padding, output_padding,
                                                   dilation, groups, out)
    return _conv.conv2d(grad_out, w, out=out, **_hyper(d))


def conv_transpose2d_backward_weight(x: Any, grad_out: Any, *,
                                     weight_shape: tuple[int, int, int, int], stride: Any = 1, padding: Any = 0,
                                     output_padding: Any = 0, dilation: Any = 1,
                                     groups: int = 1) -> tuple[Any, Any]:
    d = check_conv_transpose2d_backward_weight_args(x, grad_out, weight_shape, stride, padding, output_padding,
                                                    dilation, groups)
    grad_w, _ = _conv.conv2d_backward_weight(grad_out, x, weight_shape=d.weight_shape, **_hyper(d))
    return grad_w, reduction.sum(grad_out, axis=(0, 2, 3))
