"""Learning-rate schedules: StepLR, CosineAnnealingLR, OneCycleLR and ReduceLROnPlateau.

Schedules write ``group["lr"]`` of their optimizer's parameter groups. The
epoch-indexed ones compute each learning rate from a closed form of the step
count (no drift from repeated multiplication) and record each group's
starting rate as ``group["initial_lr"]``, as PyTorch does.

``step_unit`` says when :func:`jitgrad.nn.fit` steps a schedule: ``"epoch"``
(after every epoch), ``"batch"`` (after every optimizer step: OneCycleLR), or
``"metric"`` (after every epoch, given the monitored loss: ReduceLROnPlateau).
"""

from __future__ import annotations

import math
from typing import Any

from jitgrad._checks import check_int, check_real, positive_int

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "OneCycleLR", "ReduceLROnPlateau"]


def _check_optimizer(owner: str, optimizer: Any) -> None:
    if not hasattr(optimizer, "param_groups"):
        raise TypeError(f"{owner}: expected an Optimizer, got {type(optimizer).__name__}")


class LRScheduler:
    """Base of every schedule; by default ``lr_t = lr_at(base_lr, t)`` per group.

    Construction sets the rates for ``t = 0``; each :meth:`step` advances ``t``
    by one. Subclasses implement :meth:`lr_at`.
    """

    step_unit = "epoch"

    def __init__(self, optimizer: Any) -> None:
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def lr_at(self, base_lr: float, t: int) -> float:  # pragma: no cover - abstract
        """Learning rate at step ``t`` of a group that started at ``base_lr``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step (an epoch, or a batch for OneCycleLR) and set the new rates."""
        self.last_epoch += 1
        self._apply(self.last_epoch)

    def _apply(self, t: int) -> None:
        """Set every group's rate for step ``t``."""
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base_lr, t)

    def get_last_lr(self) -> list[float]:
        """The rate of each parameter group as last set."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer, for checkpoints."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs: ``lr = base * gamma ** (t // step_size)``.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Epochs between decays, ``> 0``.
    gamma : float, default 0.1
        Decay factor, ``> 0``.
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = positive_int("StepLR", "step_size", step_size)
        self.gamma = check_real("StepLR", "gamma", gamma, minimum=0.0, min_open=True, what="> 0")
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine from the base rate down to ``eta_min`` over ``T_max`` epochs.

    ``lr = eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2``.

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int
        Epochs of a half period, ``> 0``.
    eta_min : float, default 0
        Final rate, ``>= 0``.
    """

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = positive_int("CosineAnnealingLR", "T_max", T_max)
        if not eta_min >= 0:
            raise ValueError(f"CosineAnnealingLR: eta_min must be >= 0, got {eta_min!r}")
        self.eta_min = float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, t: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class OneCycleLR(LRScheduler):
    """Smith's 1cycle policy, stepped after every batch, as PyTorch's ``OneCycleLR``.

    The rate warms from ``max_lr / div_factor`` up to ``max_lr`` over the first
    ``pct_start`` of the steps, then anneals down to
    ``max_lr / (div_factor * final_div_factor)``. With ``cycle_momentum`` the
    momentum (SGD's ``momentum``, Adam's ``beta1``) moves the opposite way,
    between ``max_momentum`` and ``base_momentum``.

    Parameters
    ----------
    optimizer : Optimizer
    max_lr : float
        Peak learning rate, ``> 0``.
    total_steps : int, optional
        Number of steps; or give ``epochs`` and ``steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
    pct_start : float, default 0.3
        Fraction of the steps spent warming up, in ``(0, 1)``.
    anneal_strategy : {"cos", "linear"}, default "cos"
    cycle_momentum : bool, default True
    base_momentum, max_momentum : float, default 0.85, 0.95
    div_factor : float, default 25
    final_div_factor : float, default 1e4
    """

    step_unit = "batch"

    def __init__(self, optimizer: Any, max_lr: float, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> None:
        owner = "OneCycleLR"
        _check_optimizer(owner, optimizer)
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(f"{owner}: give total_steps, or both epochs and steps_per_epoch")
            total_steps = positive_int(owner, "epochs", epochs) * positive_int(owner, "steps_per_epoch",
                                                                                 steps_per_epoch)
        self.total_steps = positive_int(owner, "total_steps", total_steps)
        check_real(owner, "max_lr", max_lr, minimum=0.0, min_open=True, what="> 0")
        check_real(owner, "pct_start", pct_start, minimum=0.0, maximum=1.0, min_open=True, max_open=True,
                   what="in (0, 1)")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{owner}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        if not div_factor > 0 or not final_div_factor > 0:
            raise ValueError(f"{owner}: div_factor and final_div_factor must be > 0, "
                             f"got {div_factor!r} and {final_div_factor!r}")
        self.anneal_strategy = anneal_strategy
        self.warmup_end = float(pct_start * self.total_steps) - 1
        self.cycle_momentum = bool(cycle_momentum)
        for group in optimizer.param_groups:
            group["initial_lr"] = max_lr / div_factor
            group["max_lr"] = float(max_lr)
            group["min_lr"] = group["initial_lr"] / final_div_factor
            if self.cycle_momentum:
                if "betas" not in group and "momentum" not in group:
                    raise ValueError(f"{owner}: cycle_momentum needs an optimizer with momentum or betas")
                group["base_momentum"], group["max_momentum"] = float(base_momentum), float(max_momentum)
        self.optimizer = optimizer
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def lr_at(self, base_lr: float, t: int) -> float:
        """Rate at step ``t`` of the first group's cycle (every group shares the shape)."""
        group = self.optimizer.param_groups[0]
        return self._phase_value(t, group["initial_lr"], group["max_lr"], group["min_lr"])

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _phase_value(self, t: int, warm_start: float, peak: float, final: float) -> float:
        """Value at step ``t`` of a curve warm_start -> peak (warm-up) -> final (anneal)."""
        if t <= self.warmup_end:
            return self._anneal(warm_start, peak, t / self.warmup_end if self.warmup_end > 0 else 1.0)
        span = (self.total_steps - 1) - self.warmup_end
        return self._anneal(peak, final, (t - self.warmup_end) / span)

    def step(self) -> None:
        """Advance one batch. As PyTorch, ``total_steps`` steps may follow construction; more raise."""
        if self.last_epoch + 1 > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {self.last_epoch + 1} times, "
                             f"more than total_steps={self.total_steps}")
        super().step()

    def _apply(self, t: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self._phase_value(t, group["initial_lr"], group["max_lr"], group["min_lr"])
            if self.cycle_momentum:
                momentum = self._phase_value(t, group["max_momentum"], group["base_momentum"],
                                             group["max_momentum"])
                if "betas" in group:
                    group["betas"] = (momentum, group["betas"][1])
                else:
                    group["momentum"] = momentum


class ReduceLROnPlateau(LRScheduler):
    """Cut the rate by ``factor`` when a monitored metric stops improving, as PyTorch's.

    Parameters
    ----------
    optimizer : Optimizer
    mode : {"min", "max"}, default "min"
        Whether lower or higher metric values are better.
    factor : float, default 0.1
        Multiplier of the rate on a plateau, in ``(0, 1)``.
    patience : int, default 10
        Epochs without improvement tolerated before a cut.
    threshold : float, default 1e-4
        Smallest change that counts as improvement.
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
        Epochs to wait after a cut before counting again.
    min_lr : float, default 0
        Floor of the rate.
    eps : float, default 1e-8
        Cuts smaller than this are skipped.
    """

    step_unit = "metric"

    def __init__(self, optimizer: Any, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr: float = 0.0,
                 eps: float = 1e-8) -> None:
        owner = "ReduceLROnPlateau"
        _check_optimizer(owner, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{owner}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        check_real(owner, "factor", factor, minimum=0.0, maximum=1.0, min_open=True, max_open=True, what="in (0, 1)")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            check_int(owner, name, value, minimum=0, what="an int >= 0")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, float(factor), patience
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.min_lr, self.eps = cooldown, float(min_lr), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bound

    def step(self, metric: float) -> None:
        """Record this epoch's metric and cut the rate after ``patience`` bad epochs."""
        value = float(metric)
        self.last_epoch += 1
        if self._is_better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group in self.optimizer.param_groups:
                new_lr = max(group["lr"] * self.factor, self.min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
