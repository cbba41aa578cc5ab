"""The hypothesis side of the adversarial sweep: draw cases, run them in one subprocess per batch.

See ``tests/sweep_runner.py`` for what a case is and what is asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.sweep_runner import KERNELS, KINDS

ROOT = Path(__file__).resolve().parent.parent


def case_strategy(kernels: list[str] = KERNELS, kinds: tuple[str, ...] = KINDS) -> st.SearchStrategy:
    small = st.integers(0, 3)
    sizes = st.fixed_dictionaries({
        "n": small, "c": small, "c2": small, "h": st.integers(0, 6), "w": st.integers(0, 6),
        "k": st.integers(1, 3), "stride": st.integers(1, 2), "padding": st.integers(0, 1),
        "dilation": st.integers(1, 2), "flag": st.booleans(), "flag2": st.booleans(), "use_out": st.booleans(),
    })
    return st.fixed_dictionaries({
        "kernel": st.sampled_from(kernels), "dtype": st.sampled_from(["float32", "float64"]),
        "kind": st.sampled_from(kinds), "sizes": sizes, "seed": st.integers(0, 2**31 - 1),
        "readonly_out": st.booleans(),
    })


def run_batch(backend: str, cases: list[dict], env: dict[str, str] | None = None, timeout: float = 300) -> dict:
    """Run ``cases`` in a fresh interpreter; assert it exited normally (no signal) and return its summary."""
    proc = subprocess.run([sys.executable, "-m", "tests.sweep_runner", backend], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode < 0:
        raise AssertionError(f"the {backend} sweep died of signal {signal.Signals(-proc.returncode).name} "
                             f"on one of {len(cases)} cases:\n{json.dumps(cases)[:4000]}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def draw_cases(strategy: st.SearchStrategy, count: int) -> list[dict]:
    """``count`` cases drawn by hypothesis (its generate phase: simplest first, then varied).

    Drawing first and running all cases in one subprocess afterwards keeps the cost at one
    interpreter start per batch instead of one per example.
    """
    cases: list[dict] = []

    # Fixed cases by default, so the suite is reproducible; JITGRAD_SWEEP_RANDOM=1 draws new ones.
    @settings(max_examples=count, deadline=None, phases=(Phase.generate,), database=None,
              suppress_health_check=list(HealthCheck), derandomize=not os.environ.get("JITGRAD_SWEEP_RANDOM"))
    @given(strategy)
    def collect(case: dict) -> None:
        cases.append(case)

    collect()
    return cases


def check_batch(backend: str, cases: list[dict]) -> None:
    """Run ``cases`` in one subprocess and fail with every failing case spelled out."""
    summary = run_batch(backend, cases)
    assert summary["ran"] == len(cases)
    assert not summary["failures"], "\n".join(f"{f['case']} -> {f['problem']}" for f in summary["failures"])
