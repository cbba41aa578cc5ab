"""``bench/report.py --doc docs/performance.md``: the numbers of the issue-13 targets from one run,
written as the page's block for the SIMD path that ran (``bench/report_markdown.py`` formats them).

Sections, in this order, every one from the same run, PyTorch on jitgrad's thread count:

- ``gemm``: ``bench/matmul_side_by_side.py`` (its shapes, interleaved timings and paired ratios), run as a
  child process with ``THREADS`` set to the report's thread count; its lines are parsed;
- ``conv``: the ``conv`` family of the kernel table (NumPy reference, jitgrad, PyTorch);
- ``activations``: every activation, softmax and softmax-CE kernel, forward and backward
  (``bench/activations_vs_torch.py``'s cases, cross-entropy at 4096x1000 included);
- ``end_to_end``: LeNet-5 and the Keras convnet, training step and inference, against PyTorch;
- ``cold_start``: ``bench/cold_start.py``'s measurement (empty cache, tiered, then warm). It runs
  last: the background compile a cold step starts would load the machine under other sections.

``--isa avx2`` / ``--isa avx512`` / ``--isa sse`` run the whole report again in a child process
compiled for that path (``machine.isa_environment``: a forced LLVM CPU and a cache folder of its
own; for ``avx2`` and ``sse``, NumPy, OpenBLAS and PyTorch held to the same path too, as on such
a machine). Issue 13 sets its targets for ``avx2`` and ``avx512``; an ``sse`` block marks the rows
that would miss them.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import machine
import report_markdown

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SECTIONS = tuple(report_markdown.SECTION_TITLES)
#: Shapes of ``matmul_side_by_side.py`` (substrings) that ``--quick`` runs.
QUICK_GEMM = ("sq256", "cnn-lenet-fc1")
COLD_START_BATCH = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The doc-mode options of ``bench/report.py``."""
    parser.add_argument("--doc", metavar="PAGE", help="run the issue-13 sections and rewrite this path's "
                        "<!-- report:PATH begin/end --> block of PAGE (docs/performance.md)")
    parser.add_argument("--markdown", metavar="FILE", help="run the issue-13 sections and write the block to FILE")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"doc mode: comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--gemm-shapes", default="", metavar="SUBSTRINGS",
                        help="doc mode: matmul_side_by_side.py shapes whose name contains one of these "
                             "(comma-separated; default all, with --quick " + ",".join(QUICK_GEMM) + ")")
    parser.add_argument("--isa", default="native", choices=("native", *machine.FORCED_CPUS),
                        help="compile for this SIMD path (a forced LLVM CPU, own cache) and run there; "
                             "avx512 needs an AVX-512 CPU")


def check_args(opts: argparse.Namespace) -> None:
    sections = [s for s in opts.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"bench/report.py: --sections got {','.join(unknown)}; choose from {','.join(SECTIONS)}")
    opts.sections = [s for s in SECTIONS if s in sections]


# ----------------------------------------------------------------------------- another SIMD path

def run_forced_isa(opts: argparse.Namespace, argv: list[str]) -> int:
    """Run ``bench/report.py argv`` again in a child compiled for ``opts.isa``; its exit status.

    Refuses (one line on stderr, status 2) a path the host CPU cannot execute, before any code
    for it is compiled or run.
    """
    why = machine.cannot_run(opts.isa)
    if why:
        print(f"bench/report.py: --isa {opts.isa}: {why}", file=sys.stderr)
        return 2
    import jitgrad

    env = {**os.environ, **machine.isa_environment(opts.isa, jitgrad.config.cache_dir())}
    print(f"--isa {opts.isa}: NUMBA_CPU_NAME={env['NUMBA_CPU_NAME']} NUMBA_CPU_FEATURES= , "
          f"cache {env['JITGRAD_CACHE_DIR']} (kernels compile on first use there)", file=sys.stderr, flush=True)
    return subprocess.run([sys.executable, str(BENCH_DIR / "report.py"), *argv], env=env).returncode


# ----------------------------------------------------------------------------- sections

_GEMM_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<m>\d+)x\s*(?P<k>\d+)x\s*(?P<n>\d+)\s+(?P<op>[NT]{2})\s+"
                        r"jit\s+(?P<jit>[\d.]+)us.*?numpy\s+(?P<np>[\d.]+)us.*?ratio\s+(?P<ratio>[\d.]+)")


def parse_gemm(stdout: str) -> list[dict[str, Any]]:
    """The shape lines of ``matmul_side_by_side.py``'s output as rows."""
    rows = []
    for line in stdout.splitlines():
        m = _GEMM_LINE.match(line)
        if m:
            rows.append({"id": f"gemm.{m['name']}", "name": m["name"], "dims": f"{m['m']}×{m['k']}×{m['n']}",
                         "op": m["op"], "jit_s": float(m["jit"]) * 1e-6, "numpy_s": float(m["np"]) * 1e-6,
                         "ratio": float(m["ratio"])})
    return rows


def gemm_rows(opts: argparse.Namespace, threads: int) -> list[dict[str, Any]]:
    shapes = [s for s in opts.gemm_shapes.split(",") if s] or (list(QUICK_GEMM) if opts.quick else [])
    env = {**os.environ, "THREADS": str(threads), "REPS": "1" if opts.quick else "9"}
    if env.pop("JITGRAD_REPORT_SET_BLAS_TIMEOUT", None):  # report.py's setting, not the user's (see there)
        env.pop("OPENBLAS_THREAD_TIMEOUT", None)
    done = subprocess.run([sys.executable, str(BENCH_DIR / "matmul_side_by_side.py"), *shapes], env=env,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError("matmul_side_by_side.py failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
    from jitgrad.kernels.cpu import _isa

    path = re.search(r"^path: (\S+)", done.stdout, re.MULTILINE)
    if path is None or path[1] != _isa.ISA.name:  # the child must have compiled for this run's path
        raise RuntimeError(f"matmul_side_by_side.py ran the {path[1] if path else '?'} path, not {_isa.ISA.name}")
    rows = [r for r in parse_gemm(done.stdout) if opts.only.search(r["id"])]
    for row in rows:
        _progress_line(row["id"], f"{row['ratio']:.2f}x NumPy", opts)
    return rows


class _Both:
    """A regex-like filter: both patterns must match (``--only`` within one section)."""

    def __init__(self, first: Any, second: str) -> None:
        self.first, self.second = first, re.compile(second)
        self.pattern = first.pattern

    def search(self, text: str) -> Any:
        return self.first.search(text) and self.second.search(text)


def cold_start_result(opts: argparse.Namespace) -> dict[str, Any]:
    """``bench/cold_start.py``'s cold and warm runs (``--quick``: the warm run on this cache only)."""
    import cold_start

    def keep(result: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in result.items() if k != "events"}

    out: dict[str, Any] = {"batch": COLD_START_BATCH}
    if opts.quick:
        import jitgrad

        cache = str(jitgrad.config.cache_dir())
        cold_start.first_step(cache, COLD_START_BATCH, False)
        out["warm"] = keep(cold_start.first_step(cache, COLD_START_BATCH, False))
    else:
        with tempfile.TemporaryDirectory(prefix="jitgrad-report-cold-") as cache:
            out["cold"] = keep(cold_start.first_step(cache, COLD_START_BATCH, False))
            _progress_line("cold_start.cold", f"{out['cold']['wall_s']:.1f} s", opts)
            out["background"] = cold_start.wait_background(cache)
            cold_start.first_step(cache, COLD_START_BATCH, False)  # whatever the cold run left uncached
            out["warm"] = keep(cold_start.first_step(cache, COLD_START_BATCH, False))
    _progress_line("cold_start.warm", f"{out['warm']['wall_s']:.2f} s", opts)
    return out


def collect(opts: argparse.Namespace, torch: Any | None, threads: int,
            hooks: dict[str, Callable[..., Any]]) -> dict[str, Any]:
    """The numbers of every selected section. ``hooks``: report.py's ``kernel_rows``,
    ``end_to_end_rows``, ``timed_row`` and ``progress``."""
    import activations_vs_torch

    results: dict[str, Any] = {"section_s": {}}
    for section in opts.sections:
        start = time.perf_counter()
        try:
            if section == "gemm":
                results["gemm"] = gemm_rows(opts, threads)
            elif section == "conv":
                sub = copy.copy(opts)
                sub.only = _Both(opts.only, r"^conv\.")
                results["conv"] = hooks["kernel_rows"](sub, torch)
            elif section == "activations":
                results["activations"] = activations_vs_torch.kernel_rows(opts, torch, hooks["timed_row"],
                                                                           hooks["progress"])
            elif section == "end_to_end":
                results["end_to_end"] = hooks["end_to_end_rows"](opts, torch)
            elif section == "cold_start":
                results["cold_start"] = cold_start_result(opts)
        except Exception as exc:  # one broken section must not lose the others' numbers
            print(f"  section {section}: {type(exc).__name__}: {exc}", file=sys.stderr)
            results.setdefault("errors", {})[section] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        results["section_s"][section] = time.perf_counter() - start
    return results


def _progress_line(row_id: str, shown: str, opts: argparse.Namespace) -> None:
    if opts.progress:
        print(f"  {row_id}: {shown}", file=sys.stderr, flush=True)


def git_commit() -> str:
    """Short commit of the checkout, ``+ uncommitted changes`` when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


# ----------------------------------------------------------------------------- run

def run(opts: argparse.Namespace, argv: list[str], torch: Any | None, threads: int,
        hooks: dict[str, Callable[..., Any]]) -> dict[str, Any]:
    """Collect the sections, then write ``--markdown`` / rewrite the ``--doc`` block; returns the run."""
    from jitgrad.kernels.cpu import _isa

    start, load_start = time.perf_counter(), os.getloadavg()[0]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = collect(opts, torch, threads, hooks)
    forced = os.environ.get("NUMBA_CPU_NAME")
    run_info = {
        "path": _isa.ISA.name,
        "machine": machine.machine_info(threads, torch),
        "forced_cpu": f"NUMBA_CPU_NAME={forced} NUMBA_CPU_FEATURES={os.environ.get('NUMBA_CPU_FEATURES', '')}"
        if forced else None,
        "date": date,
        "commit": git_commit(),
        "wall_s": time.perf_counter() - start,
        "loadavg": (load_start, os.getloadavg()[0]),
        "command": shlex.join(["python", "bench/report.py", *argv]),
        "quick": opts.quick,
        "results": results,
    }
    block = report_markdown.render_block(run_info)
    if opts.markdown:
        Path(opts.markdown).write_text(block + "\n")
    if opts.doc:
        page = Path(opts.doc)
        page.write_text(report_markdown.replace_block(page.read_text(), run_info["path"], block))
        print(f"rewrote the {run_info['path']} block of {page} ({run_info['wall_s']:.0f} s run)", file=sys.stderr)
    print(block)
    return run_info
