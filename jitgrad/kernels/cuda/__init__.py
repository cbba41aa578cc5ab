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
