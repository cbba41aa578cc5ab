"""``load``: an ONNX graph as a trainable jitgrad ``Module`` that runs each node with jitgrad ops."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from jitgrad.autograd import function as _function
from jitgrad.autograd.grad_mode import is_grad_enabled, no_grad
from jitgrad.autograd.tensor import Tensor
from jitgrad.nn.functional_norm import batch_norm
from jitgrad.nn.module import Module, Parameter
from jitgrad.onnx._converters import CONVERTERS, WAITING, NodeError
from jitgrad.onnx import _converters_shape  # noqa: F401  (registers the shape converters)
from jitgrad.onnx import _inplace
from jitgrad.onnx._export import UnsupportedOperatorError

__all__ = ["OnnxModule", "load", "MIN_OPSET", "MAX_OPSET"]

#: The default-domain opsets the importer reads (operators' older semantics are handled where they differ).
MIN_OPSET, MAX_OPSET = 6, 25


class _Node:
    """One ONNX node, its attributes decoded once."""

    __slots__ = ("name", "op_type", "inputs", "outputs", "attrs", "opset", "fn", "then_bn", "after_conv",
                 "inplace")

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
        self.then_bn: _Node | None = None  # a Conv's sole consumer, when it is a BatchNormalization (inference)
        self.after_conv = False  # this BatchNormalization is some Conv's then_bn: the Conv runs it
        self.inplace = -1  # under no_grad, the input this node may overwrite (_inplace.plan), -1: none


class OnnxModule(Module):
    """An imported ONNX graph: float initializers are ``Parameter`` s, nodes run on jitgrad ops.

    ``named_parameters()`` gives the float initializers under their ONNX names
    (BatchNormalization's running statistics are ``named_buffers()``), so
    layers can be frozen by name (``p.requires_grad = False``); ``state_dict``,
    ``jitgrad.save``, ``to("cuda")`` and ``jitgrad.onnx.export`` work as on any
    Module. Non-float initializers (shapes, indices) stay constants.

    Call it with one Tensor per graph input; it returns one Tensor, or a tuple
    for several outputs.

    Inference (grad mode off, ``jitgrad.no_grad()``) takes shortcuts that
    give the same values: nodes whose inputs are all constants (a
    ``ConstantOfShape`` making a weight, shape arithmetic on initializers) were
    computed once by ``load``; BatchNormalization runs as one fused kernel,
    or, when it is the only consumer of a Conv's output, is folded into that
    Conv's weight and bias where that is the cheaper of the two; Relu, LeakyRelu and the residual
    Add/Sum write over an input that no later node reads (a Conv's output, never a graph input,
    output or parameter) instead of allocating. Nothing is cached: a parameter changed in place
    shows at the next call. With grad mode on, and while ``jitgrad.onnx.export``
    traces, every node runs as written (gradients reach every parameter; an
    export keeps them as parameters).
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
        folded = _fold_constants(nodes, consts)
        object.__setattr__(self, "_folded", folded)
        object.__setattr__(self, "_run", [n for n in nodes if not all(o in folded for o in n.outputs if o)])
        _pair_conv_bn(self._run, self.output_names)
        _inplace.plan(self._run, self.output_names)

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
        env.update(self._folded)
        env.update(self._buffers)
        env.update(self._parameters)
        for name, x in zip(self.input_names, inputs):
            env[name] = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        # Shortcuts only for inference, never while jitgrad.onnx.export traces (the export keeps the graph as written).
        inference = not is_grad_enabled() and _function._trace_hook is None
        for node in self._run:
            if inference and node.after_conv:
                continue  # the Conv before it ran it (_conv_then_bn)
            args = [env[i] if i in env else _missing(node, i) for i in node.inputs]
            try:
                if not inference:
                    out = node.fn(node, args)
                elif node.then_bn is not None:
                    bn = node.then_bn
                    bn_args = [env[i] if i in env else _missing(bn, i) for i in bn.inputs[1:]]
                    env[bn.outputs[0]] = out = _conv_then_bn(node, args, bn, bn_args)
                elif node.op_type == "BatchNormalization":
                    out = _batch_norm_inference(node, args)
                elif node.inplace < 0 or (out := _inplace.run(node, args)) is None:
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


def _fold_constants(nodes: list[_Node], consts: dict[str, np.ndarray]) -> dict[str, Any]:
    """Outputs of the nodes that depend on constants only, computed once (as onnxruntime does at load).

    Constants are non-float initializers and what earlier folded nodes made;
    parameters and buffers are not (they train and move). A node that fails
    here is left to run, and report its error, at call time.
    """
    known: dict[str, Any] = {name: Tensor(arr) for name, arr in consts.items()}
    folded: dict[str, Any] = {}
    with no_grad():
        for node in nodes:
            if not node.inputs or not all(i == "" or i in known for i in node.inputs):
                continue
            try:
                out = node.fn(node, [known[i] if i else None for i in node.inputs])
            except Exception:  # noqa: BLE001 - reported when the node runs
                continue
            outs = out if isinstance(out, (list, tuple)) else [out]
            for name, value in zip(node.outputs, outs):
                if name:
                    known[name] = folded[name] = value
    return folded


def _pair_conv_bn(nodes: list[_Node], graph_outputs: list[str]) -> None:
    """Mark each Conv whose output feeds only one BatchNormalization (as its input ``X``) and nothing else."""
    uses: dict[str, int] = {name: 1 for name in graph_outputs}
    for node in nodes:
        for name in node.inputs:
            uses[name] = uses.get(name, 0) + 1
    consumer = {n.inputs[0]: n for n in nodes if n.op_type == "BatchNormalization" and n.inputs}
    for node in nodes:
        node.then_bn, node.after_conv = None, False
    for node in nodes:
        if node.op_type != "Conv" or len(node.outputs) != 1:
            continue
        bn = consumer.get(node.outputs[0])
        if bn is not None and uses.get(node.outputs[0]) == 1 and len([o for o in bn.outputs if o]) == 1 \
                and not bn.attrs.get("training_mode", 0):
            node.then_bn, bn.after_conv = bn, True


def _batch_norm_inference(node: _Node, x: list) -> Any:
    """BatchNormalization without gradients: jitgrad's fused ``batch_norm`` kernel (one pass) where it applies."""
    t = x[0]
    stats = x[1:5]
    if (t.ndim not in (2, 4) or len(stats) != 4 or any(s is None or s.device != t.device or s.dtype != t.dtype
                                                        or s.shape != (t.shape[1],) for s in stats)
            or node.attrs.get("training_mode", 0) or (len(node.outputs) > 1 and any(node.outputs[1:]))):
        return node.fn(node, x)  # the converter's arithmetic (and its errors)
    scale, bias, mean, var = stats
    return batch_norm(t, mean, var, scale, bias, training=False, eps=float(node.attrs.get("epsilon", 1e-5)))


def _conv_then_bn(conv: _Node, args: list, bn: _Node, bn_args: list) -> Any:
    """Conv then BatchNormalization without gradients, whichever way costs less.

    Folding BN into the Conv (``w * a`` per output channel, ``(b - mean) * a + beta``
    with ``a = scale / sqrt(var + eps)``) costs a pass over the weight; the
    fused BN kernel a pass over the Conv's output. Fold when the output has
    more elements per channel (N * H_out * W_out) than the weight has per
    output channel (C_in / groups * kH * kW): large feature maps, large batches.
    """
    t, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None
    strides = conv.attrs.get("strides", [1, 1])
    ok = (len(bn_args) == 4 and t.ndim == 4 and w.ndim == 4 and all(
        s is not None and s.device == w.device and s.dtype == w.dtype and s.shape == (w.shape[0],)
        for s in bn_args) and (b is None or b.device == w.device))
    per_channel = t.shape[0] * (t.shape[2] // strides[0]) * (t.shape[3] // strides[1]) if ok else 0
    if not ok or per_channel < w.shape[1] * w.shape[2] * w.shape[3]:
        return _batch_norm_inference(bn, [conv.fn(conv, args), *bn_args])
    scale, beta, mean, var = bn_args
    a = scale / (var + float(bn.attrs.get("epsilon", 1e-5))).sqrt()
    folded_b = (beta - mean * a) if b is None else (b - mean) * a + beta
    return conv.fn(conv, [t, w * a.reshape(-1, 1, 1, 1), folded_b])


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
