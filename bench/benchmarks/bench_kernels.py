"""asv benchmarks of every kernel family: one parameterised class per family.

Parameters are ``kernel x shape x dtype x backend`` (see ``common.py`` for the
shape labels). ``setup`` builds seeded inputs and runs the kernel once, so the
timed methods measure only the call; on ``cuda`` the call ends with a
synchronize, and without a GPU ``setup`` raises ``NotImplementedError``
(asv shows the case as skipped).
"""

from .common import KernelBenchmark, kernel_params


class Matmul(KernelBenchmark):
    """``matmul``: square 64-2048 and the three products of each CNN Linear layer."""

    family = "matmul"
    params = kernel_params(family)

    def time_kernel(self, kernel, shape, dtype, backend):
        self.call()


class Conv2d(KernelBenchmark):
    """``conv2d`` forward, ``conv2d_backward_input`` and ``conv2d_backward_weight``."""

    family = "conv"
    params = kernel_params(family)

    def time_kernel(self, kernel, shape, dtype, backend):
        self.call()

    def peakmem_kernel(self, kernel, shape, dtype, backend):
        self.call()


class Pooling(KernelBenchmark):
    """Max and average pooling, forward and backward (2x2, stride 2)."""

    family = "pooling"
    params = kernel_params(family)

    def time_kernel(self, kernel, shape, dtype, backend):
        self.call()


class Activations(KernelBenchmark):
    """ReLU, sigmoid and GELU, forward and backward, on conv-output shapes."""

    family = "activations"
    params = kernel_params(family)

    def time_kernel(self, kernel, shape, dtype, backend):
        self.call()


class SoftmaxCrossEntropy(KernelBenchmark):
    """Fused softmax cross-entropy (mean reduction), forward and backward."""

    family = "softmax"
    params = kernel_params(family)

    def time_kernel(self, kernel, shape, dtype, backend):
        self.call()


class OptimizerUpdate(KernelBenchmark):
    """Fused in-place SGD (momentum 0.9) and Adam updates of a flat parameter vector."""

    family = "optim"
    params = kernel_params(family)

    def time_kernel(self, kernel, shape, dtype, backend):
        self.call()
