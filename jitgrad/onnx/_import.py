"""``load``: an ONNX graph as a trainable jitgrad ``Module`` that runs each node with jitgrad ops."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from jitgrad.autograd.tensor import Tensor
from jitgrad.nn.module import Module, Parameter
from jitgrad.onnx._converters import CONVERTERS, WAITING, NodeError
from jitgrad.onnx import _converters_shape  # noqa: F401  (registers the shape converters)
from jitgrad.onnx._export import UnsupportedOperatorError

__all__ = ["OnnxModule", "load", "MIN_OPSET", "MAX_OPSET"]

#: The default-domain opsets the importer reads (operators' older semantics are handled where they differ).
MIN_OPSET, MAX_OPSET = 6, 25


class _Node:
    """One ONNX node, its attributes decoded once."""

    __slots__ = ("name", "op_type", "inputs", "outputs", "attrs", "opset", "fn")

    def __init__(self, proto: Any, opset: int, index: int) -> None:
        from onnx import helper

        self.op_type = proto.op_type
        self.name = proto.name or f"{proto.op_type}_{index}"
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.attrs.items()}
        self.opset = opset
        self.fn = CONVERTERS[proto.op_type]


class OnnxModule(Module):
    """An imported ONNX graph: float initializers are ``Parameter`` s, nodes run on jitgrad ops.

    ``named_parameters()`` gives the float initializers under their ONNX names
    (BatchNormalization's running statistics are ``named_buffers()``), so
    layers can be frozen by name (``p.requires_grad = False``); ``state_dict``,
    ``jitgrad.save``, ``to("cuda")`` and ``jitgrad.onnx.export`` work as on any
    Module. Non-float initializers (shapes, indices) stay constants.

    Call it with one Tensor per graph input; it returns one Tensor, or a tuple
    for several outputs.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        opset = _default_opset(model)
        object.__setattr__(self, "opset", opset)
        object.__setattr__(self, "graph_name", graph.name)
        consts: dict[str, np.ndarray] = {}
        # BatchNormalization's running mean and variance are buffers (state, not trained), as in nn.BatchNorm2d.
        stats = {n.input[i] for n in graph.node if n.op_type == "BatchNormalization" for i in (3, 4)
                 if len(n.input) > i}
        for init in graph.initializer:
            arr = numpy_helper.to_array(init).copy()
            if arr.dtype.kind == "f" and init.name in stats:
                self._buffers[init.name] = Tensor(arr)
            elif arr.dtype.kind == "f":
                self._parameters[init.name] = Parameter(arr)
            else:
                consts[init.name] = arr
        object.__setattr__(self, "_constants", consts)
        inputs = _graph_inputs(graph)
        object.__setattr__(self, "input_names", [i.name for i in inputs])
        object.__setattr__(self, "output_names", [o.name for o in graph.output])
        nodes = []
        for k, n in enumerate(graph.node):
            if n.domain not in ("", "ai.onnx"):
                raise UnsupportedOperatorError(f"load: node {n.name or k!r} ({n.domain}::{n.op_type}): only the "
                                               "default ONNX domain is supported")
            if n.op_type not in CONVERTERS:
                why = WAITING.get(n.op_type, "no jitgrad converter")
                raise UnsupportedOperatorError(f"load: node {n.name or n.op_type + '_' + str(k)!r} uses operator "
                                               f"{n.op_type!r}, unsupported: {why}")
            nodes.append(_Node(n, opset, k))
        object.__setattr__(self, "nodes", nodes)

    def to(self, device: str | None = None, *, dtype: Any = None) -> "OnnxModule":
        # Constants are host arrays (shapes and indices are read on the host): only parameters move.
        return super().to(device, dtype=dtype)

    def forward(self, *inputs: Any) -> Any:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"{self.graph_name or 'OnnxModule'}: expected {len(self.input_names)} input(s) "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        env: dict[str, Any] = {"": None}
        for name, arr in self._constants.items():
            env[name] = Tensor(arr)
        env.update(self._buffers)
        env.update(self._parameters)
        for name, x in zip(self.input_names, inputs):
            env[name] = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        for node in self.nodes:
            args = [env[i] if i in env else _missing(node, i) for i in node.inputs]
            try:
                out = node.fn(node, args)
            except NodeError:
                raise
            except Exception as exc:  # a converter's error, given the node it came from
                raise NodeError(f"node {node.name!r} ({node.op_type}): {type(exc).__name__}: {exc}") from exc
            outs = out if isinstance(out, (list, tuple)) else [out]
            for name, value in zip(node.outputs, outs):
                if name:
                    env[name] = value
        result = tuple(env[o] for o in self.output_names)
        return result[0] if len(result) == 1 else result

    def extra_repr(self) -> str:
        return (f"graph={self.graph_name!r}, opset={self.opset}, nodes={len(self.nodes)}, "
                f"inputs={self.input_names}, outputs={self.output_names}")


def _graph_inputs(graph: Any) -> list[Any]:
    """The graph's real inputs (not initializers), each checked to have a known rank."""
    init_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    for i in inputs:
        if not i.type.tensor_type.HasField("shape"):
            raise ValueError(f"load: graph input {i.name!r} has an unknown shape (no rank); give the model "
                             "a fixed-rank input (onnx.tools.update_model_dims or re-export)")
    return inputs


def _missing(node: _Node, name: str) -> Any:
    raise NodeError(f"node {node.name!r} ({node.op_type}): input {name!r} is produced by no earlier node, "
                    "initializer or graph input (is the graph topologically sorted?)")


def _default_opset(model: Any) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            if not MIN_OPSET <= o.version <= MAX_OPSET:
                raise ValueError(f"load: default-domain opset {o.version} is not supported "
                                 f"(jitgrad reads {MIN_OPSET} to {MAX_OPSET})")
            return int(o.version)
    raise ValueError("load: the model imports no default-domain (ai.onnx) opset")


def _read(source: Any) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(source, onnx.ModelProto):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"load: no ONNX file at {str(path)!r}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"load: {str(path)!r} is not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    if not model.HasField("graph") or not model.graph.node:
        raise ValueError(f"load: {str(path)!r} is not an ONNX model (no graph nodes; truncated or another format?)")
    base = path.parent
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            where = {e.key: e.value for e in init.external_data}.get("location", "")
            if not (base / where).is_file():
                raise FileNotFoundError(f"load: initializer {init.name!r} keeps its data in the external file "
                                        f"{where!r}, missing next to {str(path)!r}")
    onnx.load_external_data_for_model(model, os.fspath(base))
    return model


def load(path: str | Path | Any) -> OnnxModule:
    """Read an ONNX model as a trainable :class:`OnnxModule`.

    Parameters
    ----------
    path : str, Path or onnx.ModelProto
        The ``.onnx`` file (external-data files next to it) or a model in memory.

    Returns
    -------
    OnnxModule
        In training mode, like any new Module (call ``eval()`` for inference;
        imported graphs have no mode-dependent op).

    Raises
    ------
    FileNotFoundError
        No such file, or an external-data file is missing (named).
    ValueError
        Not an ONNX model (truncated, another format), an unsupported opset, or
        a graph input without a shape.
    UnsupportedOperatorError
        A node whose operator has no converter (the message names node and operator).
    """
    import onnx

    model = _read(path)
    _graph_inputs(model.graph)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ValueError(f"load: the model is not valid ONNX: {str(exc).splitlines()[0]}") from exc
    return OnnxModule(model)
