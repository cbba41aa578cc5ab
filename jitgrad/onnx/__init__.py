"""ONNX for jitgrad: ``export`` a Module, ``load`` an ONNX graph as a trainable Module, and an ONNX ``backend``.

Needs the optional extra ``jitgrad[onnx]`` (the ``onnx`` package). Each
direction goes through a table of small functions, one per operator:
:data:`EXPORTERS` (jitgrad ``Function`` name -> ONNX nodes) and
:data:`CONVERTERS` (ONNX operator -> jitgrad ops); :func:`supported_operators`
lists both (the table in docs/onnx.md is generated from it).
"""

from __future__ import annotations

try:
    import onnx as _onnx  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("jitgrad.onnx needs the onnx package: pip install 'jitgrad[onnx]'") from exc

from jitgrad.onnx._export import EXPORTERS, UnsupportedOperatorError, export, register_exporter
from jitgrad.onnx._converters import CONVERTERS, WAITING, NodeError, register_converter
from jitgrad.onnx._import import MAX_OPSET, MIN_OPSET, OnnxModule, load
from jitgrad.onnx._memory import retain_freed_memory

__all__ = [
    "export", "load", "OnnxModule", "EXPORTERS", "CONVERTERS", "WAITING", "register_exporter",
    "register_converter", "UnsupportedOperatorError", "NodeError", "MIN_OPSET", "MAX_OPSET",
    "supported_operators", "operator_table", "retain_freed_memory",
]


def supported_operators() -> dict[str, list[str]]:
    """``{"import": [ONNX ops], "export": [jitgrad Functions], "waiting": [ONNX ops]}``, sorted."""
    return {"import": sorted(CONVERTERS), "export": sorted(EXPORTERS), "waiting": sorted(WAITING)}


def operator_table() -> str:
    """The Markdown operator table of docs/onnx.md, generated from the converter tables."""
    rows = ["| ONNX operator | import (ONNX -> jitgrad) |", "|---|---|"]
    rows += [f"| {op} | yes |" for op in sorted(CONVERTERS)]
    rows += [f"| {op} | waiting: {why} |" for op, why in sorted(WAITING.items())]
    rows += ["", "| jitgrad op (Function) | export (jitgrad -> ONNX) |", "|---|---|"]
    rows += [f"| {name} | {_EXPORT_TARGETS.get(name, 'yes')} |" for name in sorted(EXPORTERS)]
    return "\n".join(rows) + "\n"


#: What each exported op becomes, for the docs table (the exporters themselves are the truth).
_EXPORT_TARGETS = {
    "Linear": "Gemm (transB=1)", "Conv2d": "Conv", "MaxPool2d": "MaxPool", "AvgPool2d": "AveragePool",
    "Sum": "ReduceSum", "Mean": "ReduceMean", "Max": "ReduceMax", "Reshape": "Flatten or Reshape",
    "Permute": "Transpose", "Getitem": "Slice (+ Squeeze)", "ToDevice": "Identity", "ReLU": "Relu",
    "LeakyReLU": "LeakyRelu", "ELU": "Elu", "GELU": "Gelu (opset >= 20) or Erf/Tanh formula",
    "Softplus": "Softplus (Mul/Div for beta != 1)", "BatchNorm": "BatchNormalization (eval)",
    "LayerNorm": "LayerNormalization", "Cat": "Concat", "ConvTranspose2d": "ConvTranspose",
    "AdaptiveAvgPool2d": "GlobalAveragePool (output size 1)", "AdaptiveMaxPool2d": "GlobalMaxPool (output size 1)",
    "LocalResponseNorm": "LRN (PyTorch's even-size window: Mul, Conv, Pow)",
    "LinearActivation": "Gemm (transB=1), Relu", "Conv2dActivation": "Conv, Relu",
}
