"""MkDocs hook: LaTeX math in the pages becomes MathML when the site is built.

Browsers render MathML natively, so the site needs no math script from a CDN
and reads the same offline. ``\\( ... \\)`` is inline math, ``\\[ ... \\]`` and
``$$ ... $$`` are display math; fenced code blocks and inline code are left as
they are.
"""

from __future__ import annotations

import re

from latex2mathml.converter import convert

_FENCE = re.compile(r"(^```.*?^```[^\n]*$)", re.M | re.S)
_CODE = re.compile(r"(`[^`\n]+`)")
_DISPLAY = re.compile(r"\\\[(.+?)\\\]|\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"\\\((.+?)\\\)", re.S)


def _math(text: str) -> str:
    def display(m: re.Match) -> str:
        return "\n\n" + convert((m.group(1) or m.group(2)).strip(), display="block") + "\n\n"

    def inline(m: re.Match) -> str:
        return convert(m.group(1).strip())

    parts = _CODE.split(_DISPLAY.sub(display, text))
    return "".join(p if i % 2 else _INLINE.sub(inline, p) for i, p in enumerate(parts))


def to_mathml(markdown: str) -> str:
    """``markdown`` with every math span outside code converted to MathML."""
    pieces = _FENCE.split(markdown)
    return "".join(p if i % 2 else _math(p) for i, p in enumerate(pieces))


def on_page_markdown(markdown: str, **_: object) -> str:  # noqa: D103 - MkDocs hook
    return to_mathml(markdown)
