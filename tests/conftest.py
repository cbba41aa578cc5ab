"""Shared pytest set-up.

Numba's cache is the one every entry point uses (``jitgrad.config.cache_dir``:
``JITGRAD_CACHE_DIR``, else ``NUMBA_CACHE_DIR``, else ``~/.cache/jitgrad/numba``),
so tests reuse the kernels ``python -m jitgrad.compile`` or a training run compiled.
"""

import os

# Tiered compilation (kernels/cpu/_tier) would start a background compile on a cold cache: the suite
# runs the parallel kernels directly (tests/test_tiered_compile.py switches it on where it tests it).
os.environ.setdefault("JITGRAD_TIERED", "0")
