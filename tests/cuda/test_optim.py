"""CUDA fused SGD and Adam/AdamW updates against the reference, several steps in a row."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, randn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov,weight_decay", [(0.0, False, 0.0), (0.9, False, 0.01),
                                                           (0.9, True, 0.0)])
def test_sgd_update(dtype, momentum, nesterov, weight_decay):
    p, buf = randn((5, 7), dtype, 1), np.zeros((5, 7), dtype)
    dp, dbuf = dev(p), dev(buf)
    for step in range(3):
        g = randn((5, 7), dtype, 10 + step)
        kw = dict(lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        assert kc.sgd_update(dp, dev(g), dbuf if momentum else None, **kw) is None
        ref.sgd_update(p, g, buf if momentum else None, **kw)
    assert_close(host(dp), p)
    assert_close(host(dbuf), buf)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay,decoupled", [(0.0, False), (0.1, False), (0.1, True)])
def test_adam_update(dtype, weight_decay, decoupled):
    p, m, v = randn((37,), dtype, 2), np.zeros(37, dtype), np.zeros(37, dtype)
    dp, dm, dv = dev(p), dev(m), dev(v)
    for step in range(1, 4):
        g = randn((37,), dtype, 20 + step)
        kw = dict(step=step, lr=0.01, weight_decay=weight_decay, decoupled_weight_decay=decoupled)
        kc.adam_update(dp, dev(g), dm, dv, **kw)
        ref.adam_update(p, g, m, v, **kw)
    assert_close(host(dp), p)
    assert_close(host(dm), m)
    assert_close(host(dv), v)


def test_optim_bad_input():
    p = dev(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="momentum_buf is required when momentum > 0"):
        kc.sgd_update(p, p, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"grad must have shape \(3,\), got \(2,\)"):
        kc.sgd_update(p, dev(np.ones(2, np.float32)), lr=0.1)
    with pytest.raises(ValueError, match="step must be >= 1"):
        kc.adam_update(p, p, p, p, step=0, lr=0.1)
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\), got 1.0"):
        kc.adam_update(p, p, p, p, step=1, lr=0.1, beta1=1.0)
