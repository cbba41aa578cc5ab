"""CUDA kernels: hand-written Numba ``@cuda.jit`` kernels behind validating wrappers.

Same module names, function names and signatures as ``jitgrad.kernels.cpu``
(see docs/kernel-api.md); inputs and outputs are Numba device arrays. Importing
this package never touches a GPU (kernels compile on first launch), so it
imports everywhere; running a kernel needs a GPU or ``NUMBA_ENABLE_CUDASIM=1``.

``elementwise`` and ``reduction`` add the NumPy-like array operations the
autograd needs to keep a whole training step on the device.
"""

from .matmul import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .activations import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403

# The autograd's array namespace: imported as modules (``from jitgrad.kernels.cuda import
# elementwise, reduction``) so NumPy names such as ``sum``, ``max`` and ``abs`` never shadow
# anything at package level.
from . import elementwise, reduction  # noqa: E402,F401
from .conv_transpose import *  # noqa: F401,F403
from .pooling_adaptive import *  # noqa: F401,F403
from .lrn import *  # noqa: F401,F403
from .fused import *  # noqa: F401,F403

import sys as _sys  # noqa: E402

from jitgrad.kernels import _contract  # noqa: E402
from jitgrad.kernels._constants import KERNEL_MODULES, kernel_names  # noqa: E402

#: Every kernel's name; one list for all three backends (kernels/_constants.py).
__all__: list[str] = kernel_names()

# Docstrings are written once, on the reference kernels: every public kernel takes its twin's.
_contract.adopt_reference_docs(_sys.modules[f"{__name__}.{module}"] for module in KERNEL_MODULES)

# Device memory: a caching allocator (kernels/cuda/_pool.py) unless the context already exists,
# another Numba memory manager was chosen, or JITGRAD_CUDA_POOL=0. The simulator has no device memory.
from numba.cuda import config as _cuda_config  # noqa: E402

if not _cuda_config.ENABLE_CUDASIM:
    from . import _fastlaunch, _pool

    import jitgrad.cuda

    jitgrad.cuda.check_numpy()

    _pool.install()
    # Every kernel's repeated launches skip Numba's per-call typing (kernels/cuda/_fastlaunch.py).
    _fastlaunch.accelerate(m for n, m in list(_sys.modules.items()) if n.startswith(__name__ + "."))

# jitgrad sizes its grids on purpose (grid-stride loops; a loss over 128 rows is a small grid), so
# Numba's "grid size N will likely result in GPU under-utilization" warning on its launches is noise,
# and checking for it costs every launch a warn() call. Off unless the user asked for it by name.
import os as _os  # noqa: E402

if "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" not in _os.environ:
    _cuda_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0
