"""The import table: ONNX operator name -> a small function that runs the node with jitgrad ops.

Each converter is ``fn(node, inputs) -> Tensor | list[Tensor]``: ``node``
carries the operator's attributes (``node.attrs``, defaults applied by the
converter), its opset (``node.opset``) and its name for error messages;
``inputs`` are jitgrad Tensors (None for an omitted optional input). Float
math goes through jitgrad's autograd ops (so an imported model trains and
runs on CUDA); integer "shape" values (Shape, Gather, Concat of sizes, ...)
are small host tensors, computed with NumPy as in any ONNX runtime.

Add an operator with :func:`register_converter`. Operators whose jitgrad op
is not yet on main are listed in :data:`WAITING` with the layer they need.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jitgrad.autograd import ops
from jitgrad.autograd.grad_mode import is_grad_enabled
from jitgrad.autograd.tensor import Tensor
from jitgrad.nn import functional as F
from jitgrad.onnx._registry import register_in

__all__ = ["CONVERTERS", "WAITING", "register_converter", "NodeError"]


class NodeError(ValueError):
    """A node the importer cannot run as written (bad attributes or shapes); the message names it."""


Converter = Callable[[Any, list], Any]
CONVERTERS: dict[str, Converter] = {}

#: Operators of issue 15's list that wait for a jitgrad op of issue 14 (or a kernel) not yet on main.
WAITING: dict[str, str] = {}


def register_converter(*op_types: str) -> Callable[[Converter], Converter]:
    """Decorator: run ONNX nodes of ``op_types`` with the decorated function."""
    return register_in(CONVERTERS, op_types)


def _host(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else np.asarray(t.numpy())


def _needs_grad(inputs: list) -> bool:
    return is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in inputs)


def _on_device_of(arr: np.ndarray, like: Tensor) -> Tensor:
    t = Tensor(np.ascontiguousarray(arr))
    return t if like.device == "cpu" else t.to(like.device)


def _host_op(node: Any, inputs: list, fn: Callable[..., np.ndarray], waiting: str) -> Tensor:
    """Run a node on the host when no gradient must flow (shape idioms, inference); else name what is missing."""
    if _needs_grad(inputs):
        raise NodeError(f"node {node.name!r} ({node.op_type}) on tensors that require grad needs {waiting}; "
                        "run it under jitgrad.no_grad() or freeze its inputs")
    like = next(t for t in inputs if t is not None)
    return _on_device_of(fn(*[_host(t) for t in inputs]), like)


def _axis(node: Any, axis: int, ndim: int) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise NodeError(f"node {node.name!r} ({node.op_type}): axis {axis} out of range for rank {ndim}")
    return axis % max(ndim, 1)


# --- elementwise -------------------------------------------------------------------------------

@register_converter("Identity")
def _identity(node: Any, x: list) -> Any:
    return x[0]


@register_converter("Dropout")
def _dropout(node: Any, x: list) -> Any:
    # Inference: dropout is the identity (training_mode, when given and true, is refused).
    if len(x) > 2 and x[2] is not None and bool(_host(x[2])):
        raise NodeError(f"node {node.name!r} (Dropout): training_mode=True is not supported on import")
    return [x[0], Tensor(np.ones(x[0].shape, dtype=bool))]


def _same_device(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Constants (Constant nodes, host shape values) join the device of the other operand."""
    if a.device == b.device:
        return a, b
    return (a.to(b.device), b) if a.device == "cpu" else (a, b.to(a.device))


def _binary(fn: Callable[[Any, Any], Any]) -> Converter:
    def conv(node: Any, x: list) -> Any:
        return fn(*_same_device(x[0], x[1]))
    return conv


for _op, _fn in [("Add", lambda a, b: a + b), ("Sub", lambda a, b: a - b), ("Mul", lambda a, b: a * b),
                 ("Pow", lambda a, b: a ** b)]:
    CONVERTERS[_op] = _binary(_fn)


@register_converter("Div")
def _div(node: Any, x: list) -> Any:
    a, b = _same_device(*x)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":  # ONNX integer division truncates
        return Tensor(np.trunc(_host(a) / _host(b)).astype(a.dtype))
    return a / b


@register_converter("Sum")
def _sum(node: Any, x: list) -> Any:
    out = x[0]
    for t in x[1:]:
        out, t = _same_device(out, t)
        out = out + t
    return out


for _op, _method in [("Neg", "__neg__"), ("Exp", "exp"), ("Log", "log"), ("Sqrt", "sqrt"), ("Abs", "abs"),
                     ("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh")]:
    CONVERTERS[_op] = (lambda m: lambda node, x: getattr(x[0], m)())(_method)


@register_converter("LeakyRelu")
def _leaky_relu(node: Any, x: list) -> Any:
    return x[0].leaky_relu(node.attrs.get("alpha", 0.01))


@register_converter("Elu")
def _elu(node: Any, x: list) -> Any:
    return x[0].elu(node.attrs.get("alpha", 1.0))


@register_converter("Softplus")
def _softplus(node: Any, x: list) -> Any:
    return x[0].softplus()


@register_converter("Gelu")
def _gelu(node: Any, x: list) -> Any:
    return x[0].gelu(node.attrs.get("approximate", "none"))


@register_converter("PRelu")
def _prelu(node: Any, x: list) -> Any:
    # max(0, x) + slope * min(0, x), with autograd ops only (the slope trains)
    t, slope = x
    if node.opset < 7 and slope.ndim == 1 and t.ndim > 2 and slope.shape[0] == t.shape[1]:
        slope = slope.reshape((1, -1) + (1,) * (t.ndim - 2))  # opset 6: one slope per channel (axis 1)
    return t.relu() - slope * (-t).relu()


@register_converter("Clip")
def _clip(node: Any, x: list) -> Any:
    # max(x, lo) = lo + relu(x - lo) and min(x, hi) = hi - relu(hi - x): autograd ops only
    t = x[0]
    if node.opset < 11:
        lo, hi = node.attrs.get("min"), node.attrs.get("max")
    else:
        lo = None if len(x) < 2 or x[1] is None else x[1]
        hi = None if len(x) < 3 or x[2] is None else x[2]
    if lo is not None and hi is not None:  # min(max(x, lo), hi): all hi when lo > hi, as ONNX says
        return hi - (hi - (lo + (t - lo).relu())).relu()
    if lo is not None:
        return lo + (t - lo).relu()
    if hi is not None:
        return hi - (hi - t).relu()
    return t


@register_converter("Softmax", "LogSoftmax")
def _softmax(node: Any, x: list) -> Any:
    t = x[0]
    fn = t.softmax if node.op_type == "Softmax" else t.log_softmax
    if node.opset >= 13:
        return fn(_axis(node, node.attrs.get("axis", -1), t.ndim))
    # Before opset 13 the input is coerced to 2-D at ``axis`` and normalised over the second half.
    axis = _axis(node, node.attrs.get("axis", 1), t.ndim)
    shape = t.shape
    y = t.reshape(int(np.prod(shape[:axis], dtype=np.int64)), -1)
    y = y.softmax(-1) if node.op_type == "Softmax" else y.log_softmax(-1)
    return y.reshape(shape)


@register_converter("Cast")
def _cast(node: Any, x: list) -> Any:
    from onnx import helper

    return x[0].astype(helper.tensor_dtype_to_np_dtype(node.attrs["to"]))


# --- products, convolution and pooling ------------------------------------------------------------

@register_converter("MatMul")
def _matmul(node: Any, x: list) -> Any:
    a, b = _same_device(*x)
    if b.ndim <= 2 or (a.ndim == 3 and b.ndim == 3):
        return ops.matmul(a, b)
    # NumPy's matmul rules on the batched 3-D product: 1-D operands promoted, batch dimensions broadcast
    # (by adding zeros of the broadcast shape: the Add op reduces the gradient back), then one (B, M, K) @ (B, K, N).
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    try:
        batch = tuple(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    except ValueError:
        raise NodeError(f"node {node.name!r} (MatMul): batch dimensions of {a.shape} and {b.shape} do not "
                        "broadcast") from None
    (m, k), n = a2.shape[-2:], b2.shape[-1]

    def batched(t: Tensor, rows: int, cols: int) -> Tensor:
        if tuple(t.shape[:-2]) != batch:
            t = t + _on_device_of(np.zeros(batch + (rows, cols), dtype=t.dtype), t)
        return t.reshape(-1, rows, cols)

    y = ops.matmul(batched(a2, m, k), batched(b2, k, n)).reshape(batch + (m, n))
    if a.ndim == 1:
        y = y.reshape(batch + (n,))
    if b.ndim == 1:
        y = y.reshape(y.shape[:-1])
    return y


@register_converter("Gemm")
def _gemm(node: Any, x: list) -> Any:
    a, b = x[0], x[1]
    c = x[2] if len(x) > 2 else None
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    trans_a, trans_b = node.attrs.get("transA", 0), node.attrs.get("transB", 0)
    if not trans_a and trans_b and alpha == 1.0 and beta == 1.0 and (c is None or c.ndim == 1):
        return F.linear(a, b, c)  # the dense layer's fused Linear op
    y = ops.matmul(a.T if trans_a else a, b.T if trans_b else b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


def _pads_2d(node: Any, x: Tensor, kernel: list[int], strides: list[int],
             dilations: list[int]) -> tuple[list[int], list[int]]:
    """ONNX ``pads`` / ``auto_pad`` as (begin, end) per spatial axis (any number of spatial axes)."""
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            lo = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin.append(lo), end.append(total - lo)
        return begin, end
    n = len(kernel)
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    p = [int(v) for v in node.attrs.get("pads", [0] * 2 * n)]
    return p[:n], p[n:]


def _symmetric(x: Tensor, begin: list[int], end: list[int], value: float) -> tuple[Tensor, tuple[int, int]]:
    """Symmetric ``padding`` for jitgrad's kernels; an asymmetric part is padded explicitly (``pad`` op)."""
    if begin == end:
        return x, (begin[0], begin[1])
    return _pad_constant(x, begin, end, value), (0, 0)


def _pad_constant(x: Tensor, begin: list[int], end: list[int], value: float) -> Tensor:
    """``x`` padded with ``value`` by ``begin``/``end`` on its axes 2, 3, ... (differentiable)."""
    # Blocks of ``value`` joined with ``cat`` (exact for -inf, which MaxPool pads with; ops_shape.pad
    # computes (x - value) + value and turns -inf padding into NaN).
    from jitgrad.autograd.ops_shape import cat

    for axis, (lo, hi) in enumerate(zip(begin, end), start=2):
        parts = []
        for width in (lo, hi):
            shape = list(x.shape)
            shape[axis] = width
            parts.append(_on_device_of(np.full(shape, value, dtype=x.dtype), x) if width else None)
        if parts[0] is not None or parts[1] is not None:
            x = cat([t for t in (parts[0], x, parts[1]) if t is not None], axis=axis)
    return x


def _check_2d(node: Any, x: Tensor) -> None:
    if x.ndim != 4:
        raise NodeError(f"node {node.name!r} ({node.op_type}): only 2-D (NCHW) inputs are supported, "
                        f"got shape {x.shape}")


@register_converter("Conv")
def _conv(node: Any, x: list) -> Any:
    t, w = x[0], x[1]
    b = x[2] if len(x) > 2 else None
    _check_2d(node, t)
    kernel = list(w.shape[2:])
    strides = list(node.attrs.get("strides", [1, 1]))
    dilations = list(node.attrs.get("dilations", [1, 1]))
    t, pad = _symmetric(t, *_pads_2d(node, t, kernel, strides, dilations), 0.0)
    return F.conv2d(t, w, b, stride=tuple(strides), padding=pad, dilation=tuple(dilations),
                    groups=int(node.attrs.get("group", 1)))


@register_converter("ConvTranspose")
def _conv_transpose(node: Any, x: list) -> Any:
    from jitgrad.autograd.ops_shape import cat
    from jitgrad.nn.functional_conv import conv_transpose2d

    t, w = x[0], x[1]
    b = x[2] if len(x) > 2 else None
    if t.ndim == 3:  # 1-D: a 2-D transposed convolution over (L, 1)
        node1 = _Attrs1d(node)
        y = _conv_transpose(node1, [t.reshape(t.shape + (1,)), w.reshape(w.shape + (1,))] + list(x[2:]))
        return y.reshape(y.shape[:3])
    _check_2d(node, t)
    strides = [int(v) for v in node.attrs.get("strides", [1, 1])]
    dilations = [int(v) for v in node.attrs.get("dilations", [1, 1])]
    out_pad = [int(v) for v in node.attrs.get("output_padding", [0, 0])]
    groups = int(node.attrs.get("group", 1))
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    full = [(n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip(t.shape[2:], strides, w.shape[2:], dilations)]
    if "output_shape" in node.attrs or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # ONNX: total padding = full + output_padding - output_shape (output_shape = input * stride for SAME),
        # split with the odd one at the end for SAME_UPPER, at the beginning otherwise.
        target = [int(v) for v in node.attrs.get("output_shape", [n * s for n, s in zip(t.shape[2:], strides)])][-2:]
        total = [f + p - o for f, p, o in zip(full, out_pad, target)]
        begin = [tp // 2 if auto_pad == "SAME_UPPER" else tp - tp // 2 for tp in total]
        end = [tp - bg for tp, bg in zip(total, begin)]
    else:
        pads = [int(v) for v in node.attrs.get("pads", [0] * 4)]
        if auto_pad == "VALID":
            pads = [0] * 4
        begin, end = pads[:2], pads[2:]
    if begin == end and min(begin) >= 0 and all(p < max(s, d) for p, s, d in zip(out_pad, strides, dilations)):
        return conv_transpose2d(t, w, b, stride=tuple(strides), padding=tuple(begin), output_padding=tuple(out_pad),
                                groups=groups, dilation=tuple(dilations))
    # Asymmetric (or negative) pads: the full transposed convolution, then the window [begin, full + output_padding
    # - end) of it, zeros where the window reaches past it; the bias last.
    y = conv_transpose2d(t, w, None, stride=tuple(strides), padding=0, groups=groups, dilation=tuple(dilations))
    for axis, (lo, hi, f, p) in enumerate(zip(begin, end, full, out_pad), start=2):
        stop = f + p - hi
        if stop <= lo:
            raise NodeError(f"node {node.name!r} (ConvTranspose): pads {begin + end} leave no output")
        index = [slice(None)] * 4
        index[axis] = slice(max(lo, 0), min(stop, f))
        y = y[tuple(index)]
        parts = []
        for width in (max(0, -lo), max(0, stop - f)):
            shape = list(y.shape)
            shape[axis] = width
            parts.append(_on_device_of(np.zeros(shape, dtype=y.dtype), y) if width else None)
        if parts[0] is not None or parts[1] is not None:
            y = cat([v for v in (parts[0], y, parts[1]) if v is not None], axis=axis)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


class _Attrs1d:
    """A 1-D ConvTranspose node seen as 2-D over (L, 1): its per-axis attributes extended by the unit axis."""

    def __init__(self, node: Any) -> None:
        self.name, self.op_type, self.opset, self.outputs = node.name, node.op_type, node.opset, node.outputs
        a = dict(node.attrs)
        for key, unit in (("strides", 1), ("dilations", 1), ("output_padding", 0), ("kernel_shape", 1)):
            if key in a:
                a[key] = list(a[key]) + [unit]
        if "pads" in a:
            a["pads"] = [a["pads"][0], 0, a["pads"][1], 0]
        if "output_shape" in a:
            a["output_shape"] = list(a["output_shape"]) + [1]
        self.attrs = a


@register_converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(node: Any, x: list) -> Any:
    t = x[0]
    axes = tuple(range(2, t.ndim))
    return t.mean(axis=axes, keepdims=True) if node.op_type == "GlobalAveragePool" else t.max(axis=axes, keepdims=True)


@register_converter("BatchNormalization")
def _batch_norm(node: Any, x: list) -> Any:
    # Inference form: (x - mean) / sqrt(var + eps) * scale + bias, per channel (axis 1), on autograd ops.
    t, scale, bias, mean, var = x[:5]
    shape = (1, -1) + (1,) * (t.ndim - 2)
    if node.attrs.get("training_mode", 0) or (len(node.outputs) > 1 and any(node.outputs[1:])):
        # Training mode: batch statistics (biased variance) normalise; the running statistics come out as
        # outputs, ONNX's momentum weighting the old value: running = running * momentum + batch * (1 - momentum).
        axes = (0,) + tuple(range(2, t.ndim))
        mu = t.mean(axis=axes)
        d = t - mu.reshape(shape)
        batch_var = (d * d).mean(axis=axes)
        y = d / (batch_var.reshape(shape) + node.attrs.get("epsilon", 1e-5)).sqrt() * scale.reshape(shape)
        m = float(node.attrs.get("momentum", 0.9))
        return [y + bias.reshape(shape), mean * m + mu * (1 - m), var * m + batch_var * (1 - m), mu, batch_var]
    inv = (var.reshape(shape) + node.attrs.get("epsilon", 1e-5)).sqrt()
    return (t - mean.reshape(shape)) / inv * scale.reshape(shape) + bias.reshape(shape)


@register_converter("LRN")
def _lrn(node: Any, x: list) -> Any:
    # ONNX's window: (size - 1) // 2 channels before the centre (one later than PyTorch's for an even size).
    from jitgrad.autograd.ops_norm import LocalResponseNorm

    t = x[0]
    if t.ndim < 3:
        raise NodeError(f"node {node.name!r} (LRN): input must be at least 3-D (N, C, D1, ...), got shape {t.shape}")
    size = int(node.attrs["size"])
    return LocalResponseNorm.apply(t, size=size, alpha=float(node.attrs.get("alpha", 1e-4)),
                                   beta=float(node.attrs.get("beta", 0.75)), k=float(node.attrs.get("bias", 1.0)),
                                   before=(size - 1) // 2)


@register_converter("LayerNormalization")
def _layer_norm(node: Any, x: list) -> Any:
    t, scale = x[0], x[1]
    bias = x[2] if len(x) > 2 else None
    axis = _axis(node, node.attrs.get("axis", -1), t.ndim)
    axes = tuple(range(axis, t.ndim))
    mu = t.mean(axis=axes, keepdims=True)
    d = t - mu
    std = ((d * d).mean(axis=axes, keepdims=True) + node.attrs.get("epsilon", 1e-5)).sqrt()
    y = d / std * scale
    return [y if bias is None else y + bias, mu, 1.0 / std]


@register_converter("ReduceMean", "ReduceSum", "ReduceMax")
def _reduce(node: Any, x: list) -> Any:
    t = x[0]
    if len(x) > 1 and x[1] is not None:
        axes = [int(a) for a in _host(x[1])]
    else:
        axes = list(node.attrs.get("axes", []))
    if not axes:
        if node.attrs.get("noop_with_empty_axes", 0):
            return t
        axes = list(range(t.ndim))
    axes_t = tuple(_axis(node, a, t.ndim) for a in axes)
    keep = bool(node.attrs.get("keepdims", 1))
    method = {"ReduceMean": t.mean, "ReduceSum": t.sum, "ReduceMax": t.max}[node.op_type]
    return method(axis=axes_t, keepdims=keep)


from jitgrad.onnx import _converters_pool  # noqa: E402,F401  (registers MaxPool and AveragePool)
