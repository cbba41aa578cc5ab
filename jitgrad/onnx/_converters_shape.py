"""Import converters of the shape family: Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Split, Slice,
Concat, Pad, Constant, ConstantOfShape, Shape, Gather (registered into ``CONVERTERS`` on import)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad.autograd.tensor import Tensor
from jitgrad.onnx._converters import NodeError, _axis, _host, _host_op, register_converter

__all__: list[str] = []


@register_converter("Flatten")
def _flatten(node: Any, x: list) -> Any:
    t = x[0]
    axis = node.attrs.get("axis", 1)
    axis = axis % t.ndim if axis < 0 else axis
    if axis > t.ndim:
        raise NodeError(f"node {node.name!r} (Flatten): axis {axis} out of range for rank {t.ndim}")
    return t.reshape(int(np.prod(t.shape[:axis], dtype=np.int64)), -1)


@register_converter("Reshape")
def _reshape(node: Any, x: list) -> Any:
    t = x[0]
    shape = [int(s) for s in _host(x[1])] if node.opset >= 5 else list(node.attrs["shape"])
    if not node.attrs.get("allowzero", 0):
        shape = [t.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return t.reshape(tuple(shape))


@register_converter("Transpose")
def _transpose(node: Any, x: list) -> Any:
    t = x[0]
    perm = node.attrs.get("perm", list(range(t.ndim - 1, -1, -1)))
    return t.permute(*perm) if t.ndim else t


def _axes(node: Any, x: list) -> list[int] | None:
    if node.opset >= 13:
        return None if len(x) < 2 or x[1] is None else [int(a) for a in _host(x[1])]
    return node.attrs.get("axes")


@register_converter("Squeeze")
def _squeeze(node: Any, x: list) -> Any:
    t = x[0]
    axes = _axes(node, x)
    drop = {i for i, s in enumerate(t.shape) if s == 1} if axes is None else {_axis(node, a, t.ndim) for a in axes}
    for a in drop:
        if t.shape[a] != 1:
            raise NodeError(f"node {node.name!r} (Squeeze): axis {a} of shape {t.shape} is not 1")
    return t.reshape(tuple(s for i, s in enumerate(t.shape) if i not in drop))


@register_converter("Unsqueeze")
def _unsqueeze(node: Any, x: list) -> Any:
    t = x[0]
    axes = _axes(node, x) or []
    rank = t.ndim + len(axes)
    new = sorted(_axis(node, a, rank) for a in axes)
    shape = list(t.shape)
    for a in new:
        shape.insert(a, 1)
    return t.reshape(tuple(shape))


@register_converter("Split")
def _split(node: Any, x: list) -> Any:
    t = x[0]
    axis = _axis(node, node.attrs.get("axis", 0), t.ndim)
    if node.opset >= 13:
        split = None if len(x) < 2 or x[1] is None else [int(s) for s in _host(x[1])]
    else:
        split = node.attrs.get("split")
    n = len(node.outputs)
    size = t.shape[axis]
    if split is None:
        n = node.attrs.get("num_outputs", n)
        chunk = -(-size // n)
        split = [min(chunk, size - i * chunk) for i in range(n)]
    if sum(split) != size:
        raise NodeError(f"node {node.name!r} (Split): sizes {split} do not add up to {size} on axis {axis}")
    outs, start = [], 0
    for s in split:
        index = (slice(None),) * axis + (slice(start, start + s),)
        outs.append(t[index])
        start += s
    return outs


@register_converter("Slice")
def _slice(node: Any, x: list) -> Any:
    t = x[0]
    if node.opset >= 10:
        starts, ends = _host(x[1]), _host(x[2])
        axes = _host(x[3]) if len(x) > 3 and x[3] is not None else range(len(starts))
        steps = _host(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
    else:
        starts, ends = node.attrs["starts"], node.attrs["ends"]
        axes = node.attrs.get("axes", range(len(starts)))
        steps = [1] * len(starts)
    index = [slice(None)] * t.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _axis(node, int(a), t.ndim)
        size = t.shape[a]
        s, e, st = int(s), int(e), int(st)
        # ONNX clamps out-of-range ends (INT64_MAX / INT64_MIN) as Python slicing does, except a
        # negative end clamped to -1 with a negative step, which Python reads as "the last element".
        e = None if (st < 0 and e < -size) else max(min(e, size), -size - 1)
        index[a] = slice(max(min(s, size), -size - 1), e, st)
    return t[tuple(index)]


@register_converter("Concat")
def _concat(node: Any, x: list) -> Any:
    parts = [t for t in x if t is not None]
    axis = _axis(node, node.attrs["axis"], parts[0].ndim)
    if parts[0].dtype.kind == "f":
        from jitgrad.autograd.ops_shape import cat

        return cat(parts, axis=axis)
    return Tensor(np.concatenate([_host(t) for t in parts], axis=axis))  # shape arithmetic, on the host


@register_converter("Pad")
def _pad(node: Any, x: list) -> Any:
    t = x[0]
    mode = node.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if node.opset >= 11:
        pads = [int(p) for p in _host(x[1])]
        value = _host(x[2]) if len(x) > 2 and x[2] is not None else 0
        axes = [int(a) for a in _host(x[3])] if len(x) > 3 and x[3] is not None else list(range(t.ndim))
    else:
        pads, value, axes = list(node.attrs["pads"]), node.attrs.get("value", 0.0), list(range(t.ndim))
    width = [(0, 0)] * t.ndim
    for i, a in enumerate(axes):
        width[_axis(node, a, t.ndim)] = (pads[i], pads[i + len(axes)])
    if any(p < 0 for w in width for p in w):
        raise NodeError(f"node {node.name!r} (Pad): negative pads {pads} are not supported")
    np_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}.get(mode)
    if np_mode is None:
        raise NodeError(f"node {node.name!r} (Pad): mode {mode!r} is not supported")
    kw = {"constant_values": np.asarray(value).item()} if np_mode == "constant" else {}
    if np_mode in ("constant", "reflect") and t.dtype.kind == "f":
        from jitgrad.autograd.ops_shape import pad

        torch_order = [p for w in reversed(width) for p in w]  # (last_begin, last_end, ...), as PyTorch
        return pad(t, torch_order, mode=np_mode, value=float(kw.get("constant_values", 0.0)))
    return _host_op(node, [t], lambda a: np.pad(a, width, mode=np_mode, **kw), "a jitgrad pad mode "
                    f"{mode!r} (only constant and reflect are differentiable)")


@register_converter("Constant")
def _constant(node: Any, x: list) -> Any:
    from onnx import numpy_helper

    a = node.attrs
    if "value" in a:
        return Tensor(numpy_helper.to_array(a["value"]).copy())
    for key, dtype in [("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)]:
        if key in a:
            return Tensor(np.asarray(a[key], dtype=dtype))
    raise NodeError(f"node {node.name!r} (Constant): only value, value_float(s) and value_int(s) are supported, "
                    f"got {sorted(a)}")


@register_converter("ConstantOfShape")
def _constant_of_shape(node: Any, x: list) -> Any:
    from onnx import numpy_helper

    value = numpy_helper.to_array(node.attrs["value"]) if "value" in node.attrs else np.zeros(1, np.float32)
    return Tensor(np.full(tuple(int(s) for s in _host(x[0])), value.reshape(-1)[0], dtype=value.dtype))


@register_converter("Shape")
def _shape(node: Any, x: list) -> Any:
    shape = np.asarray(x[0].shape, dtype=np.int64)
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return Tensor(shape[start:end].copy())


@register_converter("Gather")
def _gather(node: Any, x: list) -> Any:
    t, idx = x[0], _host(x[1]).astype(np.int64)
    axis = _axis(node, node.attrs.get("axis", 0), t.ndim)
    idx = np.where(idx < 0, idx + t.shape[axis], idx)
    if t.dtype.kind != "f":
        return Tensor(np.take(_host(t), idx, axis=axis))
    if idx.ndim == 0:
        return t[(slice(None),) * axis + (int(idx),)]
    return t[(slice(None),) * axis + (idx,)]
