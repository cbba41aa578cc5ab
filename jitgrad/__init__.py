"""jitgrad: a deep-learning framework whose every kernel is hand-written with Numba."""

from jitgrad._startup import gc_paused as _gc_paused

with _gc_paused():  # NumPy's ~20k long-lived objects: no collections meanwhile (see jitgrad._startup)
    import numpy as _np  # noqa: F401
del _np, _gc_paused

from jitgrad.config import get_num_threads, set_num_threads
from jitgrad.autograd import (
    Function,
    GradcheckError,
    Tensor,
    arange,
    enable_grad,
    full,
    grad,
    gradcheck,
    is_grad_enabled,
    manual_seed,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    set_grad_enabled,
    tensor,
    zeros,
    zeros_like,
)
from jitgrad.serialization import load, save
from jitgrad.autograd.ops_shape import (  # noqa: E402
    cat, clamp, clip, concatenate, split, squeeze, stack, std, unsqueeze, var, where,
)
from jitgrad import nn, optim  # noqa: E402  (nn and optim build on the names above)
# jitgrad.cuda imports numba only when asked something (is_available(), ...): importing it is free.
from jitgrad import cuda  # noqa: E402
from jitgrad.devices import cpu, gpu  # noqa: E402

__version__ = "0.1.0"
