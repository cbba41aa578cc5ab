"""CUDA batch norm and layer norm (and their backwards) against the reference, tiny shapes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitgrad.kernels.cuda as kc
import jitgrad.kernels.reference as ref
from tests.cuda.conftest import dev, host
from tests.helpers import DTYPES, assert_close, randn


def _tol(dtype):
    return {"atol": 1e-4} if dtype == np.float32 else {}


def _check_batch_norm(shape, dtype, training, affine=True, running=True):
    c = shape[1]
    x = randn(shape, dtype, seed=1, scale=2.0) + dtype(1.0)
    w = randn((c,), dtype, seed=2) if affine else None
    b = randn((c,), dtype, seed=3) if affine else None
    rm = randn((c,), dtype, seed=4) if running else None
    rv = np.abs(randn((c,), dtype, seed=5)) + dtype(0.5) if running else None
    d_rm = dev(rm) if running else None
    d_rv = dev(rv) if running else None
    y, mean, invstd = kc.batch_norm(dev(x), d_rm, d_rv, None if w is None else dev(w),
                                    None if b is None else dev(b), training=training, momentum=0.3, eps=1e-4)
    ey, emean, einvstd = ref.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-4)
    for got, expected in ((y, ey), (mean, emean), (invstd, einvstd)):
        assert_close(host(got), expected, dtype)
    if running:  # updated in place on the device, exactly as the reference updated its copies
        assert_close(host(d_rm), rm, dtype)
        assert_close(host(d_rv), rv, dtype)
    g = randn(shape, dtype, seed=6)
    got = kc.batch_norm_backward(dev(g), dev(x), None if w is None else dev(w), mean, invstd, training=training)
    expected = ref.batch_norm_backward(g, x, w, emean, einvstd, training=training)
    for a, e in zip(got, expected):
        assert_close(host(a), e, dtype, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 2, 2, 5), (11, 3)], ids=str)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(shape, dtype, training):
    # More values per channel than 8 threads x 3 blocks: the block-stride and thread-stride loops both run.
    _check_batch_norm(shape, dtype, training)


def test_batch_norm_without_affine_or_running_stats():
    _check_batch_norm((2, 5, 1, 3), np.float32, True, affine=False, running=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,norm", [((5, 11), (11,)), ((2, 2, 3), (2, 3))], ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(shape, norm, dtype, affine):
    x = randn(shape, dtype, seed=1, scale=2.0)
    w = randn(norm, dtype, seed=2) if affine else None
    b = randn(norm, dtype, seed=3) if affine else None
    y, mean, invstd = kc.layer_norm(dev(x), norm, None if w is None else dev(w), None if b is None else dev(b),
                                    eps=1e-5)
    ey, emean, einvstd = ref.layer_norm(x, norm, w, b, eps=1e-5)
    for got, expected in ((y, ey), (mean, emean), (invstd, einvstd)):
        assert_close(host(got), expected, dtype)
    g = randn(shape, dtype, seed=4)
    got = kc.layer_norm_backward(dev(g), dev(x), None if w is None else dev(w), mean, invstd)
    for a, e in zip(got, ref.layer_norm_backward(g, x, w, emean, einvstd)):
        assert a.shape == e.shape
        assert_close(host(a), e, dtype, **_tol(dtype))


@settings(max_examples=4, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).filter(lambda s: len(s) != 3),
       training=st.booleans())
def test_random_shapes(shape, training):
    shape = tuple(shape)
    training = training and shape[0] * int(np.prod(shape[2:])) > 1
    _check_batch_norm(shape, np.float64, training)


def test_bad_input_is_rejected_before_launch():
    x = dev(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        kc.batch_norm(x, dev(np.zeros(4, np.float32)), dev(np.ones(4, np.float32)), None, None, training=True)
    with pytest.raises(TypeError, match="running_var has dtype float64"):
        kc.batch_norm(x, dev(np.zeros(3, np.float32)), dev(np.ones(3)), None, None, training=True)
    with pytest.raises(ValueError, match="inference mode"):
        kc.batch_norm(x, None, None, None, None, training=False)


def test_norm_layers_train_and_eval_on_the_device_match_the_cpu():
    import jitgrad
    from jitgrad import nn

    def model():
        return nn.Sequential(nn.BatchNorm2d(3, dtype=np.float64), nn.GroupNorm(1, 3, dtype=np.float64),
                             nn.Flatten(), nn.LayerNorm(12, dtype=np.float64))

    cpu_model, gpu_model = model(), model().cuda()
    assert gpu_model[0].running_mean.device == "cuda"
    x = randn((2, 3, 2, 2), np.float64, seed=3)
    g = randn((2, 12), np.float64, seed=4)
    for mode in ("train", "eval"):
        if mode == "eval":
            cpu_model.eval()
            gpu_model.eval()
        xc = jitgrad.tensor(x, requires_grad=True)
        xg = jitgrad.tensor(x).to("cuda").detach().requires_grad_()
        yc, yg = cpu_model(xc), gpu_model(xg)
        (yc * jitgrad.tensor(g)).sum().backward()
        (yg * jitgrad.tensor(g).to("cuda")).sum().backward()
        assert_close(yg.numpy(), yc.numpy())
        assert_close(xg.grad.numpy(), xc.grad.numpy())
    for key, value in cpu_model.state_dict().items():  # running stats and num_batches_tracked, from the device
        assert_close(gpu_model.state_dict()[key], value, err_msg=key)
    gpu_model.cpu()
    assert {b.device for b in gpu_model.buffers()} == {"cpu"}
