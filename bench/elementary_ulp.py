#!/usr/bin/env python
"""Exhaustive float32 error of the CPU kernels' elementary functions: all 2^32 inputs, in ulps.

Uses the test suite's runner, float64 reference and ulp measure
(``tests/kernels/test_elementary.py``), in chunks of 2^24 inputs. Prints, per
function, the worst error, where, and how many inputs exceed 0.5 and 1 ulp.

    python bench/elementary_ulp.py              # all six functions (minutes)
    python bench/elementary_ulp.py exp log      # some of them
    python bench/elementary_ulp.py --stride 97  # every 97th pattern: a quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.kernels.test_elementary import NAMES, reference, run_function, ulp_error  # noqa: E402

CHUNK = 1 << 24


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", default=list(NAMES), choices=list(NAMES))
    p.add_argument("--stride", type=int, default=1, help="test every STRIDE-th bit pattern (default: all)")
    opts = p.parse_args()
    for name in opts.names:
        t0 = time.perf_counter()
        worst, worst_x, over_half, over_one, count = 0.0, 0.0, 0, 0, 0
        for start in range(0, 1 << 32, CHUNK * opts.stride):
            bits = np.arange(start, min(start + CHUNK * opts.stride, 1 << 32), opts.stride, dtype=np.uint64)
            x = bits.astype(np.uint32).view(np.float32)
            err = ulp_error(run_function(name, x), reference(name, x))
            i = int(np.argmax(err))
            if err[i] > worst:
                worst, worst_x = float(err[i]), float(x[i])
            over_half += int((err > 0.5).sum())
            over_one += int((err > 1.0).sum())
            count += x.size
        print(f"{name:6s} {count} inputs: max {worst:.4f} ulp at x={worst_x!r}; "
              f"> 0.5 ulp: {over_half}, > 1 ulp: {over_one}  ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
