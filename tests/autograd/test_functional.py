"""jitgrad.nn.functional: layers and losses against NumPy formulas, gradients by gradcheck, error messages."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad.kernels import reference as ref
from tests.autograd.op_helper import check_op
from tests.helpers import DTYPES, assert_close, randn, tie_free


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(4, 3), (3,), (2, 2, 3)], ids=str)
def test_linear(x_shape, dtype):
    check_op(F.linear, lambda x, w, b: x @ w.T + b, [x_shape, (2, 3), (2,)], dtype=dtype,
             grad=dtype == np.float64)
    check_op(lambda x, w: F.linear(x, w), lambda x, w: x @ w.T, [x_shape, (2, 3)], dtype=dtype,
             grad=dtype == np.float64)


def test_linear_gradients_come_back_in_the_parameters_layout():
    x = jitgrad.tensor(randn((4, 3)), requires_grad=True)
    w = jitgrad.tensor(randn((2, 3), seed=1), requires_grad=True)
    b = jitgrad.tensor(np.zeros(2), requires_grad=True)
    F.linear(x, w, b).sum().backward()
    assert w.grad.shape == (2, 3) and w.grad.data.flags.c_contiguous
    assert b.grad.shape == (2,)


def test_linear_errors():
    x = jitgrad.tensor(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"linear: x has shape \(4, 3\) but weight has shape \(2, 5\)"):
        F.linear(x, jitgrad.tensor(np.ones((2, 5))))
    with pytest.raises(ValueError, match=r"linear: weight must be 2-D \(out_features, in_features\), got shape \(3,\)"):
        F.linear(x, jitgrad.tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(2,\), got \(3,\)"):
        F.linear(x, jitgrad.tensor(np.ones((2, 3))), jitgrad.tensor(np.ones(3)))
    with pytest.raises(TypeError, match="linear: x must be a Tensor or a NumPy array, got list"):
        F.linear([1.0], jitgrad.tensor(np.ones((2, 1))))


@pytest.mark.parametrize(
    "stride, padding, dilation",
    [(1, 0, 1), (2, 1, 1), (1, 2, 2), ((2, 1), (0, 1), (1, 2))],
    ids=["plain", "stride2-pad1", "pad2-dil2", "pairs"],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(stride, padding, dilation, bias):
    shapes = [(2, 2, 4, 4), (2, 2, 2, 2)] + ([(2,)] if bias else [])
    hyper = {"stride": stride, "padding": padding, "dilation": dilation}
    check_op(lambda x, w, *b: F.conv2d(x, w, *b, **hyper),
             lambda x, w, *b: ref.conv2d(x, w, *b, **hyper), shapes)


def test_conv2d_errors():
    x = jitgrad.tensor(np.ones((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"conv2d: x must be 4-D \(N, C_in, H, W\), got shape \(2, 4, 4\)"):
        F.conv2d(jitgrad.tensor(np.ones((2, 4, 4))), jitgrad.tensor(np.ones((1, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(1,\), got \(2,\)"):
        F.conv2d(x, jitgrad.tensor(np.ones((1, 2, 3, 3))), jitgrad.tensor(np.ones(2)))
    with pytest.raises(ValueError, match="channel mismatch"):
        F.conv2d(x, jitgrad.tensor(np.ones((1, 3, 3, 3))))


@pytest.mark.parametrize(
    "kernel_size, stride, padding",
    [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0)), (3, 1, 0)],
    ids=["k2", "k3s2p1", "pairs", "overlap"],
)
def test_max_pool2d(kernel_size, stride, padding):
    x = tie_free((2, 1, 4, 5))  # distinct values: the gradient has one destination per window
    hyper = {"kernel_size": kernel_size, "stride": stride, "padding": padding}
    check_op(lambda t: F.max_pool2d(t, **hyper), lambda a: ref.max_pool2d(a, **hyper)[0], inputs=[x])


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(
    "kernel_size, stride, padding",
    [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))],
    ids=["k2", "k3s2p1", "pairs"],
)
def test_avg_pool2d(kernel_size, stride, padding, count_include_pad):
    hyper = {"kernel_size": kernel_size, "stride": stride, "padding": padding,
             "count_include_pad": count_include_pad}
    check_op(lambda t: F.avg_pool2d(t, **hyper), lambda a: ref.avg_pool2d(a, **hyper), [(2, 1, 4, 5)])


def test_pool_errors():
    with pytest.raises(ValueError, match=r"max_pool2d: x must be 4-D \(N, C, H, W\), got shape \(4, 4\)"):
        F.max_pool2d(jitgrad.tensor(np.ones((4, 4))), 2)
    with pytest.raises(ValueError, match="padding must be at most half of kernel_size"):
        F.avg_pool2d(jitgrad.tensor(np.ones((1, 1, 4, 4))), 2, padding=2)


def test_dropout_scales_kept_units_and_routes_gradient_through_the_mask():
    x = jitgrad.tensor(np.ones((200, 50)), requires_grad=True)
    y = F.dropout(x, p=0.3, generator=np.random.default_rng(0))
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.02
    assert_close(y.numpy()[kept], np.full(kept.sum(), 1 / 0.7))
    (y * 2.0).sum().backward()
    assert_close(x.grad.numpy(), np.where(kept, 2 / 0.7, 0.0))
    assert y.dtype == np.float64


def test_dropout_identity_cases_and_seeding():
    x = jitgrad.tensor(np.ones(10), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert_close(F.dropout(x, 1.0).numpy(), np.zeros(10))
    jitgrad.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    jitgrad.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)
    with pytest.raises(ValueError, match=r"dropout: p must be a probability in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)
    with pytest.raises(TypeError, match=r"dropout: p must be a probability in \[0, 1\], got '0.5'"):
        F.dropout(x, "0.5")


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "leaky_relu"])
def test_functional_activations_are_the_tensor_methods(name):
    x = randn((3, 4), seed=2)
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    check_op(getattr(F, name), lambda a: getattr(ref, name)(a), inputs=[x])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_functional_softmax(name):
    check_op(lambda t: getattr(F, name)(t, axis=0), lambda a: getattr(ref, name)(a, axis=0), [(3, 4)])


def _np_cross_entropy(logits, target_probs):
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(target_probs * log_p).sum(axis=1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("target_kind", ["index", "one-hot", "probs"])
def test_cross_entropy(reduction, label_smoothing, target_kind):
    n, c = 4, 3
    labels = np.array([0, 2, 1, 2])
    probs = np.eye(c)[labels]
    if target_kind == "probs":
        probs = np.abs(randn((n, c), seed=9)) + 0.1
        probs /= probs.sum(axis=1, keepdims=True)
    target = labels if target_kind == "index" else probs
    smoothed = (1 - label_smoothing) * probs + label_smoothing / c

    def expected(logits):
        per_sample = _np_cross_entropy(logits, smoothed)
        return {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]

    out = check_op(lambda t: F.cross_entropy(t, target, reduction=reduction, label_smoothing=label_smoothing),
                   expected, [(n, c)])
    assert out.shape == ((n,) if reduction == "none" else ())


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_keeps_logits_dtype_with_tensor_targets(dtype):
    logits = jitgrad.tensor(randn((3, 4), dtype), requires_grad=True)
    loss = F.cross_entropy(logits, jitgrad.tensor(np.array([1, 0, 3], dtype=np.int32)))
    assert loss.dtype == dtype
    loss.backward()
    assert logits.grad.dtype == dtype
    one_hot = F.cross_entropy(logits, np.eye(4)[[1, 0, 3]])  # float64 probabilities, cast to dtype
    assert one_hot.dtype == dtype
    assert_close(one_hot.numpy(), loss.numpy(), dtype)


def test_cross_entropy_errors():
    logits = jitgrad.tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"cross_entropy: integer target must have shape \(N,\) = \(4,\) for logits "
                                         r"of shape \(4, 3\), got \(5,\)"):
        F.cross_entropy(logits, np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match=r"cross_entropy: probability target must have the logits' shape \(4, 3\), "
                                         r"got \(4, 2\)"):
        F.cross_entropy(logits, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"cross_entropy: logits must be 2-D \(N, C\), got shape \(3,\)"):
        F.cross_entropy(jitgrad.tensor(np.zeros(3)), np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match="cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        F.cross_entropy(logits, np.zeros(4, dtype=np.int64), reduction="avg")
    with pytest.raises(TypeError, match="cross_entropy: target must hold integer labels or float probabilities, got bool"):
        F.cross_entropy(logits, np.zeros(4, dtype=bool))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_cross_entropy_after_log_softmax(reduction):
    labels = np.array([2, 0, 1])
    out = check_op(lambda t: F.nll_loss(F.log_softmax(t), labels, reduction=reduction),
                   lambda a: {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](
                       _np_cross_entropy(a, np.eye(4)[labels])), [(3, 4)])
    fused = F.cross_entropy(jitgrad.tensor(randn((3, 4))), labels, reduction=reduction)
    assert_close(out.numpy(), fused.numpy())


def test_nll_loss_errors():
    lp = jitgrad.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"nll_loss: target values must be in \[0, 3\), got min 0 max 3"):
        F.nll_loss(lp, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"nll_loss: target must be integer class indices of shape \(2,\), "
                                         r"got float64 \(2,\)"):
        F.nll_loss(lp, np.array([0.0, 1.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda a, b: F.mse_loss(a, b, reduction=reduction), lambda a, b: reduce((a - b) ** 2), [(3, 2), (3, 2)])
    target = randn((3, 2), seed=4)
    check_op(lambda a: F.mse_loss(a, target, reduction=reduction), lambda a: reduce((a - target) ** 2), [(3, 2)])


def test_binary_cross_entropy():
    target = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.3]])

    def expected(p):
        return np.mean(-(target * np.log(p) + (1 - target) * np.log(1 - p)))

    probs = np.array([[0.2, 0.7, 0.9], [0.4, 0.1, 0.5]])
    check_op(lambda p: F.binary_cross_entropy(p, target), expected, inputs=[probs])
    # Gradient with respect to a target that requires grad, too.
    check_op(lambda p, t: F.binary_cross_entropy(p, t, reduction="sum"),
             lambda p, t: np.sum(-(t * np.log(p) + (1 - t) * np.log(1 - p))), inputs=[probs, target])
    # Saturated probabilities: PyTorch clamps each log at -100, so the loss stays finite.
    edge = F.binary_cross_entropy(jitgrad.tensor(np.array([0.0, 1.0])), np.array([1.0, 0.0]), reduction="none")
    assert_close(edge.numpy(), np.array([100.0, 100.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits_is_stable(dtype):
    target = np.array([0.0, 1.0, 1.0, 0.0, 0.5])

    def expected(x):
        p = 1 / (1 + np.exp(-x))
        return np.mean(-(target * np.log(p) + (1 - target) * np.log(1 - p)))

    check_op(lambda x: F.binary_cross_entropy_with_logits(x, target), expected, [(5,)], dtype=dtype,
             grad=dtype == np.float64)
    big = jitgrad.tensor(np.array([-1000.0, 1000.0], dtype=dtype), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(big, np.array([1.0, 0.0]), reduction="sum")
    assert_close(loss.numpy(), np.asarray(2000.0, dtype=dtype), dtype)
    loss.backward()
    assert_close(big.grad.numpy(), np.array([-1.0, 1.0], dtype=dtype), dtype)


def test_same_shape_target_errors():
    x = jitgrad.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"mse_loss: target must have the input's shape \(2, 3\), got \(3,\)"):
        F.mse_loss(x, np.zeros(3))
    with pytest.raises(TypeError, match="binary_cross_entropy: target must be a Tensor or a NumPy array, got list"):
        F.binary_cross_entropy(x, [0.0])
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: reduction must be"):
        F.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), reduction="max")
