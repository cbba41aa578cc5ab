"""Structural tensor ops, grouped/transposed conv and adaptive pooling through the autograd on the
CUDA backend: values and gradients match the CPU, all on the device (simulator: tiny shapes)."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad as jg
from jitgrad.nn import functional as F
from tests.cuda.test_autograd import check_op

COND = np.random.default_rng(5).standard_normal((3, 4)) > 0


@pytest.mark.parametrize("name,fn,shapes", [
    ("cat", lambda a, b: jg.cat([a, b], dim=1), [(2, 3), (2, 2)]),
    ("stack-split", lambda a, b: jg.stack([a, b], 0).split([1, 2], dim=2)[1], [(2, 3), (2, 3)]),
    ("where", lambda a, b: jg.where(COND, a, b), [(3, 4), (3, 4)]),
    ("clamp", lambda a: a.clamp(-0.3, 0.4), [(3, 4)]),
    ("squeeze-var-std", lambda a: a.unsqueeze(0).var(dim=2).squeeze(0) + a.std(unbiased=False), [(3, 4)]),
    ("pad", lambda a: F.pad(a, (1, 2, 0, 1), value=0.5), [(1, 2, 3, 3)]),
    ("pad-reflect", lambda a: F.pad(a, (2, 1, 1, 0), mode="reflect"), [(1, 1, 3, 4)]),
    ("batched-matmul", lambda a, b: a @ b, [(2, 2, 3), (2, 3, 2)]),
])
def test_structural_ops_on_the_device(name, fn, shapes):
    check_op(fn, *shapes, check_grad=False)


def test_grouped_and_transposed_conv_and_adaptive_pools_on_the_device():
    check_op(lambda x, w: F.conv2d(x, w, padding=1, groups=2), (1, 4, 3, 3), (2, 2, 2, 2), check_grad=False)
    check_op(lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=1), (1, 2, 2, 2), (2, 1, 2, 2),
             check_grad=False)
    check_op(lambda x: F.adaptive_avg_pool2d(x, (2, 1)) + F.adaptive_max_pool2d(x, (2, 1)), (1, 2, 3, 3),
             check_grad=False)
