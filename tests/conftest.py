"""Shared pytest set-up: Numba's cache stays inside the checkout."""

import os
from pathlib import Path

# Set before any test module imports numba.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".numba_cache"))
