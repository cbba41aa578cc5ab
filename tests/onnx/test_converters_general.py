"""The general import paths (pooling by strided slices, broadcast MatMul, cropped ConvTranspose) are
differentiable: float64 gradcheck through one-node graphs, and forward against onnxruntime in float32."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import jitgrad  # noqa: E402
from jitgrad import onnx as jonnx  # noqa: E402
from tests.helpers import randn, tie_free  # noqa: E402

# (operator, attributes, input shapes); the second input, if any, is a graph input too.
NODES = {
    "avgpool-ceil-asymmetric-exclude": ("AveragePool", dict(kernel_shape=[3, 2], strides=[2, 2], pads=[0, 1, 1, 0],
                                                             ceil_mode=1), [(1, 2, 5, 6)]),
    "avgpool-1d-include": ("AveragePool", dict(kernel_shape=[3], pads=[2, 1], count_include_pad=1), [(2, 2, 5)]),
    "maxpool-dilated-ceil": ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 1], strides=[2, 2], ceil_mode=1),
                             [(1, 2, 6, 5)]),
    "matmul-broadcast": ("MatMul", {}, [(2, 1, 3, 4), (3, 4, 2)]),
    "convtranspose-same-upper": ("ConvTranspose", dict(auto_pad="SAME_UPPER", strides=[2, 2]),
                                 [(1, 2, 3, 3), (2, 3, 2, 3)]),
}


def _model(op, attrs, shapes, elem):
    from onnx import helper

    names = ["x", "w"][:len(shapes)]
    graph = helper.make_graph([helper.make_node(op, names, ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info(n, elem, s) for n, s in zip(names, shapes)],
                              [helper.make_tensor_value_info("y", elem, [f"d{i}" for i in range(len(shapes[0]))])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("name", sorted(NODES))
def test_matches_onnxruntime_and_gradchecks(name):
    from onnx import TensorProto

    op, attrs, shapes = NODES[name]
    inputs = [tie_free(s, np.float64, seed=i) * 4 if op == "MaxPool" else randn(s, np.float64, seed=i)
              for i, s in enumerate(shapes)]
    proto32 = _model(op, attrs, shapes, TensorProto.FLOAT)
    sess = ort.InferenceSession(proto32.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = sess.run(None, {n: a.astype(np.float32) for n, a in zip(["x", "w"], inputs)})[0]
    with jitgrad.no_grad():
        got = jonnx.load(proto32)(*[jitgrad.tensor(a.astype(np.float32)) for a in inputs]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    m64 = jonnx.load(_model(op, attrs, shapes, TensorProto.DOUBLE))
    assert jitgrad.gradcheck(lambda *t: m64(*t), *[jitgrad.tensor(a, requires_grad=True) for a in inputs])
