"""NumPy reference kernels: the spec the fast kernels are held to, and the benchmarks' baseline.

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

from jitgrad.kernels._constants import kernel_names  # noqa: E402

#: Every kernel's name; one list for all three backends (kernels/_constants.py).
__all__: list[str] = kernel_names()
