"""Fused optimizer updates held to a plain-Python transcription of PyTorch's algorithms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from jitgrad.kernels.cpu import optim as cpu_optim
from tests.cases.optim import ADAM_CONFIGS, SGD_CONFIGS, SHAPES, problem, run_adam, run_sgd
from tests.helpers import DTYPES, assert_close, recompiled, wide_vectors

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]


def _torch_sgd(params, grads_per_step, lr, momentum, nesterov, weight_decay):
    """torch.optim.SGD (dampening 0), element by element in Python floats."""
    params = list(params)
    bufs = [None] * len(params)
    for grads in grads_per_step:
        for i, (p, g) in enumerate(zip(params, grads)):
            d_p = g + weight_decay * p if weight_decay != 0 else g
            if momentum != 0:
                bufs[i] = d_p if bufs[i] is None else momentum * bufs[i] + d_p  # buf = clone(d_p) on step 1
                d_p = d_p + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = p - lr * d_p
    return params, bufs


def _torch_adam(params, grads_per_step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """torch.optim.Adam / AdamW (single-tensor path), element by element in Python floats."""
    params = list(params)
    m = [0.0] * len(params)
    v = [0.0] * len(params)
    for step, grads in enumerate(grads_per_step, start=1):
        for i, (p, g) in enumerate(zip(params, grads)):
            if decoupled:
                p = p * (1 - lr * weight_decay)
            elif weight_decay != 0:
                g = g + weight_decay * p
            m[i] = m[i] + (g - m[i]) * (1 - beta1)  # exp_avg.lerp_(grad, 1 - beta1)
            v[i] = v[i] * beta2 + (1 - beta2) * g * g
            step_size = lr / (1 - beta1 ** step)
            denom = math.sqrt(v[i]) / math.sqrt(1 - beta2 ** step) + eps
            params[i] = p - step_size * m[i] / denom
    return params, m, v


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("config", SGD_CONFIGS, ids=str)
def test_sgd_matches_pytorch_algorithm(backend, config, shape, dtype):
    param, grads = problem(shape, dtype)
    momentum = config.get("momentum", 0.0)
    expected, bufs = _torch_sgd(param.ravel().tolist(), [g.ravel().tolist() for g in grads], config["lr"],
                                momentum, config.get("nesterov", False), config.get("weight_decay", 0.0))
    p, buf = run_sgd(backend, config, param, grads)
    assert_close(p.ravel(), np.array(expected), dtype)
    if momentum:
        assert_close(buf.ravel(), np.array(bufs), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_matches_pytorch_algorithm(backend, config, shape, dtype):
    param, grads = problem(shape, dtype)
    full = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False) | config
    expected, m, v = _torch_adam(param.ravel().tolist(), [g.ravel().tolist() for g in grads], full["lr"],
                                 full["beta1"], full["beta2"], full["eps"], full["weight_decay"],
                                 full["decoupled_weight_decay"])
    p, exp_avg, exp_avg_sq = run_adam(backend, config, param, grads)
    assert_close(p.ravel(), np.array(expected), dtype)
    assert_close(exp_avg.ravel(), np.array(m), dtype)
    assert_close(exp_avg_sq.ravel(), np.array(v), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_kernels_agree_with_the_serial_twins(monkeypatch, dtype):
    # Parameters from _PARALLEL_MIN_SIZE elements take the prange kernels; the tests above (every
    # shape below it) the serial twins, held to PyTorch's algorithms.
    param, grads = problem(SHAPES[-1], dtype)
    for run, configs in ((run_sgd, SGD_CONFIGS), (run_adam, ADAM_CONFIGS)):
        for config in configs:
            serial = run(cpu, config, param, grads)
            with monkeypatch.context() as patch:
                patch.setattr(cpu_optim, "_PARALLEL_MIN_SIZE", 1)
                parallel = run(cpu, config, param, grads)
            for want, got in zip(serial, parallel):
                if want is not None:
                    assert_close(got, want, dtype)


def test_adam_and_adamw_differ_and_first_step_is_lr_sized():
    # Bias correction makes Adam's first step exactly lr * sign(g) (up to eps), whatever |g|.
    param = np.array([1.0, -2.0, 3.0])
    grad = np.array([1e-3, -5.0, 40.0])
    for backend in (ref, cpu):
        p = param.copy()
        backend.adam_update(p, grad, np.zeros(3), np.zeros(3), step=1, lr=0.01, eps=0.0)
        assert_close(p, param - 0.01 * np.sign(grad))
    l2, decoupled = param.copy(), param.copy()
    cpu.adam_update(l2, grad, np.zeros(3), np.zeros(3), step=1, lr=0.01, eps=0.0, weight_decay=0.5)
    cpu.adam_update(decoupled, grad, np.zeros(3), np.zeros(3), step=1, lr=0.01, eps=0.0, weight_decay=0.5,
                    decoupled_weight_decay=True)
    assert_close(decoupled, param * (1 - 0.01 * 0.5) - 0.01 * np.sign(grad))
    # L2 decay only changes g (so the first step is still lr * sign); AdamW also shrinks param.
    assert_close(l2, param - 0.01 * np.sign(grad + 0.5 * param))
    assert not np.allclose(l2, decoupled)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input(backend):
    p, g = np.zeros((2, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match="momentum_buf is required when momentum > 0"):
        backend.sgd_update(p, g, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="nesterov=True requires momentum > 0"):
        backend.sgd_update(p, g, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="lr must be >= 0.0, got -0.1"):
        backend.sgd_update(p, g, lr=-0.1)
    with pytest.raises(TypeError, match="nesterov must be a bool, got 1"):
        backend.sgd_update(p, g, np.zeros((2, 3)), lr=0.1, momentum=0.9, nesterov=1)
    with pytest.raises(ValueError, match=r"grad must have shape \(2, 3\), got \(3, 2\)"):
        backend.sgd_update(p, np.zeros((3, 2)), lr=0.1)
    with pytest.raises(TypeError, match="momentum_buf has dtype float32 but param has dtype float64"):
        backend.sgd_update(p, g, np.zeros((2, 3), np.float32), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="param must be C-contiguous"):
        backend.sgd_update(np.zeros((3, 2)).T, g, lr=0.1)
    with pytest.raises(TypeError, match="param must have dtype float32 or float64, got int64"):
        backend.sgd_update(np.zeros(3, np.int64), np.zeros(3, np.int64), lr=0.1)

    m, v = np.zeros((2, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"step must be >= 1 \(the 1-based count of this update\), got 0"):
        backend.adam_update(p, g, m, v, step=0, lr=1e-3)
    with pytest.raises(TypeError, match="step must be an int"):
        backend.adam_update(p, g, m, v, step=1.0, lr=1e-3)
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\), got 1.0"):
        backend.adam_update(p, g, m, v, step=1, lr=1e-3, beta1=1.0)
    with pytest.raises(ValueError, match="beta2 must be >= 0.0, got -0.5"):
        backend.adam_update(p, g, m, v, step=1, lr=1e-3, beta2=-0.5)
    with pytest.raises(ValueError, match="eps must be >= 0.0, got -1e-08"):
        backend.adam_update(p, g, m, v, step=1, lr=1e-3, eps=-1e-8)
    with pytest.raises(ValueError, match=r"exp_avg_sq must have shape \(2, 3\), got \(6,\)"):
        backend.adam_update(p, g, m, np.zeros(6), step=1, lr=1e-3)
    with pytest.raises(TypeError, match="decoupled_weight_decay must be a bool, got 'yes'"):
        backend.adam_update(p, g, m, v, step=1, lr=1e-3, decoupled_weight_decay="yes")


@wide_vectors
@pytest.mark.parametrize("name", ["_adam_update_kernel_serial", "_sgd_update_kernel_serial"])
def test_serial_updates_vectorise(name):
    # Numba's default error model checks each division for a zero and kept these loops scalar (Adam 8x
    # slower); recompiled here with the kernel's own options (cached code cannot be inspected).
    import re

    fresh = recompiled(getattr(cpu_optim, name))
    x = np.ones(64, np.float32)
    f32 = np.float32
    if name.startswith("_adam"):
        fresh(x, x.copy(), x.copy(), x.copy(), f32(1e-3), f32(0.9), f32(0.9), f32(0.999), f32(1e-8), f32(0), False)
    else:
        fresh(x, x.copy(), x.copy(), f32(0.1), f32(0.9), False, f32(0))
    asm = fresh.inspect_asm(fresh.signatures[0])
    assert len(re.findall(r"\bv(?:fn?m(?:add|sub)\d+ps|mulps|addps|subps|divps|sqrtps)\s[^\n]*[yz]mm", asm)) >= 4, name  # zmm on AVX-512
