"""Every differentiable op of the autograd, by name: one ``Function`` each, forward and backward side by side.

This module gathers the op modules (``ops.Conv2d``, ``ops.matmul``...), and
importing it attaches every Tensor method those modules define:

- :mod:`.ops_math`: arithmetic, elementwise math, reductions;
- :mod:`.ops_matmul`: matrix products;
- :mod:`.ops_layout`: reshape, permute, indexing, casts, device copies;
- :mod:`.ops_nn`: activations, softmax, losses;
- :mod:`.ops_conv`: convolution and pooling;
- :mod:`.ops_shape`, :mod:`.ops_norm`, :mod:`.ops_rnn`: joining and padding, normalization, recurrent layers.

Arrays are reached only through ``ctx.backend`` (``xp``), so the same ops
run on any device with a backend; everything with a kernel calls the
forward and backward kernels of ``docs/kernel-api.md`` (``xp.kernels``).
"""

from jitgrad.autograd.ops_math import (
    Abs, Add, Div, Exp, Log, Max, Mean, Mul, Neg, Pow, Sqrt, Sub, Sum,
)
from jitgrad.autograd.ops_matmul import BatchedMatMul, Linear, MatMul, batched_matmul, matmul
from jitgrad.autograd.ops_layout import Cast, Getitem, Permute, Reshape, ToDevice
from jitgrad.autograd.ops_nn import (
    ELU, GELU, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax,
    SoftmaxCrossEntropy, Softplus, Tanh,
)
from jitgrad.autograd.ops_conv import AvgPool2d, Conv2d, MaxPool2d
from jitgrad.autograd import ops_shape  # noqa: F401  (after the above: wraps their methods with dim=/keepdim=)

__all__ = [
    "Add", "Sub", "Mul", "Div", "Pow", "Neg", "Exp", "Log", "Sqrt", "Abs",
    "MatMul", "matmul", "Linear", "Sum", "Mean", "Max", "Reshape", "Permute", "Getitem", "Cast", "ToDevice",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "ELU", "Softplus", "Softmax", "LogSoftmax",
    "Conv2d", "MaxPool2d", "AvgPool2d", "SoftmaxCrossEntropy", "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits", "BatchedMatMul", "batched_matmul",
]
