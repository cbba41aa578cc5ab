"""Rows of ``bench/report.py`` for the modern CNN kernels: grouped/depthwise and transposed convolution,
adaptive pooling, side by side on the NumPy reference, jitgrad CPU and PyTorch CPU.

The cases (shapes, seeded inputs) are those of the asv suite's ``bench_conv_modern.py``; batch norm and
layer norm are rows of the main table already (family ``normalization``). PyTorch's side calls the ATen
function its autograd calls for each backward (``convolution_backward``, ``_adaptive_avg_pool2d_backward``,
``adaptive_max_pool2d_backward``), so neither side pays for a graph. ``report.py`` calls `kernel_rows`.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

from benchmarks import bench_conv_modern as modern
from benchmarks.common import kernel_function

#: family -> (kernels, shape labels, NumPy case builder)
FAMILIES: dict[str, tuple[list[str], list[str], Callable[[str, str], tuple[tuple[Any, ...], dict[str, Any]]]]] = {
    "grouped conv": (["conv2d", "conv2d_backward_input", "conv2d_backward_weight"],
                     list(modern.CONV_SHAPES), modern.conv_case),
    "transposed conv": (["conv_transpose2d", "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight"],
                        list(modern.TRANSPOSE_SHAPES), modern.transpose_case),
    "adaptive pooling": (["adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
                          "adaptive_max_pool2d_backward"], list(modern.POOL_SHAPES), modern.pool_case),
}


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if np.isscalar(v) else [int(a) for a in v]


def jitgrad_call(backend: str, kernel: str, case: tuple[tuple[Any, ...], dict[str, Any]]) -> Callable[[], Any]:
    """The NumPy reference's (``backend="numpy"``) or jitgrad CPU's (``"cpu"``) kernel on the case's inputs."""
    fn = kernel_function(backend, kernel)
    args, kwargs = case
    return lambda: fn(*args, **kwargs)


def torch_call(torch: Any, kernel: str, case: tuple[tuple[Any, ...], dict[str, Any]]) -> Callable[[], Any]:
    """What ``kernel`` does, in PyTorch on the CPU, on the same inputs."""
    aten, F = torch.ops.aten, torch.nn.functional
    args, kw = case
    t = [torch.from_numpy(np.ascontiguousarray(a)) for a in args]
    stride, padding = _pair(kw.get("stride", 1)), _pair(kw.get("padding", 0))
    dilation, groups = _pair(kw.get("dilation", 1)), int(kw.get("groups", 1))
    out_pad = _pair(kw.get("output_padding", 0))
    if kernel == "conv2d":
        return lambda: F.conv2d(t[0], t[1], None, stride, padding, dilation, groups)
    if kernel == "conv_transpose2d":
        return lambda: F.conv_transpose2d(t[0], t[1], None, stride, padding, out_pad, groups, dilation)
    if kernel.startswith("conv"):
        transposed = kernel.startswith("conv_transpose")
        pads = out_pad if transposed else [0, 0]
        if kernel.endswith("backward_input"):
            g, w = t
            x = torch.empty(kw["input_shape"], dtype=g.dtype)
            mask = [True, False, False]
            return lambda: aten.convolution_backward(g, x, w, None, stride, padding, dilation, transposed, pads,
                                                     groups, mask)
        x, g = t
        w = torch.empty(kw["weight_shape"], dtype=x.dtype)
        bias = [w.shape[1] * groups if transposed else w.shape[0]]
        return lambda: aten.convolution_backward(g, x, w, bias, stride, padding, dilation, transposed, pads,
                                                 groups, [False, True, True])
    if kernel == "adaptive_avg_pool2d":
        return lambda: F.adaptive_avg_pool2d(t[0], kw["output_size"])
    if kernel == "adaptive_max_pool2d":
        return lambda: F.adaptive_max_pool2d(t[0], kw["output_size"], return_indices=True)
    x = torch.zeros(kw["input_shape"], dtype=t[0].dtype)
    if kernel == "adaptive_avg_pool2d_backward":
        return lambda: aten._adaptive_avg_pool2d_backward(t[0], x)
    if kernel == "adaptive_max_pool2d_backward":
        g, argmax = t[0], t[1].to(torch.int64)
        return lambda: aten.adaptive_max_pool2d_backward(g, x, argmax)
    raise NotImplementedError(f"torch: no equivalent of {kernel!r}")


def kernel_rows(opts: argparse.Namespace, torch: Any | None,
                timed_row: Callable[..., dict[str, Any]], progress: Callable[..., None]) -> list[dict[str, Any]]:
    """Rows in ``report.py``'s kernel format (float32; ``--quick``: the first shape of each family)."""
    rows = []
    for family, (kernels, shapes, build) in FAMILIES.items():
        for kernel in kernels:
            for shape in shapes[:1] if opts.quick else shapes:
                row_id = f"{family.replace(' ', '_')}.{kernel}.{shape}"
                if not opts.only.search(row_id) or opts.dtype != "float32":
                    continue
                case = build(kernel, shape)
                makers = {b: (lambda b=b, k=kernel, c=case: jitgrad_call(b, k, c)) for b in ("numpy", "cpu")}
                if torch is not None:
                    makers["torch"] = lambda k=kernel, c=case: torch_call(torch, k, c)
                row = {"id": row_id, "family": family, "kernel": kernel, "shape": shape, "dtype": opts.dtype}
                rows.append(timed_row(row, makers, opts))
                progress(rows[-1], opts)
    return rows
