"""Import converters of MaxPool and AveragePool (registered into ``CONVERTERS`` when _converters is imported).

2-D pooling that jitgrad's kernels compute as written (symmetric pads up to
half the kernel, no dilation, floor rounding) runs on ``max_pool2d`` /
``avg_pool2d``. Everything else ONNX allows — ``ceil_mode``, ``dilations``,
larger or asymmetric pads with ``count_include_pad=0``, 1-D and 3-D inputs —
runs as the pooling's definition on autograd ops: the input padded explicitly
(-inf for max, 0 for average), one strided slice per kernel offset, then the
maximum over the slices or their sum divided by the number of counted
elements under each window (a constant map computed on the host). Slower than
the kernels, exact, differentiable and on any device.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from jitgrad.autograd.tensor import Tensor
from jitgrad.nn import functional as F
from jitgrad.onnx._converters import NodeError, _on_device_of, _pad_constant, _pads_2d, _symmetric, register_converter

__all__: list[str] = []


def _output_sizes(spatial: tuple[int, ...], kernel: list[int], strides: list[int], dilations: list[int],
                  begin: list[int], end: list[int], ceil: bool) -> list[int]:
    # ONNX (and PyTorch): with ceil_mode the last window must start inside the input or its left pad.
    sizes = []
    for length, k, s, d, b, e in zip(spatial, kernel, strides, dilations, begin, end):
        room = length + b + e - ((k - 1) * d + 1)
        out = (-(-room // s) if ceil else room // s) + 1
        if ceil and (out - 1) * s >= length + b:
            out -= 1
        sizes.append(out)
    return sizes


def _by_slices(node: Any, t: Tensor, kernel: list[int], strides: list[int], dilations: list[int],
               begin: list[int], end: list[int], ceil: bool, include: bool) -> Tensor:
    from jitgrad.autograd.ops_shape import cat

    spatial = tuple(t.shape[2:])
    outs = _output_sizes(spatial, kernel, strides, dilations, begin, end, ceil)
    if min(outs) < 1:
        raise NodeError(f"node {node.name!r} ({node.op_type}): kernel {kernel} with dilations {dilations} does not "
                        f"fit the padded input {spatial}")
    # Pad up to what the last window reads (ceil_mode reads past the declared end pad).
    reach = [(o - 1) * s + (k - 1) * d + 1 for o, s, k, d in zip(outs, strides, kernel, dilations)]
    extra = [max(0, r - (n + b + e)) for r, n, b, e in zip(reach, spatial, begin, end)]
    is_max = node.op_type == "MaxPool"
    xp = _pad_constant(t, begin, [e + x for e, x in zip(end, extra)], float("-inf") if is_max else 0.0)

    def windows(a: Any) -> list[Any]:
        return [a[(slice(None), slice(None)) + tuple(slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, n, s in
                                                       zip(offset, dilations, outs, strides))]
                for offset in itertools.product(*[range(k) for k in kernel])]

    if is_max:
        lead = tuple(t.shape[:2])
        parts = [w.reshape(lead + (1,) + tuple(outs)) for w in windows(xp)]
        return cat(parts, axis=2).max(axis=2)
    total = None
    for w in windows(xp):
        total = w if total is None else total + w
    # Counted elements: the input, and its declared pads when count_include_pad (never ceil_mode's overhang).
    mask = np.zeros((1, 1) + tuple(xp.shape[2:]), dtype=t.dtype)
    counted = tuple(slice(0, n + b + e) if include else slice(b, b + n) for n, b, e in zip(spatial, begin, end))
    mask[(slice(None), slice(None)) + counted] = 1
    count = sum(windows(mask))
    return total / _on_device_of(count, t)


@register_converter("MaxPool", "AveragePool")
def _pool(node: Any, x: list) -> Any:
    t = x[0]
    nd = t.ndim - 2
    if nd < 1:
        raise NodeError(f"node {node.name!r} ({node.op_type}): input must be at least 3-D (N, C, D1, ...), "
                        f"got shape {t.shape}")
    kernel = [int(k) for k in node.attrs["kernel_shape"]]
    strides = [int(s) for s in node.attrs.get("strides", [1] * nd)]
    dilations = [int(d) for d in node.attrs.get("dilations", [1] * nd)]
    ceil = bool(node.attrs.get("ceil_mode", 0))
    if node.attrs.get("storage_order", 0) or (len(node.outputs) > 1 and node.outputs[1]):
        raise NodeError(f"node {node.name!r} (MaxPool): the Indices output (and its storage_order) is not "
                        "supported")
    begin, end = _pads_2d(node, t, kernel, strides, dilations)
    include = bool(node.attrs.get("count_include_pad", 0))
    is_max = node.op_type == "MaxPool"
    kernel_path = (nd == 2 and dilations == [1, 1] and not ceil
                   and all(max(b, e) <= k // 2 for b, e, k in zip(begin, end, kernel))
                   and (is_max or include or begin == end))
    if not kernel_path:
        return _by_slices(node, t, kernel, strides, dilations, begin, end, ceil, include)
    if is_max:
        t, pad = _symmetric(t, begin, end, float("-inf"))
        return F.max_pool2d(t, tuple(kernel), tuple(strides), pad)
    t, pad = _symmetric(t, begin, end, 0.0)
    return F.avg_pool2d(t, tuple(kernel), tuple(strides), pad, count_include_pad=include)
