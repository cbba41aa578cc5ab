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
from .recurrent import *  # noqa: F401,F403
