"""Optimizers: SGD, Adam and AdamW over fused, in-place Numba update kernels.

Each ``step()`` makes one kernel call per parameter that has a gradient; the
kernels (``sgd_update``, ``adam_update`` of ``jitgrad.kernels.cpu`` or
``jitgrad.kernels.cuda``, picked by where the parameter lives) update the
parameter and its state buffers in place in one pass over memory. State
buffers are allocated once, at a parameter's first update, and reused.

Formulas follow PyTorch exactly (see docs/kernel-api.md, "optim"), so a model
trained here and one trained in PyTorch from the same weights agree step for
step.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from jitgrad._checks import check_real
from jitgrad.autograd.backend import backend_for

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


def kernels_for(array: Any) -> Any:
    """The kernel module (with ``sgd_update``, ``adam_update``) of the device holding ``array``.

    Resolved through the autograd's backend registry, so a parameter on the
    GPU gets ``jitgrad.kernels.cuda`` once a CUDA backend is registered.
    """
    return backend_for(array).kernels


def _zeros_like(array: Any) -> Any:
    """A zero buffer of ``array``'s shape and dtype, on ``array``'s device."""
    return backend_for(array).zeros(array.shape, array.dtype)


def _to_host(array: Any) -> np.ndarray:
    """A NumPy copy of a host or device array."""
    return np.array(backend_for(array).to_numpy(array), copy=True)


def _like(template: Any, host: np.ndarray) -> Any:
    """``host`` copied into a new array on ``template``'s device, with ``template``'s dtype."""
    host = np.array(host, dtype=template.dtype, order="C", copy=True)
    return backend_for(template).from_numpy(host)


def _follow(entry: dict[str, Any], param: Any) -> dict[str, Any]:
    """``entry``'s state arrays on ``param``'s device (a model moved by ``Module.to`` after some steps)."""
    backend = backend_for(param)
    for key, value in entry.items():
        if hasattr(value, "shape") and backend_for(value) is not backend:
            entry[key] = _like(param, backend_for(value).to_numpy(value))
    return entry


def _check_number(name: str, value: Any, *, low: float = 0.0, high: float | None = None,
                  high_open: bool = True, owner: str) -> float:
    """Validate a hyper-parameter: a real number in ``[low, high)`` (or ``[low, high]``), with
    ``jitgrad/_checks.check_real`` (a non-number is a TypeError, a number out of range a ValueError)."""
    if high is None:
        what = f"a number >= {low}"
    else:
        what = f"a number in [{low}, {high}{')' if high_open else ']'}"
    return check_real(owner, name, value, minimum=low, maximum=high, max_open=high_open, what=what)


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and (de)serialisation.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict
        The parameters to optimise, or parameter groups: dicts with a
        ``"params"`` list and any hyper-parameters overriding ``defaults``.
    defaults : dict
        Hyper-parameters of groups that do not set them.

    Attributes
    ----------
    param_groups : list of dict
        Each group's ``"params"`` (list of Tensor) and hyper-parameters; a
        scheduler changes ``group["lr"]`` here.
    state : dict of int to dict
        Per-parameter state (momentum buffers, moment estimates, step counts),
        keyed by the parameter's position across all groups, as in
        ``state_dict()``.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(params, np.ndarray) or hasattr(params, "grad"):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts, "
                            f"got a single {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError(f"{name}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        self._seen: set[int] = set()
        # Index of each group's first parameter in ``state``: groups number
        # their parameters consecutively, as in ``state_dict()``.
        self._offsets: list[int] = []
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Append a parameter group, filling in defaults and validating it."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' key, got {group!r:.80}")
        params = group["params"]
        params = [params] if hasattr(params, "grad") else list(params)
        for p in params:
            if not (hasattr(p, "data") and hasattr(p, "grad")) or isinstance(p, np.ndarray):
                raise TypeError(f"{name}: parameters must be Tensors, got {type(p).__name__}")
        # Frozen parameters (requires_grad=False) are kept, as PyTorch does, and skipped by step():
        # an optimizer built over model.parameters() after freezing some of them just works.
        ids = {id(p) for p in params}
        if len(ids) != len(params) or ids & self._seen:
            raise ValueError(f"{name}: a parameter appears more than once (in one group or across groups)")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr", "max_lr", "min_lr",
                                                     "base_momentum", "max_momentum"}
        if unknown:
            raise ValueError(f"{name}: unknown hyper-parameter(s) {sorted(unknown)} in a parameter group; "
                             f"expected {sorted(self.defaults)}")
        full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}, "params": params}
        self._validate(full)
        self._seen |= ids
        self._offsets.append(sum(len(g["params"]) for g in self.param_groups))
        self.param_groups.append(full)

    def _validate(self, group: dict[str, Any]) -> None:
        """Check a group's hyper-parameters; subclasses extend this."""
        _check_number("lr", group["lr"], owner=type(self).__name__)
        _check_number("weight_decay", group["weight_decay"], owner=type(self).__name__)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient.

        With ``set_to_none`` (the default and the fast path) gradients become
        ``None``: nothing is allocated or written, and the next backward
        creates them afresh.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s value if given."""
        loss = closure() if closure is not None else None
        self._step()
        return loss

    def _step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Optimizer state as NumPy copies plus hyper-parameters, as PyTorch lays it out.

        Returns
        -------
        dict
            ``{"state": {index: {name: ndarray | int}}, "param_groups":
            [{hyper-parameter: value, "params": [index, ...]}]}``; save it with
            ``jitgrad.save``.
        """
        state = {index: {key: (_to_host(value) if hasattr(value, "shape") else value)
                         for key, value in entry.items()}
                 for index, entry in self.state.items()}
        groups, start = [], 0
        for group in self.param_groups:
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state and hyper-parameters saved by :meth:`state_dict`.

        Everything is validated before anything changes: on error the
        optimizer is left as it was.

        Raises
        ------
        ValueError
            If the groups, parameter counts or buffer shapes do not match.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: saved state has {len(saved_groups)} parameter group(s), "
                             f"this optimizer has {len(self.param_groups)}")
        params: dict[int, Any] = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: group {i} has {len(saved['params'])} saved parameter(s), "
                                 f"this optimizer has {len(group['params'])}")
            params.update(zip(saved["params"], group["params"]))
        new_state: dict[int, dict[str, Any]] = {}
        for index, entry in state_dict["state"].items():
            if index not in params:
                raise ValueError(f"{name}.load_state_dict: state for parameter {index}, which no group lists")
            p = params[index]
            restored = {}
            for key, value in entry.items():
                if hasattr(value, "shape"):
                    if tuple(value.shape) != tuple(p.shape):
                        raise ValueError(f"{name}.load_state_dict: state {index}.{key} has shape "
                                         f"{tuple(value.shape)}, parameter has {tuple(p.shape)}")
                    restored[key] = _like(p.data, np.asarray(value))
                else:
                    restored[key] = value
            new_state[index] = restored
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            updated = {**group, **{k: v for k, v in saved.items() if k != "params"}}
            self._validate(updated)
            new_groups.append(updated)
        # Only now, with everything checked, replace the optimizer's state.
        for group, updated in zip(self.param_groups, new_groups):
            group.update(updated)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {hyper}")
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    PyTorch's SGD with ``dampening=0``: ``g = grad + weight_decay * p``;
    with momentum ``buf = momentum * buf + g`` and ``g = g + momentum * buf``
    (Nesterov) or ``g = buf``; then ``p -= lr * g``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups.
    lr : float
        Learning rate, ``>= 0``.
    momentum : float, default 0
        Momentum factor, ``>= 0``.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float, default 0
        L2 penalty, ``>= 0``.
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov,
                                  "weight_decay": weight_decay})

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        _check_number("momentum", group["momentum"], owner="SGD")
        if not isinstance(group["nesterov"], (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be a bool, got {type(group['nesterov']).__name__}")
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def _step(self) -> None:
        state = self.state
        for group, first_index in zip(self.param_groups, self._offsets):
            lr, momentum = group["lr"], group["momentum"]
            nesterov, weight_decay = group["nesterov"], group["weight_decay"]
            for index, p in enumerate(group["params"], first_index):
                grad = p.grad
                if grad is None or not p.requires_grad:
                    continue
                buf = None
                if momentum > 0:
                    entry = state.get(index)
                    if entry is None:
                        entry = state[index] = {"momentum_buffer": _zeros_like(p.data)}
                    buf = _follow(entry, p.data)["momentum_buffer"]
                kernels_for(p.data).sgd_update(p.data, grad.data, buf, lr=lr, momentum=momentum,
                                               nesterov=nesterov, weight_decay=weight_decay)
                p.bump_version()


class Adam(Optimizer):
    """Adam (Kingma & Ba), with L2 weight decay added to the gradient as PyTorch's ``Adam``.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
    ``p -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)``, with
    ``g = grad + weight_decay * p``; ``t`` counts this parameter's updates.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters or parameter groups.
    lr : float, default 1e-3
        Learning rate, ``>= 0``.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates, each in ``[0, 1)``.
    eps : float, default 1e-8
        Added to the denominator, ``>= 0``.
    weight_decay : float, default 0
        L2 penalty, ``>= 0``.
    """

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        name = type(self).__name__
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (_check_number("betas[0]", betas[0], high=1.0, owner=name),
                          _check_number("betas[1]", betas[1], high=1.0, owner=name))
        _check_number("eps", group["eps"], owner=name)

    def _step(self) -> None:
        state = self.state
        decoupled = self._decoupled
        for group, first_index in zip(self.param_groups, self._offsets):
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for index, p in enumerate(group["params"], first_index):
                grad = p.grad
                if grad is None or not p.requires_grad:
                    continue
                entry = state.get(index)
                if entry is None:
                    entry = state[index] = {"step": 0, "exp_avg": _zeros_like(p.data),
                                            "exp_avg_sq": _zeros_like(p.data)}
                _follow(entry, p.data)
                entry["step"] += 1
                kernels_for(p.data).adam_update(
                    p.data, grad.data, entry["exp_avg"], entry["exp_avg_sq"], step=entry["step"], lr=lr,
                    beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                    decoupled_weight_decay=decoupled)
                p.bump_version()


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's ``AdamW``.

    Before the Adam update, ``p *= 1 - lr * weight_decay``; the gradient is
    not changed. Parameters as :class:`Adam`, but ``weight_decay`` defaults
    to ``1e-2``.
    """

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
