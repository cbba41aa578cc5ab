"""Export and import: jitgrad -> ONNX -> onnxruntime, ONNX -> jitgrad -> ONNX -> onnxruntime, training an
imported model, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import jitgrad  # noqa: E402
from jitgrad import nn  # noqa: E402
from jitgrad import onnx as jonnx  # noqa: E402
from tests.onnx.models import ModernCNN, Residual, convnet, images, lenet5, resnet  # noqa: E402

MODELS = {"lenet5": lenet5, "convnet": convnet, "resnet": resnet, "residual": Residual, "modern": ModernCNN}


def _ort(path_or_proto, x: np.ndarray) -> np.ndarray:
    data = path_or_proto.SerializeToString() if hasattr(path_or_proto, "SerializeToString") else str(path_or_proto)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _jitgrad(model, x: np.ndarray) -> np.ndarray:
    with jitgrad.no_grad():
        return model(jitgrad.Tensor(x)).numpy()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_matches_onnxruntime_at_any_batch(name, tmp_path):
    jitgrad.manual_seed(0)
    model = MODELS[name]()
    path = tmp_path / f"{name}.onnx"
    proto = jonnx.export(model, images(2), path, input_names=["image"], output_names=["logits"])
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert "Dropout" not in {n.op_type for n in proto.graph.node}
    assert model.training  # the mode is restored after tracing
    for batch in (1, 5):  # the batch dimension is dynamic: other sizes than the traced one run
        x = images(batch, seed=batch)
        model.eval()
        expected = _jitgrad(model, x)
        np.testing.assert_allclose(_ort(path, x), expected, rtol=0, atol=1e-5)
        model.train()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_to_jitgrad_to_onnx(name, tmp_path):
    jitgrad.manual_seed(1)
    model = MODELS[name]().eval()
    first = tmp_path / "first.onnx"
    jonnx.export(model, images(2), first)
    imported = jonnx.load(first).eval()
    x = images(3, seed=7)
    np.testing.assert_allclose(_jitgrad(imported, x), _jitgrad(model, x), rtol=0, atol=1e-5)
    # parameters keep their names through the round trip; BatchNorm statistics come back as buffers
    assert [n for n, _ in imported.named_parameters()] == [n for n, _ in model.named_parameters()]
    buffers = getattr(model, "named_buffers", lambda: [])()
    float_buffers = sorted(n for n, b in buffers if b.dtype.kind == "f")
    assert sorted(n for n, _ in imported.named_buffers()) == float_buffers
    second = tmp_path / "second.onnx"
    jonnx.export(imported, images(2), second)
    np.testing.assert_allclose(_ort(second, x), _ort(first, x), rtol=0, atol=1e-5)


def test_imported_model_trains_freezes_and_saves(tmp_path):
    jitgrad.manual_seed(2)
    model = lenet5()
    jonnx.export(model, images(2), tmp_path / "m.onnx")
    imported = jonnx.load(tmp_path / "m.onnx")
    params = dict(imported.named_parameters())
    for name, p in params.items():
        if name.startswith(("0.", "3.")):  # freeze the two conv layers
            p.requires_grad = False
    frozen = {n: p.numpy().copy() for n, p in params.items()}
    opt = jitgrad.optim.SGD([p for p in imported.parameters() if p.requires_grad], lr=0.1)
    x, y = images(8, seed=3), np.arange(8) % 10
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(imported(jitgrad.Tensor(x)), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for n, p in params.items():
        changed = not np.array_equal(p.numpy(), frozen[n])
        assert changed == (not n.startswith(("0.", "3."))), n
    jitgrad.save(imported.state_dict(), tmp_path / "ckpt.safetensors")
    again = jonnx.load(tmp_path / "m.onnx")
    again.load_state_dict(jitgrad.load(tmp_path / "ckpt.safetensors"))
    np.testing.assert_array_equal(_jitgrad(again, x), _jitgrad(imported, x))


def test_import_of_a_hand_built_graph_with_bn_gap_and_shape_idioms(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (w, "w"), (rng.random(4).astype(np.float32) + 0.5, "scale"), (rng.standard_normal(4).astype(np.float32), "b"),
        (rng.standard_normal(4).astype(np.float32), "mean"), (rng.random(4).astype(np.float32) + 0.1, "var"),
        (np.array([0], np.int64), "zero"), (np.array([-1], np.int64), "minus1")]]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "b", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Shape", ["g"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Concat", ["n", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["g", "shape"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "g.onnx"))
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    m = jonnx.load(tmp_path / "g.onnx")
    np.testing.assert_allclose(_jitgrad(m, x), _ort(tmp_path / "g.onnx", x), rtol=1e-5, atol=1e-5)
    # the BatchNorm scale and bias are trainable parameters; gradients reach them through the graph
    out = m(jitgrad.Tensor(x))
    out.sum().backward()
    assert m._parameters["scale"].grad is not None and m._parameters["w"].grad is not None


# --- bad input ---------------------------------------------------------------------------------------


def test_export_names_an_op_without_mapping(tmp_path):
    class Loss(nn.Module):
        def forward(self, x):
            return nn.functional.binary_cross_entropy_with_logits(x.reshape(x.shape[0], -1), np.zeros((2, 784)))

    with pytest.raises(NotImplementedError, match="BinaryCrossEntropyWithLogits has no ONNX mapping"):
        jonnx.export(Loss(), images(2), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="opset must be between 13 and 21, got 7"):
        jonnx.export(lenet5(), images(2), tmp_path / "x.onnx", opset=7)


def test_load_rejects_bad_files_clearly(tmp_path):
    jonnx.export(lenet5(), images(2), tmp_path / "good.onnx")
    data = (tmp_path / "good.onnx").read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.onnx"):
        jonnx.load(tmp_path / "trunc.onnx")
    (tmp_path / "text.onnx").write_text("hello, not a model")
    with pytest.raises(ValueError, match="text.onnx"):
        jonnx.load(tmp_path / "text.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        jonnx.load(tmp_path / "missing.onnx")


def _one_node_model(op: str, opset: int = 17, shape=(2, 3), **attrs):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], name="the_node", **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_load_names_unsupported_operator_opset_and_shape(tmp_path):
    with pytest.raises(NotImplementedError, match=r"node 'the_node' uses operator 'Erf', unsupported"):
        jonnx.load(_one_node_model("Erf"))
    with pytest.raises(NotImplementedError, match=r"'Hardmax', unsupported: no jitgrad converter"):
        jonnx.load(_one_node_model("Hardmax"))
    with pytest.raises(ValueError, match=r"opset 5 is not supported \(jitgrad reads 6 to 25\)"):
        jonnx.load(_one_node_model("Relu", opset=5))
    with pytest.raises(ValueError, match="graph input 'x' has an unknown shape"):
        jonnx.load(_one_node_model("Relu", shape=None))
    with pytest.raises(ValueError, match=r"not valid ONNX: Node\(the_node\) with schema\(::Conv"):
        jonnx.load(_one_node_model("Conv", shape=(1, 1, 4, 4)))  # Conv without its weight input
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"], name="bad_reshape")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7])],
                              [numpy_helper.from_array(np.array([7], np.int64), "s")])
    m = jonnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(ValueError, match=r"node 'bad_reshape' \(Reshape\): ValueError: .*7"):
        m(jitgrad.Tensor(np.zeros((2, 3), np.float32)))


def test_load_names_missing_external_data(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    proto = jonnx.export(lenet5(), images(2), None)
    convert_model_to_external_data(proto, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save(proto, str(tmp_path / "ext.onnx"))
    m = jonnx.load(tmp_path / "ext.onnx")  # the external data is read
    assert m.num_parameters() == 44426
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"initializer '0.weight' .* 'weights.bin', missing"):
        jonnx.load(tmp_path / "ext.onnx")
