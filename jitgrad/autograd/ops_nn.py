"""Activations, softmax and the losses: one ``Function`` each, on the kernel pairs of ``docs/kernel-api.md``.

Every forward calls its kernel and every backward the ``*_backward`` twin
(``xp.kernels``), never a re-derivation. The Tensor methods of these ops
(``relu`` ... ``log_softmax``) are attached at the end.
"""

from __future__ import annotations

from typing import Any

from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.tensor import Tensor, attach_methods

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "ELU", "Softplus", "Softmax", "LogSoftmax",
           "SoftmaxCrossEntropy", "BinaryCrossEntropy", "BinaryCrossEntropyWithLogits"]


# --- activations: forward kernel ``name``, backward kernel ``name_backward`` -----------


class _Activation(Function):
    """An elementwise activation; subclasses name their kernel pair.

    Every activation backward kernel takes the forward *input* (kernel API),
    so one forward/backward pair serves them all; hyper-parameters are
    keyword arguments passed through to both kernels. Softmax and
    log-softmax are the same shape with the *output* saved
    (``saves_output``), so they share it too.
    """

    kernel: str = ""
    #: Save the forward's output instead of its input for the backward kernel (softmax's rule).
    saves_output: bool = False

    @classmethod
    def forward(cls, ctx: Context, x: Any, **hyper: Any) -> Any:  # type: ignore[override]
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        ctx.hyper = hyper
        y = getattr(xp.kernels, cls.kernel)(x, **hyper)
        ctx.save_for_backward(y if cls.saves_output else x)
        return y

    @classmethod
    def backward(cls, ctx: Context, g: Any) -> Any:  # type: ignore[override]
        xp = ctx.backend
        (saved,) = ctx.saved_tensors
        return getattr(xp.kernels, cls.kernel + "_backward")(xp.ascontiguousarray(g), saved, **ctx.hyper)


class ReLU(_Activation):
    """``max(x, 0)``."""

    kernel = "relu"


class LeakyReLU(_Activation):
    """``x`` if ``x > 0`` else ``negative_slope * x``."""

    kernel = "leaky_relu"


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""

    kernel = "sigmoid"


class Tanh(_Activation):
    """``tanh(x)``."""

    kernel = "tanh"


class GELU(_Activation):
    """Gaussian error linear unit (``approximate="none" | "tanh"``)."""

    kernel = "gelu"


class ELU(_Activation):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""

    kernel = "elu"


class Softplus(_Activation):
    """``log1p(exp(beta x)) / beta``, linear above ``threshold``."""

    kernel = "softplus"


class Softmax(_Activation):
    """Softmax along ``axis``; backward from the saved output."""

    kernel = "softmax"
    saves_output = True


class LogSoftmax(_Activation):
    """Log-softmax along ``axis``; backward from the saved output."""

    kernel = "log_softmax"
    saves_output = True


# --- losses ------------------------------------------------------------------------------


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of ``softmax(logits)`` against labels or probabilities, fused in one kernel pair.

    The forward kernel keeps the probabilities; the backward kernel turns
    them into ``(probs - target) * grad_loss``. No gradient flows to the target.
    """

    @staticmethod
    def forward(ctx: Context, logits: Any, target: Any, *, reduction: str = "mean",
                label_smoothing: float = 0.0) -> Any:
        xp = ctx.backend
        ctx.hyper = {"reduction": reduction, "label_smoothing": label_smoothing}
        target = xp.ascontiguousarray(target)
        loss, probs = xp.kernels.softmax_cross_entropy(xp.ascontiguousarray(logits), target, **ctx.hyper)
        ctx.save_for_backward(probs, target)
        return loss

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, None]:
        xp = ctx.backend
        probs, target = ctx.saved_tensors
        grad = xp.kernels.softmax_cross_entropy_backward(probs, target, xp.ascontiguousarray(g), **ctx.hyper)
        return grad, None


class BinaryCrossEntropy(Function):
    """Elementwise ``-(t log p + (1 - t) log(1 - p))``, each log clamped at -100 as PyTorch does.

    The clamp keeps the loss finite at ``p`` = 0 or 1; the gradient's
    denominator ``p (1 - p)`` is clamped at 1e-12 for the same reason.
    """

    @staticmethod
    def forward(ctx: Context, p: Any, t: Any) -> Any:
        xp = ctx.backend
        log_p = xp.maximum(xp.log(p), -100.0)
        log_1mp = xp.maximum(xp.log(xp.subtract(1.0, p)), -100.0)
        ctx.save_for_backward(p, t, log_p, log_1mp)
        return xp.negative(xp.add(xp.multiply(t, log_p), xp.multiply(xp.subtract(1.0, t), log_1mp)))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        p, t, log_p, log_1mp = ctx.saved_tensors
        need_p, need_t = ctx.needs_input_grad
        grad_p = grad_t = None
        if need_p:
            denominator = xp.maximum(xp.multiply(p, xp.subtract(1.0, p)), 1e-12)
            grad_p = xp.multiply(g, xp.divide(xp.subtract(p, t), denominator))
        if need_t:
            grad_t = xp.multiply(g, xp.subtract(log_1mp, log_p))
        return grad_p, grad_t


class BinaryCrossEntropyWithLogits(Function):
    """Elementwise ``max(x, 0) - x t + log1p(exp(-|x|))``: BCE of ``sigmoid(x)`` without overflow.

    The gradient ``sigmoid(x) - t`` comes from the ``sigmoid`` kernel.
    """

    @staticmethod
    def forward(ctx: Context, x: Any, t: Any) -> Any:
        xp = ctx.backend
        x = xp.ascontiguousarray(x)
        ctx.save_for_backward(x, t)
        softplus_neg_abs = xp.log1p(xp.exp(xp.negative(xp.abs(x))))
        return xp.add(xp.subtract(xp.maximum(x, 0.0), xp.multiply(x, t)), softplus_neg_abs)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple[Any, Any]:
        xp = ctx.backend
        x, t = ctx.saved_tensors
        need_x, need_t = ctx.needs_input_grad
        grad_x = xp.multiply(g, xp.subtract(xp.kernels.sigmoid(x), t)) if need_x else None
        grad_t = xp.multiply(g, xp.negative(x)) if need_t else None
        return grad_x, grad_t


# ----------------------------------------------------------------------------- Tensor methods


@attach_methods
class TensorActivationMethods:
    """Activation methods of ``Tensor``."""

    # --- activations (each calls its forward and backward kernel) ------------
    def relu(self) -> "Tensor":
        """``max(x, 0)``."""
        return ReLU.apply(self)

    def leaky_relu(self, negative_slope: float = 0.01) -> "Tensor":
        """``x`` where positive, else ``negative_slope * x``."""
        return LeakyReLU.apply(self, negative_slope=negative_slope)

    def sigmoid(self) -> "Tensor":
        """``1 / (1 + exp(-x))``."""
        return Sigmoid.apply(self)

    def tanh(self) -> "Tensor":
        """Hyperbolic tangent."""
        return Tanh.apply(self)

    def gelu(self, approximate: str = "none") -> "Tensor":
        """GELU, exact (``"none"``) or the ``"tanh"`` approximation."""
        return GELU.apply(self, approximate=approximate)

    def elu(self, alpha: float = 1.0) -> "Tensor":
        """``x`` where positive, else ``alpha * (exp(x) - 1)``."""
        return ELU.apply(self, alpha=alpha)

    def softplus(self, beta: float = 1.0, threshold: float = 20.0) -> "Tensor":
        """``log1p(exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
        return Softplus.apply(self, beta=beta, threshold=threshold)

    def softmax(self, axis: int = -1) -> "Tensor":
        """Softmax along ``axis``."""
        return Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> "Tensor":
        """Log-softmax along ``axis`` (stable)."""
        return LogSoftmax.apply(self, axis=axis)
