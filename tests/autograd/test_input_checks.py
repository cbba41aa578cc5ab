"""Data jitgrad cannot compute with is refused where it enters: object and complex tensors,
negative probability targets, binary cross-entropy outside [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad as jg
from jitgrad.nn import functional as F


@pytest.mark.parametrize("data", [
    np.array([1, None], dtype=object),
    np.array([1 + 2j, 3j]),
    [1 + 2j],
    np.array([1.0, 2.0], dtype=np.complex64),
])
def test_tensor_rejects_object_and_complex(data):
    with pytest.raises(TypeError, match=r"^tensor\(\) cannot hold data of dtype (object|complex)"):
        jg.tensor(data)
    if isinstance(data, np.ndarray):
        with pytest.raises(TypeError, match="cannot hold data of dtype"):
            jg.Tensor(data)


def test_tensor_with_explicit_complex_dtype_is_rejected():
    with pytest.raises(TypeError, match="complex128"):
        jg.tensor([1.0, 2.0], dtype=np.complex128)


def test_negative_probability_target_is_rejected():
    logits = jg.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    target = np.array([[1.5, -0.5, 0.0], [0.0, 1.0, 0.0]], np.float32)
    with pytest.raises(ValueError, match=r"^cross_entropy: probability target must be >= 0, got -0.5"):
        F.cross_entropy(logits, target)


@pytest.mark.parametrize("probs,target,name", [
    ([0.5, 1.2], [0.0, 1.0], "probs"),
    ([0.5, -0.1], [0.0, 1.0], "probs"),
])
def test_binary_cross_entropy_outside_unit_interval_is_rejected(probs, target, name):
    with pytest.raises(ValueError, match=rf"^binary_cross_entropy: {name} must lie in \[0, 1\]"):
        F.binary_cross_entropy(jg.tensor(np.array(probs, np.float32)), np.array(target, np.float32))


def test_binary_cross_entropy_in_range_still_works():
    loss = F.binary_cross_entropy(jg.tensor(np.array([0.0, 1.0, 0.25], np.float32)),
                                  np.array([0.0, 1.0, 1.0], np.float32))
    assert np.isclose(loss.item(), -np.log(0.25) / 3, rtol=1e-5)
