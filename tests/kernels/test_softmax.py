"""Softmax, log-softmax and softmax cross-entropy: CPU held to the reference, reference to finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from tests.helpers import DTYPES, assert_close, numerical_grad, randn

BACKENDS = [pytest.param(ref, id="reference"), pytest.param(cpu, id="cpu")]

# (shape, axis): last axis, a middle axis with trailing dims, axis 0 (also of a single column), batch 1, one class.
SOFTMAX_CASES = [((5,), 0), ((1, 1), -1), ((1, 10), 1), ((7, 3), -1), ((7, 3), 0), ((6, 1), 0), ((4, 5, 6), 1),
                 ((4, 5, 6), -3), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), 3)]


def _labels(n, c, kind, seed=0):
    gen = np.random.default_rng(seed)
    if kind == "prob":
        p = gen.random((n, c)) + 0.1
        return p / p.sum(axis=1, keepdims=True)
    return gen.integers(0, c, size=n).astype(kind)


# ----------------------------------------------------------------------------- softmax, log_softmax

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_cpu_matches_reference(name, shape, axis, dtype):
    x = randn(shape, dtype, seed=1, scale=5.0)
    g = randn(shape, dtype, seed=2)
    y = getattr(cpu, name)(x, axis=axis)
    assert y.dtype == x.dtype
    assert_close(y, getattr(ref, name)(x, axis=axis), dtype)
    gx = getattr(cpu, name + "_backward")(g, y, axis=axis)
    assert_close(gx, getattr(ref, name + "_backward")(g, y, axis=axis), dtype)


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), data=st.data(),
       dtype=st.sampled_from(DTYPES), log=st.booleans())
def test_softmax_cpu_matches_reference_random_shapes(shape, data, dtype, log):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    name = "log_softmax" if log else "softmax"
    x = randn(tuple(shape), dtype, seed=len(shape), scale=4.0)
    y = getattr(cpu, name)(x, axis=axis)
    assert_close(y, getattr(ref, name)(x, axis=axis), dtype)
    assert_close(getattr(cpu, name + "_backward")(x, y, axis=axis),
                 getattr(ref, name + "_backward")(x, y, axis=axis), dtype)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_reference_backward_matches_finite_differences(name, axis):
    x = randn((2, 3, 4), np.float64, seed=5)
    # Weighted: the gradient of a plain sum(softmax) is identically zero.
    weight = randn(x.shape, np.float64, seed=6)
    forward = getattr(ref, name)
    expected = numerical_grad(lambda v: float(np.sum(forward(v, axis=axis) * weight)), x)
    actual = getattr(ref, name + "_backward")(weight, forward(x, axis=axis), axis=axis)
    assert_close(actual, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_is_stable_and_handles_minus_inf(backend, dtype):
    x = np.array([[1000.0, 999.0, -np.inf], [-1000.0, -1000.0, -1000.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = backend.softmax(x)
        logy = backend.log_softmax(x)
    e = 1 / (1 + math.e)
    assert_close(y, np.array([[1 - e, e, 0], [1 / 3, 1 / 3, 1 / 3]], dtype), dtype)
    assert_close(logy[:, :2], np.array([[math.log(1 - e), math.log(e)], [-math.log(3), -math.log(3)]], dtype), dtype)
    assert logy[0, 2] == -np.inf


# ----------------------------------------------------------------------------- cross-entropy

# The last shape is past the CPU backend's serial/parallel switch (2**15 logits).
CE_SHAPES = [(1, 1), (1, 10), (7, 3), (128, 10), (3277, 10)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["int64", "int32", "uint8", "prob"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_cpu_matches_reference(shape, kind, reduction, eps, dtype):
    n, c = shape
    logits = randn(shape, dtype, seed=3, scale=3.0)
    labels = _labels(n, c, kind).astype(dtype) if kind == "prob" else _labels(n, c, kind)
    kw = {"reduction": reduction, "label_smoothing": eps}
    loss, probs = cpu.softmax_cross_entropy(logits, labels, **kw)
    loss_ref, probs_ref = ref.softmax_cross_entropy(logits, labels, **kw)
    assert loss.dtype == dtype and loss.shape == ((n,) if reduction == "none" else ())
    assert_close(loss, loss_ref, dtype)
    assert_close(probs, probs_ref, dtype)
    grad_loss = randn((n,), dtype, seed=4) if reduction == "none" else 0.7
    grad = cpu.softmax_cross_entropy_backward(probs, labels, grad_loss, **kw)
    assert_close(grad, ref.softmax_cross_entropy_backward(probs_ref, labels, grad_loss, **kw), dtype)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 9), c=st.integers(1, 9), kind=st.sampled_from(["int64", "prob"]),
       reduction=st.sampled_from(["mean", "sum", "none"]), eps=st.sampled_from([0.0, 0.25]),
       dtype=st.sampled_from(DTYPES))
def test_cross_entropy_cpu_matches_reference_random_shapes(n, c, kind, reduction, eps, dtype):
    logits = randn((n, c), dtype, seed=n * c, scale=3.0)
    labels = _labels(n, c, kind).astype(dtype) if kind == "prob" else _labels(n, c, kind)
    kw = {"reduction": reduction, "label_smoothing": eps}
    loss, probs = cpu.softmax_cross_entropy(logits, labels, **kw)
    loss_ref, probs_ref = ref.softmax_cross_entropy(logits, labels, **kw)
    assert_close(loss, loss_ref, dtype)
    assert_close(probs, probs_ref, dtype)
    grad_loss = np.ones(n, dtype) if reduction == "none" else np.array(2.0, dtype)
    assert_close(cpu.softmax_cross_entropy_backward(probs, labels, grad_loss, **kw),
                 ref.softmax_cross_entropy_backward(probs_ref, labels, grad_loss, **kw), dtype)


@pytest.mark.parametrize("kind", ["int64", "prob"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_reference_backward_matches_finite_differences(kind, reduction, eps):
    n, c = 3, 4
    logits = randn((n, c), np.float64, seed=7)
    labels = _labels(n, c, kind)
    kw = {"reduction": reduction, "label_smoothing": eps}
    # For "none" the per-row losses are weighted, so every row's gradient is scaled differently.
    grad_loss = randn((n,), np.float64, seed=8) if reduction == "none" else 1.5
    expected = numerical_grad(
        lambda v: float(np.sum(ref.softmax_cross_entropy(v, labels, **kw)[0] * grad_loss)), logits)
    probs = ref.softmax_cross_entropy(logits, labels, **kw)[1]
    assert_close(ref.softmax_cross_entropy_backward(probs, labels, grad_loss, **kw), expected,
                 rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_minus_inf_logit(backend, dtype):
    logits = np.array([[0.0, -np.inf, 1.0], [2.0, 0.0, -np.inf]], dtype=dtype)
    labels = np.array([2, 0])
    lse0, lse1 = math.log(1 + math.e), math.log(math.e ** 2 + 1)
    expected = np.array([lse0 - 1.0, lse1 - 2.0], dtype)
    with np.errstate(invalid="raise"):
        loss, probs = backend.softmax_cross_entropy(logits, labels, reduction="none")
        # Probability targets with zero mass on the -inf class: still no NaN.
        loss_p, _ = backend.softmax_cross_entropy(logits, np.eye(3, dtype=dtype)[labels], reduction="none")
        grad = backend.softmax_cross_entropy_backward(probs, labels, np.ones(2, dtype), reduction="none")
    assert_close(loss, expected, dtype)
    assert_close(loss_p, expected, dtype)
    assert probs[0, 1] == 0 and probs[1, 2] == 0
    assert not np.isnan(grad).any() and grad[0, 1] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_label_smoothing_by_hand(backend):
    logits = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]])
    labels = np.array([0, 2])
    eps = 0.3
    loss, probs = backend.softmax_cross_entropy(logits, labels, reduction="mean", label_smoothing=eps)
    expected_rows = []
    for row, y in zip(logits, labels):
        logp = row - math.log(sum(math.exp(v) for v in row))
        target = [eps / 3 + (1 - eps if j == y else 0.0) for j in range(3)]
        expected_rows.append(-sum(t * lp for t, lp in zip(target, logp)))
    assert_close(loss, np.array(sum(expected_rows) / 2))
    grad = backend.softmax_cross_entropy_backward(probs, labels, 1.0, reduction="mean", label_smoothing=eps)
    onehot = np.eye(3)[labels]
    assert_close(grad, (probs - ((1 - eps) * onehot + eps / 3)) / 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_plain_value_and_zero_d_grad_loss(backend):
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0]], dtype=np.float32)
    loss, _ = backend.softmax_cross_entropy(logits, np.array([0, 1]), reduction="sum")
    assert loss.shape == () and loss.dtype == np.float32
    assert_close(loss, np.array(math.log(2) + math.log(4), np.float32))
    probs = backend.softmax(logits)
    grad = backend.softmax_cross_entropy_backward(probs, np.array([0, 1]), np.array(2.0, np.float32), reduction="sum")
    assert_close(grad, np.array([[-1.0, 1.0], [1.5, -1.5]], np.float32))


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_bad_input(backend):
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int64"):
        backend.softmax(np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="axis=2 is out of range for a 2-D array"):
        backend.log_softmax(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an int, got 1.0"):
        backend.softmax(x, axis=1.0)
    with pytest.raises(ValueError, match="x must have at least 1 dimension"):
        backend.softmax(np.array(1.0))
    with pytest.raises(ValueError, match="x has length 0 along axis 1"):
        backend.softmax(np.ones((2, 0)), axis=1)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        backend.softmax(x.T)
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 3\), got \(3,\)"):
        backend.softmax_backward(np.ones(3), x)
    with pytest.raises(TypeError, match="y has dtype float32 but grad_out has dtype float64"):
        backend.log_softmax_backward(x, x.astype(np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_bad_input(backend):
    logits = np.zeros((2, 3))
    labels = np.array([0, 2])
    ce = backend.softmax_cross_entropy
    with pytest.raises(ValueError, match="logits must be 2-D, got 1-D"):
        ce(np.zeros(3), labels)
    with pytest.raises(ValueError, match="logits must have at least one class"):
        ce(np.zeros((2, 0)), labels)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\), got 3"):
        ce(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\), got -1"):
        ce(logits, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\), got \(3,\)"):
        ce(logits, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="labels must be integer class indices or a float probability matrix, "
                                        "got dtype bool"):
        ce(logits, np.array([True, False]))
    with pytest.raises(TypeError, match="labels has dtype float32 but logits has dtype float64"):
        ce(logits, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"labels must have shape \(2, 3\), got \(2, 4\)"):
        ce(logits, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="labels must be an array, got list"):
        ce(logits, [0, 1])
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        ce(logits, labels, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be <= 1.0, got 1.5"):
        ce(logits, labels, label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be >= 0.0, got -0.1"):
        ce(logits, labels, label_smoothing=-0.1)
    back = backend.softmax_cross_entropy_backward
    with pytest.raises(ValueError, match=r"grad_loss must have shape \(2,\), got \(3,\)"):
        back(logits, labels, np.ones(3), reduction="none")
    with pytest.raises(TypeError, match="grad_loss must be an array, got float"):
        back(logits, labels, 1.0, reduction="none")
    with pytest.raises(ValueError, match="grad_loss must be 0-D, got 1-D"):
        back(logits, labels, np.ones(2), reduction="mean")
    with pytest.raises(TypeError, match="grad_loss must be a real number, got str"):
        back(logits, labels, "1", reduction="sum")
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\), got 7"):
        back(logits, np.array([7, 0]))


# ----------------------------------------------------------------------------- NaN, inf, precision (issue 12)

#: Rows of logits: a NaN, +inf, -inf, all -inf, +inf and -inf together, ordinary.
SPECIAL_ROWS = np.array([
    [1.0, np.nan, 2.0, 0.5],
    [1.0, np.inf, 2.0, 0.5],
    [1.0, -np.inf, 2.0, 0.5],
    [-np.inf, -np.inf, -np.inf, -np.inf],
    [np.inf, -np.inf, 0.0, 1.0],
    [0.5, -0.25, 2.0, 1.0],
])


def _assert_same_specials(actual, expected, dtype):
    r, a = (1e-4, 1e-5) if np.dtype(dtype) == np.float32 else (1e-10, 1e-12)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=r, atol=a, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_family_nan_and_inf_as_reference(dtype, axis):
    x = SPECIAL_ROWS.astype(dtype)
    g = np.linspace(-1, 1, x.size).reshape(x.shape).astype(dtype)
    g[5, 1] = np.nan
    for name in ("softmax", "log_softmax"):
        with np.errstate(all="ignore"):
            want = getattr(ref, name)(x, axis=axis)
            y = getattr(ref, name)(np.where(np.isfinite(x), x, 0.0).astype(dtype), axis=axis)
            want_grad = getattr(ref, name + "_backward")(g, y, axis=axis)
        _assert_same_specials(getattr(cpu, name)(x, axis=axis), want, dtype)
        _assert_same_specials(getattr(cpu, name + "_backward")(g, y, axis=axis), want_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_nan_and_inf_as_reference(dtype, kind, eps):
    x = SPECIAL_ROWS.astype(dtype)
    labels = np.array([0, 1, 2, 3, 0, 3]) if kind == "index" else ref.softmax(x[5:6].repeat(6, 0))
    with np.errstate(all="ignore"):
        want_loss, want_probs = ref.softmax_cross_entropy(x, labels, reduction="none", label_smoothing=eps)
    loss, probs = cpu.softmax_cross_entropy(x, labels, reduction="none", label_smoothing=eps)
    _assert_same_specials(loss, want_loss, dtype)
    _assert_same_specials(probs, want_probs, dtype)
    grad = np.array([1.0, np.nan, -np.inf, 1.0, 2.0, 0.5], dtype)
    with np.errstate(all="ignore"):
        want_grad = ref.softmax_cross_entropy_backward(want_probs, labels, grad, reduction="none",
                                                             label_smoothing=eps)
    _assert_same_specials(cpu.softmax_cross_entropy_backward(want_probs, labels, grad, reduction="none",
                                                             label_smoothing=eps), want_grad, dtype)


#: float32 logits where a careless order loses digits: large, mixed-sign, nearly equal.
HARD_LOGITS = np.array([
    [1e5, 1e5, 1e5 - 1],
    [-1e5, 1e5, 0.0],
    [30000.5, 30000.25, 30000.0],
    [1e30, 1e30, -1e30],
    [-3e4, -3e4 - 0.5, -3e4 + 0.125],
    [1.0000001, 1.0, 0.99999994],
], dtype=np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_precision_at_large_and_close_logits(backend):
    # Held to float64 on the same float32 inputs: within a few float32 ulps, not just rtol 1e-4.
    x64 = HARD_LOGITS.astype(np.float64)
    np.testing.assert_allclose(backend.log_softmax(HARD_LOGITS)[0], [-0.8619948, -0.8619948, -1.8619948],
                               rtol=3e-7)
    np.testing.assert_allclose(backend.log_softmax(HARD_LOGITS), ref.log_softmax(x64), rtol=5e-7, atol=1e-37)
    np.testing.assert_allclose(backend.softmax(HARD_LOGITS), ref.softmax(x64), rtol=1e-6, atol=1e-37)
    labels = np.array([2, 0, 1, 2, 1, 0])
    loss, _ = backend.softmax_cross_entropy(HARD_LOGITS, labels, reduction="none")
    want, _ = ref.softmax_cross_entropy(x64, labels, reduction="none")
    np.testing.assert_allclose(loss, want, rtol=1e-6, atol=1e-37)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [19, 83, 150])
@pytest.mark.parametrize("special", [None, np.nan, np.inf, -np.inf])
def test_softmax_row_max_every_position(special, c, dtype):
    # The CPU row max: up to 4 vectors a row, eight scalar accumulators and a scalar tail (19
    # columns); from 4 vectors, four vector accumulators, a one-vector tail and a scalar tail
    # (83 = 64 + 16 + 3 float32 lanes on AVX-512, 80 + 3 on AVX2; 150). Each row puts the largest
    # (or a non-finite) logit at another column, so in every accumulator, lane and tail.
    x = np.tile(randn((1, c), dtype, seed=8), (c, 1))
    x[np.arange(c), np.arange(c)] = 200.0 if special is None else special  # a missed max: exp overflows
    for name in ("softmax", "log_softmax"):
        with np.errstate(all="ignore"):
            want = getattr(ref, name)(x)
        _assert_same_specials(getattr(cpu, name)(x), want, dtype)
        if name == "softmax" and special is None:
            loss, probs = cpu.softmax_cross_entropy(x, np.arange(c), reduction="none")
            _assert_same_specials(probs, want, dtype)


@pytest.mark.parametrize("threshold", [1, 1 << 62], ids=["parallel", "serial"])
@pytest.mark.parametrize("shape", [(1000, 10), (9, 70)], ids=["short-rows", "long-rows"])
def test_parallel_and_serial_twins_match_reference(monkeypatch, shape, threshold):
    # Short rows go by blocks of rows (1000 x 10: two full blocks and a partial one), long rows
    # row by row; each on the parallel and the serial twin.
    import importlib

    sm = importlib.import_module("jitgrad.kernels.cpu.softmax")  # the package re-exports a function of that name
    monkeypatch.setattr(sm, "_PARALLEL_MIN_SIZE", threshold)
    dtype = np.float32
    x, g = randn(shape, dtype, seed=4, scale=4.0), randn(shape, dtype, seed=5)
    for name in ("softmax", "log_softmax"):
        y = getattr(cpu, name)(x)
        assert_close(y, getattr(ref, name)(x), dtype)
        assert_close(getattr(cpu, name + "_backward")(g, y), getattr(ref, name + "_backward")(g, y), dtype)
    for labels in (_labels(*shape, "int64"), _labels(*shape, "prob").astype(dtype)):
        for eps in (0.0, 0.1):
            loss, probs = cpu.softmax_cross_entropy(x, labels, reduction="none", label_smoothing=eps)
            want_loss, want_probs = ref.softmax_cross_entropy(x, labels, reduction="none", label_smoothing=eps)
            assert_close(loss, want_loss, dtype)
            assert_close(probs, want_probs, dtype)
            for reduction in ("mean", "sum"):
                total, _ = cpu.softmax_cross_entropy(x, labels, reduction=reduction, label_smoothing=eps)
                assert_close(total, ref.softmax_cross_entropy(x, labels, reduction=reduction,
                                                              label_smoothing=eps)[0], dtype)
                assert_close(cpu.softmax_cross_entropy_backward(probs, labels, 0.5, reduction=reduction,
                                                                label_smoothing=eps),
                             ref.softmax_cross_entropy_backward(want_probs, labels, 0.5, reduction=reduction,
                                                                label_smoothing=eps), dtype)
    bad = _labels(*shape, "int64")
    bad[-1] = shape[1]  # in the last block: the kernels mark it, the wrapper names it
    with pytest.raises(ValueError, match=rf"labels must be class indices in \[0, {shape[1]}\), got {shape[1]}"):
        cpu.softmax_cross_entropy(x, bad)
