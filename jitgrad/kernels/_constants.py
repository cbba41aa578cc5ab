"""What the three kernel backends share by definition: the kernel list and numerical constants.

``KERNELS`` is the one list of every public kernel, module by module. The
reference, CPU and CUDA packages export exactly these names from modules of
these names (their ``__all__`` comes from here), and
``tests/test_backend_parity.py`` holds every backend, ``docs/kernel-api.md``
and the shared test-case tables to it. Adding a kernel starts here (see
docs/kernel-authoring.md, step 1).

The constants are Python floats (float64); a float32 kernel casts each one
to its array's dtype before use (``x.dtype.type(c)`` on the CPU, the wrapper's
cast on CUDA), so no float64 arithmetic enters a float32 kernel.
"""

from __future__ import annotations

import math

#: Every public kernel, ``{module name: names}``, in each backend package
#: (``jitgrad.kernels.reference``, ``.cpu``, ``.cuda``). Append new modules and names at the end.
KERNELS: dict[str, tuple[str, ...]] = {
    "matmul": ("matmul",),
    "conv": ("conv2d", "conv2d_backward_input", "conv2d_backward_weight"),
    "pooling": ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"),
    "activations": (
        "relu", "relu_backward",
        "leaky_relu", "leaky_relu_backward",
        "sigmoid", "sigmoid_backward",
        "tanh", "tanh_backward",
        "gelu", "gelu_backward",
        "elu", "elu_backward",
        "softplus", "softplus_backward",
    ),
    "softmax": ("softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
                "softmax_cross_entropy", "softmax_cross_entropy_backward"),
    "optim": ("sgd_update", "adam_update"),
    "normalization": ("batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward"),
    "conv_transpose": ("conv_transpose2d", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight"),
    "pooling_adaptive": ("adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
                         "adaptive_max_pool2d", "adaptive_max_pool2d_backward"),
    "recurrent": ("lstm", "lstm_backward", "gru", "gru_backward", "rnn", "rnn_backward"),
    "lrn": ("lrn", "lrn_backward"),
    "fused": ("linear", "conv2d_activation", "bias_activation_backward"),
}

#: The kernel modules of every backend package, in import order.
KERNEL_MODULES: tuple[str, ...] = tuple(KERNELS)


def kernel_names(module: str | None = None) -> list[str]:
    """The public kernels of one module (a module's ``__all__``), or of all (a package's ``__all__``)."""
    if module is None:
        return [name for names in KERNELS.values() for name in names]
    return list(KERNELS[module])


# ----------------------------------------------------------------------------- GELU
#
# PyTorch's two definitions: exact ``x * Phi(x) = x/2 (1 + erf(x / sqrt 2))``, and
# ``approximate="tanh"``: ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

#: ``1 / sqrt(2)``: the exact form's ``erf`` argument scale.
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
#: ``1 / sqrt(2 pi)``: the standard normal density's scale (the exact form's gradient).
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
#: ``sqrt(2 / pi)``: the tanh form's scale.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
#: The tanh form's cubic coefficient.
GELU_KAPPA = 0.044715


# ----------------------------------------------------------------------------- fused epilogues

#: The activations a fused kernel (``fused.linear``, ``fused.conv2d_activation``) applies in its
#: store; a kernel's integer code is the index here (one compiled kernel serves every code).
FUSED_ACTIVATIONS: tuple[str, ...] = ("none", "relu")
