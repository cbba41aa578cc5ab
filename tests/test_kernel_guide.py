"""docs/kernel-authoring.md runs as a newcomer would run it: from a directory outside the repository.

``tests/test_docs.py`` runs the guide inside the test process, where the
repository root is on ``sys.path``; a block that imported ``tests.helpers``
passed there and failed for a reader (``No module named 'tests'``). Here the
guide's CPU blocks run as one script in a fresh interpreter whose working
directory is a temporary folder and whose only path to this checkout is the
``jitgrad`` package itself, so ``tests`` (and anything else at the repository
root) cannot be imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.test_docs import DOCS, extract_blocks

ROOT = Path(__file__).resolve().parent.parent
GUIDE = DOCS / "kernel-authoring.md"

_PRELUDE = '''
import importlib.util, pathlib, sys
assert importlib.util.find_spec("tests") is None, "tests is importable: the run would not be a newcomer's"
import jitgrad
assert pathlib.Path(jitgrad.__file__).resolve().is_relative_to(pathlib.Path({root!r}).resolve()), jitgrad.__file__
'''


def _imports_this_checkout(cwd: Path, env: dict[str, str]) -> bool:
    """Whether a plain interpreter started in ``cwd`` imports this checkout's jitgrad (an editable install)."""
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('jitgrad').origin)"],
                           cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    origin = probe.stdout.strip()
    return probe.returncode == 0 and Path(origin).resolve().is_relative_to(ROOT.resolve())


def test_guide_runs_outside_the_repository(tmp_path):
    blocks = [b for b in extract_blocks(GUIDE) if b.runs_on_cpu]
    assert len(blocks) >= 6, "the guide lost its code"
    # One script, each block padded to its Markdown line so a traceback points into the page.
    script = _PRELUDE.format(root=str(ROOT))
    line = script.count("\n") + 1
    for b in blocks:
        script += "\n" * (b.line - line) + b.code + "\n"
        line = b.line + b.code.count("\n") + 1
    # The script lives at a fixed path outside the repository, rewritten only when the guide changed:
    # Numba's cache (cache=True) is keyed on the file's path and time stamp, so a rerun loads the
    # guide's kernels instead of compiling them again.
    guide = Path(tempfile.gettempdir()) / "jitgrad-kernel-guide" / "guide.py"
    guide.parent.mkdir(exist_ok=True)
    if not guide.is_file() or guide.read_text(encoding="utf-8") != script:
        guide.write_text(script, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP", "NUMBA_ENABLE_CUDASIM")}
    if not _imports_this_checkout(tmp_path, env):
        # Not installed (editable) from this checkout: put only the package on the path, through a
        # folder holding a link to this checkout's jitgrad/ (kernels then compile afresh: slower).
        site = tmp_path / "site"
        site.mkdir()
        (site / "jitgrad").symlink_to(ROOT / "jitgrad", target_is_directory=True)
        env["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, str(guide)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (
        f"docs/kernel-authoring.md failed outside the repository (the script's line numbers are the page's):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
