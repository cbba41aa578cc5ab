"""Autograd on the CUDA backend: every op family matches the CPU and passes gradcheck on the device.

Runs under Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``) with tiny shapes and
8 threads per block (``conftest.py``), so multi-block and tail paths run; on a
real GPU the same file runs unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jitgrad
from jitgrad import Tensor, gradcheck
from jitgrad.autograd.backend import backend_for, get_backend
from jitgrad.nn import functional as F

ROOT = Path(__file__).resolve().parents[2]


def pair(*shape: int, seed: int = 0, low: float | None = None) -> tuple[Tensor, Tensor]:
    """The same float64 leaf on the CPU and on the GPU (both require grad)."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape) if low is None else rng.uniform(low, low + 1.0, shape)
    return Tensor(values, requires_grad=True), Tensor(values, requires_grad=True).to("cuda").detach().requires_grad_()


def check_op(fn, *shapes, low=None, rtol=1e-10, check_grad=True, **gradcheck_kw) -> None:
    """``fn`` on the GPU matches ``fn`` on the CPU (value and gradients), and passes gradcheck on the GPU.

    The CPU ops pass gradcheck in tests/autograd, so matching their gradients
    already tests the GPU's; ``check_grad=False`` skips the (slow, under the
    simulator) finite differences on the device for cases a neighbour covers.
    """
    pairs = [pair(*s, seed=i, low=low) for i, s in enumerate(shapes)]
    cpu_in, gpu_in = [p[0] for p in pairs], [p[1] for p in pairs]
    cpu_out, gpu_out = fn(*cpu_in), fn(*gpu_in)
    assert gpu_out.device == "cuda"
    np.testing.assert_allclose(gpu_out.numpy(), cpu_out.numpy(), rtol=rtol, atol=1e-12)
    weights = np.random.default_rng(99).standard_normal(cpu_out.shape)
    (cpu_out * weights).sum().backward()
    (gpu_out * weights).sum().backward()
    for c, g in zip(cpu_in, gpu_in):
        assert g.grad.device == "cuda"
        np.testing.assert_allclose(g.grad.numpy(), c.grad.numpy(), rtol=rtol, atol=1e-12)
    if check_grad:
        fresh = [Tensor(g.data, requires_grad=True) for g in gpu_in]
        assert gradcheck(fn, *fresh, **gradcheck_kw)


# ----------------------------------------------------------------------------- device plumbing

def test_to_cuda_and_back_round_trips_and_gradient_flows_home():
    x = jitgrad.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and y.dtype == np.float32 and y.shape == (1, 3)
    assert x.cuda().device == "cuda" and y.cpu().device == "cpu" and y.to("cuda") is y
    assert "device='cuda'" in repr(y)
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, -4.0, 6.0]])


def test_mixed_devices_raise_naming_both():
    a = jitgrad.ones(2, 2)
    b = jitgrad.ones(2, 2).to("cuda")
    with pytest.raises(RuntimeError, match="Add: all tensors must be on one device, got cuda and cpu"):
        b + a
    with pytest.raises(RuntimeError, match="MatMul: all tensors must be on one device, got cpu and cuda"):
        a @ b
    with pytest.raises(RuntimeError, match="equal: all tensors must be on one device, got cuda and cpu"):
        b == a
    with pytest.raises(RuntimeError, match="cross_entropy: logits and target must be on one device, got cuda and cpu"):
        F.cross_entropy(b, Tensor(np.array([0, 1])))


def test_no_gpu_and_no_simulator_is_a_clear_runtime_error():
    # No simulator, and no GPU visible even on a machine that has one.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    code = ("import jitgrad\n"
            "assert not jitgrad.cuda.is_available()\n"
            "try:\n"
            "    jitgrad.ones(2).to('cuda')\n"
            "except RuntimeError as e:\n"
            "    print('MESSAGE', e)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MESSAGE CUDA is not available: no NVIDIA GPU with a working driver was found" in result.stdout
    assert "NUMBA_ENABLE_CUDASIM=1" in result.stdout
    assert "Traceback" not in result.stdout


def test_cuda_device_strings():
    assert get_backend("cuda:0") is get_backend("cuda")
    assert jitgrad.ones(1).to("cuda:0").device == "cuda"


# ----------------------------------------------------------------------------- arithmetic, reductions, layout

def test_elementwise_with_broadcasting():
    check_op(lambda a, b: (a * b + a / (b * b + 1.0) - 2.0 * b) ** 2, (2, 3), (3,))


def test_unary_math():
    check_op(lambda a: a.exp() + a.log() * a.sqrt() - abs(a - 0.6), (2, 3), low=0.2)


def test_pow_with_tensor_exponent_and_rsub():
    check_op(lambda a, b: a ** b + 1.0 - a, (2, 2), (2, 2), low=0.5)


def test_sum_mean_max_over_axes():
    check_op(lambda a: a.sum(axis=0) * a.mean(axis=1, keepdims=True) + a.max(axis=1, keepdims=True), (2, 3))
    check_op(lambda a: a.max() + a.sum() + a.max(axis=(0, 2)).sum(), (2, 3, 2), check_grad=False)


def test_max_gradient_goes_to_the_first_of_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), requires_grad=True)
    xc = Tensor(x.data, requires_grad=True).to("cuda").detach().requires_grad_()
    xc.max(axis=1).sum().backward()
    np.testing.assert_array_equal(xc.grad.numpy(), [[0, 1, 0], [1, 0, 0]])


def test_reshape_permute_transpose():
    check_op(lambda a: a.reshape(3, -1).T.permute(1, 0).reshape(-1) * 1.5, (2, 3))
    check_op(lambda a: a.permute(2, 0, 1).flatten() ** 2, (2, 3, 2), check_grad=False)


def test_indexing_basic_and_advanced_with_repeats():
    check_op(lambda a: a[1:, ::-2] * 3.0, (3, 4))
    check_op(lambda a: a[None, -1, 1] + a[..., 0].sum(), (3, 4), check_grad=False)
    check_op(lambda a: a[np.array([0, 2, 0, 0])] * 2.0, (3, 2))


def test_comparisons_argmax_and_integer_sums_stay_on_device():
    a = Tensor(np.array([[0.5, 2.0, -1.0], [3.0, 3.0, 1.0]])).to("cuda")
    labels = Tensor(np.array([1, 2])).to("cuda")
    hits = a.argmax(axis=1) == labels
    assert hits.device == "cuda" and hits.dtype == np.bool_
    np.testing.assert_array_equal(hits.numpy(), [True, False])
    assert hits.sum().dtype == np.int64 and hits.sum().item() == 1
    np.testing.assert_array_equal((a > 1.0).numpy(), a.numpy() > 1.0)


# ----------------------------------------------------------------------------- kernels through autograd

def test_matmul_uses_transposition_flags_not_copies():
    xp = get_backend("cuda")
    w = jitgrad.randn(3, 4).to("cuda")
    view = xp.transpose(w.data, (1, 0))
    base, transposed = xp.matmul_operand(view)
    assert transposed and base.is_c_contiguous() and tuple(base.shape) == (3, 4)
    check_op(lambda a, b: a @ b.T, (2, 2), (1, 2))
    check_op(lambda a, b: a @ b, (2, 3), (3, 2), check_grad=False)
    check_op(lambda a, b: a.T @ b, (3, 2), (3, 4), check_grad=False)


def test_linear():
    check_op(lambda x, w, b: F.linear(x, w, b), (2, 3), (4, 3), (4,), check_grad=False)


def test_conv2d_with_stride_and_padding():
    check_op(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), (1, 1, 3, 3), (1, 1, 2, 2), (1,))
    check_op(lambda x, w: F.conv2d(x, w, padding=1), (1, 2, 3, 3), (2, 2, 2, 2), check_grad=False)


def test_max_and_avg_pool():
    check_op(lambda x: F.max_pool2d(x, 2), (1, 1, 2, 4))
    check_op(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), (1, 1, 3, 3))


@pytest.mark.parametrize("name", ["relu", "sigmoid", "gelu", "tanh"])
def test_activations(name):
    check_op(lambda x: getattr(F, name)(x), (2, 3))


def test_softmax_and_log_softmax():
    check_op(lambda x: F.softmax(x, axis=1), (2, 3))
    check_op(lambda x: F.log_softmax(x, axis=0), (3, 2), check_grad=False)


def test_cross_entropy_with_device_and_host_labels():
    labels = np.array([2, 0, 3])
    on_device = Tensor(labels).to("cuda")
    check_op(lambda x: F.cross_entropy(x, on_device if x.device == "cuda" else labels), (3, 4))
    check_op(lambda x: F.cross_entropy(x, labels, reduction="sum", label_smoothing=0.1), (3, 4), check_grad=False)


def test_losses_on_elementwise_ops():
    target = np.random.default_rng(5).uniform(size=(2, 3))
    check_op(lambda x: F.binary_cross_entropy_with_logits(x, target) + F.mse_loss(x, target), (2, 3))


def test_dropout_mask_is_made_on_device_reproducibly():
    x = Tensor(np.ones((4, 8), np.float32), requires_grad=True)
    xc = x.to("cuda")
    jitgrad.manual_seed(3)
    y1 = F.dropout(xc, 0.5)
    jitgrad.manual_seed(3)
    y2 = F.dropout(xc, 0.5)
    assert y1.device == "cuda"
    values = y1.numpy()
    np.testing.assert_array_equal(values, y2.numpy())
    assert set(np.unique(values)) <= {0.0, 2.0} and 0 < (values == 0).sum() < values.size
    y1.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # gradient = the mask itself


def test_a_fresh_gradient_reaches_its_leaf_without_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on the CPU (``a.base is None``): an array the kernels allocated owns its memory and becomes
    # the leaf's gradient as is; a view (here the reshape's gradient) is copied first.
    from jitgrad.kernels.cuda import _launch

    backend = get_backend("cuda")
    fresh = _launch.empty((2, 3), np.float32)
    assert backend.owns_data(fresh)
    assert not backend.owns_data(fresh.reshape(6))
    assert not backend.owns_data(jitgrad.cuda.to_device(np.ones(3, np.float32)))
    copies = []
    real_copy = type(backend).copy
    monkeypatch.setattr(type(backend), "copy", lambda self, a: copies.append(a.shape) or real_copy(self, a))
    x = Tensor(np.ones((2, 3)), requires_grad=True).to("cuda").detach().requires_grad_()
    w = Tensor(np.ones((3, 4)), requires_grad=True).to("cuda").detach().requires_grad_()
    (x.reshape(6).reshape(2, 3) @ w).sum().backward()
    assert copies == [(2, 3)], "only x's gradient (a reshape view) is copied; w's (a matmul result) is not"
    np.testing.assert_allclose(w.grad.numpy(), np.full((3, 4), 2.0))
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 4.0))
