"""CUDA transposed 2-D convolution: the adjoint of ``conv2d``, run on the CUDA conv kernels.

Forward is ``conv2d_backward_input``, the input gradient is ``conv2d``, the
weight gradient ``conv2d_backward_weight`` with the activations swapped
(contracts in ``jitgrad.kernels.reference.conv_transpose``, which defines the
three wrappers once for every backend). Grouped and depthwise transposed
convolutions take the direct grouped conv kernel; the bias is added and summed
on the device.
"""

from __future__ import annotations

from typing import Any

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.conv_transpose import conv_transpose2d_family

from . import conv as _conv
from . import elementwise, reduction

__all__: list[str] = kernel_names("conv_transpose")  # the one list: kernels/_constants.py


def _add_bias(out: Any, b: Any) -> None:
    elementwise.add(out, b.reshape(b.shape[0], 1, 1), out=out)


def _sum_bias(grad_out: Any) -> Any:
    return reduction.sum(grad_out, axis=(0, 2, 3))


conv_transpose2d, conv_transpose2d_backward_input, conv_transpose2d_backward_weight = conv_transpose2d_family(
    _conv, _add_bias, _sum_bias, __name__)
