"""Reverse-mode sweep: topological order without recursion, then one backward per node.

The order comes from an explicit-stack depth-first search, so a chain of any
length (a 10,000-step RNN unroll, a long loop of ``x = x * 1.01``) never meets
Python's recursion limit. Gradients of a node reached along several paths
are summed before its backward runs; broadcasting is undone at each edge.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from jitgrad.autograd.backend import backend_for
from jitgrad.autograd.function import _FREED_MESSAGE
from jitgrad.autograd.tensor import Tensor


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor requiring grad that ``root`` depends on, inputs before outputs."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        ctx = node._ctx
        if ctx is None:
            order.append(node)
            continue
        if ctx._freed:
            raise RuntimeError(_FREED_MESSAGE)
        # The node goes back on the stack under its parents: it is emitted after all of them.
        stack.append((node, True))
        for parent in ctx._parents:
            if isinstance(parent, Tensor) and parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


def _seed(root: Tensor, grad: Any) -> Any:
    """The starting gradient as an array of ``root``'s backend, dtype and shape."""
    backend = backend_for(root.data)
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a tensor with one element, got shape {root.shape}; "
                "pass grad= of the same shape (or reduce, e.g. loss.sum())"
            )
        return backend.ones(root.shape, root.dtype)
    if isinstance(grad, Tensor):
        grad = grad.data
    if type(grad) is not backend.array_type:
        # Host data (lists, NumPy arrays, numbers) goes to root's device.
        grad = backend.from_numpy(np.asarray(grad, dtype=root.dtype))
    if grad.shape != root.shape:
        raise RuntimeError(f"backward(): grad must have the output's shape {root.shape}, got {grad.shape}")
    if grad.dtype != root.dtype:
        grad = backend.astype(grad, root.dtype)
    return grad


# Callbacks queued during the backward() running on this thread (one list per nested backward).
_running = threading.local()


def queue_callback(callback: Callable[[], None]) -> None:
    """Run ``callback()`` once, when the ``backward()`` now running has visited every node.

    For code that a gradient hook starts and that must end before
    ``backward()`` returns (``jitgrad.distributed`` waits there for its
    gradient reductions). Callbacks run in the order queued; one may queue
    another.

    Raises
    ------
    RuntimeError
        Outside ``backward()`` (e.g. from a hook's caller rather than the hook).
    """
    stack = getattr(_running, "callbacks", None)
    if not stack:
        raise RuntimeError("queue_callback: only callable while backward() runs (from a gradient hook)")
    stack[-1].append(callback)


def backward(root: Tensor, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf requiring grad (see ``Tensor.backward``)."""
    stack = getattr(_running, "callbacks", None)
    if stack is None:
        stack = _running.callbacks = []
    callbacks: list[Callable[[], None]] = []
    stack.append(callbacks)
    try:
        _sweep(root, grad, retain_graph)
        while callbacks:
            callbacks.pop(0)()
    finally:
        stack.pop()


def _sweep(root: Tensor, grad: Any, retain_graph: bool) -> None:
    if not root.requires_grad:
        raise RuntimeError(
            "backward() called on a tensor that does not require grad: give an input requires_grad=True "
            "(and compute outside no_grad())"
        )
    user_grad = grad is not None
    grad = _seed(root, grad)
    order = _topological_order(root)
    grads: dict[int, Any] = {id(root): grad}
    # Arrays already stored in some leaf's .grad (or owned by the caller): a
    # leaf receiving one of them again gets a copy, so no two .grad alias.
    handed_out: set[int] = {id(grad)} if user_grad else set()
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        ctx = node._ctx
        if ctx is None:
            _accumulate_leaf(node, g, handed_out)
            hooks = node._grad_hooks
            if hooks:
                for hook in tuple(hooks):
                    hook(node)
            continue
        fn = ctx._fn
        results = fn.backward(ctx, g)
        if not isinstance(results, tuple):
            results = (results,)
        parents = ctx._parents
        if len(results) < len(parents):
            raise RuntimeError(
                f"{fn.__name__}.backward returned {len(results)} gradients for {len(parents)} inputs"
            )
        backend = ctx.backend
        for parent, pg in zip(parents, results):
            if pg is None or not isinstance(parent, Tensor) or not parent.requires_grad:
                continue
            pdata = parent.data
            if type(pg) is not type(pdata):
                pg = backend.asarray(pg)
            if pg.shape != pdata.shape:
                pg = backend.sum_to_shape(pg, pdata.shape)
            if pg.dtype != pdata.dtype:
                pg = backend.astype(pg, pdata.dtype)
            key = id(parent)
            previous = grads.get(key)
            # Never in place: ``previous`` may be an array another edge also holds.
            grads[key] = pg if previous is None else backend.add(previous, pg)
        if not retain_graph:
            ctx.free()


def _accumulate_leaf(leaf: Tensor, g: Any, handed_out: set[int]) -> None:
    backend = backend_for(g)
    if leaf.grad is None:
        if id(g) in handed_out or not backend.owns_data(g):
            g = backend.copy(g)
        handed_out.add(id(g))
        leaf.grad = Tensor(g)
    else:
        leaf.grad.data = backend.add(leaf.grad.data, g)
