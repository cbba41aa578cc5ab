"""docs/onnx.md's operator table is the one the converter tables generate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from jitgrad import onnx as jonnx  # noqa: E402

PAGE = Path(__file__).resolve().parents[2] / "docs" / "onnx.md"


def test_docs_operator_table_equals_the_code():
    text = PAGE.read_text(encoding="utf-8")
    m = re.search(r"<!-- operator-table:start -->\n(.*)<!-- operator-table:end -->", text, flags=re.S)
    assert m, "docs/onnx.md lost its operator-table markers"
    assert m.group(1) == jonnx.operator_table(), (
        "docs/onnx.md's operator table is stale: regenerate it from jitgrad.onnx.operator_table()")


def test_table_lists_every_converter_and_exporter():
    table = jonnx.operator_table()
    for op in jonnx.CONVERTERS:
        assert f"| {op} | yes |" in table
    for op, why in jonnx.WAITING.items():
        assert f"| {op} | waiting: {why} |" in table
    for name in jonnx.EXPORTERS:
        assert f"| {name} | " in table
    assert set(jonnx.WAITING).isdisjoint(jonnx.CONVERTERS)
