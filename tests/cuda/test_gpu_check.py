"""bench/gpu_check.py's dry run under the simulator: every step's plumbing, on one kernel and a tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_writes_every_table_as_it_goes(tmp_path):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    env.pop("JITGRAD_RECORD_LAUNCHES", None)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), str(tmp_path),
                           "--only", "errors,timings,e2e", "--kernels", "relu"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (tmp_path / "summary.md").read_text()
    for title in ("CUDA against the CPU kernels", "Kernel times on the GPU", "Training on the GPU"):
        assert f"## {title}" in summary
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    errors = [r for r in rows if r["table"].startswith("CUDA against")]
    assert [(r["kernel"], r["ok"]) for r in errors] == [("relu", True)]
    (e2e,) = [r for r in rows if r["table"].startswith("Training")]
    assert e2e["launches"] > 0 and e2e["host_syncs"] == 0 and e2e["jitgrad_img_s"] > 0
