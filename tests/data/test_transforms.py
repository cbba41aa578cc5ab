"""Transforms and label helpers: values, dtypes, and their errors."""

import numpy as np
import pytest

from jitgrad.data import accuracy, min_max_scale, normalize, one_hot, onecold, to_float
from jitgrad.data.transforms import MNIST_MEAN, MNIST_STD


def test_to_float():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    out = to_float(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]], rtol=1e-7)
    assert to_float(x, np.float64).dtype == np.float64
    with pytest.raises(TypeError, match="to_float: expected uint8 pixels, got float32"):
        to_float(out)
    with pytest.raises(TypeError, match="dtype must be a float dtype, got int32"):
        to_float(x, np.int32)


def test_normalize_defaults_are_mnists_and_keep_dtype():
    t = normalize()
    assert (t.mean, t.std) == (MNIST_MEAN, MNIST_STD) == (0.1307, 0.3081)
    x = np.array([0.1307, 0.4388, 0.0], dtype=np.float32)
    out = t(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 1.0, -0.1307 / 0.3081], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(normalize(2.0, 4.0)(np.array([6.0])), [1.0])


def test_normalize_errors():
    with pytest.raises(ValueError, match="std must be positive and finite, got 0"):
        normalize(0.5, 0)
    with pytest.raises(ValueError, match="mean must be finite, got nan"):
        normalize(float("nan"), 1)
    with pytest.raises(TypeError, match=r"expected a float array \(apply to_float first\), got uint8"):
        normalize()(np.zeros(3, np.uint8))


def test_min_max_scale():
    x = np.array([[0, 5, 10], [2, 2, 2]], dtype=np.uint8)
    np.testing.assert_allclose(min_max_scale(x), [[0, 0.5, 1], [0.2, 0.2, 0.2]])
    per = min_max_scale(x, -1.0, 1.0, per_sample=True)
    np.testing.assert_allclose(per, [[-1, 0, 1], [-1, -1, -1]])  # a constant sample maps to low
    assert per.dtype == np.float32
    assert min_max_scale(x.astype(np.float64)).dtype == np.float64


def test_min_max_scale_errors():
    with pytest.raises(ValueError, match="need low < high, got low=1, high=1"):
        min_max_scale(np.zeros(3), 1, 1)
    with pytest.raises(ValueError, match=r"per_sample needs a batch of at least 2 dimensions, got shape \(3,\)"):
        min_max_scale(np.zeros(3), per_sample=True)
    with pytest.raises(TypeError, match="expected a numeric array, got bool"):
        min_max_scale(np.zeros(3, bool))


def test_one_hot_and_onecold_are_inverse():
    labels = np.array([3, 0, 2, 3], dtype=np.uint8)
    oh = one_hot(labels, 4)
    np.testing.assert_array_equal(oh, [[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert oh.dtype == np.float32 and one_hot(labels, 4, np.int8).dtype == np.int8
    np.testing.assert_array_equal(onecold(oh), labels)
    np.testing.assert_array_equal(onecold(oh, labels="abcd"), list("dacd"))
    assert onecold(np.array([[0.5, 0.5]]))[0] == 0  # ties: first index


@pytest.mark.parametrize("labels, k, error, message", [
    (np.array([0, 4]), 4, ValueError, r"labels must lie in \[0, 4\), got values in \[0, 4\]"),
    (np.array([-1, 2]), 4, ValueError, r"labels must lie in \[0, 4\), got values in \[-1, 2\]"),
    (np.array([0.0]), 4, TypeError, "labels must be integers, got float64"),
    (np.zeros((2, 2), int), 4, ValueError, r"labels must be 1-D, got shape \(2, 2\)"),
    (np.array([0]), 0, ValueError, "num_classes must be a positive int, got 0"),
    (np.array([0]), 2.0, TypeError, "num_classes must be a positive int, got 2.0"),
])
def test_one_hot_errors(labels, k, error, message):
    with pytest.raises(error, match=message):
        one_hot(labels, k)


def test_onecold_errors():
    with pytest.raises(ValueError, match=r"scores must be 2-D \(N, C\), got shape \(3,\)"):
        onecold(np.zeros(3))
    with pytest.raises(ValueError, match="2 labels for 3 classes"):
        onecold(np.zeros((1, 3)), labels=["a", "b"])


def test_accuracy():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [5.0, 0.0, 9.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1, 0, 2])
    assert accuracy(logits, labels) == 0.5
    assert accuracy(logits, one_hot(labels, 3)) == 0.5
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) do not match logits of shape \(4, 3\)"):
        accuracy(logits, labels[:3])
    with pytest.raises(ValueError, match=r"logits must be 2-D \(N, C\) with N >= 1, got shape \(0, 3\)"):
        accuracy(np.zeros((0, 3)), np.zeros(0, int))
