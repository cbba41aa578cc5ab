#!/usr/bin/env python
"""Where jitgrad's time goes in an ONNX inference case: CPU time per operator (Conv split by kernel size).

Each node's converter is wrapped with a ``time.process_time`` timer (Conv and
the BatchNormalization run with it count as the Conv; the folding or fused-BN
step is the ``Conv+BN step`` row minus its convolution); the rest of a call
is the graph walk. Cases are those of ``bench/benchmarks/bench_onnx.py``::

    python bench/profile_onnx.py resnet50-b16 --threads 1 --calls 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import collections  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks import bench_onnx  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=sorted(bench_onnx.CASES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=3)
    opts = parser.parse_args(argv)
    import jitgrad
    from jitgrad import onnx as jonnx
    from jitgrad.onnx import _import

    jitgrad.set_num_threads(opts.threads)
    model, x = bench_onnx.case_model(opts.case)
    module = jonnx.load(model).eval()
    spent: dict[str, float] = collections.defaultdict(float)
    count: collections.Counter = collections.Counter()

    def timed(label_of, fn):
        def run(*args):
            start = time.process_time()
            out = fn(*args)
            label = label_of(*args)
            spent[label] += time.process_time() - start
            count[label] += 1
            return out
        return run

    def label(node, args):
        if node.op_type != "Conv":
            return node.op_type
        w = args[1].shape
        return f"Conv {w[2]}x{w[3]} stride {node.attrs.get('strides', [1, 1])[0]}"

    for node in module.nodes:
        node.fn = timed(label, node.fn)
    originals = _import._conv_then_bn, _import._batch_norm_inference, _import._inplace.run
    _import._conv_then_bn = timed(lambda *a: "Conv+BN step (incl. its Conv)", originals[0])
    _import._batch_norm_inference = timed(lambda *a: "BatchNormalization (fused kernel)", originals[1])
    _import._inplace.run = timed(label, originals[2])  # Relu, Add, Sum over a dead buffer: under the op's name
    try:
        inp = jitgrad.Tensor(x)
        with jitgrad.no_grad():
            module(inp)
        spent.clear()
        count.clear()
        start = time.process_time()
        for _ in range(opts.calls):
            with jitgrad.no_grad():
                module(inp).numpy()
        total = (time.process_time() - start) / opts.calls
    finally:
        _import._conv_then_bn, _import._batch_norm_inference, _import._inplace.run = originals
    print(f"{opts.case}, {opts.threads} thread(s): {total * 1e3:.1f} ms CPU per call")
    for name, s in sorted(spent.items(), key=lambda kv: -kv[1]):
        per = s / opts.calls
        print(f"  {name:36s} {count[name] // opts.calls:4d} nodes {per * 1e3:9.1f} ms {100 * per / total:5.1f} %")
    return {name: s / opts.calls for name, s in spent.items()}


if __name__ == "__main__":
    main()
