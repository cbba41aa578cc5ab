"""CPU transposed 2-D convolution: the adjoint of ``conv2d``, run on the CPU conv kernels.

Forward is ``conv2d_backward_input``, the input gradient is ``conv2d``, the
weight gradient ``conv2d_backward_weight`` with the activations swapped
(contracts in ``jitgrad.kernels.reference.conv_transpose``, which defines the
three wrappers once for every backend). Grouped and depthwise transposed
convolutions take the grouped/depthwise conv paths; the bias is added and
summed with NumPy, as in the reference.
"""

from __future__ import annotations

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.reference.conv_transpose import _add_bias, _sum_bias, conv_transpose2d_family

from . import conv as _conv

__all__: list[str] = kernel_names("conv_transpose")  # the one list: kernels/_constants.py

conv_transpose2d, conv_transpose2d_backward_input, conv_transpose2d_backward_weight = conv_transpose2d_family(
    _conv, _add_bias, _sum_bias, __name__)
