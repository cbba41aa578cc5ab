"""Every differentiable op of the autograd, by name: one ``Function`` each, forward and backward side by side.

This module gathers the op modules (``ops.Conv2d``, ``ops.matmul``...), and
importing it attaches every Tensor method those modules define:

- :mod:`.ops_math`: arithmetic, elementwise math, reductions;
- :mod:`.ops_matmul`: matrix products;
- :mod:`.ops_layout`: reshape, permute, indexing, casts, device copies;
- :mod:`.ops_nn`: activations, softmax, losses;
- :mod:`.ops_conv`: convolution and pooling;
- :mod:`.ops_shape`, :mod:`.ops_norm`, :mod:`.ops_rnn`: joining and padding, normalization, recurrent layers.

Arrays are reached only through ``ctx.backend`` (``xp``), so the same ops
run on any device with a backend; everything with a kernel calls the
forward and backward kernels of ``docs/kernel-api.md`` (``xp.kernels``).
"""

from jitgrad.autograd import ops_layout, ops_math, ops_matmul, ops_nn
from jitgrad.autograd.ops_math import *  # noqa: F401,F403
from jitgrad.autograd.ops_matmul import *  # noqa: F401,F403
from jitgrad.autograd.ops_layout import *  # noqa: F401,F403
from jitgrad.autograd.ops_nn import *  # noqa: F401,F403
from jitgrad.autograd.ops_conv import AvgPool2d, Conv2d, MaxPool2d  # noqa: F401
from jitgrad.autograd.ops_fused import Conv2dActivation, LinearActivation  # noqa: F401
from jitgrad.autograd import ops_shape  # noqa: F401,E402  (after the above: wraps their methods with dim=/keepdim=)

#: Every op by name: each module's ``__all__`` (a new op is listed once, in its own module).
__all__ = [*ops_math.__all__, *ops_matmul.__all__, *ops_layout.__all__, *ops_nn.__all__,
           "Conv2d", "MaxPool2d", "AvgPool2d", "LinearActivation", "Conv2dActivation"]
