"""Device helpers: is a GPU (or the CUDA simulator) there, and moving arrays to and from it.

``NUMBA_ENABLE_CUDASIM=1`` in the environment *before numba is imported* runs
every ``@cuda.jit`` kernel in Numba's CUDA simulator (one Python thread per
CUDA thread: slow, but exact), which is how the CUDA kernels are tested on
machines without a GPU.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["is_available", "is_simulator", "require_cuda", "to_device", "to_host"]

_SIM_ENV_VAR = "NUMBA_ENABLE_CUDASIM"


def is_simulator() -> bool:
    """True when Numba runs CUDA kernels in its simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import config as numba_config

    return bool(numba_config.ENABLE_CUDASIM)


def is_available() -> bool:
    """True when CUDA kernels can run: a usable NVIDIA GPU, or the CUDA simulator."""
    from numba import cuda

    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install must read as "no GPU", not crash the caller
        return False


def require_cuda() -> None:
    """Raise ``RuntimeError`` unless CUDA kernels can run here.

    The message says what is missing and how to run the CUDA code anyway,
    under the simulator.
    """
    if is_available():
        return
    hint = ""
    if os.environ.get(_SIM_ENV_VAR) == "1" and not is_simulator():
        hint = (f" ({_SIM_ENV_VAR}=1 is set now, but numba was imported before it was: "
                "set it before starting Python)")
    raise RuntimeError(
        "CUDA is not available: no NVIDIA GPU with a working driver was found. "
        f"To run the CUDA kernels on the CPU in Numba's simulator, set {_SIM_ENV_VAR}=1 in the "
        f"environment before numba is imported, e.g. `{_SIM_ENV_VAR}=1 python ...`{hint}."
    )


def to_device(array: Any, dtype: Any = None) -> Any:
    """Copy a NumPy array (or anything ``np.asarray`` accepts) to a C-contiguous device array.

    Parameters
    ----------
    array : array_like
        Host data, of any shape.
    dtype : dtype, optional
        Cast to this dtype on the host first.

    Returns
    -------
    numba device array
        Same shape, C-contiguous.
    """
    from numba import cuda

    require_cuda()
    host = np.ascontiguousarray(np.asarray(array, dtype=dtype))
    return cuda.to_device(host)


def to_host(device_array: Any) -> np.ndarray:
    """Copy a device array back to a NumPy array of the same shape and dtype."""
    if isinstance(device_array, np.ndarray):
        return device_array
    if not hasattr(device_array, "copy_to_host"):
        raise TypeError(f"to_host: expected a numba device array, got {type(device_array).__name__}")
    return device_array.copy_to_host()


def check_numpy() -> None:
    """Refuse, in one line, a NumPy that this numba-cuda cannot compile kernels with.

    numba-cuda 0.30 looks up ``np.row_stack`` when its typing registry first loads (at the first
    kernel compile); NumPy 2.5 removed it, so every launch would fail with an ``AttributeError``
    deep inside Numba. jitgrad pins ``numpy<2.5``; this names the cause where the pin was bypassed.
    """
    import numpy as np

    if hasattr(np, "row_stack"):
        return
    try:
        import numba.cuda.np.arrayobj  # noqa: F401 - the module that fails
    except AttributeError as exc:
        import numba_cuda

        raise ImportError(
            f"numba-cuda {numba_cuda.__version__} cannot compile CUDA kernels with NumPy {np.__version__} "
            f"({exc}); install numpy<2.5 (jitgrad's pin) to use the GPU") from None
