"""ONNX inference, jitgrad against onnxruntime on the same graph, inputs and threads.

Cases (shared with ``bench/report_onnx.py``, which prints them side by side):

- ``resnet50-b1``, ``resnet50-b16``: the model-zoo ResNet-50 of the onnx
  package's backend tests (``test_resnet50_cpu``). The onnx wheel ships it
  offline as a "light" model (``onnx/backend/test/data/light/light_resnet50.onnx``):
  the real graph and its BatchNormalization statistics, but convolution and
  Gemm weights made at run time by ``ConstantOfShape`` nodes (every weight
  0.02). Its batch is fixed at 1 (input shape and a ``Reshape`` constant);
  :func:`resnet50_model` rewrites both for another batch.
- ``lenet5-b128``: LeNet-5 (``bench/benchmarks/models.py``, seeded) exported
  with ``jitgrad.onnx.export`` (dynamic batch), run at batch 128.

jitgrad runs ``jitgrad.onnx.load(model)`` in eval mode under ``no_grad``;
onnxruntime an ``InferenceSession`` (CPU provider, its default graph
optimizations) with ``intra_op_num_threads`` equal to jitgrad's thread count
and ``inter_op_num_threads=1``. A missing ``onnx``/``onnxruntime`` or model
file raises ``NotImplementedError`` (asv: skipped).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import SEED

#: case label -> (model, batch)
CASES: dict[str, tuple[str, int]] = {
    "resnet50-b1": ("resnet50", 1),
    "resnet50-b16": ("resnet50", 16),
    "lenet5-b128": ("lenet5", 128),
}
#: --quick (CI smoke): the smallest case of each model.
QUICK_CASES = ("resnet50-b1", "lenet5-b128")
BACKENDS: tuple[str, ...] = ("jitgrad", "onnxruntime")
_RESNET_FIXED = {"OC2_DUMMY_1"}  # the Reshape target [1, 2048] before the classifier


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise NotImplementedError(f"onnx is not installed: {exc}") from exc
    return onnx


def resnet50_path() -> Path:
    """The model-zoo ResNet-50 the onnx wheel ships for ``test_resnet50_cpu`` (light form, offline)."""
    onnx = _onnx()
    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
    if not path.is_file():
        raise NotImplementedError(f"no model-zoo ResNet-50 in this onnx wheel (looked for {path})")
    return path


def resnet50_model(batch: int) -> Any:
    """The zoo ResNet-50 with its fixed batch of 1 rewritten to ``batch`` (graph input, output, Reshape)."""
    onnx = _onnx()
    from onnx import numpy_helper

    model = onnx.load(str(resnet50_path()))
    if batch == 1:
        return model
    model = copy.deepcopy(model)
    inits = {i.name for i in model.graph.initializer}
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.name not in inits and len(dims) and dims[0].dim_value == 1:
            dims[0].dim_value = batch
    for init in model.graph.initializer:
        if init.name in _RESNET_FIXED:
            shape = numpy_helper.to_array(init).copy()
            shape[0] = batch
            init.CopyFrom(numpy_helper.from_array(shape, init.name))
    return model


def lenet5_model() -> Any:
    """LeNet-5 (seeded weights) exported by ``jitgrad.onnx.export`` with a dynamic batch."""
    _onnx()
    import jitgrad
    from jitgrad import nn
    from jitgrad import onnx as jonnx

    from .models import build

    jitgrad.manual_seed(SEED)
    net = build(nn, "lenet5")
    return jonnx.export(net, np.zeros((2, 1, 28, 28), np.float32), None, input_names=["image"])


def case_model(case: str) -> tuple[Any, np.ndarray]:
    """The ONNX model of ``case`` and a seeded input batch for it."""
    if case not in CASES:
        raise ValueError(f"unknown ONNX case {case!r}; known: {sorted(CASES)}")
    name, batch = CASES[case]
    model = resnet50_model(batch) if name == "resnet50" else lenet5_model()
    shape = (batch, 3, 224, 224) if name == "resnet50" else (batch, 1, 28, 28)
    x = np.random.default_rng(SEED).standard_normal(shape).astype(np.float32)
    return model, x


def jitgrad_call(model: Any, x: np.ndarray) -> Callable[[], np.ndarray]:
    """One jitgrad inference of ``model`` on ``x``: imported Module, eval mode, ``no_grad`` (not yet called)."""
    import jitgrad
    from jitgrad import onnx as jonnx

    module = jonnx.load(model).eval()
    inp = jitgrad.Tensor(x)

    def call() -> np.ndarray:
        with jitgrad.no_grad():
            return module(inp).numpy()

    return call


def ort_call(model: Any, x: np.ndarray, threads: int) -> Callable[[], np.ndarray]:
    """One onnxruntime CPU inference of ``model`` on ``x`` with ``threads`` intra-op threads (not yet called)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise NotImplementedError(f"onnxruntime is not installed: {exc}") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # the zoo graph's unused initializer is not worth a warning per session
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}

    def call() -> np.ndarray:
        return session.run(None, feed)[0]

    return call


def make_call(case: str, backend: str, threads: int | None = None) -> Callable[[], np.ndarray]:
    """A callable running ``case`` once on ``backend`` (``jitgrad`` or ``onnxruntime``), not yet called."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    model, x = case_model(case)
    if backend == "jitgrad":
        return jitgrad_call(model, x)
    if threads is None:
        import jitgrad

        threads = jitgrad.get_num_threads()
    return ort_call(model, x, threads)


class OnnxInference:
    """One inference batch of an ONNX model: jitgrad (imported graph) vs onnxruntime, same threads."""

    params = [list(CASES), list(BACKENDS)]
    param_names = ["case", "backend"]
    # ResNet-50 at batch 16 takes seconds per call: one call per sample, few samples.
    rounds = 1
    number = 1
    repeat = (2, 5, 20.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self, case: str, backend: str) -> None:
        self.call = make_call(case, backend)
        self.call()  # compile or load jitgrad's kernels; onnxruntime's first run allocates its arena

    def time_inference(self, case: str, backend: str) -> None:
        self.call()
