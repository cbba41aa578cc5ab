"""The ONNX rows of the benchmark report and the asv suite: the cases build, both runtimes agree, rows are timed."""

from __future__ import annotations

import re
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import report_onnx  # noqa: E402
from benchmarks import bench_onnx  # noqa: E402


def test_resnet50_is_the_offline_zoo_graph_rebatched():
    import onnx

    one = bench_onnx.resnet50_model(1)
    three = bench_onnx.resnet50_model(3)
    assert bench_onnx.resnet50_path().name == "light_resnet50.onnx"
    assert [d.dim_value for d in one.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]
    assert [d.dim_value for d in three.graph.input[0].type.tensor_type.shape.dim] == [3, 3, 224, 224]
    inferred = onnx.shape_inference.infer_shapes(three, strict_mode=True)
    out = inferred.graph.output[0]
    assert out.name == "gpu_0/softmax_1"
    assert [d.dim_value for d in out.type.tensor_type.shape.dim] == [3, 1000]
    assert len(one.graph.node) == len(three.graph.node)


def test_unknown_case_and_backend_are_named():
    with pytest.raises(ValueError, match="unknown ONNX case 'vgg'"):
        bench_onnx.case_model("vgg")
    with pytest.raises(ValueError, match="backend must be one of"):
        bench_onnx.make_call("lenet5-b128", "tvm")


def test_lenet5_row_times_both_runtimes_which_agree():
    opts = Namespace(quick=True, only=re.compile("lenet5"), repeats=2, sample_time=0.0)
    (row,) = report_onnx.onnx_rows(opts, threads=1)
    assert row["case"] == "lenet5-b128" and row["batch"] == 128 and row["threads"] == 1
    assert row["max_abs_diff"] <= 1e-5
    for clock in ("wall", "cpu"):
        assert set(row[clock]) == {"jitgrad", "onnxruntime"}
        assert all(t > 0 for t in row[clock].values())
    assert row["speed_wall"] == pytest.approx(row["wall"]["onnxruntime"] / row["wall"]["jitgrad"])
    text = "\n".join(report_onnx.format_rows([row]))
    assert "lenet5-b128" in text and "speed (cpu)" in text


def test_a_case_that_cannot_run_is_a_row_with_its_reason(monkeypatch):
    def missing(*args, **kwargs):
        raise NotImplementedError("onnxruntime is not installed: test")

    monkeypatch.setattr(bench_onnx, "make_call", missing)
    opts = Namespace(quick=True, only=re.compile("resnet"), repeats=1, sample_time=0.0)
    (row,) = report_onnx.onnx_rows(opts, threads=1)
    assert row["error"] == "onnxruntime is not installed: test"
    assert "n/a: onnxruntime is not installed" in "\n".join(report_onnx.format_rows([row]))
    assert report_onnx.format_rows([]) == []


def test_asv_class_covers_every_case_on_both_runtimes():
    assert bench_onnx.OnnxInference.params == [list(bench_onnx.CASES), ["jitgrad", "onnxruntime"]]
    assert set(bench_onnx.QUICK_CASES) <= set(bench_onnx.CASES)


def test_jitgrad_call_runs_without_recording_a_graph():
    model, x = bench_onnx.case_model("lenet5-b128")
    y = bench_onnx.jitgrad_call(model, x[:4])()
    assert isinstance(y, np.ndarray) and y.shape == (4, 10) and y.dtype == np.float32


def test_profile_splits_a_call_by_operator(capsys):
    import profile_onnx
    from jitgrad.onnx import _import

    before, before_inplace = _import._conv_then_bn, _import._inplace.run
    spent = profile_onnx.main(["lenet5-b128", "--calls", "1"])
    assert set(spent) == {"Conv 5x5 stride 1", "Relu", "MaxPool", "Flatten", "Gemm", "Identity"}
    assert all(s >= 0 for s in spent.values()) and spent["Conv 5x5 stride 1"] > 0
    assert "ms CPU per call" in capsys.readouterr().out
    assert _import._conv_then_bn is before and _import._inplace.run is before_inplace  # timers removed again
