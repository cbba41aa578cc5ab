"""Optimizer-update cases: every hyper-parameter path (weight decay L2 and decoupled, momentum, Nesterov,
bias correction over several steps) for reference, CPU and CUDA alike."""

from __future__ import annotations

import numpy as np

from tests.helpers import randn

#: Steps per case: bias correction changes with the step, momentum needs a second step to matter.
STEPS = 3

SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001),
]
ADAM_CONFIGS = [
    dict(lr=1e-3),
    dict(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
    dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
]
# Tiny, odd, and one odd-length array big enough to split across threads.
# Small shapes take the CPU kernels' serial twins, (17001,) the parallel ones (cut at 2**12 elements).
SHAPES = [(1,), (3, 5), (2, 3, 3, 3), (17001,)]
#: The shapes the CUDA simulator can afford (each thread is a Python thread there).
SMALL_SHAPES = SHAPES[:3]


def problem(shape, dtype, seed=0):
    """A parameter and ``STEPS`` gradients of one shape and dtype."""
    param = randn(shape, dtype, seed=seed)
    grads = [randn(shape, dtype, seed=seed + 1 + k) for k in range(STEPS)]
    return param, grads


def run_sgd(backend, config, param, grads, to_device=lambda a: a, to_host=lambda a: a):
    """``STEPS`` SGD updates on ``backend``; returns (param, momentum buffer or None) on the host."""
    p = to_device(param.copy())
    buf = to_device(np.zeros_like(param)) if config.get("momentum", 0.0) else None
    for g in grads:
        assert backend.sgd_update(p, to_device(g), buf, **config) is None
    return to_host(p), (None if buf is None else to_host(buf))


def run_adam(backend, config, param, grads, to_device=lambda a: a, to_host=lambda a: a):
    """``STEPS`` Adam/AdamW updates on ``backend``; returns (param, exp_avg, exp_avg_sq) on the host."""
    p, m, v = (to_device(a) for a in (param.copy(), np.zeros_like(param), np.zeros_like(param)))
    for step, g in enumerate(grads, start=1):
        assert backend.adam_update(p, to_device(g), m, v, step=step, **config) is None
    return to_host(p), to_host(m), to_host(v)
