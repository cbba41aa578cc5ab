"""Stateless layers and losses on Tensors: ``linear``, ``conv2d``, pooling, dropout, activations, losses.

Each function checks its arguments (errors name the argument and its shape)
and calls one autograd op of :mod:`jitgrad.autograd.ops`, whose forward and
backward are kernel calls; a few losses are compositions of those ops. This
module holds no derivative code, as everything in ``jitgrad.nn``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad._checks import check_real
from jitgrad.autograd import ops
from jitgrad.autograd.backend import backend_for
from jitgrad.autograd.creation import default_generator
from jitgrad.autograd.tensor import Tensor

__all__ = [
    "linear", "conv2d", "max_pool2d", "avg_pool2d", "dropout",
    "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_unit_interval(fn: str, name: str, data: Any) -> None:
    """Host data outside [0, 1] is an error (NaN passes through, to propagate); device data is not read."""
    if isinstance(data, np.ndarray) and data.size and data.dtype.kind == "f":
        low, high = np.min(data), np.max(data)
        if low < 0 or high > 1:
            raise ValueError(f"{fn}: {name} must lie in [0, 1], got values in [{low}, {high}]")


def _as_tensor(x: Any, name: str, fn: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor(x)
    raise TypeError(f"{fn}: {name} must be a Tensor or a NumPy array, got {type(x).__name__}")


def _check_ndim(fn: str, name: str, t: Tensor, ndim: int, layout: str) -> None:
    if t.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D {layout}, got shape {t.shape}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(fn: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape_target(fn: str, x: Tensor, target: Any) -> Any:
    """A target of ``x``'s shape in ``x``'s dtype: a Tensor stays one (it may require grad)."""
    if not isinstance(target, (Tensor, np.ndarray)):
        raise TypeError(f"{fn}: target must be a Tensor or a NumPy array, got {type(target).__name__}")
    if tuple(target.shape) != x.shape:
        raise ValueError(f"{fn}: target must have the input's shape {x.shape}, got {tuple(target.shape)}")
    if isinstance(target, Tensor):
        return target.astype(x.dtype)
    return target.astype(x.dtype, copy=False)


def check_activation(fn: str, activation: Any) -> str | None:
    """A layer's fused ``activation`` (Keras's ``activation=``, Flux's ``Dense(in => out, relu)``):
    ``None`` (no activation), ``"relu"`` or the function :func:`relu`; returns None or ``"relu"``."""
    if activation is None:
        return None
    if activation is relu:
        return "relu"
    if not isinstance(activation, str):
        raise TypeError(f"{fn}: activation must be None, 'relu' or nn.functional.relu, got "
                        f"{type(activation).__name__} {activation!r}")
    if activation != "relu":
        raise ValueError(f"{fn}: activation must be None or 'relu' (the fused epilogues), got {activation!r}")
    return activation


# --- layers ------------------------------------------------------------------------


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: Any = None) -> Tensor:
    """Dense layer ``x @ weight.T + bias``, or ``act(x @ weight.T + bias)`` with ``activation``.

    Parameters
    ----------
    x : Tensor, shape (..., in_features), float32 or float64
    weight : Tensor, shape (out_features, in_features), ``x``'s dtype
    bias : Tensor, shape (out_features,), optional
    activation : None, ``"relu"`` or :func:`relu`, default None
        Applied in the product's store (one fused kernel and one graph node
        instead of ``relu(linear(...))``, with the same values).

    Returns
    -------
    Tensor, shape (..., out_features)
    """
    x = _as_tensor(x, "x", "linear")
    act = check_activation("linear", activation)
    _check_ndim("linear", "weight", weight, 2, "(out_features, in_features)")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: x has shape {x.shape} but weight has shape {weight.shape}: "
            f"x's last size must equal in_features={weight.shape[1]}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    def apply(x2: Tensor) -> Tensor:
        if act is None:
            return ops.Linear.apply(x2, weight, bias)
        return ops.LinearActivation.apply(x2, weight, bias, activation=act)

    if x.ndim == 2:
        return apply(x)
    # Rows of any leading shape go through one 2-D kernel call.
    lead = x.shape[:-1]
    return apply(x.reshape(-1, x.shape[-1])).reshape(lead + (weight.shape[0],))


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1, activation: Any = None) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch).

    Parameters
    ----------
    x : Tensor, shape (N, C_in, H, W), float32 or float64
    weight : Tensor, shape (C_out, C_in/groups, kH, kW), ``x``'s dtype
    bias : Tensor, shape (C_out,), optional
    stride, padding, dilation : int or pair of ints
    groups : int dividing C_in and C_out (``groups == C_in``: depthwise)
    activation : None, ``"relu"`` or :func:`relu`, default None
        Applied as the convolution's GEMM stores its output (one fused
        kernel and one graph node instead of ``relu(conv2d(...))``).

    Returns
    -------
    Tensor, shape (N, C_out, H_out, W_out) with PyTorch's output-size formula.
    """
    x = _as_tensor(x, "x", "conv2d")
    act = check_activation("conv2d", activation)
    _check_ndim("conv2d", "x", x, 4, "(N, C_in, H, W)")
    _check_ndim("conv2d", "weight", weight, 4, "(C_out, C_in, kH, kW)")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    if act is not None:
        return ops.Conv2dActivation.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                          groups=groups, activation=act)
    return ops.Conv2d.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Max pooling of ``x (N, C, H, W)``; ``stride=None`` means ``kernel_size``.

    The gradient goes to the first maximum of each window (PyTorch's ties).
    """
    x = _as_tensor(x, "x", "max_pool2d")
    _check_ndim("max_pool2d", "x", x, 4, "(N, C, H, W)")
    return ops.MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               count_include_pad: bool = True) -> Tensor:
    """Average pooling of ``x (N, C, H, W)``; ``stride=None`` means ``kernel_size``."""
    x = _as_tensor(x, "x", "avg_pool2d")
    _check_ndim("avg_pool2d", "x", x, 4, "(N, C, H, W)")
    return ops.AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding,
                               count_include_pad=count_include_pad)


def dropout(x: Tensor, p: float = 0.5, training: bool = True,
            generator: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by ``1 / (1 - p)``.

    The scaling keeps the expected activation, so evaluation (``training=False``)
    is the identity. The mask is saved by the multiplication for the backward.

    Parameters
    ----------
    x : Tensor, any shape, float
    p : float in [0, 1]
    training : bool
        When False (or ``p == 0``), ``x`` is returned unchanged.
    generator : numpy.random.Generator, optional
        Source of the mask; default the global one (``jitgrad.manual_seed``).
    """
    check_real("dropout", "p", p, minimum=0.0, maximum=1.0, what="a probability in [0, 1]")
    x = _as_tensor(x, "x", "dropout")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    rng = default_generator() if generator is None else generator
    mask = backend_for(x.data).dropout_mask(x.shape, float(p), x.dtype, rng)
    return ops.Mul.apply(x, mask)


# --- activations -------------------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    """``max(x, 0)`` elementwise."""
    return ops.ReLU.apply(_as_tensor(x, "x", "relu"))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` where positive, else ``negative_slope * x``."""
    return ops.LeakyReLU.apply(_as_tensor(x, "x", "leaky_relu"), negative_slope=negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``, stable for large ``|x|``."""
    return ops.Sigmoid.apply(_as_tensor(x, "x", "sigmoid"))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return ops.Tanh.apply(_as_tensor(x, "x", "tanh"))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU: exact (``"none"``, with erf) or the ``"tanh"`` approximation, as PyTorch."""
    return ops.GELU.apply(_as_tensor(x, "x", "gelu"), approximate=approximate)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
    return ops.ELU.apply(_as_tensor(x, "x", "elu"), alpha=alpha)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log1p(exp(beta x)) / beta``, and ``x`` itself where ``beta x > threshold``."""
    return ops.Softplus.apply(_as_tensor(x, "x", "softplus"), beta=beta, threshold=threshold)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis``."""
    return ops.Softmax.apply(_as_tensor(x, "x", "softmax"), axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Log-softmax along ``axis`` (log-sum-exp stable)."""
    return ops.LogSoftmax.apply(_as_tensor(x, "x", "log_softmax"), axis=axis)


# --- losses --------------------------------------------------------------------------------


def cross_entropy(logits: Tensor, target: Any, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of ``softmax(logits)`` against class indices or probabilities (Flux's ``logitcrossentropy``).

    One fused op: the ``softmax_cross_entropy`` kernel and its backward
    ``probs - target``, stable for any logits.

    Parameters
    ----------
    logits : Tensor, shape (N, C), float32 or float64
    target : Tensor or ndarray
        Integer class indices of shape (N,) in ``[0, C)``, or probabilities
        (e.g. one-hot) of shape (N, C), cast to ``logits``' dtype. No gradient
        flows to the target.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns the (N,) per-sample losses.
    label_smoothing : float in [0, 1]
        The target becomes ``(1 - eps) * target + eps / C``, as PyTorch.

    Returns
    -------
    Tensor
        Shape () for mean/sum, (N,) for none; ``logits``' dtype.
    """
    logits = _as_tensor(logits, "logits", "cross_entropy")
    _check_ndim("cross_entropy", "logits", logits, 2, "(N, C)")
    _check_reduction("cross_entropy", reduction)
    if isinstance(target, Tensor) and target.device != logits.device:
        raise RuntimeError(f"cross_entropy: logits and target must be on one device, got {logits.device} "
                           f"and {target.device}")
    labels = target.data if isinstance(target, Tensor) else target
    if not isinstance(labels, np.ndarray) and backend_for(logits.data).name == "cpu":
        raise TypeError(f"cross_entropy: target must be a Tensor or a NumPy array, got {type(target).__name__}")
    n, c = logits.shape
    kind = np.dtype(labels.dtype).kind
    if kind in "iu":
        if tuple(labels.shape) != (n,):
            raise ValueError(
                f"cross_entropy: integer target must have shape (N,) = ({n},) for logits of shape {logits.shape}, "
                f"got {tuple(labels.shape)}"
            )
    elif kind == "f":
        if tuple(labels.shape) != (n, c):
            raise ValueError(
                f"cross_entropy: probability target must have the logits' shape {logits.shape}, "
                f"got {tuple(labels.shape)}"
            )
        if labels.dtype != logits.dtype:
            labels = backend_for(labels).astype(labels, logits.dtype)
        # Host targets only: checking device data would cost a transfer per step.
        if isinstance(labels, np.ndarray) and labels.size and np.min(labels) < 0:
            raise ValueError(f"cross_entropy: probability target must be >= 0, got {np.min(labels)}")
    else:
        raise TypeError(f"cross_entropy: target must hold integer labels or float probabilities, got {labels.dtype}")
    return ops.SoftmaxCrossEntropy.apply(logits, labels, reduction=reduction, label_smoothing=label_smoothing)


def nll_loss(log_probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood ``-log_probs[i, target[i]]`` (pair it with ``log_softmax``).

    Parameters
    ----------
    log_probs : Tensor, shape (N, C), float
    target : Tensor or ndarray of integers, shape (N,), values in ``[0, C)``
    reduction : {"mean", "sum", "none"}
    """
    log_probs = _as_tensor(log_probs, "log_probs", "nll_loss")
    _check_ndim("nll_loss", "log_probs", log_probs, 2, "(N, C)")
    _check_reduction("nll_loss", reduction)
    labels = np.asarray(target.numpy() if isinstance(target, Tensor) else target)
    n, c = log_probs.shape
    if labels.dtype.kind not in "iu" or labels.shape != (n,):
        raise ValueError(
            f"nll_loss: target must be integer class indices of shape ({n},), got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"nll_loss: target values must be in [0, {c}), got min {labels.min()} max {labels.max()}")
    picked = log_probs[np.arange(n), labels]
    return _reduce(-picked, reduction)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(input - target) ** 2``, reduced; ``target`` of ``input``'s shape."""
    input = _as_tensor(input, "input", "mse_loss")
    _check_reduction("mse_loss", reduction)
    diff = input - _same_shape_target("mse_loss", input, target)
    return _reduce(diff * diff, reduction)


def binary_cross_entropy(probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))`` for probabilities ``p`` in [0, 1] (logs clamped at -100).

    Prefer :func:`binary_cross_entropy_with_logits` on raw scores: it never
    loses precision in the sigmoid.
    """
    probs = _as_tensor(probs, "probs", "binary_cross_entropy")
    _check_reduction("binary_cross_entropy", reduction)
    # The input only, as PyTorch: a target is a weight and may be perturbed (gradcheck) or soft.
    _check_unit_interval("binary_cross_entropy", "probs", probs.data)
    target = _same_shape_target("binary_cross_entropy", probs, target)
    return _reduce(ops.BinaryCrossEntropy.apply(probs, target), reduction)


def binary_cross_entropy_with_logits(logits: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of ``sigmoid(logits)``, computed stably from the logits."""
    logits = _as_tensor(logits, "logits", "binary_cross_entropy_with_logits")
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    target = _same_shape_target("binary_cross_entropy_with_logits", logits, target)
    return _reduce(ops.BinaryCrossEntropyWithLogits.apply(logits, target), reduction)


# --- normalisation (its own module; re-exported here) ------------------------------
from jitgrad.nn.functional_norm import batch_norm, group_norm, layer_norm, local_response_norm  # noqa: E402

__all__ += ["batch_norm", "layer_norm", "group_norm", "local_response_norm"]
# Transposed convolution, adaptive pooling and padding live in their own module (this one is long).
from jitgrad.nn.functional_conv import (  # noqa: E402,F401
    adaptive_avg_pool2d, adaptive_max_pool2d, conv_transpose2d, pad,
)
