"""CUDA fused SGD and Adam/AdamW updates against the reference and the CPU kernels, on the shared case table."""

import numpy as np
import pytest

import jitgrad.kernels.cpu as kcpu
import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cases.optim import ADAM_CONFIGS, SGD_CONFIGS, SMALL_SHAPES, problem, run_adam, run_sgd
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=str)
@pytest.mark.parametrize("config", SGD_CONFIGS + ADAM_CONFIGS, ids=str)
def test_update_agrees_on_every_backend(config, shape, dtype):
    # Weight decay (L2 and decoupled), momentum, Nesterov and bias correction: the three backends take the
    # same steps (the CUDA and CPU kernels receive the same scalars, cast to the parameter's dtype).
    param, grads = problem(shape, dtype)
    run = run_adam if config in ADAM_CONFIGS else run_sgd
    expected = run(ref, config, param, grads)
    for backend, to_device, to_host in ((kc, dev, host), (kcpu, lambda a: a, lambda a: a)):
        for got, want in zip(run(backend, config, param, grads, to_device, to_host), expected):
            if want is not None:
                assert got.dtype == want.dtype
                assert_close(got, want)


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
