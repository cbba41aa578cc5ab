"""nn.RNN / nn.LSTM / nn.GRU, the cells, Embedding and gradient clipping."""

from __future__ import annotations

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn


def _t(a, grad=False):
    return jg.tensor(np.asarray(a), requires_grad=grad)


@pytest.mark.parametrize("cls, gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_parameter_names_shapes_and_init(cls, gates):
    m = cls(3, 5, num_layers=2, bidirectional=True)
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    expected = {}
    for layer, width in ((0, 3), (1, 10)):
        for sfx in ("", "_reverse"):
            expected.update({f"weight_ih_l{layer}{sfx}": (gates * 5, width), f"weight_hh_l{layer}{sfx}": (gates * 5, 5),
                             f"bias_ih_l{layer}{sfx}": (gates * 5,), f"bias_hh_l{layer}{sfx}": (gates * 5,)})
    assert shapes == expected
    assert list(shapes) == list(expected)  # PyTorch's order
    bound = 1 / np.sqrt(5)
    values = np.concatenate([p.numpy().ravel() for p in m.parameters()])
    assert values.min() >= -bound and values.max() <= bound and values.std() > bound / 3
    assert "bias" not in " ".join(cls(3, 5, bias=False).state_dict())


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_matches_pytorch_two_layer_bidirectional_batch_first(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    steps, batch, inputs, hidden, layers = 4, 3, 5, 6, 2
    kw = dict(num_layers=layers, batch_first=True, bidirectional=True)
    if name == "RNN":
        kw["nonlinearity"] = "relu"
    tm = getattr(torch.nn, name)(inputs, hidden, **kw).double()
    jm = getattr(nn, name)(inputs, hidden, dtype=np.float64, **kw)
    jm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = torch.randn(batch, steps, inputs, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2 * layers, batch, hidden, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2 * layers, batch, hidden, dtype=torch.float64, requires_grad=True)
    jx, jh, jc = (_t(a.detach().numpy(), True) for a in (x, h0, c0))
    if name == "LSTM":
        y, (hn, cn) = tm(x, (h0, c0))
        jy, (jhn, jcn) = jm(jx, (jh, jc))
        pairs = [(y, jy), (hn, jhn), (cn, jcn)]
    else:
        y, hn = tm(x, h0)
        jy, jhn = jm(jx, jh)
        pairs = [(y, jy), (hn, jhn)]
    weights = [torch.randn_like(a) for a, _ in pairs]
    sum((a * w).sum() for (a, _), w in zip(pairs, weights)).backward()
    total = None
    for (_, b), w in zip(pairs, weights):
        term = (b * _t(w.numpy())).sum()
        total = term if total is None else total + term
    total.backward()
    for a, b in pairs:
        np.testing.assert_allclose(b.numpy(), a.detach().numpy(), rtol=1e-10, atol=1e-12)
    grads = [(x, jx), (h0, jh)] + ([(c0, jc)] if name == "LSTM" else [])
    for a, b in grads:
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-9, atol=1e-11)
    jp = dict(jm.named_parameters())
    for k, p in tm.named_parameters():
        np.testing.assert_allclose(jp[k].grad.numpy(), p.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_match_pytorch(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    tc = getattr(torch.nn, name)(3, 4).double()
    jc = getattr(nn, name)(3, 4, dtype=np.float64)
    jc.load_state_dict({k: v.detach().numpy() for k, v in tc.state_dict().items()})
    x = torch.randn(2, 3, dtype=torch.float64)
    h = torch.randn(2, 4, dtype=torch.float64)
    if name == "LSTMCell":
        c = torch.randn(2, 4, dtype=torch.float64)
        out = tc(x, (h, c))
        jout = jc(_t(x.numpy()), (_t(h.numpy()), _t(c.numpy())))
        pairs = list(zip(out, jout))
    else:
        pairs = [(tc(x, h), jc(_t(x.numpy()), _t(h.numpy())))]
    for a, b in pairs:
        np.testing.assert_allclose(b.numpy(), a.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert jc(_t(x.numpy()[0]))[0].shape == (4,) if name == "LSTMCell" else jc(_t(x.numpy()[0])).shape == (4,)


def test_lengths_unbatched_and_repr():
    m = nn.GRU(2, 3, dtype=np.float64)
    x = _t(np.random.default_rng(0).standard_normal((4, 2, 2)))
    y, h = m(x, lengths=[4, 2])
    np.testing.assert_array_equal(y.numpy()[2:, 1], 0)
    np.testing.assert_allclose(h.numpy()[0, 1], y.numpy()[1, 1])
    yu, hu = m(x[:, 0])
    np.testing.assert_allclose(yu.numpy(), y.numpy()[:, 0])
    assert hu.shape == (1, 3)
    assert repr(nn.LSTM(2, 3, num_layers=2, batch_first=True)) == "LSTM(2, 3, num_layers=2, batch_first=True)"


def test_bad_input_names_the_argument():
    m = nn.LSTM(4, 3, batch_first=True)
    x = _t(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r"input must have input_size=4 features in its last dimension, got "
                                         r"shape \(2, 5, 3\)"):
        m(_t(np.zeros((2, 5, 3), np.float32)))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(1, 2, 3\).*batch_first=True reads batch=2"):
        # A time-major state for a batch_first layer: the batch sizes disagree.
        m(x, (_t(np.zeros((1, 5, 3), np.float32)), _t(np.zeros((1, 5, 3), np.float32))))
    with pytest.raises(TypeError, match="input must be data of the parameters' dtype float32, got int64"):
        m(_t(np.zeros((2, 5, 4), np.int64)))
    with pytest.raises(TypeError, match="input must be floating-point data of the parameters' dtype float32, got "
                                        "float64"):
        m(_t(np.zeros((2, 5, 4), np.float64)))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        m(x, _t(np.zeros((1, 2, 3), np.float32)))
    with pytest.raises(ValueError, match="input must be 3-D"):
        m(_t(np.zeros((1, 2, 5, 4), np.float32)))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\]"):
        m(x, lengths=[6, 1])
    with pytest.raises(ValueError, match="dropout must be a number in"):
        nn.GRU(2, 3, dropout=1.5)
    with pytest.raises(TypeError, match="GRU: dropout must be a number in"):
        nn.GRU(2, 3, dropout="0.1")
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN(2, 3, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"GRUCell\(2, 3\): hx must have shape \(1, 3\)"):
        nn.GRUCell(2, 3)(_t(np.zeros((1, 2), np.float32)), _t(np.zeros((2, 3), np.float32)))


def test_embedding():
    emb = nn.Embedding(6, 3, padding_idx=-1)
    assert emb.padding_idx == 5
    np.testing.assert_array_equal(emb.weight.numpy()[5], 0)
    idx = np.array([[0, 5, 2], [2, 2, 1]])
    out = emb(idx)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], [1, 1, 3, 0, 0, 0])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 6\), got values from 0 to 6"):
        emb(np.array([0, 6]))
    with pytest.raises(TypeError, match="indices must be integers, got float32"):
        emb(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="padding_idx must be an int in"):
        nn.Embedding(3, 2, padding_idx=3)
    with pytest.raises(TypeError, match=r"Embedding: padding_idx must be an int in \[-3, 3\), got 1.0"):
        nn.Embedding(3, 2, padding_idx=1.0)


def test_embedding_matches_pytorch():
    torch = pytest.importorskip("torch")
    te = torch.nn.Embedding(7, 4, padding_idx=2).double()
    je = nn.Embedding(7, 4, padding_idx=2, dtype=np.float64)
    je.load_state_dict({"weight": te.weight.detach().numpy()})
    idx = np.array([[1, 2, 6, 1], [0, 2, 3, 3]])
    w = np.random.default_rng(0).standard_normal((2, 4, 4))
    (te(torch.tensor(idx)) * torch.tensor(w)).sum().backward()
    (je(idx) * _t(w)).sum().backward()
    np.testing.assert_allclose(je.weight.grad.numpy(), te.weight.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_and_value():
    a = nn.Parameter(np.zeros(3))
    b = nn.Parameter(np.zeros((2, 2)))
    a.grad = _t([3.0, 0.0, 0.0])
    b.grad = _t([[0.0, 4.0], [0.0, 0.0]])
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [3 / 5, 0, 0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [[0, 4 / 5], [0, 0]], rtol=1e-5)
    assert nn.utils.clip_grad_norm_([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad.numpy(), [3 / 5, 0, 0], rtol=1e-5)  # unchanged below max_norm
    assert nn.utils.clip_grad_norm_(a, 1.0, norm_type=float("inf")) == pytest.approx(0.6)
    a.grad = _t([np.inf, 0.0, 0.0])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        nn.utils.clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    b.grad = _t([[-3.0, 0.5], [2.0, -0.1]])
    nn.utils.clip_grad_value_(b, 1.0)
    np.testing.assert_array_equal(b.grad.numpy(), [[-1.0, 0.5], [1.0, -0.1]])
    with pytest.raises(ValueError, match="max_norm must be a non-negative number, got -1"):
        nn.utils.clip_grad_norm_([a], -1)
    with pytest.raises(ValueError, match="clip_value must be a non-negative number"):
        nn.utils.clip_grad_value_([a], -0.5)
    with pytest.raises(TypeError, match="clip_grad_norm_: max_norm must be a non-negative number, got None"):
        nn.utils.clip_grad_norm_([a], None)
    with pytest.raises(TypeError, match="clip_grad_value_: clip_value must be a non-negative number, got '1'"):
        nn.utils.clip_grad_value_([a], "1")


def test_clip_grad_norm_matches_pytorch():
    torch = pytest.importorskip("torch")
    g = [np.random.default_rng(i).standard_normal(s) for i, s in enumerate([(3, 4), (5,)])]
    tp = [torch.zeros(s.shape, dtype=torch.float64, requires_grad=True) for s in g]
    jp = [nn.Parameter(np.zeros(s.shape)) for s in g]
    for t, j, v in zip(tp, jp, g):
        t.grad = torch.tensor(v)
        j.grad = _t(v)
    for norm_type in (2.0, 1.0, 3.0):
        expected = float(torch.nn.utils.clip_grad_norm_(tp, 0.5, norm_type=norm_type))
        assert nn.utils.clip_grad_norm_(jp, 0.5, norm_type=norm_type) == pytest.approx(expected, rel=1e-6)
        for t, j in zip(tp, jp):
            np.testing.assert_allclose(j.grad.numpy(), t.grad.numpy(), rtol=1e-6)
