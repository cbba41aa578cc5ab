"""jitgrad: a deep-learning framework whose every kernel is hand-written with Numba."""

from jitgrad.config import get_num_threads, set_num_threads

__version__ = "0.1.0"
