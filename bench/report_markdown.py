"""The results section of ``docs/performance.md``: one Markdown block per SIMD path, the targets of
issue 13 marked, and the list of what falls short, from the numbers of one ``bench/report.py --doc``
run (``bench/report_doc.py`` collects them).

Pure formatting: nothing here imports jitgrad, NumPy or PyTorch, so it is tested on synthetic
numbers (``tests/test_report_doc.py``). A block sits between two markers::

    <!-- report:avx2 begin -->
    ...written by bench/report.py --doc...
    <!-- report:avx2 end -->

and :func:`replace_block` rewrites only the block of the path that ran, leaving the rest of the
page (the hand-written explanations, the other paths' blocks, the history) as it was.
"""

from __future__ import annotations

import re
from typing import Any

# ----------------------------------------------------------------------------- targets (issue 13)

#: Square matmul 256-2048: NumPy time / jitgrad time at least this.
GEMM_SQUARE_TARGET = 0.8
#: The CNN-shape products (forward and both backward products of each layer).
GEMM_CNN_TARGET = 1.0
#: Every activation, softmax and softmax-CE kernel, forward and backward.
ACTIVATION_NUMPY_TARGET = 2.0
ACTIVATION_TORCH_TARGET = 0.8
#: LeNet-5 and Keras convnet training step, images/s against PyTorch's.
TRAIN_TORCH_TARGET = 1.3
TRAIN_TARGET_MODELS = ("lenet5", "keras-convnet")
#: Import + first LeNet-5 training step, seconds of wall time.
COLD_START_TARGET_S = 15.0
WARM_START_TARGET_S = 1.0


def gemm_target(name: str) -> float | None:
    """The issue's target for one ``bench/matmul_side_by_side.py`` shape (``sq*`` or ``cnn-*``)."""
    if name.startswith("sq"):
        return GEMM_SQUARE_TARGET
    if name.startswith("cnn-"):
        return GEMM_CNN_TARGET
    return None


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num and den else None


def shortfalls(results: dict[str, Any]) -> list[str]:
    """One line per number of ``results`` that misses its issue-13 target, in the sections' order."""
    out: list[str] = []
    for row in results.get("gemm", []):
        target = gemm_target(row["name"])
        if target is not None and row["ratio"] < target:
            out.append(f"GEMM `{row['name']}` ({row['dims']} {row['op']}): {row['ratio']:.2f}x NumPy "
                       f"(target {target:g}x)")
    for row in results.get("activations", []):
        t = row["times"]
        for other, target in (("numpy", ACTIVATION_NUMPY_TARGET), ("torch", ACTIVATION_TORCH_TARGET)):
            r = _ratio(t.get(other), t.get("cpu"))
            if r is not None and r < target:
                who = "NumPy" if other == "numpy" else "PyTorch"
                out.append(f"{row['kernel']} {row['shape']}: {r:.2f}x {who} (target {target:g}x)")
    for row in results.get("end_to_end", []):
        if row["phase"] != "train" or row["model"] not in TRAIN_TARGET_MODELS:
            continue
        r = _ratio(row["times"].get("torch"), row["times"].get("cpu"))
        if r is not None and r < TRAIN_TORCH_TARGET:
            out.append(f"{row['model']} training: {r:.2f}x PyTorch (target {TRAIN_TORCH_TARGET:g}x)")
    cold = results.get("cold_start") or {}
    for key, target, what in (("cold", COLD_START_TARGET_S, "cold start"), ("warm", WARM_START_TARGET_S,
                                                                            "warm start")):
        run = cold.get(key)
        if run and run.get("wall_s") is not None and run["wall_s"] > target:
            out.append(f"{what} (import + first LeNet-5 step): {run['wall_s']:.1f} s wall "
                       f"(target {target:g} s)")
    return out


# ----------------------------------------------------------------------------- formatting

def fmt_time(seconds: float | None) -> str:
    """``1.23 ms``-style time, ``n/a`` for a missing one."""
    if not seconds:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def fmt_ratio(ratio: float | None, target: float | None = None) -> str:
    """``1.23``, with ``\\*`` when below ``target``; ``-`` when not measured."""
    if ratio is None:
        return "-"
    return f"{ratio:.2f}" + ("\\*" if target is not None and ratio < target else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def header_lines(run: dict[str, Any]) -> list[str]:
    """The machine and run table: what the numbers were measured with."""
    m = run["machine"]
    forced = run.get("forced_cpu")
    software = [f"Python {m.get('python')}", f"NumPy {m.get('numpy')}" + (f" ({m['blas']})" if m.get("blas") else ""),
                f"Numba {m.get('numba')}" + (f" (threading layer {m['numba_threading_layer']})"
                                             if m.get("numba_threading_layer") else ""),
                f"PyTorch {m['torch']}" if m.get("torch") else "PyTorch absent (no PyTorch columns)"]
    load = run.get("loadavg") or (None, None)
    rows = [
        ["CPU", f"{m.get('cpu')} ({m.get('cores')} cores)"],
        ["jitgrad SIMD path (as run)", f"`{m.get('isa_path')}`"],
        ["CPU compiled for", (f"forced: `{forced}`" if forced else "native (the host CPU)") + _limits(m)],
        ["threads", f"{m.get('threads')} for jitgrad, PyTorch and the BLAS; "
                    f"`OMP_WAIT_POLICY={m.get('omp_wait_policy')}`" + _blas_timeout(m) + _team(m)],
        ["memory", _malloc(m)],
        ["software", ", ".join(software) + f", jitgrad {m.get('jitgrad')}"],
        ["date, commit", f"{run.get('date')}, `{run.get('commit')}`"],
        ["run", f"{run.get('wall_s', 0):.0f} s{_per_section(run['results'].get('section_s'))}; load average "
                f"{_load(load[0])} at the start, {_load(load[1])} at the end"],
        ["command", f"`{run.get('command')}`"],
    ]
    if run.get("quick"):
        rows.append(["**subset**", "**`--quick`: tiny subset, 1 sample per row, no cold start: shows the "
                                   "format only, not a measurement to quote**"])
    return _table(["", ""], rows)


def _limits(m: dict[str, Any]) -> str:
    """The competitors' limits of a forced run (``machine.competitor_environment``), if any."""
    limits = m.get("competitor_limits")
    if not limits:
        return ""
    return ("; NumPy, OpenBLAS and PyTorch held to the same path: "
            + ", ".join(f"`{k}={v}`" for k, v in limits.items()))


def _malloc(m: dict[str, Any]) -> str:
    """glibc's malloc thresholds in the run's process (both frameworks share them)."""
    tuned = m.get("malloc_tuned")
    if tuned is None:
        return "not recorded"
    if tuned:
        return ("glibc malloc thresholds set by `import jitgrad` (mmap 32 MiB, trim 1 GiB: freed blocks reused, "
                "not page-faulted in again), for PyTorch in the same process too")
    return "glibc's malloc thresholds as they were (`JITGRAD_MALLOC_TUNING=0`, a `MALLOC_*_` setting, or not glibc)"


def _team(m: dict[str, Any]) -> str:
    """Where jitgrad's float32 products ran: its GEMM team (helpers spinning ~1 ms between products) or OpenMP."""
    team = m.get("gemm_team")
    if team is None:
        return ""
    if team:
        return "; jitgrad's float32 matmul on its GEMM team (helper threads spin ~1 ms between products)"
    return "; jitgrad's float32 matmul on Numba's OpenMP pool (`JITGRAD_GEMM_TEAM=0`, or not Linux x86-64)"


def _blas_timeout(m: dict[str, Any]) -> str:
    """The OpenBLAS spin setting of the run; set by ``bench/report.py``, it skips the GEMM table (set by the user, not)."""
    value = m.get("openblas_thread_timeout")
    if not value:
        return ""
    gemm = " (the GEMM table: OpenBLAS's default)" if m.get("openblas_thread_timeout_by_report") else ""
    return f", `OPENBLAS_THREAD_TIMEOUT={value}`{gemm}"


def _per_section(seconds: dict[str, float] | None) -> str:
    if not seconds:
        return ""
    return " (" + ", ".join(f"{SECTION_TITLES.get(k, k)} {v:.0f} s" for k, v in seconds.items()) + ")"


def _load(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def gemm_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [[f"`{r['name']}`", r["dims"], r["op"], fmt_time(r["jit_s"]), fmt_time(r["numpy_s"]),
              fmt_ratio(r["ratio"], gemm_target(r["name"])), f"{gemm_target(r['name']) or '-'}"] for r in rows]
    return _table(["product", "M×K×N", "op", "jitgrad", "NumPy", "vs NumPy", "target"], lines)


def kernel_lines(rows: list[dict[str, Any]], np_target: float | None = None,
                 torch_target: float | None = None) -> list[str]:
    has_torch = any(r["times"].get("torch") for r in rows)
    header = ["kernel", "shape", "jitgrad", "NumPy", "vs NumPy" + (f" (≥ {np_target:g})" if np_target else "")]
    if has_torch:
        header += ["PyTorch", "vs PyTorch" + (f" (≥ {torch_target:g})" if torch_target else "")]
    lines = []
    for r in rows:
        t = r["times"]
        line = [r["kernel"], r["shape"], fmt_time(t.get("cpu")), fmt_time(t.get("numpy")),
                fmt_ratio(_ratio(t.get("numpy"), t.get("cpu")), np_target)]
        if has_torch:
            line += [fmt_time(t.get("torch")), fmt_ratio(_ratio(t.get("torch"), t.get("cpu")), torch_target)]
        lines.append(line)
    return _table(header, lines)


def end_to_end_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rows:
        ips = r["images_per_s"]
        target = TRAIN_TORCH_TARGET if r["phase"] == "train" and r["model"] in TRAIN_TARGET_MODELS else None
        lines.append([r["model"], f"{r['phase']} (batch {r['batch']})",
                      f"{ips['cpu']:.0f}" if ips.get("cpu") else "n/a",
                      f"{ips['torch']:.0f}" if ips.get("torch") else "n/a",
                      fmt_ratio(_ratio(ips.get("cpu"), ips.get("torch")), target), f"{target:g}" if target else "-"])
    return _table(["model", "phase", "jitgrad images/s", "PyTorch images/s", "vs PyTorch", "target"], lines)


def cold_start_lines(cold: dict[str, Any]) -> list[str]:
    lines = []
    for key, target, what in (("cold", COLD_START_TARGET_S, "empty cache (cold)"),
                              ("warm", WARM_START_TARGET_S, "filled cache (warm)")):
        run = cold.get(key)
        if not run:
            lines.append([what, "not run", "-", "-", f"≤ {target:g} s"])
            continue
        wall = run["wall_s"]
        mark = "\\*" if wall > target else ""
        lines.append([what, f"{wall:.2f}{mark}", f"{run['cpu_s']:.2f}", f"{run['import_s']:.2f}", f"≤ {target:g} s"])
    out = _table(["Numba cache", "wall s", "CPU s", "import s", "target"], lines)
    if cold.get("background"):
        out += ["", f"Background compile of the parallel kernels after the cold step: {cold['background']}."]
    return out


_RATIO_NOTE = ("Ratios are the other library's time over jitgrad's (above 1: jitgrad faster), medians of "
               "samples taken with the backends interleaved in one process; `\\*` marks a number that misses "
               "its issue-13 target. float32 throughout.")
#: Issue 13 sets its targets for these paths; another path's block says that its marks only compare.
TARGET_PATHS = ("avx2", "avx512")


def render_block(run: dict[str, Any]) -> str:
    """The whole Markdown block of one run, markers included."""
    key = run["path"]
    res = run["results"]
    out = [begin_marker(key),
           "<!-- Written by bench/report.py --doc; edits between these markers are overwritten. -->", "",
           f"### Measured: {key} path", ""]
    out += header_lines(run) + ["", _RATIO_NOTE, ""]
    if key not in TARGET_PATHS:
        note = (f"Issue 13 sets no targets for the {key} path: its `\\*` marks the rows that would miss the avx2 "
                "and avx512 paths' targets.")
        out += [note, ""]
    if "gemm" in res:
        out += ["#### GEMM against NumPy/OpenBLAS", "",
                "`bench/matmul_side_by_side.py` (its shapes and timing; `sq*` square, "
                "`cnn-<model>-<layer>-{fwd,gin,gw}` a layer's forward, input-gradient and weight-gradient "
                "products: Linear layers at batch 128, convolutions as im2col products over 16 images). "
                "The times are each library's median; the ratio is the median of the NumPy / jitgrad pairs, "
                "each pair timed back to back.", ""]
        out += gemm_lines(res["gemm"]) + [""]
    if "conv" in res:
        out += ["#### conv2d", "", "The asv suite's shapes (`bench/benchmarks/common.py`, batch 128). No target "
                "of its own: its products are the GEMM table's `cnn-*` rows.", ""]
        out += kernel_lines(res["conv"]) + [""]
    if "activations" in res:
        out += ["#### Activations, softmax and softmax-cross-entropy, forward and backward", ""]
        out += kernel_lines(res["activations"], ACTIVATION_NUMPY_TARGET, ACTIVATION_TORCH_TARGET) + [""]
    if "end_to_end" in res:
        out += ["#### Training and inference (Adam, cross-entropy; the same layers in both frameworks)", ""]
        out += end_to_end_lines(res["end_to_end"]) + [""]
    if "cold_start" in res:
        out += ["#### Cold start: `import jitgrad` + the first LeNet-5 training step (batch 64)", "",
                "`bench/cold_start.py`'s measurement: a fresh interpreter on an empty cache (tiered "
                "compilation, as a user gets it), then on the cache it filled.", ""]
        out += cold_start_lines(res["cold_start"]) + [""]
    short = shortfalls(res)
    out += ["#### Falls short", ""]
    if short:
        out += [f"- {line}" for line in short]
    else:
        out.append("Nothing: every measured row meets its target.")
    for section, error in res.get("errors", {}).items():
        out.append(f"- {SECTION_TITLES.get(section, section)} did not run: {error}")
    missing = [s for s in SECTION_TITLES if s not in res and s not in res.get("errors", {})]
    if missing:
        out += ["", "Not run in this block: " + ", ".join(SECTION_TITLES[s] for s in missing) + "."]
    out += ["", end_marker(key)]
    return "\n".join(out)


#: Sections of a doc run, in the page's order.
SECTION_TITLES = {"gemm": "GEMM", "conv": "conv2d", "activations": "activations/softmax/CE",
                  "end_to_end": "training and inference", "cold_start": "cold start"}


# ----------------------------------------------------------------------------- markers

def begin_marker(key: str) -> str:
    return f"<!-- report:{key} begin -->"


def end_marker(key: str) -> str:
    return f"<!-- report:{key} end -->"


def replace_block(text: str, key: str, block: str) -> str:
    """``text`` with the ``key`` block (markers included) replaced by ``block``.

    Without a ``key`` block, ``block`` goes before the ``## History`` heading (or at the end). A
    begin marker without its end marker, or two blocks of one key, raise ``ValueError``.
    """
    begin, end = re.escape(begin_marker(key)), re.escape(end_marker(key))
    pattern = re.compile(begin + r".*?" + end, re.DOTALL)
    found = pattern.findall(text)
    if len(found) > 1 or text.count(begin_marker(key)) != text.count(end_marker(key)):
        raise ValueError(f"docs page: expected one {begin_marker(key)} ... {end_marker(key)} pair, "
                         f"found {text.count(begin_marker(key))} begin and {text.count(end_marker(key))} end markers")
    if found:
        return pattern.sub(lambda _: block, text, count=1)
    history = re.search(r"^## History", text, re.MULTILINE)
    if history:
        return text[:history.start()] + block + "\n\n" + text[history.start():]
    return text.rstrip("\n") + "\n\n" + block + "\n"
