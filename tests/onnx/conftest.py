"""The ONNX conformance runner generates a test for every operator in the onnx wheel; those outside this
project's selection (backend_selection.py) are deselected here rather than reported as thousands of skips.
Exclusions inside the selection stay visible as skips, each with its reason."""

from __future__ import annotations


def pytest_collection_modifyitems(config, items):  # noqa: D103 - pytest hook
    def outside_selection(item) -> bool:
        why = str(getattr(getattr(item, "obj", None), "__unittest_skip_why__", ""))
        # Not selected, or a function-expanded twin of another op's test (the runner's own decomposition).
        return why.startswith("no matched include pattern") or "_expanded" in why

    outside = [item for item in items if outside_selection(item)]
    if outside:
        config.hook.pytest_deselected(items=outside)
        items[:] = [item for item in items if item not in set(outside)]
