"""CUDA softmax / log_softmax over any axis, and softmax cross-entropy, against the reference."""

import numpy as np
import pytest

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, randn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((2, 10), -1), ((2, 9, 2), 1), ((3, 2), 0)])
def test_softmax_family_any_axis(dtype, shape, axis):
    # Few rows (the simulator's barriers are slow), but lengths above the 8 threads per block
    # so each thread folds several elements, and inner strides > 1 for axis 1 and 0.
    x = randn(shape, dtype, seed=1, scale=4.0)
    g = randn(x.shape, dtype, seed=2)
    y, ly = ref.softmax(x, axis=axis), ref.log_softmax(x, axis=axis)
    assert_close(host(kc.softmax(dev(x), axis=axis)), y)
    assert_close(host(kc.log_softmax(dev(x), axis=axis)), ly)
    assert_close(host(kc.softmax_backward(dev(g), dev(y), axis=axis)), ref.softmax_backward(g, y, axis=axis))
    assert_close(host(kc.log_softmax_backward(dev(g), dev(ly), axis=axis)),
                 ref.log_softmax_backward(g, ly, axis=axis))


def test_softmax_large_and_minus_inf_logits():
    x = np.array([[1000.0, 1001.0, -np.inf]], np.float32)
    got = host(kc.softmax(dev(x)))
    assert_close(got, ref.softmax(x))
    assert got[0, 2] == 0.0 and np.isfinite(got).all()


LABELS = {
    "index": np.array([0, 4, 6, 3, 1]),
    "probs": ref.softmax(randn((5, 7), np.float64, seed=3)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["index", "probs"])
@pytest.mark.parametrize("reduction,eps", [("mean", 0.0), ("sum", 0.1), ("none", 0.1)])
def test_softmax_cross_entropy(dtype, kind, reduction, eps):
    logits = randn((5, 7), dtype, seed=4, scale=2.0)
    labels = LABELS[kind].astype(dtype) if kind == "probs" else LABELS[kind]
    loss, probs = kc.softmax_cross_entropy(dev(logits), dev(labels), reduction=reduction, label_smoothing=eps)
    rloss, rprobs = ref.softmax_cross_entropy(logits, labels, reduction=reduction, label_smoothing=eps)
    assert loss.shape == rloss.shape  # () for mean/sum: a device scalar, no host round-trip
    assert_close(host(loss), rloss)
    assert_close(host(probs), rprobs)
    grad_loss = randn((5,), dtype, seed=5) if reduction == "none" else 0.7
    dev_grad_loss = dev(grad_loss) if reduction == "none" else dev(np.array(0.7, dtype))
    expected = ref.softmax_cross_entropy_backward(rprobs, labels, grad_loss, reduction=reduction,
                                                  label_smoothing=eps)
    for gl in ([grad_loss, dev_grad_loss] if reduction != "none" else [dev_grad_loss]):
        got = kc.softmax_cross_entropy_backward(probs, dev(labels), gl, reduction=reduction, label_smoothing=eps)
        assert_close(host(got), expected)


def test_cross_entropy_minus_inf_logit_without_target_mass_is_finite():
    logits = np.array([[0.5, -np.inf, 1.0]], np.float64)
    loss, probs = kc.softmax_cross_entropy(dev(logits), dev(np.array([2])))
    assert_close(host(loss), ref.softmax_cross_entropy(logits, np.array([2]))[0])
    assert np.isfinite(host(loss)) and host(probs)[0, 1] == 0.0


def test_out_of_range_label_gives_nan_not_a_crash():
    _, _ = kc.softmax_cross_entropy(dev(np.zeros((2, 3))), dev(np.array([0, 3])))
    loss, _ = kc.softmax_cross_entropy(dev(np.zeros((2, 3))), dev(np.array([0, 3])), reduction="none")
    assert np.isfinite(host(loss)[0]) and np.isnan(host(loss)[1])


def test_softmax_bad_input():
    x = dev(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="axis=2 is out of range for a 2-D array"):
        kc.softmax(x, axis=2)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        kc.softmax_cross_entropy(x, dev(np.array([0, 1])), reduction="avg")
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\), got \(3,\)"):
        kc.softmax_cross_entropy(x, dev(np.array([0, 1, 2])))
    with pytest.raises(TypeError, match="labels must be integer class indices or a float probability matrix"):
        kc.softmax_cross_entropy(x, dev(np.array([True, False])))
    with pytest.raises(ValueError, match=r"grad_loss must be a scalar \(shape \(\) or \(1,\)\)"):
        kc.softmax_cross_entropy_backward(x, dev(np.array([0, 1])), dev(np.ones(2, np.float32)))
    with pytest.raises(ValueError, match="label_smoothing must be <= 1.0, got 1.5"):
        kc.softmax_cross_entropy(x, dev(np.array([0, 1])), label_smoothing=1.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_as_reference(dtype):
    # The CPU tests' rows of specials, through every kernel of the family.
    from tests.kernels.test_softmax import SPECIAL_ROWS, _assert_same_specials

    x = SPECIAL_ROWS.astype(dtype)
    g = np.linspace(-1, 1, x.size).reshape(x.shape).astype(dtype)
    g[5, 1] = np.nan
    y = ref.softmax(np.where(np.isfinite(x), x, 0.0).astype(dtype))
    for name in ("softmax", "log_softmax"):
        with np.errstate(all="ignore"):
            want = getattr(ref, name)(x)
            want_grad = getattr(ref, name + "_backward")(g, y)
        _assert_same_specials(host(getattr(kc, name)(dev(x))), want, dtype)
        _assert_same_specials(host(getattr(kc, name + "_backward")(dev(g), dev(y))), want_grad, dtype)
    labels = np.array([0, 1, 2, 3, 0, 3])
    with np.errstate(all="ignore"):
        want_loss, want_probs = ref.softmax_cross_entropy(x, labels, reduction="none", label_smoothing=0.1)
    loss, probs = kc.softmax_cross_entropy(dev(x), dev(labels), reduction="none", label_smoothing=0.1)
    _assert_same_specials(host(loss), want_loss, dtype)
    _assert_same_specials(host(probs), want_probs, dtype)


def test_float32_precision_at_large_and_close_logits():
    from tests.kernels.test_softmax import HARD_LOGITS

    x64 = HARD_LOGITS.astype(np.float64)
    np.testing.assert_allclose(host(kc.log_softmax(dev(HARD_LOGITS))), ref.log_softmax(x64), rtol=5e-7, atol=1e-37)
    np.testing.assert_allclose(host(kc.softmax(dev(HARD_LOGITS))), ref.softmax(x64), rtol=1e-6, atol=1e-37)
    labels = np.array([2, 0, 1, 2, 1, 0])
    loss, _ = kc.softmax_cross_entropy(dev(HARD_LOGITS), dev(labels), reduction="none")
    np.testing.assert_allclose(host(loss), ref.softmax_cross_entropy(x64, labels, reduction="none")[0], rtol=1e-6,
                               atol=1e-37)
