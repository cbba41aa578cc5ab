"""conv2d forward and both backwards: jitgrad vs PyTorch, one thread each, thread CPU time (time.thread_time).

Put PyTorch on PYTHONPATH after jitgrad (see COMMON notes). Usage: python bench/conv_side_by_side.py
"""
import os, sys, time, statistics
import numpy as np
import numba, threadpoolctl
numba.set_num_threads(1); threadpoolctl.threadpool_limits(1)
import torch
torch.set_num_threads(1)
from jitgrad.kernels import cpu
CLOCK = time.thread_time
shapes = {"lenet-conv1": (128,1,28,28,6,5), "lenet-conv2": (128,6,12,12,16,5), "keras-conv1": (128,1,28,28,32,3), "keras-conv2": (128,32,13,13,64,3)}
rng = np.random.default_rng(0)
for name,(n,ci,h,w,co,k) in shapes.items():
    x = rng.standard_normal((n,ci,h,w)).astype(np.float32); wt = rng.standard_normal((co,ci,k,k)).astype(np.float32); b = rng.standard_normal(co).astype(np.float32)
    y = cpu.conv2d(x, wt, b); g = rng.standard_normal(y.shape).astype(np.float32)
    tx, tw, tb, tg = map(torch.from_numpy, (x, wt, b, g))
    calls = {
      "forward": (lambda: cpu.conv2d(x, wt, b), lambda: torch.nn.functional.conv2d(tx, tw, tb)),
      "backward_input": (lambda: cpu.conv2d_backward_input(g, wt, input_shape=x.shape),
                         lambda: torch.nn.grad.conv2d_input(x.shape, tw, tg)),
      "backward_weight": (lambda: cpu.conv2d_backward_weight(x, g, weight_shape=wt.shape),
                          lambda: torch.nn.grad.conv2d_weight(tx, wt.shape, tg)),
    }
    for kname,(fj,ft) in calls.items():
        t0=CLOCK(); fj(); first=CLOCK()-t0; ft()
        tj=[];tt=[]
        for r in range(7):
            s=CLOCK(); fj(); tj.append(CLOCK()-s)
            s=CLOCK(); ft(); tt.append(CLOCK()-s)
        mj=statistics.median(tj); mt=statistics.median(tt)
        print(f"{name:12s} {kname:16s} jit {mj*1e3:8.2f}ms torch {mt*1e3:8.2f}ms  jit vs torch {mt/mj:5.2f}  first {first:.1f}s", flush=True)
