"""``export``: trace one forward pass of a Module and write it as an ONNX graph.

Tracing: while the forward runs, :data:`jitgrad.autograd.function._trace_hook`
sees every ``Function.apply`` (its class, arguments, keyword
hyper-parameters and result). Each call becomes ONNX nodes through
:data:`EXPORTERS`, a table from the Function's class name to a small
function; the Tensors a call reads are graph values when an earlier call
made them, the model's input, a parameter (an initializer under its
``named_parameters`` name) or, otherwise, a constant initializer. Adding an
op later is one entry in the table (:func:`register_exporter`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jitgrad.autograd import function as _function
from jitgrad.autograd.grad_mode import no_grad
from jitgrad.autograd.gradcheck import tensor_outputs
from jitgrad.autograd.tensor import Tensor
from jitgrad.onnx._registry import register_in

__all__ = ["EXPORTERS", "register_exporter", "export", "UnsupportedOperatorError"]


class UnsupportedOperatorError(NotImplementedError):
    """An op with no ONNX mapping (export) or an ONNX operator with no jitgrad converter (import)."""


class _Graph:
    """What the trace has built so far: nodes, initializers and the names of the values."""

    def __init__(self, opset: int) -> None:
        import onnx.helper  # noqa: F401  (imported here: onnx is an optional extra)

        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: dict[int, str] = {}   # id(Tensor) -> value name
        self.keep: list[Any] = []         # keeps traced tensors alive so their ids stay unique
        self.batch_values: set[str] = set()  # values whose dim 0 is the (dynamic) batch
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any) -> str:
        """Append one node; returns the name of its (first) output."""
        from onnx import helper

        outputs = outputs or [self.fresh(op)]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(op + "_node"), **attrs))
        return outputs[0]

    def constant(self, value: Any, dtype: Any = None, hint: str = "const") -> str:
        # A Constant node, not an initializer: on import, initializers become trainable Parameters.
        from onnx import numpy_helper

        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        return self.node("Constant", [], [self.fresh(hint)], value=numpy_helper.from_array(arr))

    def value(self, x: Any, dtype: Any) -> str:
        """The name of argument ``x``: a traced value, a parameter, or a new constant."""
        # Layers may hand an op their buffer's array (or a new Tensor around it): found by the array's id.
        name = self.names.get(id(x.data if isinstance(x, Tensor) else x))
        if isinstance(x, Tensor):
            name = self.names.get(id(x), name)
            if name is not None:
                return name
            name = self.constant(x.numpy(), hint="const")
            self.names[id(x)] = name
            self.keep.append(x)
            return name
        return name if name is not None else self.constant(x, dtype=dtype)


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, (int, np.integer)) else [int(a) for a in v]


# --- the exporters: fn(graph, args, kwargs, result) -> name of the output value ----------------

Exporter = Callable[[_Graph, tuple, dict, Tensor], str]
EXPORTERS: dict[str, Exporter] = {}


def register_exporter(*function_names: str) -> Callable[[Exporter], Exporter]:
    """Decorator: export calls of the named ``Function`` classes with the decorated function."""
    return register_in(EXPORTERS, function_names)


def _inputs(g: _Graph, args: tuple, result: Tensor) -> list[str]:
    return [g.value(a, result.dtype) for a in args if a is not None]


def _simple(onnx_op: str, **fixed: Any) -> Exporter:
    def fn(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
        return g.node(onnx_op, _inputs(g, args, result), **fixed)
    fn.__doc__ = f"One ``{onnx_op}`` node."
    return fn


for _jg, _ox in [("Add", "Add"), ("Sub", "Sub"), ("Mul", "Mul"), ("Div", "Div"), ("Pow", "Pow"),
                 ("Neg", "Neg"), ("Exp", "Exp"), ("Log", "Log"), ("Sqrt", "Sqrt"), ("Abs", "Abs"),
                 ("MatMul", "MatMul"), ("ReLU", "Relu"), ("Sigmoid", "Sigmoid"), ("Tanh", "Tanh")]:
    EXPORTERS[_jg] = _simple(_ox)


@register_exporter("ToDevice")
def _identity(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    return g.node("Identity", _inputs(g, args[:1], result))


@register_exporter("Linear")
def _linear(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    return g.node("Gemm", _inputs(g, args, result), transB=1)


@register_exporter("Sum", "Mean", "Max")
def _reduce(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    x = args[0]
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    keepdims = kwargs.get("keepdims", args[2] if len(args) > 2 else False)
    axes = list(range(x.ndim)) if axis is None else [int(a) for a in (axis if isinstance(axis, tuple) else (axis,))]
    op = {"Sum": "ReduceSum", "Mean": "ReduceMean", "Max": "ReduceMax"}[g.current]
    inputs = [g.value(x, result.dtype)]
    # ReduceSum takes its axes as an input from opset 13, the others from opset 18.
    if op == "ReduceSum" or g.opset >= 18:
        return g.node(op, inputs + [g.constant(axes, np.int64)], keepdims=int(bool(keepdims)))
    return g.node(op, inputs, axes=axes, keepdims=int(bool(keepdims)))


@register_exporter("Reshape")
def _reshape(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    x = args[0]
    name = g.value(x, result.dtype)
    shape = list(result.shape)
    if x.ndim >= 1 and len(shape) == 2 and shape[0] == x.shape[0]:
        return g.node("Flatten", [name], axis=1)  # (N, ...) -> (N, -1): no batch size written down
    if shape and x.ndim >= 1 and shape[0] == x.shape[0] and g.names.get(id(x)) in g.batch_values:
        shape[0] = 0  # ONNX Reshape: 0 copies the input's dimension (the dynamic batch)
    return g.node("Reshape", [name, g.constant(shape, np.int64)])


@register_exporter("Permute")
def _permute(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    return g.node("Transpose", _inputs(g, args[:1], result), perm=[int(a) for a in kwargs["axes"]])


@register_exporter("Getitem")
def _getitem(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    x, index = args[0], kwargs["index"]
    index = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis or i is None or not isinstance(i, (slice, int, np.integer)) for i in index):
        raise UnsupportedOperatorError(f"export: Getitem with index {index!r} has no ONNX mapping "
                                       "(only ints and slices are exported)")
    starts, ends, axes, steps, squeeze = [], [], [], [], []
    for axis, i in enumerate(index):
        if isinstance(i, slice):
            if i == slice(None):
                continue
            start, stop, step = i.indices(x.shape[axis])
            starts.append(start)
            ends.append(stop if step > 0 or stop >= 0 else -(2 ** 63))
            steps.append(step)
        else:
            start = int(i) % x.shape[axis]
            starts.append(start), ends.append(start + 1), steps.append(1), squeeze.append(axis)
        axes.append(axis)
    name = g.value(x, result.dtype)
    if axes:
        name = g.node("Slice", [name] + [g.constant(v, np.int64) for v in (starts, ends, axes, steps)])
    if squeeze:
        name = g.node("Squeeze", [name, g.constant(squeeze, np.int64)])
    return name


@register_exporter("Cast")
def _cast(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    from onnx import helper

    return g.node("Cast", _inputs(g, args[:1], result), to=helper.np_dtype_to_tensor_dtype(np.dtype(result.dtype)))


@register_exporter("LeakyReLU")
def _leaky_relu(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    return g.node("LeakyRelu", _inputs(g, args, result), alpha=float(kwargs.get("negative_slope", 0.01)))


@register_exporter("ELU")
def _elu(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    return g.node("Elu", _inputs(g, args, result), alpha=float(kwargs.get("alpha", 1.0)))


@register_exporter("Softplus")
def _softplus(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    # ONNX Softplus is log(1 + exp(x)); jitgrad's threshold only switches to x where the two agree.
    beta = float(kwargs.get("beta", 1.0))
    (x,) = _inputs(g, args, result)
    if beta == 1.0:
        return g.node("Softplus", [x])
    b = g.constant(beta, result.dtype)
    return g.node("Div", [g.node("Softplus", [g.node("Mul", [x, b])]), b])


@register_exporter("GELU")
def _gelu(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    (x,) = _inputs(g, args, result)
    approximate = kwargs.get("approximate", "none")
    if g.opset >= 20:
        return g.node("Gelu", [x], approximate=approximate)
    dt = result.dtype
    half, one = g.constant(0.5, dt), g.constant(1.0, dt)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, g.constant(0.044715, dt)])])
        t = g.node("Tanh", [g.node("Mul", [inner, g.constant(math.sqrt(2 / math.pi), dt)])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = g.node("Erf", [g.node("Div", [x, g.constant(math.sqrt(2.0), dt)])])
    return g.node("Mul", [g.node("Mul", [x, half]), g.node("Add", [t, one])])


@register_exporter("Softmax", "LogSoftmax")
def _softmax(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    return g.node(g.current, _inputs(g, args[:1], result), axis=int(kwargs.get("axis", -1)))


@register_exporter("Conv2d")
def _conv2d(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    w = args[1]
    pad = _pair(kwargs.get("padding", 0))
    groups = int(kwargs.get("groups", 1))
    return g.node("Conv", _inputs(g, args, result), kernel_shape=list(w.shape[2:]),
                  strides=_pair(kwargs.get("stride", 1)), dilations=_pair(kwargs.get("dilation", 1)),
                  pads=pad + pad, group=groups)


@register_exporter("LinearActivation", "Conv2dActivation")
def _fused(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    """A fused layer is its two ONNX nodes: ``Gemm`` or ``Conv``, then the activation."""
    name = (_linear if g.current == "LinearActivation" else _conv2d)(g, args, kwargs, result)
    return g.node("Relu", [name]) if kwargs.get("activation", "relu") == "relu" else name


@register_exporter("MaxPool2d", "AvgPool2d")
def _pool(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    k = _pair(kwargs["kernel_size"])
    stride = kwargs.get("stride")
    pad = _pair(kwargs.get("padding", 0))
    attrs = {"kernel_shape": k, "strides": k if stride is None else _pair(stride), "pads": pad + pad}
    if g.current == "AvgPool2d":
        attrs["count_include_pad"] = int(bool(kwargs.get("count_include_pad", True)))
        return g.node("AveragePool", _inputs(g, args[:1], result), **attrs)
    return g.node("MaxPool", _inputs(g, args[:1], result), **attrs)


@register_exporter("BatchNorm")
def _batch_norm(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    if kwargs.get("training", False):
        raise UnsupportedOperatorError("export: BatchNorm in training mode (batch statistics) has no ONNX "
                                       "inference mapping; export runs the model in eval mode")
    x, weight, bias, mean, var = args[:5]
    c = x.shape[1]
    dt = result.dtype
    names = [g.value(x, dt),
             g.value(weight, dt) if weight is not None else g.constant(np.ones(c), dt),
             g.value(bias, dt) if bias is not None else g.constant(np.zeros(c), dt),
             g.value(mean, dt), g.value(var, dt)]
    return g.node("BatchNormalization", names, epsilon=float(kwargs.get("eps", 1e-5)))


@register_exporter("LayerNorm")
def _layer_norm(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    x, weight, bias = args[:3]
    shape = tuple(kwargs["normalized_shape"])
    dt = result.dtype
    names = [g.value(x, dt), g.value(weight, dt) if weight is not None else g.constant(np.ones(shape), dt)]
    if bias is not None:
        names.append(g.value(bias, dt))
    return g.node("LayerNormalization", names, axis=-len(shape), epsilon=float(kwargs.get("eps", 1e-5)))


@register_exporter("LocalResponseNorm")
def _lrn(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    size, before = int(kwargs["size"]), int(kwargs["before"])
    alpha, beta, k = float(kwargs["alpha"]), float(kwargs["beta"]), float(kwargs["k"])
    (x,) = _inputs(g, args[:1], result)
    if before == (size - 1) // 2:  # ONNX's window placement (PyTorch's too for an odd size)
        return g.node("LRN", [x], size=size, alpha=alpha, beta=beta, bias=k)
    # Another placement (PyTorch's for an even size): the window sum of squares as a 1x1 Conv with a
    # constant band matrix, then x * (k + alpha / size * sum) ** -beta.
    c, dt = args[0].shape[1], result.dtype
    band = np.zeros((c, c) + (1,) * (args[0].ndim - 2))
    for ch in range(c):
        band[ch, max(0, ch - before):min(c, ch - before + size)] = 1.0
    sums = g.node("Conv", [g.node("Mul", [x, x]), g.constant(band, dt)])
    scale = g.node("Add", [g.node("Mul", [sums, g.constant(alpha / size, dt)]), g.constant(k, dt)])
    return g.node("Mul", [x, g.node("Pow", [scale, g.constant(-beta, dt)])])


@register_exporter("Cat")
def _cat(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    return g.node("Concat", _inputs(g, args, result), axis=int(kwargs.get("axis", 0)))


@register_exporter("ConvTranspose2d")
def _conv_transpose2d(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    w = args[1]
    pad = _pair(kwargs.get("padding", 0))
    return g.node("ConvTranspose", _inputs(g, args, result), kernel_shape=list(w.shape[2:]),
                  strides=_pair(kwargs.get("stride", 1)), dilations=_pair(kwargs.get("dilation", 1)),
                  pads=pad + pad, output_padding=_pair(kwargs.get("output_padding", 0)),
                  group=int(kwargs.get("groups", 1)))


@register_exporter("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
def _adaptive_pool(g: _Graph, args: tuple, kwargs: dict, result: Tensor) -> str:
    if tuple(result.shape[2:]) != (1, 1):
        raise UnsupportedOperatorError(f"export: {g.current} to output size {tuple(result.shape[2:])} has no "
                                       "ONNX mapping (only (1, 1): GlobalAveragePool / GlobalMaxPool)")
    op = "GlobalAveragePool" if g.current == "AdaptiveAvgPool2d" else "GlobalMaxPool"
    return g.node(op, _inputs(g, args[:1], result))


# --- the tracer ---------------------------------------------------------------------------------


def _trace(model: Any, x: Tensor, g: _Graph, input_name: str) -> Any:
    g.names[id(x)] = input_name
    g.batch_values.add(input_name)

    def hook(cls: type, args: tuple, kwargs: dict, result: Tensor) -> None:
        exporter = EXPORTERS.get(cls.__name__)
        if exporter is None:
            raise UnsupportedOperatorError(
                f"export: jitgrad op {cls.__name__} has no ONNX mapping (supported: {', '.join(sorted(EXPORTERS))}); "
                "register one with jitgrad.onnx.register_exporter")
        g.current = cls.__name__
        name = exporter(g, args, kwargs, result)
        g.names[id(result)] = name
        g.keep.append(result)
        if any(isinstance(a, Tensor) and g.names.get(id(a)) in g.batch_values for a in args):
            g.batch_values.add(name)

    previous = _function._trace_hook
    if previous is not None:
        raise RuntimeError("export: another export is tracing in this process")
    _function._trace_hook = hook
    try:
        with no_grad():
            return model(x)
    finally:
        _function._trace_hook = None


def export(model: Any, example_input: Any, path: str | Path | None = None, opset: int = 17,
           input_names: list[str] | tuple[str, ...] = ("input",),
           output_names: list[str] | tuple[str, ...] | None = None, dynamic_batch: bool = True) -> Any:
    """Trace ``model(example_input)`` once and write it as an ONNX model.

    The model runs in evaluation mode (dropout is the identity and vanishes
    from the graph; its train/eval mode is restored afterwards) and without
    gradients. Parameters become initializers under their
    ``named_parameters()`` names; tensors made inside ``forward`` that do not
    depend on the input become constants.

    Parameters
    ----------
    model : Module
        Built from jitgrad layers and functional ops (any ``forward``).
    example_input : Tensor or array, shape ``(N, ...)``
        One batch; its shape (but the batch size, when ``dynamic_batch``) is
        written into the graph.
    path : str or Path, optional
        Where to write the ``.onnx`` file; None writes nothing.
    opset : int, default 17
        ONNX opset version of the default domain (13 to 21).
    input_names, output_names : sequence of str
        Names of the graph's input and outputs (default ``output``,
        ``output_1``, ...).
    dynamic_batch : bool, default True
        Declare dimension 0 of the input and outputs as the symbolic ``batch``.

    Returns
    -------
    onnx.ModelProto
        The model, already checked with ``onnx.checker.check_model(full_check=True)``.

    Raises
    ------
    UnsupportedOperatorError
        For an op with no ONNX mapping (the message names it).
    """
    import onnx
    from onnx import helper

    if not 13 <= int(opset) <= 21:
        raise ValueError(f"export: opset must be between 13 and 21, got {opset!r}")
    if len(input_names) != 1:
        raise ValueError(f"export: input_names must hold one name (one input), got {list(input_names)}")
    x = example_input if isinstance(example_input, Tensor) else Tensor(np.asarray(example_input, dtype=np.float32))
    if x.ndim == 0:
        raise ValueError("export: example_input must have a batch dimension, got a 0-d tensor")
    x = Tensor(x.data)  # a fresh leaf: its id names the graph input
    g = _Graph(int(opset))
    # Parameters and buffers (BatchNorm statistics) are initializers under their state_dict names.
    named = list(model.named_parameters()) + list(getattr(model, "named_buffers", lambda: [])())
    for name, tensor in named:
        if id(tensor) not in g.names:
            g.names[id(tensor)] = g.names[id(tensor.data)] = name
            g.initializers.append(onnx.numpy_helper.from_array(np.ascontiguousarray(tensor.numpy()), name))
    was_training = [m.training for m in model.modules()]
    model.eval()
    try:
        outs = tensor_outputs(_trace(model, x, g, input_names[0]), "export", "the model")
    finally:
        for m, mode in zip(model.modules(), was_training):
            object.__setattr__(m, "training", mode)
    names = list(output_names) if output_names is not None else (
        ["output"] + [f"output_{i}" for i in range(1, len(outs))])
    if len(names) != len(outs):
        raise ValueError(f"export: {len(outs)} output(s) but output_names has {len(names)}: {names}")
    for out, name in zip(outs, names):
        src = g.names.get(id(out))
        if src is None:
            raise ValueError("export: an output does not depend on any traced op (the model returned a constant "
                             "or its input unchanged)")
        g.node("Identity", [src], [name])

    def info(name: str, t: Tensor, batch: bool) -> Any:
        shape = list(t.shape)
        if dynamic_batch and batch and shape:
            shape[0] = "batch"
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), shape)

    graph = helper.make_graph(
        g.nodes, type(model).__name__, [info(input_names[0], x, True)],
        [info(n, o, g.names[id(o)] in g.batch_values) for n, o in zip(names, outs)], g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="jitgrad")
    proto.ir_version = min(proto.ir_version, 9 if opset <= 20 else 10)
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, str(path))
    return proto
