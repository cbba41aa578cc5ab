"""Adversarial kernel cases, run in a subprocess so a crash (a signal) fails the test instead of pytest.

A case is a JSON-able dict drawn by hypothesis in the parent (``tests/kernels/test_sweep.py``,
``tests/cuda/test_sweep.py``): a kernel name, a dtype, sizes (zero included), a value kind
(``normal``, ``nan``, ``inf``, ``ninf``, ``huge``, ``readonly``, ``mismatch``) and a seed. This
module builds the arguments, runs the reference and the backend under test, and reports a
failure unless both raise the same exception type or both return the same result (NaN where the
reference has NaN, the same infinities). Outputs given as ``out=`` are pre-filled with a
sentinel, so an element never written is caught.

Run as ``python -m tests.sweep_runner BACKEND < cases.json``; prints a JSON summary.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

import numpy as np

SENTINEL = 12345.0
#: ``readonly``: the array the kernel writes (``out=``, a parameter or optimizer state) is read-only.
KINDS = ("normal", "nan", "inf", "ninf", "huge", "readonly", "mismatch")

ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus"]
SOFTMAX = ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "softmax_cross_entropy",
           "softmax_cross_entropy_backward"]
#: Every public kernel the sweep calls, by family.
FAMILIES = {
    "matmul": ["matmul"],
    "conv": ["conv2d", "conv2d_backward_input", "conv2d_backward_weight"],
    "pooling": ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"],
    "activations": ACTIVATIONS + [a + "_backward" for a in ACTIVATIONS],
    "softmax": SOFTMAX,
    "optim": ["sgd_update", "adam_update"],
}
KERNELS = [k for ks in FAMILIES.values() for k in ks]
FAMILY_OF = {k: f for f, ks in FAMILIES.items() for k in ks}


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, kind: str) -> np.ndarray:
    a = rng.standard_normal(shape).astype(dtype)
    if a.size and kind in ("nan", "inf", "ninf", "huge"):
        special = {"nan": np.nan, "inf": np.inf, "ninf": -np.inf,
                   "huge": 1e30 if dtype == np.float32 else 1e200}[kind]
        # One element per array: a huge value then dominates its sums instead of cancelling
        # another one (whose rounding would depend on the summation order).
        a.flat[rng.integers(a.size)] = special * (1 if kind != "huge" else rng.choice([-1, 1]))
    return a


class _Args:
    """Builds one case's arrays; ``kind`` decides the special values of each."""

    def __init__(self, case: dict[str, Any]) -> None:
        self.case = case
        self.rng = np.random.default_rng(case["seed"])
        self.dtype = np.dtype(case["dtype"])
        self.kind = case["kind"]
        self.count = 0

    def x(self, *shape: int, special: bool = True) -> np.ndarray:
        self.count += 1
        dtype = self.dtype
        if self.kind == "mismatch" and self.count == 2:
            dtype = np.dtype(np.float64 if dtype == np.float32 else np.float32)
        return _values(self.rng, shape, dtype, self.kind if special else "normal")

    def out(self, shape: tuple[int, ...]) -> np.ndarray:
        a = np.full(shape, SENTINEL, self.dtype)
        if self.kind == "readonly":
            a.flags.writeable = False
        return a


def build(case: dict[str, Any], R: Any) -> tuple[str, list[Any], dict[str, Any], list[str]]:
    """``(kernel name, args, kwargs, names of the args the kernel updates in place)``."""
    name, s, A = case["kernel"], case["sizes"], _Args(case)
    n, c, h, w, k = s["n"], s["c"], s["h"], s["w"], s["k"]
    geometry = dict(stride=s["stride"], padding=s["padding"])
    if name == "matmul":
        m, nn, kk = s["n"], s["c"], s["k"]
        a = A.x(kk, m) if s["flag"] else A.x(m, kk)
        b = A.x(nn, kk) if s["flag2"] else A.x(kk, nn)
        kw = dict(trans_a=s["flag"], trans_b=s["flag2"])
        if s["use_out"]:
            kw["out"] = A.out((m, nn))
        return name, [a, b], kw, []
    if name in ("conv2d", "conv2d_backward_input", "conv2d_backward_weight"):
        c_out, kh = s["c2"], s["k"]
        geometry["dilation"] = s["dilation"]
        if name == "conv2d":
            kw = dict(geometry)
            x, wt = A.x(n, c, h, w), A.x(c_out, c, kh, kh)
            args = [x, wt, A.x(c_out) if s["flag"] else None]
            return name, args, kw, []
        x = np.zeros((n, c, h, w), case["dtype"])
        wt0 = np.zeros((c_out, c, kh, kh), case["dtype"])
        try:
            out_shape = R.conv2d(x, wt0, **geometry).shape
        except ValueError:
            out_shape = (n, c_out, 1, 1)
        if name == "conv2d_backward_input":
            return name, [A.x(*out_shape), A.x(c_out, c, kh, kh)], dict(geometry, input_shape=(n, c, h, w)), []
        return name, [A.x(n, c, h, w), A.x(*out_shape)], dict(geometry, weight_shape=(c_out, c, kh, kh)), []
    if name in ("max_pool2d", "avg_pool2d"):
        kw = dict(kernel_size=k, **geometry)
        if name == "avg_pool2d":
            kw["count_include_pad"] = s["flag"]
        return name, [A.x(n, c, h, w)], kw, []
    if name in ("max_pool2d_backward", "avg_pool2d_backward"):
        kw = dict(kernel_size=k, input_shape=(n, c, h, w), **geometry)
        try:
            y, argmax = R.max_pool2d(np.zeros((n, c, h, w), case["dtype"]) + A.rng.standard_normal((n, c, h, w)),
                                     kernel_size=k, **geometry)
        except ValueError:
            y, argmax = np.zeros((n, c, 1, 1)), np.zeros((n, c, 1, 1), np.int32)
        if name == "avg_pool2d_backward":
            kw["count_include_pad"] = s["flag"]
            return name, [A.x(*y.shape)], kw, []
        return name, [A.x(*y.shape), argmax], kw, []
    if FAMILY_OF[name] == "activations":
        return name, [A.x(n, c)] if not name.endswith("_backward") else [A.x(n, c), A.x(n, c)], {}, []
    if name in ("softmax", "log_softmax"):
        return name, [A.x(n, c)], dict(axis=s["flag"] - 1), []
    if name in ("softmax_backward", "log_softmax_backward"):
        y = getattr(R, name[:-len("_backward")])(_values(A.rng, (n, c), A.dtype, "normal"), axis=-1)
        return name, [A.x(n, c), y.astype(A.dtype)], dict(axis=-1), []
    if name == "softmax_cross_entropy":
        labels = A.rng.integers(0, max(c, 1), n)
        return name, [A.x(n, c), labels], dict(reduction=["mean", "sum", "none"][s["k"] % 3]), []
    if name == "softmax_cross_entropy_backward":
        probs = R.softmax(_values(A.rng, (n, c), A.dtype, "normal"), axis=-1) if c else np.zeros((n, 0), A.dtype)
        labels = A.rng.integers(0, max(c, 1), n)
        red = ["mean", "sum"][s["k"] % 2]
        return name, [A.x(n, c) * 0 + probs if A.kind != "mismatch" else A.x(n, c), labels], dict(reduction=red), []
    if name == "sgd_update":
        p, g, buf = A.x(n, c), A.x(n, c), np.abs(A.x(n, c, special=False))
        return name, [p, g, buf], dict(lr=0.1, momentum=0.9, nesterov=s["flag"], weight_decay=0.01), [0, 2]
    if name == "adam_update":
        p, g, m, v = A.x(n, c), A.x(n, c), A.x(n, c, special=False), np.abs(A.x(n, c, special=False))
        return name, [p, g, m, v], dict(step=1 + s["k"], lr=0.01, weight_decay=0.01,
                                        decoupled_weight_decay=s["flag"]), [0, 2, 3]
    raise KeyError(name)


def _copy(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        b = a.copy()
        b.flags.writeable = a.flags.writeable
        return b
    return a


def _flatten(result: Any, args: list[Any], in_place: list[int]) -> list[np.ndarray]:
    if result is None:
        return [args[i] for i in in_place]
    return list(result) if isinstance(result, tuple) else [result]


def _compare(case: dict[str, Any], expected: list[np.ndarray], actual: list[np.ndarray]) -> str | None:
    if len(expected) != len(actual):
        return f"{len(actual)} outputs, reference has {len(expected)}"
    for e, a in zip(expected, actual):
        e, a = np.asarray(e), np.asarray(a)
        if e.shape != a.shape or e.dtype != a.dtype:
            return f"output {a.dtype}{a.shape}, reference {e.dtype}{e.shape}"
        if e.dtype.kind in "iu":
            if not np.array_equal(e, a):
                return f"integer output differs: {a.ravel()[:8]} vs reference {e.ravel()[:8]}"
            continue
        if a.size and np.any(a == SENTINEL) and not np.any(e == SENTINEL):
            return "output holds the sentinel: an element was never written"
        nan_e, nan_a = np.isnan(e), np.isnan(a)
        if not np.array_equal(nan_e, nan_a):
            return f"NaN pattern differs: {int(nan_a.sum())} NaN, reference {int(nan_e.sum())}"
        inf_e, inf_a = np.isinf(e), np.isinf(a)
        if not np.array_equal(np.where(inf_e, e, 0), np.where(inf_a, a, 0)):
            return f"infinities differ: {a[inf_a | inf_e][:6]} vs reference {e[inf_a | inf_e][:6]}"
        finite = ~(nan_e | inf_e)
        if finite.any():
            rtol = 2e-3 if e.dtype == np.float32 else 1e-9
            scale = float(np.max(np.abs(e[finite])))
            err = np.abs(a[finite].astype(np.float64) - e[finite].astype(np.float64))
            if np.any(err > rtol * (np.abs(e[finite]) + max(scale, 1.0) * 1e-2)):
                return f"values differ: max abs error {err.max():.3g} (scale {scale:.3g})"
    return None


def run_case(case: dict[str, Any], R: Any, K: Any, to_backend: Any, to_host: Any) -> str | None:
    """None when the backend agrees with the reference on ``case``, else what differs."""
    try:
        name, args, kwargs, in_place = build(case, R)
    except ValueError:  # a geometry whose helper inputs cannot be built (softmax over 0 classes)
        return None
    if case["kind"] == "readonly" and in_place:
        # Read-only where the kernel writes: the parameter, or (``readonly_out``) a state array.
        # (Read-only *inputs* are accepted; tests/kernels/test_writeable.py covers them without
        # making the sweep compile a read-only specialisation of every kernel.)
        args[in_place[-1] if case["readonly_out"] else in_place[0]].flags.writeable = False
    ref_args = [_copy(a) for a in args]
    ref_kwargs = {key: _copy(v) for key, v in kwargs.items()}
    try:
        expected = _flatten(getattr(R, name)(*ref_args, **ref_kwargs), ref_args, in_place)
        ref_error = None
    except (ValueError, TypeError) as exc:
        ref_error = exc
    dev_args = [to_backend(a, i in in_place) for i, a in enumerate(args)]
    dev_kwargs = {key: to_backend(v, key == "out") for key, v in kwargs.items()}
    try:
        actual = [to_host(a) for a in _flatten(getattr(K, name)(*dev_args, **dev_kwargs), dev_args, in_place)]
        error = None
    except (ValueError, TypeError) as exc:
        error = exc
    if ref_error is not None or error is not None:
        if type(ref_error) is not type(error):
            return f"reference raised {ref_error!r}, backend raised {error!r}"
        if "\n" in str(error):
            return f"error message is not one line: {error!r}"
        return None
    if "out" in kwargs and name == "matmul":
        actual = [to_host(dev_kwargs["out"])]
    return _compare(case, expected, actual)


def main() -> None:
    backend = sys.argv[1]
    cases = json.load(sys.stdin)
    import jitgrad.kernels.reference as R

    if backend == "cuda":
        from numba import cuda

        import jitgrad.kernels.cuda as K
        from jitgrad import config

        config.cuda_threads_per_block = 8

        def to_backend(a: Any, written: bool) -> Any:
            # A read-only host array the kernel writes stays a host array: the validation must refuse
            # it before any launch. (Device arrays have no read-only flag.)
            if isinstance(a, np.ndarray) and (a.flags.writeable or not written):
                return cuda.to_device(np.array(a))
            return a

        def to_host(a: Any) -> Any:
            return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
    else:
        import importlib

        K = importlib.import_module(f"jitgrad.kernels.{backend}")

        def to_backend(a: Any, written: bool) -> Any:
            return a

        def to_host(a: Any) -> Any:
            return np.asarray(a)

    failures = []
    for case in cases:
        try:
            problem = run_case(case, R, K, to_backend, to_host)
        except Exception:  # an unexpected exception type is a failure too, with its traceback
            problem = "unexpected exception:\n" + traceback.format_exc(limit=-3)
        if problem is not None:
            failures.append({"case": case, "problem": problem})
    json.dump({"ran": len(cases), "failures": failures}, sys.stdout)


if __name__ == "__main__":
    main()
