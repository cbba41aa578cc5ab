"""Shared pytest set-up.

Numba's cache is the one every entry point uses (``jitgrad.config.cache_dir``:
``JITGRAD_CACHE_DIR``, else ``NUMBA_CACHE_DIR``, else ``~/.cache/jitgrad/numba``),
so tests reuse the kernels ``python -m jitgrad.compile`` or a training run compiled.
"""
