"""NumPy reference transposed 2-D convolution (NCHW), forward and both backwards.

``conv_transpose2d`` is the adjoint of ``conv2d``: its forward is
``conv2d_backward_input`` of the convolution that maps its output back to
its input, its input gradient is that ``conv2d``, and its weight gradient
is ``conv2d_backward_weight`` with the two activations' roles swapped. The
reference (and every backend) computes it that way, on its own conv
kernels; the tests hold it to a direct scatter definition.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels._validate import (
    Conv2dDims,
    as_pair,
    check_array,
    check_out,
    check_same_dtype,
    check_shape,
    check_shape_tuple,
)
from jitgrad.kernels.reference import conv as _conv

__all__: list[str] = kernel_names("conv_transpose")  # the one list: kernels/_constants.py


def conv_transpose2d_dims(input_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: Any, padding: Any,
                          output_padding: Any, dilation: Any, groups: Any, input_name: str = "x",
                          weight_name: str = "w") -> Conv2dDims:
    """The dims of the *adjoint* convolution: its input is the transposed conv's output.

    ``H_out = (H - 1) stride - 2 padding + dilation (kH - 1) + output_padding + 1``;
    the weight is ``(C_in, C_out / groups, kH, kW)``. ``output_padding`` must be
    smaller than ``stride`` (it picks one of the ``stride`` output sizes that
    convolve back to ``H``).
    """
    s = as_pair("stride", stride, minimum=1)
    p = as_pair("padding", padding, minimum=0)
    d = as_pair("dilation", dilation, minimum=1)
    op = as_pair("output_padding", output_padding, minimum=0)
    if op[0] >= s[0] or op[1] >= s[1]:
        raise ValueError(f"output_padding must be smaller than stride {s}, got output_padding={output_padding!r}")
    n, c_in, h, w = input_shape
    c_in_w, c_out_g, kh, kw = weight_shape
    if c_in != c_in_w:
        raise ValueError(
            f"channel mismatch: {input_name} has {c_in} input channels (shape {tuple(input_shape)}) but "
            f"{weight_name} expects {c_in_w} (shape {tuple(weight_shape)}; a transposed conv's weight is "
            "(C_in, C_out/groups, kH, kW))"
        )
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups!r}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({c_in}, {input_name} shape "
                         f"{tuple(input_shape)})")
    h_out = (h - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + op[0] + 1
    w_out = (w - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + op[1] + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"padding {p} is too large for input {h}x{w} and kernel {kh}x{kw}: "
                         f"output would be {h_out}x{w_out}")
    return Conv2dDims.from_shapes((n, c_out_g * int(groups), h_out, w_out), tuple(weight_shape), stride=s,
                                  padding=p, dilation=d, groups=int(groups))


def check_conv_transpose2d_args(x: Any, w: Any, b: Any, stride: Any, padding: Any, output_padding: Any,
                                dilation: Any, groups: Any, out: Any) -> Conv2dDims:
    """Validate ``conv_transpose2d``'s arguments; return the adjoint convolution's dims."""
    check_array("x", x, ndim=4)
    check_array("w", w, ndim=4)
    if b is not None:
        check_array("b", b, ndim=1)
    check_same_dtype(x=x, w=w, b=b)
    d = conv_transpose2d_dims(tuple(x.shape), tuple(w.shape), stride, padding, output_padding, dilation, groups)
    if b is not None:
        check_shape("b", b, (d.c_in,))
    if out is not None:
        check_out(out, d.input_shape, np.dtype(x.dtype))
    return d


def _check_nchw_pair(**arrays: Any) -> None:
    """Two 4-D arrays of one float dtype (an activation or a gradient, and a weight or an activation)."""
    for name, a in arrays.items():
        check_array(name, a, ndim=4)
    check_same_dtype(**arrays)


def check_conv_transpose2d_backward_input_args(grad_out: Any, w: Any, input_shape: Any, stride: Any, padding: Any,
                                               output_padding: Any, dilation: Any, groups: Any,
                                               out: Any) -> Conv2dDims:
    """Validate ``conv_transpose2d_backward_input``'s arguments."""
    _check_nchw_pair(grad_out=grad_out, w=w)
    input_shape = check_shape_tuple("input_shape", input_shape, 4)
    d = conv_transpose2d_dims(input_shape, tuple(w.shape), stride, padding, output_padding, dilation, groups,
                              input_name="input_shape")
    check_shape("grad_out", grad_out, d.input_shape)
    if out is not None:
        check_out(out, input_shape, np.dtype(w.dtype))
    return d


def check_conv_transpose2d_backward_weight_args(x: Any, grad_out: Any, weight_shape: Any, stride: Any,
                                                padding: Any, output_padding: Any, dilation: Any,
                                                groups: Any) -> Conv2dDims:
    """Validate ``conv_transpose2d_backward_weight``'s arguments."""
    _check_nchw_pair(x=x, grad_out=grad_out)
    weight_shape = check_shape_tuple("weight_shape", weight_shape, 4)
    d = conv_transpose2d_dims(tuple(x.shape), weight_shape, stride, padding, output_padding, dilation, groups,
                              weight_name="weight_shape")
    check_shape("grad_out", grad_out, d.input_shape)
    return d


def _hyper(d: Conv2dDims) -> dict[str, Any]:
    return dict(stride=d.stride, padding=d.padding, dilation=d.dilation, groups=d.groups)


def conv_transpose2d_family(conv: Any, add_bias: Callable[[Any, Any], None], sum_bias: Callable[[Any], Any],
                            module: str) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """The three ``conv_transpose2d`` kernels of one backend, built on that backend's conv kernels.

    Every backend computes a transposed convolution the same way (as the
    adjoint of its ``conv2d``), so one definition serves all three; a backend
    gives its ``conv`` module, how to add the bias ``b`` in place to an
    ``(N, C_out, H_out, W_out)`` output (``add_bias(out, b)``), how to sum a
    ``grad_out`` over ``(0, 2, 3)`` (``sum_bias(grad_out)``), and the module
    the functions are published from (their ``__module__``).
    """

    def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: Any = 1,
                         padding: Any = 0, output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                         out: np.ndarray | None = None) -> np.ndarray:
        """Transposed 2-D convolution (PyTorch's ``conv_transpose2d``), NCHW.

        Parameters
        ----------
        x : ndarray ``(N, C_in, H, W)``, float32 or float64, C-contiguous
        w : ndarray ``(C_in, C_out/groups, kH, kW)``, same dtype
        b : ndarray ``(C_out,)``, same dtype, optional
        stride, padding, dilation : int or pair of ints
        output_padding : int or pair of ints, each smaller than ``stride``; added to one side of the output
        groups : int dividing ``C_in`` (and giving ``C_out = groups * w.shape[1]``)
        out : ndarray ``(N, C_out, H_out, W_out)``, optional, with
            ``H_out = (H - 1) stride - 2 padding + dilation (kH - 1) + output_padding + 1``

        Returns
        -------
        ndarray ``(N, C_out, H_out, W_out)`` of ``x``'s dtype (``out`` when given).
        """
        d = check_conv_transpose2d_args(x, w, b, stride, padding, output_padding, dilation, groups, out)
        out = conv.conv2d_backward_input(x, w, input_shape=d.input_shape, out=out, **_hyper(d))
        if b is not None:
            add_bias(out, b)
        return out

    def conv_transpose2d_backward_input(grad_out: np.ndarray, w: np.ndarray, *,
                                        input_shape: tuple[int, int, int, int], stride: Any = 1, padding: Any = 0,
                                        output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
                                        out: np.ndarray | None = None) -> np.ndarray:
        """Gradient of ``conv_transpose2d`` with respect to its input ``x``: ``conv2d(grad_out, w)``.

        Parameters
        ----------
        grad_out : ndarray ``(N, C_out, H_out, W_out)``, float32 or float64
        w : ndarray ``(C_in, C_out/groups, kH, kW)``, same dtype
        input_shape : tuple ``(N, C_in, H, W)``
        stride, padding, output_padding, dilation, groups : as in the forward
        out : ndarray of ``input_shape``, optional

        Returns
        -------
        ndarray ``input_shape`` of ``w``'s dtype (``out`` when given).
        """
        d = check_conv_transpose2d_backward_input_args(grad_out, w, input_shape, stride, padding, output_padding,
                                                       dilation, groups, out)
        return conv.conv2d(grad_out, w, out=out, **_hyper(d))

    def conv_transpose2d_backward_weight(x: np.ndarray, grad_out: np.ndarray, *,
                                         weight_shape: tuple[int, int, int, int], stride: Any = 1, padding: Any = 0,
                                         output_padding: Any = 0, dilation: Any = 1,
                                         groups: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of ``conv_transpose2d`` with respect to its weight and bias.

        Parameters
        ----------
        x : ndarray ``(N, C_in, H, W)``, float32 or float64 (the forward input)
        grad_out : ndarray ``(N, C_out, H_out, W_out)``, same dtype
        weight_shape : tuple ``(C_in, C_out/groups, kH, kW)``
        stride, padding, output_padding, dilation, groups : as in the forward

        Returns
        -------
        grad_w : ndarray ``weight_shape``
        grad_b : ndarray ``(C_out,)``, ``grad_out.sum(axis=(0, 2, 3))``
        """
        d = check_conv_transpose2d_backward_weight_args(x, grad_out, weight_shape, stride, padding, output_padding,
                                                        dilation, groups)
        grad_w, _ = conv.conv2d_backward_weight(grad_out, x, weight_shape=d.weight_shape, **_hyper(d))
        return grad_w, sum_bias(grad_out)

    kernels = (conv_transpose2d, conv_transpose2d_backward_input, conv_transpose2d_backward_weight)
    for fn in kernels:
        fn.__module__, fn.__qualname__ = module, fn.__name__
    return kernels


def _add_bias(out: np.ndarray, b: np.ndarray) -> None:
    out += b[:, None, None]


def _sum_bias(grad_out: np.ndarray) -> np.ndarray:
    return grad_out.sum(axis=(0, 2, 3))


conv_transpose2d, conv_transpose2d_backward_input, conv_transpose2d_backward_weight = conv_transpose2d_family(
    _conv, _add_bias, _sum_bias, __name__)
