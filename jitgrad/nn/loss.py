"""Loss modules (PyTorch's ``nn.CrossEntropyLoss``, ``nn.MSELoss``, ``nn.BCEWithLogitsLoss``).

Each holds its options and calls the function of :mod:`jitgrad.nn.functional`
of the same meaning, so ``criterion = nn.CrossEntropyLoss(); loss =
criterion(logits, labels)`` reads as it does in PyTorch.
"""

from __future__ import annotations

from typing import Any

from jitgrad.autograd.tensor import Tensor
from jitgrad.nn import functional as F
from jitgrad.nn.module import Module

__all__ = ["CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss"]

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Cross-entropy of ``softmax(logits)`` against class indices or probabilities (``F.cross_entropy``).

    Parameters
    ----------
    reduction : ``"mean"``, ``"sum"`` or ``"none"``
    label_smoothing : float in [0, 1], default 0
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target, reduction=self.reduction, label_smoothing=self.label_smoothing)


class MSELoss(_Loss):
    """Mean squared error ``(input - target) ** 2`` (``F.mse_loss``)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of ``sigmoid(logits)`` against targets in [0, 1], computed stably from logits."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction)
