"""``bench/report.py --doc``: the Markdown block of one run, its markers, the targets it flags, and
the ``--isa`` guard. Synthetic numbers (no timing), plus one parse of the real GEMM script's output
format and one in-process refusal; a few seconds in all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import machine  # noqa: E402
import report_markdown as md  # noqa: E402


def _kernel(kernel, shape, cpu, numpy, torch):
    return {"kernel": kernel, "shape": shape, "times": {"cpu": cpu, "numpy": numpy, "torch": torch}}


def _run(path="avx2", **overrides):
    results = {
        "gemm": [{"name": "sq1024", "dims": "1024×1024×1024", "op": "NN", "jit_s": 1e-3, "numpy_s": 0.9e-3,
                  "ratio": 0.90},
                 {"name": "cnn-lenet-fc3-fwd", "dims": "128×84×10", "op": "NT", "jit_s": 1e-5, "numpy_s": 6e-6,
                  "ratio": 0.60}],
        "conv": [_kernel("conv2d", "lenet-conv1", 1e-3, 2e-3, 1e-3)],
        "activations": [_kernel("tanh", "128x10", 1e-6, 3e-6, 2e-6),        # meets both
                        _kernel("gelu bwd", "128x1000", 1e-4, 1e-2, 0.7e-4),  # 0.70x PyTorch
                        _kernel("relu", "128x10", 1e-6, 1.5e-6, 1e-6)],      # 1.50x NumPy
        "end_to_end": [{"model": "lenet5", "phase": "train", "batch": 128, "times": {"cpu": 1.0, "torch": 1.5},
                        "images_per_s": {"cpu": 128.0, "torch": 85.3}},
                       {"model": "keras-convnet", "phase": "train", "batch": 128, "times": {"cpu": 1.0, "torch": 1.2},
                        "images_per_s": {"cpu": 128.0, "torch": 106.7}},
                       {"model": "keras-convnet", "phase": "inference", "batch": 128,
                        "times": {"cpu": 1.0, "torch": 0.5}, "images_per_s": {"cpu": 128.0, "torch": 256.0}}],
        "section_s": {"gemm": 120.0, "cold_start": 90.4},
        "cold_start": {"cold": {"wall_s": 15.8, "cpu_s": 15.1, "import_s": 0.6},
                       "warm": {"wall_s": 0.9, "cpu_s": 1.0, "import_s": 0.5}, "background": "done"},
    }
    run = {"path": path, "machine": {"cpu": "Test CPU", "cores": 2, "isa_path": f"{path} (test)", "threads": 2,
                                     "python": "3.11", "numpy": "2", "numba": "0.6", "torch": "2.13", "jitgrad": "0"},
           "forced_cpu": None, "date": "2026-11-30 10:00 UTC", "commit": "abc1234", "wall_s": 600.0,
           "loadavg": (1.0, 1.2), "command": "python bench/report.py --doc docs/performance.md", "quick": False,
           "results": results}
    run.update(overrides)
    return run


def test_shortfalls_flag_exactly_the_rows_below_their_targets():
    short = md.shortfalls(_run()["results"])
    joined = "\n".join(short)
    assert len(short) == 5, short
    assert "cnn-lenet-fc3-fwd" in joined and "sq1024" not in joined  # 0.60 < 1.0; 0.90 >= 0.8
    assert "gelu bwd 128x1000: 0.70x PyTorch" in joined and "relu 128x10: 1.50x NumPy" in joined
    assert "tanh" not in joined and "lenet5" not in joined  # 3x NumPy, 2x PyTorch; 1.5x PyTorch training
    assert "keras-convnet training: 1.20x PyTorch" in joined  # inference 0.5x has no target
    assert "cold start" in joined and "warm start" not in joined  # 15.8 > 15 s; 0.9 <= 1 s


def test_block_marks_short_ratios_and_lists_them():
    block = md.render_block(_run())
    assert block.startswith(md.begin_marker("avx2")) and block.endswith(md.end_marker("avx2"))
    assert "| `cnn-lenet-fc3-fwd` | 128×84×10 | NT |" in block and "0.60\\* | 1.0 |" in block
    assert "| 0.90 | 0.8 |" in block  # sq1024 meets 0.8: no mark
    assert "15.80\\*" in block and "| 0.90 |" in block
    assert block.count("\n- ") == 5
    assert "| 600 s (GEMM 120 s, cold start 90 s); load average 1.0 at the start, 1.2 at the end |" in block
    assert "Test CPU (2 cores)" in block and "`avx2 (test)`" in block and "abc1234" in block


def test_block_without_shortfalls_says_so_and_names_sections_not_run():
    results = {"gemm": [{"name": "sq256", "dims": "256×256×256", "op": "NN", "jit_s": 1e-4, "numpy_s": 1e-4,
                         "ratio": 1.0}], "errors": {"conv": "RuntimeError: boom"}}
    block = md.render_block(_run(results=results, quick=True))
    assert "Nothing: every measured row meets its target." in block
    assert "conv2d did not run: RuntimeError: boom" in block
    assert "Not run in this block: activations/softmax/CE, training and inference, cold start." in block
    assert "`--quick`" in block


PAGE = """# Performance

intro

{avx2}

hand-written: why rows fall short

{avx512}

## History (earlier passes)

old text kept verbatim
"""


def _header_row(name, **machine_update):
    """Row ``name`` of the run table, for a run whose machine fields are updated with ``machine_update``."""
    run = _run()
    run["machine"].update(machine_update)
    return next(line for line in md.header_lines(run) if line.startswith(f"| {name} |"))


def test_header_says_whose_malloc_thresholds_the_run_had():
    def memory_row(**machine_update):
        return _header_row("memory", **machine_update)

    assert "set by `import jitgrad`" in memory_row(malloc_tuned=True)
    assert "as they were" in memory_row(malloc_tuned=False)
    assert "not recorded" in memory_row()  # runs recorded before the field existed
    assert machine.machine_info(1, None)["malloc_tuned"] is __import__("jitgrad").config.malloc_tuned


def test_threads_row_says_where_jitgrads_float32_products_ran():
    def threads_row(**machine_update):
        return _header_row("threads", **machine_update)

    assert "on its GEMM team" in threads_row(gemm_team=True)
    assert "OpenMP pool (`JITGRAD_GEMM_TEAM=0`" in threads_row(gemm_team=False)
    assert "GEMM team" not in threads_row()  # runs recorded before the field existed
    from jitgrad.kernels.cpu import _team

    assert machine.machine_info(1, None)["gemm_team"] is _team.enabled()


def test_replace_block_rewrites_only_its_own_path():
    old2 = f"{md.begin_marker('avx2')}\nold avx2 numbers\n{md.end_marker('avx2')}"
    old5 = f"{md.begin_marker('avx512')}\nnot measured yet\n{md.end_marker('avx512')}"
    page = PAGE.format(avx2=old2, avx512=old5)
    new = md.render_block(_run())
    out = md.replace_block(page, "avx2", new)
    assert new in out and "old avx2 numbers" not in out
    assert out.replace(new, old2) == page  # everything else byte for byte
    assert md.replace_block(out, "avx2", new) == out  # idempotent
    # A path without a block of its own is added before the history, nothing else moves.
    sse = md.render_block(_run(path="sse"))
    with_sse = md.replace_block(page, "sse", sse)
    assert with_sse.index(sse) < with_sse.index("## History") and with_sse.replace(sse + "\n\n", "") == page


def test_replace_block_refuses_a_broken_marker_pair():
    page = f"{md.begin_marker('avx2')}\nno end marker\n"
    with pytest.raises(ValueError, match="report:avx2"):
        md.replace_block(page, "avx2", md.render_block(_run()))


def test_the_performance_page_has_one_block_per_x86_path():
    page = (ROOT / "docs" / "performance.md").read_text()
    for path in ("avx2", "avx512", "sse"):
        assert page.count(md.begin_marker(path)) == 1 and page.count(md.end_marker(path)) == 1, path
        assert page.index(md.begin_marker(path)) < page.index("## History")


def test_gemm_lines_of_the_side_by_side_script_parse():
    import report_doc

    out = ("path: avx2 (...)\n"
           "sq256                    256x  256x   256 NN jit      310.2us   54.1GF  numpy      295.0us   56.9GF  "
           "ratio  0.95  first 0.01s err 1.2e-07\n"
           "cnn-lenet-fc1-gw         120x  128x   256 TN jit       99.5us   79.0GF  numpy       96.5us   81.5GF  "
           "ratio  0.97  first 0.00s err 1.0e-07\n"
           "geometric mean ratio 0.96, min 0.95\n")
    rows = report_doc.parse_gemm(out)
    assert [(r["name"], r["dims"], r["op"], r["ratio"]) for r in rows] == [
        ("sq256", "256×256×256", "NN", 0.95), ("cnn-lenet-fc1-gw", "120×128×256", "TN", 0.97)]
    assert rows[0]["jit_s"] == pytest.approx(310.2e-6) and rows[0]["numpy_s"] == pytest.approx(295.0e-6)


def test_isa_environment_forces_the_cpu_and_a_cache_of_its_own(tmp_path):
    env = machine.isa_environment("avx2", tmp_path)
    assert env["NUMBA_CPU_NAME"] == "haswell" and env["NUMBA_CPU_FEATURES"] == ""
    assert env["JITGRAD_CACHE_DIR"] == env["NUMBA_CACHE_DIR"] == str(tmp_path / "isa-avx2-haswell")
    assert machine.isa_environment("avx512", tmp_path)["JITGRAD_CACHE_DIR"] != env["JITGRAD_CACHE_DIR"]


def test_forced_avx2_holds_the_competitors_to_avx2(tmp_path):
    """NumPy, OpenBLAS and PyTorch run their AVX2 paths in a forced avx2 child; NumPy still imports."""
    env = machine.isa_environment("avx2", tmp_path)
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["ONEDNN_MAX_CPU_ISA"] == env["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    assert machine.competitor_environment("avx512") == {}
    assert all(k in machine.COMPETITOR_VARS for k in machine.competitor_environment("avx2"))
    code = ("from numpy._core._multiarray_umath import __cpu_features__ as f, __cpu_dispatch__ as d; "
            "print(sorted(t for t in d if f.get(t) and ('AVX512' in t or t == 'X86_V4')))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **machine.competitor_environment("avx2")},
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout  # no AVX-512 dispatch target left on
    line = md._limits({"competitor_limits": {"OPENBLAS_CORETYPE": "Haswell"}})
    assert "`OPENBLAS_CORETYPE=Haswell`" in line and md._limits({}) == ""


def test_forced_sse_holds_the_competitors_to_their_baseline(tmp_path):
    """A forced sse child (x86-64-v2: no AVX) runs NumPy's baseline loops, OpenBLAS's Nehalem kernel and
    PyTorch's default kernels; NumPy still imports, with no dispatch target above its baseline left on."""
    env = machine.isa_environment("sse", tmp_path)
    assert env["NUMBA_CPU_NAME"] == "x86-64-v2" and env["NUMBA_CPU_FEATURES"] == ""
    assert env["JITGRAD_CACHE_DIR"] == str(tmp_path / "isa-sse-x86-64-v2")
    assert (env["OPENBLAS_CORETYPE"], env["ATEN_CPU_CAPABILITY"], env["ONEDNN_MAX_CPU_ISA"]) == (
        "Nehalem", "default", "SSE41")
    code = ("from numpy._core._multiarray_umath import __cpu_features__ as f, __cpu_dispatch__ as d, "
            "__cpu_baseline__ as b; print(sorted(t for t in d if f.get(t) and t not in b))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **machine.competitor_environment("sse")},
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_avx512_is_refused_in_one_line_on_a_cpu_without_it(capsys):
    if "avx512f" in machine.host_features():
        pytest.skip("this CPU runs AVX-512 code")
    import report

    with pytest.raises(SystemExit) as exit_info:
        report.main(["--isa", "avx512", "--doc", "unused.md"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lacks avx512f" in err and "SIGILL" in err
