"""The documentation runs: every ``python`` code block of the tested pages, and the site builds.

How a page is tested
--------------------
Each tested page's fenced code blocks are extracted from its Markdown and run
in order in one namespace (a page reads top to bottom like a script; a later
block may use what an earlier one defined). A failing block is reported with
the page and the Markdown line it starts on, so the traceback points into the
page itself.

Fences (see "Documentation is tested" in docs/kernel-authoring.md):

- ```` ```python ```` runs in the CPU docs test, here.
- ```` ```{.python .gpu} ```` runs only in the CUDA process: a subprocess with
  ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported), which runs the
  whole page, CPU and GPU blocks in order. On a machine with a GPU, set
  ``JITGRAD_DOCS_REAL_GPU=1`` to run that process on the device instead.
- ```` ```{.python .gpu .no-sim} ```` is GPU code too heavy for the simulator
  (which runs every GPU thread as a Python thread: one CNN training step takes
  minutes). It runs only on a real GPU; under the simulator it is compiled, so
  a syntax error still fails, and the API it uses must be exercised by a
  cheap ``.gpu`` block elsewhere (Concepts' "Devices" section does this for
  the tutorial's GPU loop).
- Any other language (``bash``, ``text``) is shown, never run.

The tiny-data hook
------------------
The pages load the real MNIST with `jitgrad.data.mnist.load`. The test
replaces that function (and only it) with `tiny_mnist`, which returns a few
hundred synthetic 28x28 digits of the same dtypes and shapes: each class is a
bright bar at its own place over noise, so a model that trains correctly
reaches high accuracy in a few epochs, and the test can assert that it did.
The pages need not know: nothing in them is written for the test. The CUDA
process gets far fewer samples, since every simulated GPU thread is a Python
thread.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: Pages whose code is run, in the order a reader meets them.
TESTED_PAGES = ("getting-started.md", "tutorial-mnist.md", "kernel-authoring.md", "concepts.md", "tutorial-residual.md")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # 1-based line of the first code line in the Markdown file
    language: str
    classes: frozenset[str]
    code: str

    @property
    def runs_on_cpu(self) -> bool:
        return self.language == "python" and "gpu" not in self.classes

    def runs_on_gpu(self, simulator: bool) -> bool:
        return self.language == "python" and not (simulator and "no-sim" in self.classes)


def _parse_info(info: str) -> tuple[str, frozenset[str]]:
    """Language and classes of a fence's info string: ``python`` or ``{.python .gpu}``."""
    info = info.strip()
    if info.startswith("{") and info.endswith("}"):
        classes = [tok[1:] for tok in info[1:-1].split() if tok.startswith(".")]
        return (classes[0] if classes else ""), frozenset(classes[1:])
    parts = info.split(maxsplit=1)
    return (parts[0] if parts else ""), frozenset()


def extract_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, in order (indented fences are dedented)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks = m["indent"], m["ticks"]
        language, classes = _parse_info(m["info"])
        start = i + 1
        j = start
        while j < len(lines) and not (lines[j].strip().startswith(ticks) and lines[j].strip().strip(ticks[0]) == ""):
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{i + 1}: code fence never closed")
        body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[start:j]]
        blocks.append(Block(path.name, start + 1, language, classes, textwrap.dedent("\n".join(body))))
        i = j + 1
    return blocks


# ----------------------------------------------------------------------------- tiny data

def tiny_mnist(n_train: int, n_test: int):
    """A stand-in for `jitgrad.data.mnist.load` with the same signature and return types.

    Class ``k`` is a bright 4-pixel-thick bar, horizontal for even ``k`` and
    vertical for odd, at a place of its own, over uint8 noise; labels are
    balanced. Learnable in a few epochs by a dense net or a CNN.
    """

    def load(split: str = "train", root=None, download: bool = True, *, progress: bool = True):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        n = n_train if split == "train" else n_test
        rng = np.random.default_rng(0 if split == "train" else 1)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            offset = 2 + 5 * (int(k) // 2) + int(rng.integers(0, 2))
            if k % 2 == 0:
                images[i, offset:offset + 4, 3:25] = rng.integers(180, 256, size=(4, 22))
            else:
                images[i, 3:25, offset:offset + 4] = rng.integers(180, 256, size=(22, 4))
        return images, labels

    return load


#: Modules (and ``module:Class``) a page may attach functions to (the kernel-authoring guide
#: does, as the package's ``__all__`` and class bodies would); whatever it adds is removed afterwards.
_EXTENSIBLE_MODULES = ("jitgrad.kernels.reference", "jitgrad.kernels.cpu", "jitgrad.kernels.cuda",
                       "jitgrad.autograd.tensor:Tensor")


def run_page(page: str, *, gpu: bool, n_train: int, n_test: int, simulator: bool = True) -> dict:
    """Run a page's blocks in order in one namespace with the tiny-data hook; return the namespace.

    The namespace is a real module in ``sys.modules`` while the page runs:
    Numba's ``cache=True`` finds a function's globals by importing its module,
    so a kernel defined on the page loads from the on-disk cache like any other.
    Blocks run in a temporary directory, so files a page writes go nowhere.
    """
    import importlib
    import tempfile
    import types

    import jitgrad.data.mnist

    every = extract_blocks(DOCS / page)
    blocks = [b for b in every if (b.runs_on_gpu(simulator) if gpu else b.runs_on_cpu)]
    assert blocks, f"{page} has no python code blocks to test"
    for b in every:
        if b.language == "python" and b not in blocks:
            compile("\n" * (b.line - 1) + b.code, str(DOCS / page), "exec")  # at least it parses
    extensible = [getattr(importlib.import_module(m.split(":")[0]), m.split(":")[1]) if ":" in m
                  else importlib.import_module(m) for m in _EXTENSIBLE_MODULES]
    before = [set(vars(m)) for m in extensible]
    real_load = jitgrad.data.mnist.load
    jitgrad.data.mnist.load = tiny_mnist(n_train, n_test)
    module = types.ModuleType(f"jitgrad_docs_{Path(page).stem.replace('-', '_')}")
    module.__file__ = str(DOCS / page)
    sys.modules[module.__name__] = module
    cwd = os.getcwd()
    try:
        with tempfile.TemporaryDirectory(prefix="jitgrad-docs-") as scratch:
            os.chdir(scratch)
            for block in blocks:
                # Pad with newlines so tracebacks give the line number in the Markdown file.
                source = "\n" * (block.line - 1) + block.code
                try:
                    exec(compile(source, str(DOCS / page), "exec"), module.__dict__)
                except Exception as exc:
                    raise AssertionError(
                        f"{page}: the code block at line {block.line} failed: {type(exc).__name__}: {exc}"
                    ) from exc
    finally:
        os.chdir(cwd)
        jitgrad.data.mnist.load = real_load
        sys.modules.pop(module.__name__, None)
        for m, names in zip(extensible, before):
            for name in set(vars(m)) - names:
                delattr(m, name)
    return module.__dict__


# ----------------------------------------------------------------------------- the tests

def test_extract_blocks_reads_fences_and_classes(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n\n```{.python .gpu title=\"On the GPU\"}\ny = 2\n```\n"
        "!!! note\n    ```python\n    z = 3\n    ```\n```bash\nmake test\n```\n"
        "```{.python .gpu .no-sim}\nbig = 4\n```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(page)
    assert [(b.line, b.language, sorted(b.classes), b.code) for b in blocks] == [
        (3, "python", [], "x = 1"),
        (7, "python", ["gpu"], "y = 2"),
        (11, "python", [], "z = 3"),
        (14, "bash", [], "make test"),
        (17, "python", ["gpu", "no-sim"], "big = 4"),
    ]
    assert [b.runs_on_cpu for b in blocks] == [True, False, True, False, False]
    assert [b.runs_on_gpu(simulator=True) for b in blocks] == [True, True, True, False, False]
    assert [b.runs_on_gpu(simulator=False) for b in blocks] == [True, True, True, False, True]


def test_tiny_mnist_matches_the_real_loaders_contract():
    load = tiny_mnist(30, 20)
    x, y = load("train")
    xt, yt = load(split="test", download=False)
    assert x.shape == (30, 28, 28) and x.dtype == np.uint8
    assert y.shape == (30,) and y.dtype == np.uint8 and set(y.tolist()) == set(range(10))
    assert xt.shape == (20, 28, 28) and yt.shape == (20,)
    with pytest.raises(ValueError, match="split"):
        load("validation")


def test_a_failing_block_names_its_page_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    (tmp_path / "bad.md").write_text("```python\nx = 1\n```\n\n```python\n\nraise RuntimeError('boom')\n```\n")
    with pytest.raises(AssertionError, match=r"bad.md: the code block at line 6 failed: RuntimeError: boom"):
        run_page("bad.md", gpu=False, n_train=10, n_test=10)


@pytest.mark.parametrize("page", TESTED_PAGES)
def test_page_code_runs(page):
    namespace = run_page(page, gpu=False, n_train=384, n_test=100)
    for name, check in PAGE_CHECKS.get(page, {}).items():
        assert name in namespace, f"{page} no longer defines {name!r}, which the docs test checks"
        check(namespace[name])


def _at_least(threshold):
    def check(value):
        assert float(value) >= threshold, f"expected >= {threshold}, got {value}"
    return check


#: What a page's code must have achieved on the tiny data, beyond not raising.
PAGE_CHECKS: dict[str, dict] = {
    "tutorial-mnist.md": {"test_accuracy": _at_least(0.9)},
}


def test_gpu_blocks_run_in_the_cuda_process():
    """Every page with ``.gpu`` blocks runs whole under the CUDA simulator (or a real GPU)."""
    env = dict(os.environ)
    simulator = env.get("JITGRAD_DOCS_REAL_GPU") != "1"
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    pages = [p for p in TESTED_PAGES
             if any("gpu" in b.classes and b.runs_on_gpu(simulator) for b in extract_blocks(DOCS / p))]
    assert pages, "no page has a .gpu block: the GPU path of the docs would go untested"
    env["JITGRAD_CUDA_THREADS_PER_BLOCK"] = env.get("JITGRAD_CUDA_THREADS_PER_BLOCK", "32")
    proc = subprocess.run(
        # -m from the root, not the file path: the file's folder on sys.path would let
        # tests/cuda shadow the `cuda` package of NVIDIA's Python bindings.
        [sys.executable, "-m", "tests.test_docs", "--gpu", *pages],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"GPU docs run failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    ran = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(ran) == sorted(pages)


def test_mkdocs_build_strict(tmp_path):
    """The site builds with ``--strict``: a broken link, nav entry or API reference fails."""
    import importlib.util

    missing = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(m.split(".")[0]) is None]
    assert not missing, f"the docs extra is not installed ({missing}): pip install -e '.[docs]' (make test does)"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-6000:]}"
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "kernels-cuda" / "index.html").is_file()


if __name__ == "__main__":  # the CUDA process of test_gpu_blocks_run_in_the_cuda_process
    args = sys.argv[1:]
    assert args and args[0] == "--gpu", "usage: python -m tests.test_docs --gpu PAGE..."
    from numba import config as numba_config

    for page in args[1:]:
        # 16 training images: the tutorial holds out len // 12 for validation, at least 1.
        run_page(page, gpu=True, n_train=16, n_test=8, simulator=bool(numba_config.ENABLE_CUDASIM))
    print(json.dumps(args[1:]))
