"""Pass counts of onnx's BackendTest on jitgrad and on onnxruntime, over one selection.

    ONNX_HOME=/tmp/onnx-home python bench/onnx_backend_counts.py [--zoo]

The selection is tests/onnx/backend_selection.py's include patterns, WITHOUT
its exclusions (so both backends face the same tests); --zoo adds the nine
model-zoo graphs (slow).
"""

from __future__ import annotations

import re
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx.backend.test  # noqa: E402
import onnxruntime.backend as ort_backend  # noqa: E402

import jitgrad.onnx.backend as jitgrad_backend  # noqa: E402
from tests.onnx.backend_selection import EXCLUDED, include_patterns  # noqa: E402


def count(backend, zoo: bool) -> tuple[int, int, list[str]]:
    runner = onnx.backend.test.BackendTest(backend, "counts")
    for p in include_patterns():
        runner.include(p)
    suite = unittest.TestSuite()
    for name, case in runner.test_cases.items():
        if "Real" in name and not zoo:
            continue
        for test in unittest.defaultTestLoader.loadTestsFromTestCase(case):
            if test._testMethodName.endswith("_cpu"):
                suite.addTest(test)
    result = unittest.TestResult()
    suite.run(result)
    # "Not compatible with backend" (an operator without converter) counts as a failure, not a skip.
    incompatible = [t for t, why in result.skipped if "compatible" in why]
    skipped = {t.id() for t, why in result.skipped if "compatible" not in why}
    failed = [t.id().rsplit(".", 1)[-1] for t, _ in result.failures + result.errors]
    failed += [t.id().rsplit(".", 1)[-1] for t in incompatible]
    ran = result.testsRun - len(skipped)
    return ran - len(failed), ran, failed


if __name__ == "__main__":
    zoo = "--zoo" in sys.argv
    for label, backend in [("jitgrad", jitgrad_backend), ("onnxruntime", ort_backend)]:
        passed, ran, failed = count(backend, zoo)
        unexplained = [f for f in failed if not any(re.search(p, f) for p in EXCLUDED)]
        print(f"{label}: {passed} / {ran} passed; failures not in the exclusion list: {unexplained}")
