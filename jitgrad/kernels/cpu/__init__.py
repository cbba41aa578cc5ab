"""CPU kernels: hand-written Numba ``@njit`` loops behind validating wrappers.

Same module names, function names and signatures in reference, cpu
and cuda; see docs/kernel-api.md.
"""

from .matmul import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .activations import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .conv_transpose import *  # noqa: F401,F403
from .pooling_adaptive import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .lrn import *  # noqa: F401,F403
from .fused import *  # noqa: F401,F403

# Concurrent launches abort the process on Numba's ``workqueue`` layer: serialise them there.
import sys as _sys  # noqa: E402

from jitgrad.kernels import _contract  # noqa: E402
from jitgrad.kernels._constants import KERNEL_MODULES, kernel_names  # noqa: E402

from . import _threading  # noqa: E402

_MODULES = [_sys.modules[f"{__name__}.{module}"] for module in KERNEL_MODULES]
_threading.serialise_module_kernels(globals(), _MODULES)

#: Every kernel's name; one list for all three backends (kernels/_constants.py).
__all__: list[str] = kernel_names()

# Docstrings are written once, on the reference kernels: every public kernel takes its twin's.
_contract.adopt_reference_docs(_MODULES)

# Cached kernels load without Numba's compiler set-up (~0.2 s of a warm start): _cache_load.
from . import _cache_load  # noqa: E402

_cache_load.install(module for name, module in list(_sys.modules.items()) if name.startswith(f"{__name__}."))

# Numba's registries make the interpreter's shutdown slow (~0.3 s): young garbage collected, the rest frozen (_exit).
from . import _exit  # noqa: E402

_exit.install()
