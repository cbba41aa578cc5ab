"""Local response normalisation cases: one table for the reference, CPU and CUDA tests (tests/kernels, tests/cuda)."""

from __future__ import annotations

import numpy as np

from jitgrad.kernels import reference as ref
from tests.helpers import assert_close, randn


def _same(a):
    return a


#: name -> (shape, size, alpha, beta, bias, before). alpha is large enough that the window term matters
#: (AlexNet's 1e-4 on unit inputs would leave y ~ x and hide a wrong window in the gradient).
CASES = {
    "odd-size-4d": ((2, 7, 3, 4), 5, 2.0, 0.75, 1.0, None),
    "batch1-beta-not-0.75": ((1, 6, 2, 3), 3, 1.5, 1.3, 2.0, None),
    "even-size-onnx": ((2, 6, 2, 2), 4, 3.0, 0.5, 1.5, None),
    "even-size-pytorch": ((2, 6, 2, 2), 4, 3.0, 0.75, 1.5, 2),
    "size-1": ((2, 3, 2, 2), 1, 0.7, 0.75, 1.0, None),
    "window-wider-than-channels": ((2, 3, 2, 3), 7, 1.0, 0.6, 0.5, 3),
    "3d-input": ((3, 5, 4), 3, 2.0, 0.75, 1.0, 0),
    "5d-input": ((1, 4, 2, 2, 3), 2, 2.0, 0.9, 1.0, None),
    "one-channel": ((2, 1, 3, 3), 5, 2.0, 0.75, 1.0, None),
}

#: Big enough (32K elements) for the CPU kernels' parallel twins; CPU tests only.
PARALLEL_CASE = ((2, 16, 32, 32), 5, 2.0, 0.75, 1.0, None)


def tolerance(dtype):
    return (1e-10, 1e-12) if np.dtype(dtype) == np.float64 else (2e-4, 2e-5)


def check_backend(backend, shape, size, alpha, beta, bias, before, dtype, seed=0, to_device=_same, to_host=_same):
    """``lrn`` and ``lrn_backward`` of ``backend`` against the reference."""
    x = randn(shape, dtype, seed)
    g = randn(shape, dtype, seed + 1)
    hp = (size, alpha, beta, bias, before)
    where = f"x{shape} size={size} alpha={alpha} beta={beta} bias={bias} before={before} {np.dtype(dtype)}"
    rtol, atol = tolerance(dtype)
    y = backend.lrn(to_device(x), *hp)
    assert y.dtype == dtype and tuple(y.shape) == shape
    assert_close(to_host(y), ref.lrn(x, *hp), dtype, rtol=rtol, atol=atol, err_msg="forward " + where)
    gx = backend.lrn_backward(to_device(g), to_device(x), *hp)
    assert gx.dtype == dtype and tuple(gx.shape) == shape
    assert_close(to_host(gx), ref.lrn_backward(g, x, *hp), dtype, rtol=rtol, atol=atol, err_msg="backward " + where)


def non_finite_input(dtype):
    """(2, 6, 1, 3) input with a NaN at channel 1 and +inf at channel 4 (different positions)."""
    x = randn((2, 6, 1, 3), dtype, seed=5)
    x[0, 1, 0, 0] = np.nan
    x[1, 4, 0, 2] = np.inf
    return x


def check_non_finite(backend, dtype, to_device=_same, to_host=_same):
    """NaN/inf reach exactly the channels the reference's formula sends them to, forward and backward."""
    x = non_finite_input(dtype)
    g = randn(x.shape, dtype, seed=6)
    hp = (3, 1.0, 0.75, 1.0, None)
    expected = ref.lrn(x, *hp)
    # The reference's own pattern: NaN in channels 0..2 at (0, 0); at (1, 2) channel 4 is NaN (inf * 0) and its
    # window neighbours 3 and 5 are exactly zero (finite * inf ** -beta).
    assert np.isnan(expected[0, :3, 0, 0]).all() and np.isfinite(expected[0, 3:, 0, 0]).all()
    assert np.isnan(expected[1, 4, 0, 2]) and (expected[1, [3, 5], 0, 2] == 0).all()
    actual = to_host(backend.lrn(to_device(x), *hp))
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    assert_close(np.nan_to_num(actual), np.nan_to_num(expected), dtype, rtol=2e-4, atol=2e-5)
    expected_g = ref.lrn_backward(g, x, *hp)
    actual_g = to_host(backend.lrn_backward(to_device(g), to_device(x), *hp))
    np.testing.assert_array_equal(np.isnan(actual_g), np.isnan(expected_g))
    assert_close(np.nan_to_num(actual_g), np.nan_to_num(expected_g), dtype, rtol=2e-4, atol=2e-5)


def check_bad_input(backend, to_device=_same):
    """Every backend rejects the same input with the same one-line message naming the argument."""
    import pytest

    x = to_device(np.ones((1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"x must be at least 3-D \(N, C, D1, ...\), got 2-D"):
        backend.lrn(to_device(np.ones((3, 2), np.float32)), 3)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64, got int64"):
        backend.lrn(to_device(np.ones((1, 3, 2), np.int64)), 3)
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        backend.lrn(x, 0)
    with pytest.raises(TypeError, match="size must be an int, got float 3.0"):
        backend.lrn(x, 3.0)
    with pytest.raises(ValueError, match="before must be < size \\(3\\), got 3"):
        backend.lrn(x, 3, before=3)
    with pytest.raises(ValueError, match="alpha must be finite, got inf"):
        backend.lrn(x, 3, alpha=float("inf"))
    with pytest.raises(TypeError, match="bias must be a real number, got str"):
        backend.lrn(x, 3, bias="1")
    with pytest.raises(ValueError, match=r"grad_out must have shape \(1, 3, 2, 2\)"):
        backend.lrn_backward(to_device(np.ones((1, 3, 2, 1), np.float32)), x, 3)
    with pytest.raises(TypeError, match="grad_out has dtype float64 but x has dtype float32"):
        backend.lrn_backward(to_device(np.ones((1, 3, 2, 2), np.float64)), x, 3)


def check_matches_its_definition():
    """The reference against a plain per-element loop of its docstring's formula (both window placements)."""
    x = randn((2, 5, 3), np.float64, seed=9)
    for size, before in [(3, None), (4, None), (4, 2), (2, 1), (1, 0)]:
        lead = (size - 1) // 2 if before is None else before
        expected = np.empty_like(x)
        for n in range(2):
            for c in range(5):
                window = [j for j in range(c - lead, c - lead + size) if 0 <= j < 5]
                scale = 1.5 + 2.0 / size * (x[n, window] ** 2).sum(axis=0)
                expected[n, c] = x[n, c] * scale ** -0.8
        assert_close(ref.lrn(x, size, 2.0, 0.8, 1.5, before), expected)
