"""batch_norm forward + backward (training mode) side by side in one process: NumPy reference, jitgrad CPU, PyTorch CPU.

PyTorch is timed twice: the two ATen kernels its autograd calls (``native_batch_norm`` and
``native_batch_norm_backward``, the fair kernel-to-kernel comparison) and ``F.batch_norm`` +
``backward`` (what a user's training step pays). Same threads for both frameworks.

    PYTHONPATH=.:/path/to/torch/site-packages .venv/bin/python bench/batch_norm_side_by_side.py [N,C,H,W]
"""
import sys
from pathlib import Path

import numba
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report  # noqa: E402

from jitgrad.kernels import cpu  # noqa: E402
from jitgrad.kernels import reference as ref  # noqa: E402

torch.set_num_threads(numba.get_num_threads())
shape = tuple(int(s) for s in sys.argv[1].split(",")) if len(sys.argv) > 1 else (128, 64, 14, 14)
rng = np.random.default_rng(0)
c = shape[1]
x = (2 * rng.standard_normal(shape)).astype(np.float32)
g = rng.standard_normal(shape).astype(np.float32)
w = rng.standard_normal(c).astype(np.float32)
b = rng.standard_normal(c).astype(np.float32)
rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)


def forward_backward(kernels):
    """Training-mode forward then backward through one backend's kernels."""
    def call():
        _, mean, invstd = kernels.batch_norm(x, rm, rv, w, b, training=True)
        return kernels.batch_norm_backward(g, x, w, mean, invstd, training=True)
    return call


aten = torch.ops.aten
tx, tg, tw, tb, trm, trv = (torch.from_numpy(a.copy()) for a in (x, g, w, b, rm, rv))
txa, twa, tba = (t.clone().requires_grad_() for t in (tx, tw, tb))


def torch_aten():
    _, mean, invstd = aten.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, 1e-5)
    return aten.native_batch_norm_backward(tg, tx, tw, trm, trv, mean, invstd, True, 1e-5, [True, True, True])


def torch_autograd():
    torch.nn.functional.batch_norm(txa, trm, trv, twa, tba, training=True).backward(tg)


times = report.measure({"numpy": forward_backward(ref), "jitgrad-cpu": forward_backward(cpu),
                        "torch-aten": torch_aten, "torch-autograd": torch_autograd}, repeats=15, sample_time=0.1)
print(shape, "threads", numba.get_num_threads(), {k: f"{v * 1e3:.2f} ms" for k, v in times.items()})
j = times["jitgrad-cpu"]
print("  ".join(f"vs {name} {times[name] / j:.2f}x" for name in ("numpy", "torch-aten", "torch-autograd")))
