"""The imported graph's inference shortcuts (constant folding at load; BatchNormalization fused or folded into
the Conv before it under no_grad) give what the graph as written gives, and leave training untouched."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import jitgrad  # noqa: E402
from jitgrad import onnx as jonnx  # noqa: E402
from jitgrad.onnx import _import  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(0)


def _f32(*shape, low=None):
    a = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(a) + low if low is not None else a


def _bn_inits(prefix: str, c: int) -> list:
    return [numpy_helper.from_array(a, f"{prefix}_{n}") for n, a in
            [("s", _f32(c, low=0.5)), ("b", _f32(c)), ("m", _f32(c)), ("v", _f32(c, low=0.1))]]


def _bn(prefix: str, x: str, y: str) -> any:
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{n}" for n in "sbmv"], [y], epsilon=1e-3)


def _graph() -> any:
    """conv1 -> bn1 (a pair, big feature map: folded); conv2 (weight from ConstantOfShape) feeds bn2 and Add
    (not a pair: fused kernel); conv3 on a 1x1 map with 72 taps per channel -> bn3 (a pair, kernel not folded)."""
    inits = [numpy_helper.from_array(_f32(8, 3, 3, 3), "w1"), numpy_helper.from_array(_f32(8), "c1"),
             numpy_helper.from_array(np.array([8, 8, 1, 1], np.int64), "w2_shape"),
             numpy_helper.from_array(_f32(16, 8, 3, 3), "w3"),
             *_bn_inits("bn1", 8), *_bn_inits("bn2", 8), *_bn_inits("bn3", 16)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "c1"], ["a"], pads=[1, 1, 1, 1]),
        _bn("bn1", "a", "a_bn"),
        helper.make_node("Relu", ["a_bn"], ["r"]),
        helper.make_node("ConstantOfShape", ["w2_shape"], ["w2"],
                         value=numpy_helper.from_array(np.array([0.05], np.float32))),
        helper.make_node("Conv", ["r", "w2"], ["b"]),
        _bn("bn2", "b", "b_bn"),
        helper.make_node("Add", ["b", "b_bn"], ["s"]),
        helper.make_node("GlobalMaxPool", ["s"], ["g"]),
        helper.make_node("Conv", ["g", "w3"], ["c"], pads=[1, 1, 1, 1]),
        _bn("bn3", "c", "y"),
    ]
    graph = helper.make_graph(nodes, "shortcuts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16, 1, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_load_folds_constant_subgraphs_and_pairs_conv_with_its_only_batch_norm():
    m = jonnx.load(_graph())
    assert set(m._folded) == {"w2"} and m._folded["w2"].shape == (8, 8, 1, 1)
    assert "ConstantOfShape" not in [n.op_type for n in m._run] and len(m.nodes) == 10
    pairs = {n.outputs[0]: n.then_bn.outputs[0] for n in m._run if n.then_bn is not None}
    assert pairs == {"a": "a_bn", "c": "y"}  # b also feeds the Add: bn2 runs on its own
    assert [n.outputs[0] for n in m._run if n.after_conv] == ["a_bn", "y"]
    assert "w2" not in dict(m.named_parameters())  # a folded constant is not a parameter


def test_inference_shortcuts_match_the_graph_as_written_and_onnxruntime(monkeypatch):
    model = _graph()
    m = jonnx.load(model)
    x = _f32(3, 3, 9, 9)
    written = m(jitgrad.Tensor(x)).numpy()  # grad mode: every node as written, no shortcut
    fused = []
    real = _import.batch_norm
    monkeypatch.setattr(_import, "batch_norm", lambda *a, **k: fused.append(a[0].shape) or real(*a, **k))
    with jitgrad.no_grad():
        fast = m(jitgrad.Tensor(x)).numpy()
    # bn1 folded into conv1 (3 * 81 outputs per channel > 27 taps); bn2 alone and bn3 (3 < 72 taps): the kernel
    assert fused == [(3, 8, 9, 9), (3, 16, 1, 1)]
    np.testing.assert_allclose(fast, written, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast, _ort(model, x), rtol=1e-4, atol=1e-4)


def test_inference_sees_parameter_changes_and_training_still_reaches_bn_parameters():
    m = jonnx.load(_graph())
    x = jitgrad.Tensor(_f32(2, 3, 9, 9))
    with jitgrad.no_grad():
        before = m(x).numpy()
    state = {k: v.copy() for k, v in m.state_dict().items()}
    state["bn1_s"] = state["bn1_s"] * 2  # loaded in place (no version bump): nothing is cached, so it shows
    m.load_state_dict(state)
    with jitgrad.no_grad():
        after = m(x).numpy()
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, m(x).numpy(), rtol=1e-5, atol=1e-5)
    m(x).sum().backward()
    for name in ("w1", "c1", "bn1_s", "bn1_b", "bn3_s", "w3"):
        assert m._parameters[name].grad is not None, name
    assert all(b.grad is None for b in m.buffers())


def test_a_constant_node_that_fails_at_load_reports_when_it_runs():
    inits = [numpy_helper.from_array(np.arange(6, dtype=np.int64), "k"),
             numpy_helper.from_array(np.array([4, -1], np.int64), "bad")]
    nodes = [helper.make_node("Reshape", ["k", "bad"], ["kk"], name="bad_reshape"),
             helper.make_node("Shape", ["kk"], ["ks"]),
             helper.make_node("Reshape", ["x", "ks"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2])], inits)
    m = jonnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert m._folded == {}
    with jitgrad.no_grad(), pytest.raises(jonnx.NodeError, match="node 'bad_reshape' \\(Reshape\\)"):
        m(jitgrad.Tensor(np.zeros((4, 2), np.float32)))


def test_batch_norm_on_3d_input_falls_back_to_the_converter_under_no_grad():
    inits = _bn_inits("bn", 4)
    graph = helper.make_graph([_bn("bn", "x", "y")], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = _f32(2, 4, 5)
    with jitgrad.no_grad():
        y = jonnx.load(model)(jitgrad.Tensor(x)).numpy()
    np.testing.assert_allclose(y, _ort(model, x), rtol=1e-5, atol=1e-5)


def test_export_of_an_imported_graph_keeps_batch_norm_unfolded_and_its_parameters():
    m = jonnx.load(_graph()).eval()
    x = _f32(2, 3, 9, 9)
    again = jonnx.export(m, x, None, input_names=["x"])  # traced without gradients: no shortcut while tracing
    ops = [n.op_type for n in again.graph.node]
    assert ops.count("Conv") == 3 and ops.count("Sqrt") == 3  # each BatchNormalization as the converter writes it
    names = {i.name for i in again.graph.initializer}
    assert {"w1", "c1", "w3", "bn1_s", "bn1_b", "bn3_s"} <= names  # not folded into a constant weight
    with jitgrad.no_grad():
        ours = m(jitgrad.Tensor(x)).numpy()
    np.testing.assert_allclose(_ort(again, x), ours, rtol=1e-4, atol=1e-4)


def _inplace_graph() -> any:
    """Relu over a Conv's output (dead after it: in place), a residual Add into a Conv's output, then buffers
    that must not be overwritten: the graph input, a graph output read again, one input read twice, one read
    by a Flatten (a view), an operand that broadcasts; LeakyRelu and a three-way Sum in place."""
    inits = [numpy_helper.from_array(_f32(4, 3, 3, 3), "w1"), numpy_helper.from_array(_f32(4, 4, 1, 1), "w2"),
             numpy_helper.from_array(_f32(4, 1, 1), "bias")]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"]),                       # in place on a
        helper.make_node("Conv", ["r", "w2"], ["b"]),
        helper.make_node("Add", ["b", "r"], ["s"]),                   # in place on b (r is read by Conv and Add)
        helper.make_node("Relu", ["s"], ["y1"]),                      # in place on s, y1 a graph output
        helper.make_node("Relu", ["x"], ["rx"]),                      # the user's input: never
        helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["rc"]),                      # c is a graph output: never
        helper.make_node("Add", ["rc", "rc"], ["d"]),                 # read twice by this node: never
        helper.make_node("Conv", ["x", "w1"], ["g"], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["g"], ["fd"]),
        helper.make_node("Relu", ["g"], ["rd"]),                      # Flatten may keep a view of g: never
        helper.make_node("Conv", ["r", "w2"], ["e"]),
        helper.make_node("Add", ["e", "bias"], ["eb"]),               # planned on e, broadcasts: as written
        helper.make_node("LeakyRelu", ["eb"], ["le"], alpha=0.2),     # in place on eb
        helper.make_node("Conv", ["le", "w2"], ["f"]),
        helper.make_node("Sum", ["le", "y1", "f"], ["y2"]),          # le is dead here (y1 is an output): on le
    ]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N"] + s) for n, s in
            [("y1", [4, 5, 5]), ("c", [4, 5, 5]), ("fd", [100]), ("rd", [4, 5, 5]), ("rx", [3, 5, 5]),
             ("y2", [4, 5, 5]), ("d", [4, 5, 5])]]
    graph = helper.make_graph(nodes, "inplace", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 5])],
                              outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_inplace_plan_overwrites_only_dead_buffers_made_by_the_call():
    m = jonnx.load(_inplace_graph())
    planned = {n.outputs[0]: n.inputs[n.inplace] for n in m._run if n.inplace >= 0}
    assert planned == {"r": "a", "s": "b", "y1": "s", "eb": "e", "le": "eb", "y2": "le"}


def test_inplace_inference_matches_the_graph_as_written_and_onnxruntime_and_keeps_the_inputs(monkeypatch):
    model = _inplace_graph()
    m = jonnx.load(model)
    x = _f32(2, 3, 5, 5)
    x0 = x.copy()
    written = [t.numpy() for t in m(jitgrad.Tensor(x))]  # grad mode: as written, nothing in place
    done = []
    real = _import._inplace.run
    monkeypatch.setattr(_import._inplace, "run", lambda node, args: done.append(
        (node.outputs[0], (out := real(node, args)) is not None and out.data is args[node.inplace].data)) or out)
    with jitgrad.no_grad():
        fast = [t.numpy() for t in m(jitgrad.Tensor(x))]
    # every planned node ran in place except the broadcasting Add
    assert done == [("r", True), ("s", True), ("y1", True), ("eb", False), ("le", True), ("y2", True)]
    np.testing.assert_array_equal(x, x0)  # the user's array is untouched
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for ours, theirs, expect in zip(fast, written, ref):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours, expect, rtol=1e-4, atol=1e-4)
    assert fast[4].min() >= 0 and fast[1].min() < 0  # rx = relu(x) fresh; c still the raw Conv output
    assert fast[2].min() < 0  # fd = Flatten(g) kept its negative values although rd = relu(g) ran after it


def test_inplace_path_leaves_a_user_tensor_fed_straight_to_relu_and_add_alone():
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["s"]), helper.make_node("Relu", ["x"], ["y"]),
                               helper.make_node("Add", ["s", "y"], ["z"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 4])])
    m = jonnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [n.inplace for n in m._run] == [-1, -1, 0]
    x = _f32(3, 4)
    x0 = x.copy()
    with jitgrad.no_grad():
        z = m(jitgrad.Tensor(x)).numpy()
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_allclose(z, 2 * x0 + np.maximum(x0, 0), rtol=1e-6)


@pytest.mark.parametrize("n", [7, (1 << 20) + 3])
def test_inplace_kernels_alias_their_output_with_their_input(n):
    from jitgrad.kernels.cpu import activations as act
    from jitgrad.onnx import _inplace

    a, b = _f32(n), _f32(n)
    a[:3] = [np.nan, np.inf, -np.inf]
    want = a + b
    _inplace._add_into(a, b) if n > 100 else _inplace._add_into_serial(a, b)
    np.testing.assert_array_equal(a, want)
    want = np.maximum(a, 0)
    (act._relu_kernel if n > 100 else act._relu_kernel_serial)(a, a)
    np.testing.assert_array_equal(a, want)


def test_retain_freed_memory_is_explicit_and_checks_its_arguments():
    import subprocess
    import sys

    with pytest.raises(ValueError, match="mmap_threshold must be an int of bytes"):
        jonnx.retain_freed_memory(mmap_threshold=64 * 1024 ** 2)  # above glibc's 32 MiB limit
    with pytest.raises(ValueError, match="top_pad"):
        jonnx.retain_freed_memory(top_pad=-1)
    # In a child process: the setting is process-wide, and jitgrad.onnx alone must not make it.
    code = ("import ctypes, jitgrad.onnx as o; print(o.retain_freed_memory()); "
            "import numpy as np; a = np.ones(4 << 20, np.float32); print(a.sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    took, total = out.stdout.split()
    assert took == str(sys.platform.startswith("linux") and _glibc()) and float(total) == 4 << 20


def _glibc() -> bool:
    import platform

    return platform.libc_ver()[0] == "glibc"
