"""Shapes, seeded inputs and backend selection shared by the asv suite and ``bench/report.py``.

Every benchmark in this directory and every row of the side-by-side report is
one *case*: a kernel family, a kernel name, a shape label, a dtype and a
backend. This module is the one place that knows what those mean:

- ``FAMILIES`` maps a family name to its kernels, its shape table (labels of
  the LeNet-5 and Keras-convnet layers at batch 128, and larger) and a
  function that builds seeded NumPy inputs for a kernel of the family;
- ``kernel_call`` turns a case into a zero-argument callable on a backend
  (``numpy`` = ``jitgrad.kernels.reference``, ``cpu``, ``cuda``), moving the
  inputs to the GPU and ending every CUDA call with a synchronize;
- ``prepare`` does the same and calls the kernel once, so that Numba
  compilation (or loading from the on-disk cache) is never timed.

A backend or kernel that is not available raises ``NotImplementedError``,
which asv reports as a skipped benchmark rather than a failure.

The models of the end-to-end benchmarks live in ``models.py``.
"""

from __future__ import annotations

import functools
import importlib
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

BACKENDS: tuple[str, ...] = ("numpy", "cpu", "cuda")
DTYPES: tuple[str, ...] = ("float32",)
#: Batch size of every CNN shape: the MNIST training batch of the examples.
BATCH = 128
SEED = 0

_BACKEND_MODULES = {
    "numpy": "jitgrad.kernels.reference",
    "cpu": "jitgrad.kernels.cpu",
    "cuda": "jitgrad.kernels.cuda",
}


# ----------------------------------------------------------------------------- backends

def cuda_ready() -> None:
    """Raise ``NotImplementedError`` unless a real CUDA GPU can be used.

    The simulator is refused too: it runs kernels in Python threads, so its
    timings mean nothing.
    """
    from numba import config as numba_config

    if getattr(numba_config, "ENABLE_CUDASIM", 0):
        raise NotImplementedError("cuda: not benchmarking under the CUDA simulator")
    from numba import cuda

    if not cuda.is_available():
        raise NotImplementedError("cuda: no CUDA GPU available")


def backend_module(backend: str) -> Any:
    """Import and return the kernel module of ``backend`` (``numpy``, ``cpu`` or ``cuda``)."""
    if backend not in _BACKEND_MODULES:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cuda":
        cuda_ready()
    try:
        return importlib.import_module(_BACKEND_MODULES[backend])
    except ImportError as exc:  # the backend has not been written yet
        raise NotImplementedError(f"{backend}: cannot import {_BACKEND_MODULES[backend]}: {exc}") from exc


def kernel_function(backend: str, name: str) -> Callable[..., Any]:
    """The public kernel ``name`` of ``backend``; ``NotImplementedError`` if it has none."""
    fn = getattr(backend_module(backend), name, None)
    if fn is None:
        raise NotImplementedError(f"{backend}: no kernel named {name!r}")
    return fn


def _to_device(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        from numba import cuda

        return cuda.to_device(value)
    return value


# ----------------------------------------------------------------------------- shapes

@dataclass(frozen=True)
class MatmulShape:
    """``op(a) @ op(b)`` with ``op(a)`` of shape (m, k) and ``op(b)`` of shape (k, n)."""

    m: int
    k: int
    n: int
    trans_a: bool = False
    trans_b: bool = False


def _linear_layer(batch: int, in_features: int, out_features: int, name: str) -> dict[str, MatmulShape]:
    # The three products of a Linear layer, each with the transposition its
    # autograd uses (weights are (out, in), so nothing is ever copied):
    # y = x @ W.T, grad_x = g @ W, grad_W = g.T @ x.
    return {
        f"{name}-forward": MatmulShape(batch, in_features, out_features, trans_b=True),
        f"{name}-grad-input": MatmulShape(batch, out_features, in_features),
        f"{name}-grad-weight": MatmulShape(out_features, batch, in_features, trans_a=True),
    }


MATMUL_SHAPES: dict[str, MatmulShape] = {
    **{f"square-{s}": MatmulShape(s, s, s) for s in (64, 256, 1024, 2048)},
    **_linear_layer(BATCH, 256, 120, "lenet-fc1"),
    **_linear_layer(BATCH, 1600, 10, "keras-fc"),
}


@dataclass(frozen=True)
class ConvShape:
    """A conv2d layer: input (batch, c_in, height, width), weight (c_out, c_in, kernel, kernel)."""

    batch: int
    c_in: int
    height: int
    width: int
    c_out: int
    kernel: int
    stride: int = 1
    padding: int = 0

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output height and width (PyTorch's formula, dilation 1)."""
        return tuple(  # type: ignore[return-value]
            (size + 2 * self.padding - self.kernel) // self.stride + 1 for size in (self.height, self.width)
        )


# The two models of examples/mnist_cnn.py on 28x28 MNIST: LeNet-5 (unpadded:
# 28 -> 24 -> 12 -> 8 -> 4) and the keras.io "Simple MNIST convnet"; "large"
# is a heavier layer: 32 -> 64 channels, 3x3, padded, on 28x28.
CONV_SHAPES: dict[str, ConvShape] = {
    "lenet-conv1": ConvShape(BATCH, 1, 28, 28, 6, 5),
    "lenet-conv2": ConvShape(BATCH, 6, 12, 12, 16, 5),
    "keras-conv1": ConvShape(BATCH, 1, 28, 28, 32, 3),
    "keras-conv2": ConvShape(BATCH, 32, 13, 13, 64, 3),
    "large": ConvShape(BATCH, 32, 28, 28, 64, 3, padding=1),
}


@dataclass(frozen=True)
class PoolShape:
    """A 2-D pooling layer over input (batch, channels, height, width)."""

    batch: int
    channels: int
    height: int
    width: int
    kernel: int = 2
    stride: int = 2


POOL_SHAPES: dict[str, PoolShape] = {
    "lenet-pool1": PoolShape(BATCH, 6, 24, 24),
    "keras-pool1": PoolShape(BATCH, 32, 26, 26),
    "large": PoolShape(BATCH, 64, 28, 28),
}

#: Activation inputs: the outputs of the conv layers they follow.
ACTIVATION_SHAPES: dict[str, tuple[int, ...]] = {
    "keras-conv1": (BATCH, 32, 26, 26),
    "large": (BATCH, 64, 28, 28),
}

#: Logits (batch, classes).
SOFTMAX_SHAPES: dict[str, tuple[int, int]] = {
    "mnist": (BATCH, 10),
    "imagenet": (BATCH, 1000),
}

#: Flat parameter vectors: as many as all of LeNet-5's parameters, and 1M.
OPTIM_SHAPES: dict[str, tuple[int]] = {
    "lenet5-params": (44_426,),
    "1M-params": (1_000_000,),
}

#: Normalisation inputs (N, C, H, W): a ResNet stage-3 feature map and the Keras convnet's first conv output.
#: batch_norm normalises per channel; layer_norm over (C, H, W) (GroupNorm(1, C)'s normalisation).
NORM_SHAPES: dict[str, tuple[int, int, int, int]] = {
    "resnet-14": (BATCH, 64, 14, 14),
    "keras-conv1": (BATCH, 32, 26, 26),
}

# --quick (CI smoke) uses one tiny shape per family so that it runs in seconds.
QUICK_SHAPES: dict[str, dict[str, Any]] = {
    "matmul": {"tiny-nt": MatmulShape(8, 12, 4, trans_b=True)},
    "conv": {"tiny": ConvShape(2, 3, 9, 9, 4, 3, padding=1)},
    "pooling": {"tiny": PoolShape(2, 3, 8, 8)},
    "activations": {"tiny": (2, 3, 8, 8)},
    "softmax": {"tiny": (4, 10)},
    "optim": {"tiny": (100,)},
    "normalization": {"tiny": (4, 3, 5, 5)},
}


# ----------------------------------------------------------------------------- inputs

Inputs = tuple[tuple[Any, ...], dict[str, Any]]


def _rng(*salt: Any) -> np.random.Generator:
    # One stream per case, so inputs do not depend on the order cases are
    # built; crc32, not hash(), because str hashes change between processes.
    return np.random.default_rng([SEED, *(zlib.crc32(str(s).encode()) for s in salt)])


def _normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _matmul_inputs(kernel: str, s: MatmulShape, dtype: np.dtype, rng: np.random.Generator) -> Inputs:
    a = _normal(rng, (s.k, s.m) if s.trans_a else (s.m, s.k), dtype)
    b = _normal(rng, (s.n, s.k) if s.trans_b else (s.k, s.n), dtype)
    return (a, b), {"trans_a": s.trans_a, "trans_b": s.trans_b}


def _conv_inputs(kernel: str, s: ConvShape, dtype: np.dtype, rng: np.random.Generator) -> Inputs:
    x_shape = (s.batch, s.c_in, s.height, s.width)
    w_shape = (s.c_out, s.c_in, s.kernel, s.kernel)
    y_shape = (s.batch, s.c_out, *s.out_hw)
    hyper = {"stride": s.stride, "padding": s.padding}
    if kernel == "conv2d":
        return (_normal(rng, x_shape, dtype), _normal(rng, w_shape, dtype, 0.1), _normal(rng, (s.c_out,), dtype)), hyper
    if kernel == "conv2d_backward_input":
        return (_normal(rng, y_shape, dtype), _normal(rng, w_shape, dtype, 0.1)), {"input_shape": x_shape, **hyper}
    if kernel == "conv2d_backward_weight":
        return (_normal(rng, x_shape, dtype), _normal(rng, y_shape, dtype)), {"weight_shape": w_shape, **hyper}
    raise ValueError(f"unknown conv kernel {kernel!r}")


def _pooling_inputs(kernel: str, s: PoolShape, dtype: np.dtype, rng: np.random.Generator) -> Inputs:
    x_shape = (s.batch, s.channels, s.height, s.width)
    hyper = {"kernel_size": s.kernel, "stride": s.stride}
    # Continuous random values: ties in a max-pool window have probability ~0.
    x = _normal(rng, x_shape, dtype)
    if kernel in ("max_pool2d", "avg_pool2d"):
        return (x,), hyper
    # Backward kernels take what forward saved, so forward runs here, on the
    # reference backend: the inputs of a case are the same on every backend.
    ref = backend_module("numpy")
    if kernel == "max_pool2d_backward":
        y, argmax = ref.max_pool2d(x, **hyper)
        return (_normal(rng, y.shape, dtype), argmax), {"input_shape": x_shape, **hyper}
    if kernel == "avg_pool2d_backward":
        y = ref.avg_pool2d(x, **hyper)
        return (_normal(rng, y.shape, dtype),), {"input_shape": x_shape, **hyper}
    raise ValueError(f"unknown pooling kernel {kernel!r}")


def _activation_inputs(kernel: str, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> Inputs:
    x = _normal(rng, shape, dtype)
    if kernel.endswith("_backward"):
        return (_normal(rng, shape, dtype), x), {}
    return (x,), {}


def _softmax_inputs(kernel: str, shape: tuple[int, int], dtype: np.dtype, rng: np.random.Generator) -> Inputs:
    n, classes = shape
    logits = _normal(rng, shape, dtype, 3.0)
    labels = rng.integers(0, classes, size=n).astype(np.int64)
    if kernel == "softmax_cross_entropy":
        return (logits, labels), {"reduction": "mean"}
    if kernel == "softmax_cross_entropy_backward":
        _, probs = backend_module("numpy").softmax_cross_entropy(logits, labels, reduction="mean")
        return (probs, labels), {"reduction": "mean"}
    raise ValueError(f"unknown softmax kernel {kernel!r}")


def _optim_inputs(kernel: str, shape: tuple[int], dtype: np.dtype, rng: np.random.Generator) -> Inputs:
    param = _normal(rng, shape, dtype)
    grad = _normal(rng, shape, dtype, 0.01)
    if kernel == "sgd_update":
        return (param, grad, np.zeros(shape, dtype)), {"lr": 0.01, "momentum": 0.9}
    if kernel == "adam_update":
        # A fixed step: the update is timed, not training progress.
        return (param, grad, np.zeros(shape, dtype), np.zeros(shape, dtype)), {"step": 1, "lr": 1e-3}
    raise ValueError(f"unknown optimizer kernel {kernel!r}")


def _normalization_inputs(kernel: str, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> Inputs:
    x = _normal(rng, shape, dtype, 2.0)
    g = _normal(rng, shape, dtype)
    ref = backend_module("numpy")
    if kernel.startswith("batch_norm"):
        c = shape[1]
        weight, bias = _normal(rng, (c,), dtype), _normal(rng, (c,), dtype)
        running_mean, running_var = np.zeros(c, dtype), np.ones(c, dtype)
        if kernel == "batch_norm":
            # Training mode: batch statistics and the in-place running-statistics update (bounded by momentum).
            return (x, running_mean, running_var, weight, bias), {"training": True}
        _, mean, invstd = ref.batch_norm(x, running_mean, running_var, weight, bias, training=True)
        return (g, x, weight, mean, invstd), {"training": True}
    norm = tuple(shape[1:])
    weight, bias = _normal(rng, norm, dtype), _normal(rng, norm, dtype)
    if kernel == "layer_norm":
        return (x, norm, weight, bias), {}
    _, mean, invstd = ref.layer_norm(x, norm, weight, bias)
    return (g, x, weight, mean, invstd), {}


@dataclass(frozen=True)
class Family:
    """A kernel family: the kernels timed, the shapes they are timed at, and their inputs."""

    name: str
    kernels: tuple[str, ...]
    shapes: dict[str, Any]
    make_inputs: Callable[[str, Any, np.dtype, np.random.Generator], Inputs]

    def shape(self, label: str) -> Any:
        """The shape called ``label`` (asv's or --quick's table)."""
        table = {**self.shapes, **QUICK_SHAPES[self.name]}
        if label not in table:
            raise ValueError(f"{self.name}: unknown shape {label!r}; known: {sorted(table)}")
        return table[label]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("matmul", ("matmul",), MATMUL_SHAPES, _matmul_inputs),
        Family("conv", ("conv2d", "conv2d_backward_input", "conv2d_backward_weight"), CONV_SHAPES, _conv_inputs),
        Family(
            "pooling",
            ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"),
            POOL_SHAPES,
            _pooling_inputs,
        ),
        Family(
            "activations",
            ("relu", "relu_backward", "sigmoid", "sigmoid_backward", "gelu", "gelu_backward"),
            ACTIVATION_SHAPES,
            _activation_inputs,
        ),
        Family(
            "softmax",
            ("softmax_cross_entropy", "softmax_cross_entropy_backward"),
            SOFTMAX_SHAPES,
            _softmax_inputs,
        ),
        Family("optim", ("sgd_update", "adam_update"), OPTIM_SHAPES, _optim_inputs),
        Family(
            "normalization",
            ("batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward"),
            NORM_SHAPES,
            _normalization_inputs,
        ),
    )
}


def make_inputs(family: str, kernel: str, shape: str, dtype: str) -> Inputs:
    """Seeded NumPy ``(args, kwargs)`` for one call of ``kernel`` at shape label ``shape``."""
    fam = FAMILIES[family]
    if kernel not in fam.kernels:
        raise ValueError(f"{family}: unknown kernel {kernel!r}; known: {fam.kernels}")
    return fam.make_inputs(kernel, fam.shape(shape), np.dtype(dtype), _rng(family, kernel, shape, dtype))


# ----------------------------------------------------------------------------- calls

def _synchronized(fn: Callable[[], Any]) -> Callable[[], None]:
    from numba import cuda

    def call() -> None:
        fn()
        # Launches are asynchronous: without this, asv would time the launch.
        cuda.synchronize()

    return call


def kernel_call(family: str, kernel: str, shape: str, dtype: str, backend: str) -> Callable[[], Any]:
    """A zero-argument callable running one case once (not yet called: may still compile).

    Raises ``NotImplementedError`` when the backend or the kernel is missing.
    """
    fn = kernel_function(backend, kernel)
    args, kwargs = make_inputs(family, kernel, shape, dtype)
    if backend == "cuda":
        args = tuple(_to_device(a) for a in args)
        kwargs = {k: _to_device(v) for k, v in kwargs.items()}
        return _synchronized(functools.partial(fn, *args, **kwargs))
    return functools.partial(fn, *args, **kwargs)


def prepare(family: str, kernel: str, shape: str, dtype: str, backend: str) -> Callable[[], Any]:
    """``kernel_call`` then one call, so compilation is done before anything is timed."""
    call = kernel_call(family, kernel, shape, dtype, backend)
    call()
    return call


class KernelBenchmark:
    """Base of the asv kernel classes: params ``kernel x shape x dtype x backend``.

    Subclasses set ``family``, ``params = kernel_params(family)`` and one-line
    ``time_``/``peakmem_`` methods calling ``self.call()``.
    """

    family: str = ""
    param_names = ["kernel", "shape", "dtype", "backend"]
    # setup() already ran the kernel once, so a short warm-up suffices; a
    # single round and at most ~2 s of samples per case keep the whole suite
    # near 15 minutes on 2 cores.
    rounds = 1
    repeat = (3, 10, 2.0)
    sample_time = 0.02
    warmup_time = 0.1
    timeout = 300

    def setup(self, kernel: str, shape: str, dtype: str, backend: str) -> None:
        self.call = prepare(self.family, kernel, shape, dtype, backend)


def kernel_params(family: str) -> list[list[str]]:
    """asv ``params`` of a kernel family: its kernels, its shapes, ``DTYPES``, ``BACKENDS``."""
    fam = FAMILIES[family]
    return [list(fam.kernels), list(fam.shapes), list(DTYPES), list(BACKENDS)]
