"""Compute kernels: ``reference`` (NumPy), ``cpu`` (Numba @njit), ``cuda`` (Numba @cuda.jit).

``kernels`` imports nothing of jitgrad but ``config``. Import a backend
explicitly: ``from jitgrad.kernels import cpu``.
"""
