"""The ONNX conformance runner generates a test for every operator in the onnx wheel; those outside this
project's selection (backend_selection.py) are deselected here rather than reported as thousands of skips.
Exclusions inside the selection stay visible as skips, each with its reason.

Outside the selection is decided by the test's *name* (no include pattern matches, or a function-expanded
twin), not by the runner's skip reason: the runner keeps its exclude patterns in a set, whose order follows
PYTHONHASHSEED, and a name two patterns match (``test_clip_default_int8_min_expanded_cpu``: the int8
exclusion and the ``_expanded`` one) got either reason, so those three flipped between deselected and skipped
from run to run."""

from __future__ import annotations

import re

from tests.onnx.backend_selection import EXPANDED, include_patterns

_INCLUDE = [re.compile(p) for p in include_patterns()]
_EXPANDED = re.compile(EXPANDED)


def pytest_collection_modifyitems(config, items):  # noqa: D103 - pytest hook
    def outside_selection(item) -> bool:
        if not getattr(getattr(item, "obj", None), "__unittest_skip__", False):
            return False  # only the runner's skipped tests are candidates
        name = item.name
        # Not selected, or a function-expanded twin of another op's test (the runner's own decomposition).
        return _EXPANDED.search(name) is not None or not any(p.search(name) for p in _INCLUDE)

    outside = [item for item in items if outside_selection(item)]
    if outside:
        config.hook.pytest_deselected(items=outside)
        outside_ids = {id(item) for item in outside}
        items[:] = [item for item in items if id(item) not in outside_ids]
