"""Batch norm and layer norm: CPU held to the reference, reference to finite differences and to its definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitgrad.kernels import cpu
from jitgrad.kernels import reference as ref
from tests.helpers import DTYPES, assert_close, numerical_grad, randn

# Batch 1 with spatial size, odd channel counts, 2-D input, a 1x1 image.
BN_SHAPES = [(4, 3), (1, 5, 2, 3), (3, 2, 4, 5), (2, 7, 1, 1), (5, 1, 3, 3)]
LN_CASES = [((4, 6), (6,)), ((2, 3, 5), (5,)), ((2, 3, 5), (3, 5)), ((1, 7), 7), ((3, 2, 2, 3), (2, 2, 3))]


def _bn_args(shape, dtype, affine=True, running=True, seed=0):
    c = shape[1]
    x = randn(shape, dtype, seed=seed, scale=3.0) + dtype(1.5)
    w = randn((c,), dtype, seed=seed + 1) if affine else None
    b = randn((c,), dtype, seed=seed + 2) if affine else None
    rm = randn((c,), dtype, seed=seed + 3) if running else None
    rv = (np.abs(randn((c,), dtype, seed=seed + 4)) + dtype(0.5)) if running else None
    return x, rm, rv, w, b


# ----------------------------------------------------------------------------- reference semantics

def test_batch_norm_reference_matches_its_definition_and_pytorch_running_update():
    x, rm, rv, w, b = _bn_args((3, 2, 4, 5), np.float64)
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, invstd = ref.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3, eps=1e-3)
    mu = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    expected = (x - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-3) \
        * w[None, :, None, None] + b[None, :, None, None]
    assert_close(y, expected)
    assert_close(mean, mu)
    assert_close(invstd, 1 / np.sqrt(var + 1e-3))
    # Running variance uses the *unbiased* batch variance (ddof=1), as PyTorch.
    assert_close(rm, 0.7 * rm0 + 0.3 * mu)
    assert_close(rv, 0.7 * rv0 + 0.3 * x.var(axis=(0, 2, 3), ddof=1))
    # Inference mode: running statistics, nothing updated.
    rm1, rv1 = rm.copy(), rv.copy()
    y_eval, _, _ = ref.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3)
    assert_close(y_eval, (x - rm1[None, :, None, None]) / np.sqrt(rv1[None, :, None, None] + 1e-3)
                 * w[None, :, None, None] + b[None, :, None, None])
    assert np.array_equal(rm, rm1) and np.array_equal(rv, rv1)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_batch_norm_reference_backward_matches_finite_differences(shape, training):
    x, rm, rv, w, b = _bn_args(shape, np.float64, seed=3)
    g = randn(shape, np.float64, seed=9)

    def loss_x(xv):
        return float((ref.batch_norm(xv, rm.copy(), rv.copy(), w, b, training=training)[0] * g).sum())

    def loss_w(wv):
        return float((ref.batch_norm(x, rm.copy(), rv.copy(), wv, b, training=training)[0] * g).sum())

    def loss_b(bv):
        return float((ref.batch_norm(x, rm.copy(), rv.copy(), w, bv, training=training)[0] * g).sum())

    _, mean, invstd = ref.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)
    gx, gw, gb = ref.batch_norm_backward(g, x, w, mean, invstd, training=training)
    assert_close(gx, numerical_grad(loss_x, x), rtol=1e-6, atol=1e-7)
    assert_close(gw, numerical_grad(loss_w, w), rtol=1e-6, atol=1e-7)
    assert_close(gb, numerical_grad(loss_b, b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape,norm", [((3, 4), (4,)), ((2, 2, 3), (2, 3))])
def test_layer_norm_reference_matches_definition_and_finite_differences(shape, norm):
    x = randn(shape, np.float64, seed=1, scale=2.0)
    w, b = randn(norm, np.float64, seed=2), randn(norm, np.float64, seed=3)
    g = randn(shape, np.float64, seed=4)
    axes = tuple(range(x.ndim - len(norm), x.ndim))
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    y, mean, invstd = ref.layer_norm(x, norm, w, b, eps=1e-4)
    assert_close(y, (x - mu) / np.sqrt(var + 1e-4) * w + b)
    gx, gw, gb = ref.layer_norm_backward(g, x, w, mean, invstd)
    f = lambda xv: float((ref.layer_norm(xv, norm, w, b, eps=1e-4)[0] * g).sum())  # noqa: E731
    assert_close(gx, numerical_grad(f, x), rtol=1e-6, atol=1e-7)
    assert_close(gw, numerical_grad(lambda wv: float((ref.layer_norm(x, norm, wv, b, eps=1e-4)[0] * g).sum()), w),
                 rtol=1e-6, atol=1e-7)
    assert_close(gb, g.reshape(-1, *norm).sum(axis=0))


# ----------------------------------------------------------------------------- CPU against the reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("training,affine,running", [(True, True, True), (True, False, False), (False, True, True),
                                                     (False, False, True)])
def test_batch_norm_cpu_matches_reference(shape, dtype, training, affine, running):
    if training and shape[0] * int(np.prod(shape[2:])) <= 1:
        pytest.skip("one value per channel is an error in training mode (tested below)")
    x, rm, rv, w, b = _bn_args(shape, dtype, affine, running)
    rm_ref = None if rm is None else rm.copy()
    rv_ref = None if rv is None else rv.copy()
    y, mean, invstd = cpu.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-4)
    ey, emean, einvstd = ref.batch_norm(x, rm_ref, rv_ref, w, b, training=training, momentum=0.2, eps=1e-4)
    assert y.dtype == mean.dtype == invstd.dtype == dtype
    assert_close(y, ey, dtype)
    assert_close(mean, emean, dtype)
    assert_close(invstd, einvstd, dtype)
    if running:
        assert_close(rm, rm_ref, dtype)
        assert_close(rv, rv_ref, dtype)
    g = randn(shape, dtype, seed=7)
    got = cpu.batch_norm_backward(g, x, w, mean, invstd, training=training)
    expected = ref.batch_norm_backward(g, x, w, emean, einvstd, training=training)
    for a, e in zip(got, expected):
        assert a.dtype == dtype
        assert_close(a, e, dtype, atol=1e-4 if dtype == np.float32 else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,norm", LN_CASES, ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_cpu_matches_reference(shape, norm, dtype, affine):
    x = randn(shape, dtype, seed=1, scale=2.0) + dtype(0.5)
    dims = (norm,) if isinstance(norm, int) else norm
    w = randn(dims, dtype, seed=2) if affine else None
    b = randn(dims, dtype, seed=3) if affine else None
    y, mean, invstd = cpu.layer_norm(x, norm, w, b, eps=1e-5)
    ey, emean, einvstd = ref.layer_norm(x, norm, w, b, eps=1e-5)
    assert mean.shape == emean.shape == shape[:len(shape) - len(dims)]
    for a, e in ((y, ey), (mean, emean), (invstd, einvstd)):
        assert a.dtype == dtype
        assert_close(a, e, dtype)
    g = randn(shape, dtype, seed=4)
    for a, e in zip(cpu.layer_norm_backward(g, x, w, mean, invstd), ref.layer_norm_backward(g, x, w, emean, einvstd)):
        assert a.dtype == dtype and a.shape == e.shape
        assert_close(a, e, dtype, atol=1e-4 if dtype == np.float32 else None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_kernels_above_the_serial_threshold(dtype):
    # (4, 8, 32, 32) = 32K elements: the prange twins (the small cases above run the serial ones).
    shape = (4, 8, 32, 32)
    x, rm, rv, w, b = _bn_args(shape, dtype, seed=11)
    g = randn(shape, dtype, seed=12)
    for training in (True, False):
        rm2, rv2 = rm.copy(), rv.copy()
        got = cpu.batch_norm(x, rm, rv, w, b, training=training)
        expected = ref.batch_norm(x, rm2, rv2, w, b, training=training)
        for a, e in zip(got + (rm, rv), expected + (rm2, rv2)):
            assert_close(a, e, dtype)
        for a, e in zip(cpu.batch_norm_backward(g, x, w, got[1], got[2], training=training),
                        ref.batch_norm_backward(g, x, w, expected[1], expected[2], training=training)):
            assert_close(a, e, dtype, atol=1e-3 if dtype == np.float32 else None)
    norm = shape[2:]
    wn = w[:1] * np.ones(norm, dtype)
    ln, eln = cpu.layer_norm(x, norm, wn, None), ref.layer_norm(x, norm, wn, None)
    for a, e in zip(ln, eln):
        assert_close(a, e, dtype)
    for a, e in zip(cpu.layer_norm_backward(g, x, wn, ln[1], ln[2]), ref.layer_norm_backward(g, x, wn, eln[1], eln[2])):
        assert_close(a, e, dtype, atol=1e-3 if dtype == np.float32 else None)


@settings(max_examples=15, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=2, max_size=4).filter(lambda s: len(s) != 3),
       dtype=st.sampled_from(DTYPES), training=st.booleans(), k=st.integers(1, 2))
def test_cpu_matches_reference_random_shapes(shape, dtype, training, k):
    shape = tuple(shape)
    if training and shape[0] * int(np.prod(shape[2:])) <= 1:
        training = False
    x, rm, rv, w, b = _bn_args(shape, dtype)
    rm2, rv2 = rm.copy(), rv.copy()
    got = cpu.batch_norm(x, rm, rv, w, b, training=training)
    expected = ref.batch_norm(x, rm2, rv2, w, b, training=training)
    for a, e in zip(got + (rm,), expected + (rm2,)):
        assert_close(a, e, dtype)
    g = randn(shape, dtype, seed=5)
    for a, e in zip(cpu.batch_norm_backward(g, x, w, got[1], got[2], training=training),
                    ref.batch_norm_backward(g, x, w, expected[1], expected[2], training=training)):
        assert_close(a, e, dtype, atol=1e-4 if dtype == np.float32 else None)
    norm = shape[len(shape) - k:]
    ln, eln = cpu.layer_norm(x, norm, None, None), ref.layer_norm(x, norm, None, None)
    for a, e in zip(ln, eln):
        assert_close(a, e, dtype)
    for a, e in zip(cpu.layer_norm_backward(g, x, None, ln[1], ln[2]),
                    ref.layer_norm_backward(g, x, None, eln[1], eln[2])):
        assert_close(a, e, dtype, atol=1e-4 if dtype == np.float32 else None)


@pytest.mark.parametrize("backend", [ref, cpu], ids=["reference", "cpu"])
def test_nan_propagates_to_its_channel_only(backend):
    x, rm, rv, w, b = _bn_args((3, 2, 2, 2), np.float64)
    x[1, 0, 1, 1] = np.nan
    y, _, _ = backend.batch_norm(x, rm, rv, w, b, training=True)
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1]).all()
    assert np.isnan(rm[0]) and np.isfinite(rm[1])


# ----------------------------------------------------------------------------- bad input

BAD_BN = [
    (dict(x=np.zeros((2, 3, 4), np.float32)), ValueError, "x must be 2-D"),
    (dict(running_mean=np.zeros(4, np.float32)), ValueError, r"running_mean must have shape \(3,\)"),
    (dict(running_var=np.zeros(3, np.float64)), TypeError, "running_var has dtype float64"),
    (dict(running_var=None), ValueError, "running_mean and running_var must be given together"),
    (dict(weight=np.zeros((3, 1), np.float32)), ValueError, "weight must be 1-D"),
    (dict(momentum=1.5), ValueError, "momentum must be <= 1"),
    (dict(eps=0.0), ValueError, "eps must be > 0"),
    (dict(training=1), TypeError, "training must be a bool"),
    (dict(running_mean=None, running_var=None, training=False), ValueError, "inference mode .* needs running_mean"),
    (dict(x=np.zeros((1, 3), np.float32)), ValueError, "more than 1 value per channel"),
]


@pytest.mark.parametrize("backend", [ref, cpu], ids=["reference", "cpu"])
@pytest.mark.parametrize("change,error,message", BAD_BN)
def test_batch_norm_rejects_bad_input(backend, change, error, message):
    args = dict(x=np.zeros((2, 3), np.float32), running_mean=np.zeros(3, np.float32),
                running_var=np.ones(3, np.float32), weight=None, bias=None, training=True, momentum=0.1, eps=1e-5)
    args.update(change)
    x = args.pop("x")
    rm, rv, w, b = args.pop("running_mean"), args.pop("running_var"), args.pop("weight"), args.pop("bias")
    with pytest.raises(error, match=message):
        backend.batch_norm(x, rm, rv, w, b, **args)


@pytest.mark.parametrize("backend", [ref, cpu], ids=["reference", "cpu"])
def test_batch_norm_rejects_read_only_running_stats_and_writes_nothing(backend):
    x = randn((4, 3), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    rv.flags.writeable = False
    with pytest.raises(ValueError, match="running_var is read-only"):
        backend.batch_norm(x, rm, rv, None, None, training=True)
    assert (rm == 0).all()
    # In inference mode nothing is written, so read-only statistics are fine.
    backend.batch_norm(x, rm, rv, None, None, training=False)


@pytest.mark.parametrize("backend", [ref, cpu], ids=["reference", "cpu"])
def test_layer_norm_and_backwards_reject_bad_input(backend):
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"normalized_shape \(3,\) must match the trailing dimensions"):
        backend.layer_norm(x, (3,))
    with pytest.raises(ValueError, match="normalized_shape must be a non-empty tuple"):
        backend.layer_norm(x, ())
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        backend.layer_norm(x, 4, np.zeros(5, np.float32))
    with pytest.raises(TypeError, match="bias has dtype float64"):
        backend.layer_norm(x, 4, None, np.zeros(4))
    with pytest.raises(ValueError, match="mean must have the leading"):
        backend.layer_norm_backward(x, x, None, np.zeros((3,), np.float32), np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match=r"grad_out must have shape \(2, 3\)"):
        backend.batch_norm_backward(np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32), None,
                                    np.zeros(3, np.float32), np.ones(3, np.float32), training=True)
    with pytest.raises(ValueError, match=r"save_invstd must have shape \(3,\)"):
        backend.batch_norm_backward(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), None,
                                    np.zeros(3, np.float32), np.ones(2, np.float32), training=True)
