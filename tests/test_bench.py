"""The benchmark suite stays runnable: ``asv check`` passes and ``bench/report.py --quick`` covers every family.

No timing is asserted (the machine is shared and noisy); only that every case
runs on every CPU backend and yields a positive time, and that the report's
bookkeeping (shapes, inputs, table columns) is right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
import report_modern  # noqa: E402
from benchmarks import common, models  # noqa: E402

from jitgrad.kernels._validate import Conv2dDims  # noqa: E402


def test_asv_check_finds_no_problems():
    asv = Path(sys.executable).parent / "asv"
    done = subprocess.run([str(asv), "check", "--python=same"], cwd=BENCH, capture_output=True, text=True,
                          timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "No problems found" in output, output


def test_asv_suite_has_a_class_per_family_and_the_end_to_end_class():
    from benchmarks import bench_end_to_end, bench_kernels, bench_normalization

    families = {cls.family for module in (bench_kernels, bench_normalization) for cls in vars(module).values()
                if isinstance(cls, type) and issubclass(cls, common.KernelBenchmark) and cls.family}
    assert families == set(common.FAMILIES)
    assert hasattr(bench_kernels.Conv2d, "peakmem_kernel")
    assert hasattr(bench_end_to_end.EndToEnd, "peakmem_train_step")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "report.json"
    done = subprocess.run([sys.executable, str(BENCH / "report.py"), "--quick", "--no-progress", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout


def test_quick_report_times_every_kernel_on_numpy_and_cpu(quick_report):
    data, _ = quick_report
    rows = [r for r in data["kernels"] if r["family"] not in report_modern.FAMILIES
            and not r["family"].endswith("(all)")]
    assert {r["family"] for r in rows} == set(common.FAMILIES)
    expected = {(f.name, k) for f in common.FAMILIES.values() for k in f.kernels}
    assert {(r["family"], r["kernel"]) for r in rows} == expected
    missing = [(r["id"], b, r.get("notes")) for r in rows for b in ("numpy", "cpu") if not r["times"][b]]
    assert not missing, f"cases without a positive time: {missing}"


def test_quick_report_has_end_to_end_and_latency(quick_report):
    data, _ = quick_report
    e2e = {(r["model"], r["phase"]): r for r in data["end_to_end"]}
    assert set(e2e) == {(m, p) for m in models.MODELS for p in ("train", "inference")}
    assert all(r["times"]["cpu"] and r["times"]["cpu"] > 0 for r in e2e.values()), data["end_to_end"]
    [warm] = [r for r in data["latency"] if r["cache"] == "warm"]
    assert warm["seconds"] and warm["seconds"] > 0, warm
    assert not [r for r in data["latency"] if r["cache"] == "cold"], "--quick must skip the cold compile"


def test_quick_report_prints_the_machine_and_a_table_per_family(quick_report):
    data, stdout = quick_report
    assert data["machine"]["cores"] >= 1 and data["machine"]["numba"]
    for family in common.FAMILIES:
        assert f"[{family}]" in stdout
    assert ("torch" in stdout.split("[matmul]")[1].splitlines()[1]) == (data["machine"]["torch"] is not None)


def test_quick_report_has_the_modern_kernel_rows(quick_report):
    """bench/report_modern.py: grouped/transposed conv and adaptive pooling, every kernel, timed on numpy and cpu."""
    data, stdout = quick_report
    rows = [r for r in data["kernels"] if r["family"] in report_modern.FAMILIES]
    expected = {(f, k) for f, (kernels, _, _) in report_modern.FAMILIES.items() for k in kernels}
    assert {(r["family"], r["kernel"]) for r in rows} == expected
    assert all(r["times"]["numpy"] > 0 and r["times"]["cpu"] > 0 for r in rows), rows
    for family in report_modern.FAMILIES:
        assert f"[{family}]" in stdout


def test_modern_torch_twins_compute_what_the_kernels_compute():
    """Each PyTorch call of report_modern does the same computation as jitgrad's kernel (else its ratio lies)."""
    torch = pytest.importorskip("torch")
    for family, (kernels, shapes, build) in report_modern.FAMILIES.items():
        for kernel in kernels:
            case = build(kernel, shapes[-1])
            ours = report_modern.jitgrad_call("cpu", kernel, case)()
            theirs = report_modern.torch_call(torch, kernel, case)()
            ours = ours if isinstance(ours, tuple) else (ours,)
            theirs = [t for t in (theirs if isinstance(theirs, tuple) else (theirs,)) if t is not None]
            for a, b in zip(ours, theirs):
                np.testing.assert_allclose(a, b.numpy(), rtol=2e-3, atol=2e-3, err_msg=f"{family} {kernel}")


def test_only_selects_rows_by_regex(tmp_path):
    out = tmp_path / "r.json"
    report.main(["--quick", "--no-progress", "--only", r"^activations\.relu\.", "--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["id"] for r in data["kernels"]] == ["activations.relu.tiny"]
    assert data["end_to_end"] == [] and data["latency"] == []


def _fake_report(torch_version):
    times = {"numpy": 2e-3, "cpu": 1e-3}
    if torch_version:
        times["torch"] = 4e-3
    return {
        "machine": {"cpu": "x", "torch": torch_version},
        "kernels": [{"family": "matmul", "kernel": "matmul", "shape": "square-64", "times": times}],
        "end_to_end": [], "latency": [],
    }


def test_table_has_a_torch_column_only_when_torch_was_measured():
    without = report.format_report(_fake_report(None))
    assert "2.00x" in without and "torch" not in without.split("[matmul]")[1].splitlines()[1]
    with_torch = report.format_report(_fake_report("2.13.0"))
    header = with_torch.split("[matmul]")[1].splitlines()[1]
    assert "torch" in header and "4.00x" in with_torch


def test_measure_returns_a_median_per_call():
    calls = {"a": lambda: sum(range(100)), "b": lambda: None}
    times = report.measure(calls, repeats=3, sample_time=0.001)
    assert set(times) == {"a", "b"} and all(t > 0 for t in times.values())


def test_inputs_are_seeded_and_match_the_shape_tables():
    a1, kw = common.make_inputs("matmul", "matmul", "lenet-fc1-grad-weight", "float32")
    a2, _ = common.make_inputs("matmul", "matmul", "lenet-fc1-grad-weight", "float32")
    np.testing.assert_array_equal(a1[0], a2[0])
    # grad_W = g.T @ x: g is (batch, out), stored untransposed.
    assert a1[0].shape == (common.BATCH, 120) and a1[1].shape == (common.BATCH, 256) and kw["trans_a"]
    assert a1[0].dtype == np.float32
    for label, s in common.CONV_SHAPES.items():
        dims = Conv2dDims.from_shapes((s.batch, s.c_in, s.height, s.width), (s.c_out, s.c_in, s.kernel, s.kernel),
                                      stride=s.stride, padding=s.padding)
        assert (dims.h_out, dims.w_out) == s.out_hw, label


def test_cuda_backend_is_skipped_not_failed_without_a_gpu():
    from numba import cuda

    if cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(NotImplementedError, match="cuda"):
        common.prepare("activations", "relu", "tiny", "float32", "cuda")


_CUDA_WIRING = """
import sys
sys.path.insert(0, {bench!r})
from benchmarks import common
common.cuda_ready = lambda: None  # the suite refuses the simulator for timing; here only wiring is checked
for family in common.FAMILIES.values():
    for kernel in family.kernels:
        for shape in common.QUICK_SHAPES[family.name]:
            common.prepare(family.name, kernel, shape, "float32", "cuda")
            print(family.name, kernel)
"""


def test_cuda_cases_run_under_the_simulator():
    """Every ``cuda`` case builds its device inputs and runs (tiny shapes, simulator, never timed)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "JITGRAD_CUDA_THREADS_PER_BLOCK": "32"}
    done = subprocess.run([sys.executable, "-c", _CUDA_WIRING.format(bench=str(BENCH))], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    ran = {tuple(line.split()) for line in done.stdout.splitlines()}
    assert ran == {(f.name, k) for f in common.FAMILIES.values() for k in f.kernels}


def test_quick_report_names_cpu_and_simd_path(quick_report):
    data, stdout = quick_report
    from jitgrad.kernels.cpu import _isa

    assert data["machine"]["isa_path"] == _isa.describe()
    assert f"jitgrad SIMD path: {_isa.ISA.name} (" in stdout


def test_quick_report_has_every_activation_and_softmax_kernel(quick_report):
    """bench/activations_vs_torch.py's rows: every activation and softmax-family kernel, forward and backward."""
    data, stdout = quick_report
    rows = [r for r in data["kernels"] if r["family"].endswith("(all)")]
    names = {r["kernel"] for r in rows}
    for fwd in ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu-tanh", "elu", "softplus", "softmax",
                "log_softmax", "cross_entropy", "cross_entropy prob"):
        assert {fwd, fwd + " bwd"} <= names, fwd
    assert not [r["id"] for r in rows for b in ("numpy", "cpu") if not r["times"][b]]
    assert "[activations (all)]" in stdout and "[softmax (all)]" in stdout
