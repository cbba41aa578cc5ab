"""Checking gradients by finite differences, and ``grad``: gradients as a function.

``gradcheck`` is how every op in jitgrad is tested: the analytic gradient of
``sum(W * fn(*inputs))`` (``W`` a fixed random weight, so that ops whose plain
sum is constant, like softmax, are still tested) is compared with float64
central differences, one input element at a time.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from jitgrad.autograd.backend import backend_for
from jitgrad.autograd.grad_mode import enable_grad, no_grad
from jitgrad.autograd.tensor import Tensor

__all__ = ["GradcheckError", "gradcheck", "grad"]


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with finite differences."""


def tensor_outputs(out: Any, owner: str = "gradcheck", what: str = "fn") -> tuple[Tensor, ...]:
    """What a user's function returned (a Tensor, or a tuple or list of them) as a tuple of Tensors.

    Anything else is a TypeError naming ``owner`` and ``what`` returned it (``onnx.export`` uses it too).
    """
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"{owner}: {what} must return a Tensor or a tuple of Tensors, got {type(o).__name__}")
    return tuple(outs)


def _weighted_sum(outs: tuple[Tensor, ...], weights: list[np.ndarray]) -> Any:
    """``sum_k sum(W_k * out_k)`` as a scalar Tensor."""
    total = None
    for o, w in zip(outs, weights):
        term = (o * w).sum()
        total = term if total is None else total + term
    return total


def gradcheck(fn: Callable[..., Any], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Compare the analytic gradients of ``fn`` with float64 central differences.

    Every floating-point Tensor input is copied to float64 (keeping its
    ``requires_grad``); non-Tensor inputs are passed through unchanged. For
    each input that requires grad, each element is moved by ``+-eps`` and
    ``(f(x + eps) - f(x - eps)) / (2 eps)`` is compared with the gradient from
    ``backward``, where ``f = sum(W * fn(*inputs))`` and ``W`` is a fixed
    random tensor of the output's shape (one per output for tuple outputs).

    Parameters
    ----------
    fn : callable
        Takes ``inputs`` and returns a Tensor (any shape) or a tuple of Tensors.
    *inputs : Tensor or any
        The arguments of ``fn``; the Tensors with ``requires_grad=True`` are checked.
    eps : float
        Finite-difference step.
    atol, rtol : float
        Element ``i`` passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.
    seed : int
        Seed of the output weights ``W``.

    Returns
    -------
    bool
        True when every gradient matches.

    Raises
    ------
    GradcheckError
        Naming the input (position and shape), the worst element's index, and
        the analytic and numeric values there.
    ValueError
        When no input requires grad.
    """
    inputs64 = tuple(
        Tensor(backend_for(x.data).astype(x.data, np.float64), requires_grad=x.requires_grad)
        if isinstance(x, Tensor) and np.dtype(x.dtype).kind == "f" else x
        for x in inputs
    )
    checked = [i for i, x in enumerate(inputs64) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; pass tensors with requires_grad=True")

    with enable_grad():
        outs = tensor_outputs(fn(*inputs64))
        rng = np.random.default_rng(seed)
        weights = [rng.standard_normal(o.shape) for o in outs]
        objective = _weighted_sum(outs, weights)
        if not objective.requires_grad:
            raise GradcheckError("gradcheck: the output does not depend on any input that requires grad")
        objective.backward()

    def f() -> float:
        with no_grad():
            return float(_weighted_sum(tensor_outputs(fn(*inputs64)), weights).item())

    for i in checked:
        x = inputs64[i]
        backend = backend_for(x.data)
        # Perturb a host copy and hand it to the device before each evaluation;
        # on the CPU ``from_numpy`` returns the copy itself, so nothing moves.
        values = np.array(x.numpy(), dtype=np.float64)
        analytic = np.zeros(values.shape) if x.grad is None else np.asarray(x.grad.numpy(), dtype=np.float64)
        numeric = np.empty(values.shape)
        flat_values, flat_numeric = values.reshape(-1), numeric.reshape(-1)

        def f_at(j: int, value: float) -> float:
            flat_values[j] = value
            x.data = backend.from_numpy(values)
            return f()

        for j in range(flat_values.size):
            old = flat_values[j]
            plus, minus = f_at(j, old + eps), f_at(j, old - eps)
            flat_values[j] = old
            flat_numeric[j] = (plus - minus) / (2 * eps)
        x.data = backend.from_numpy(values)
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if values.size and (excess.max() > 0 or not np.all(np.isfinite(analytic))):
            worst = np.unravel_index(int(np.argmax(np.where(np.isfinite(excess), excess, np.inf))), values.shape)
            raise GradcheckError(
                f"gradcheck failed for input {i} (shape {values.shape}) at index {tuple(int(k) for k in worst)}: "
                f"analytic {float(analytic[worst])!r} vs numeric {float(numeric[worst])!r} (atol={atol}, rtol={rtol})"
            )
    return True


def grad(f: Callable[..., Any]) -> Callable[..., tuple[Any, ...]]:
    """Turn a scalar function into the function returning its gradients (Zygote's ``gradient``).

    ``jitgrad.grad(f)(*args)`` calls ``f(*args)`` with every floating-point
    argument made a fresh leaf that requires grad, runs ``backward``, and
    returns one gradient per argument, of the argument's kind: a Tensor for a
    Tensor, a NumPy array for an array, a float for a Python float; ``None``
    for an argument that is not floating point (ints, strings, ...). An
    argument the result does not depend on gets zeros. The caller's tensors
    are left untouched (their ``.grad`` is not written).

    Parameters
    ----------
    f : callable
        Returns a Tensor with one element.

    Returns
    -------
    callable
        ``(*args) -> tuple`` of gradients, one per positional argument.
    """

    @functools.wraps(f)
    def gradient(*args: Any) -> tuple[Any, ...]:
        leaves: list[Tensor | None] = []
        call_args: list[Any] = []
        for a in args:
            if isinstance(a, Tensor):
                leaf = Tensor(a.data, requires_grad=np.dtype(a.dtype).kind == "f")
            elif isinstance(a, float) or (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
                leaf = Tensor(np.asarray(a), requires_grad=True)
            else:
                leaf = None
            leaves.append(leaf if leaf is not None and leaf.requires_grad else None)
            call_args.append(a if leaf is None else leaf)
        with enable_grad():
            out = f(*call_args)
            if not isinstance(out, Tensor) or out.size != 1:
                shape = out.shape if isinstance(out, Tensor) else type(out).__name__
                raise TypeError(f"grad: f must return a Tensor with one element, got {shape}")
            if out.requires_grad:
                out.backward()
        grads: list[Any] = []
        for a, leaf in zip(args, leaves):
            if leaf is None:
                grads.append(None)
                continue
            g = leaf.grad if leaf.grad is not None else Tensor(backend_for(leaf.data).zeros(leaf.shape, leaf.dtype))
            if isinstance(a, Tensor):
                grads.append(g)
            elif isinstance(a, float):
                grads.append(float(g.item()))
            else:
                grads.append(g.numpy())
        return tuple(grads)

    return gradient
