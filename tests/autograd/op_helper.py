"""One helper for every op (tinygrad's ``helper_test_op``): forward against NumPy, backward by gradcheck."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import jitgrad
from tests.helpers import assert_close, randn


def check_op(
    op: Callable[..., jitgrad.Tensor],
    reference: Callable[..., np.ndarray] | None,
    shapes: Sequence[tuple[int, ...]] = (),
    *,
    inputs: Sequence[np.ndarray] | None = None,
    dtype=np.float64,
    seed: int = 0,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    grad: bool = True,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> jitgrad.Tensor:
    """Check ``op`` against a NumPy ``reference`` and check its gradients with ``gradcheck``.

    Parameters
    ----------
    op : callable
        Takes one Tensor per input (``requires_grad=True``), returns a Tensor.
    reference : callable or None
        The same computation on the NumPy arrays; None skips the forward check
        (for ops whose reference is itself the kernel under test).
    shapes : shapes of seeded standard-normal inputs, unless ``inputs`` are given.
    transform : applied to the random arrays (e.g. ``np.abs`` plus a margin for log).
    grad : run gradcheck (float64 central differences).

    Returns
    -------
    Tensor
        The forward output, for further assertions.
    """
    if inputs is None:
        inputs = [randn(s, np.float64, seed=seed + i) for i, s in enumerate(shapes)]
        if transform is not None:
            inputs = [transform(a) for a in inputs]
    arrays = [np.asarray(a, dtype=dtype) for a in inputs]
    tensors = [jitgrad.tensor(a, requires_grad=True) for a in arrays]
    out = op(*tensors)
    assert isinstance(out, jitgrad.Tensor)
    assert out.requires_grad
    if reference is not None:
        expected = np.asarray(reference(*[a.copy() for a in arrays]))
        assert_close(out.numpy(), expected, dtype)
        assert out.dtype == np.dtype(dtype), f"dtype {out.dtype} != {np.dtype(dtype)}"
    if grad:
        assert jitgrad.gradcheck(op, *tensors, atol=atol, rtol=rtol)
    return out
