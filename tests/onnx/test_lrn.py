"""LRN through ONNX: import against onnxruntime (ONNX's window placement), export of both placements."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import jitgrad  # noqa: E402
from jitgrad import nn  # noqa: E402
from jitgrad import onnx as jonnx  # noqa: E402
from tests.helpers import randn  # noqa: E402


def _ort(proto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _onnx_spec_lrn(x, size, alpha, beta, bias):
    # The operator's text: channels c - floor((size-1)/2) .. c + ceil((size-1)/2). (onnxruntime refuses an even
    # size; onnx.reference loops over the wrong axis, so the formula is written out here.)
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = np.zeros_like(x)
    for c in range(x.shape[1]):
        sq[:, c] = (x[:, max(0, c - lo):c + hi + 1] ** 2).sum(axis=1)
    return x / (bias + alpha / size * sq) ** beta


@pytest.mark.parametrize("size", [3, 4])
def test_import_matches_onnxruntime_and_the_spec_and_trains(size):
    from onnx import TensorProto, helper

    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=0.9, beta=0.6, bias=1.5)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 3, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 3, 2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = randn((2, 6, 3, 2), np.float32, seed=1, scale=2.0)
    m = jonnx.load(proto)
    t = jitgrad.tensor(x, requires_grad=True)
    y = m(t)
    expected = _ort(proto, x) if size % 2 else _onnx_spec_lrn(x.astype(np.float64), size, 0.9, 0.6, 1.5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert t.grad is not None and np.isfinite(t.grad.numpy()).all()


@pytest.mark.parametrize("size", [5, 4])
def test_export_of_both_window_placements_matches_onnxruntime(size, tmp_path):
    # Odd size: one LRN node. Even size: PyTorch's placement differs from ONNX's LRN, so it is written as
    # a window-sum Conv; both round-trip through jitgrad's importer.
    model = nn.Sequential(nn.Conv2d(2, 6, 3), nn.LocalResponseNorm(size, alpha=0.5, beta=0.75, k=2.0), nn.ReLU())
    x = randn((3, 2, 5, 5), np.float32, seed=2)
    proto = jonnx.export(model, x, tmp_path / "m.onnx")
    assert ("LRN" in {n.op_type for n in proto.graph.node}) == (size % 2 == 1)
    with jitgrad.no_grad():
        expected = model(jitgrad.tensor(x)).numpy()
        again = jonnx.load(tmp_path / "m.onnx")(jitgrad.tensor(x)).numpy()
    np.testing.assert_allclose(_ort(proto, x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again, expected, rtol=1e-5, atol=1e-6)


def test_import_names_a_bad_lrn_input():
    from onnx import TensorProto, helper

    node = helper.make_node("LRN", ["x"], ["y"], name="norm1", size=3)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6])])
    m = jonnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    with pytest.raises(ValueError, match=r"node 'norm1' \(LRN\): input must be at least 3-D"):
        m(jitgrad.tensor(np.ones((2, 6), np.float32)))
