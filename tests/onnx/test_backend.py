"""onnx's own conformance runner (``onnx.backend.test.BackendTest``) over jitgrad's ONNX backend.

The selection (issue 15's operators, their PyTorch-converted tests and the
nine model-zoo graphs) and each exclusion with its reason are in
tests/onnx/backend_selection.py. ``bench/onnx_backend_counts.py`` runs the same
selection on jitgrad and on onnxruntime and prints both pass counts.
"""

from __future__ import annotations

import os
import tempfile

import pytest

pytest.importorskip("onnx")

import onnx.backend.test  # noqa: E402

import jitgrad.onnx.backend as jitgrad_backend  # noqa: E402
from tests.onnx.backend_selection import EXCLUDED, include_patterns  # noqa: E402

# The runner writes the model-zoo graphs' dummy inputs under $ONNX_HOME: keep them out of the home directory.
os.environ.setdefault("ONNX_HOME", os.path.join(tempfile.gettempdir(), "jitgrad-onnx-home"))

_runner = onnx.backend.test.BackendTest(jitgrad_backend, __name__)
for _pattern in include_patterns():
    _runner.include(_pattern)
for _pattern in EXCLUDED:
    _runner.exclude(_pattern)

_cases = _runner.test_cases
# The model-zoo graphs run full-size ImageNet networks (the nine take minutes on a loaded 2-core machine): slow tests.
_cases["OnnxBackendRealModelTest"].pytestmark = [pytest.mark.slow]
globals().update(_cases)
