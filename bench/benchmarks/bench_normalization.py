"""asv benchmarks of the normalisation kernels (batch norm and layer norm, forward and backward).

Same scheme as ``bench_kernels.py``: ``kernel x shape x dtype x backend`` with
the shapes of ``common.NORM_SHAPES``; batch norm runs in training mode (batch
statistics plus the in-place running-statistics update).
"""

from .common import KernelBenchmark, kernel_params


class Normalization(KernelBenchmark):
    """``batch_norm``, ``layer_norm`` and their backward kernels on CNN feature maps at batch 128."""

    family = "normalization"
    params = kernel_params(family)

    def time_kernel(self, kernel, shape, dtype, backend):
        self.call()
