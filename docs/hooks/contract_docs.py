"""Griffe extension: the API pages show each CPU/CUDA kernel with its reference's docstring.

A kernel's docstring is written once, on its NumPy reference; the CPU and
CUDA packages copy it onto their wrappers when imported
(``jitgrad/kernels/_contract.py``), so the wrappers' source has no docstring
and mkdocstrings, which reads source, would show (or, without a docstring,
hide) them. This extension gives every public kernel of ``jitgrad.kernels.cpu``,
``jitgrad.kernels.cuda`` and ``jitgrad.kernels.reference`` the docstring the imported
function has (some references complete theirs at import, e.g. the activations'
shared Parameters/Returns sections).
"""

from __future__ import annotations

import importlib
from typing import Any

from griffe import Docstring, Extension, Object

from jitgrad.kernels._constants import KERNELS


class ContractDocstrings(Extension):
    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        parts = obj.path.split(".")
        if (len(parts) != 5 or parts[:2] != ["jitgrad", "kernels"] or parts[2] not in ("cpu", "cuda", "reference")
                or parts[4] not in KERNELS.get(parts[3], ())):
            return
        runtime = getattr(importlib.import_module(".".join(parts[:4])), parts[4])
        obj.docstring = Docstring(runtime.__doc__, parent=obj)
