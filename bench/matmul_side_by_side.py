"""matmul: jitgrad vs NumPy side by side in one process, per shape (GFLOP/s and NumPy time / jitgrad time).

THREADS=1 measures thread CPU time (time.thread_time): on a loaded shared machine a lost time slice is
not counted. Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE first; the BLAS kernel in use is printed.
Usage: THREADS=1 REPS=7 python bench/matmul_side_by_side.py [shape-substrings...]
"""
import os, sys, time, statistics
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np
import threadpoolctl
CLOCK = time.thread_time if os.environ.get("THREADS") == "1" else time.perf_counter
t0 = CLOCK()
import importlib; mm = importlib.import_module("jitgrad.kernels.cpu.matmul")
import numba
T = int(os.environ.get("THREADS", "2")); numba.set_num_threads(T); threadpoolctl.threadpool_limits(T, user_api="blas")
shapes = {"sq256": (256,256,256,False,False), "sq512": (512,512,512,False,False), "sq1024": (1024,1024,1024,False,False),
          "sq2048": (2048,2048,2048,False,False),
          "lenet-fc1-fwd": (128,256,120,False,True), "lenet-fc1-gin": (128,120,256,False,False), "lenet-fc1-gw": (120,128,256,True,False),
          "keras-fc-fwd": (128,1600,10,False,True), "keras-fc-gin": (128,10,1600,False,False), "keras-fc-gw": (10,128,1600,True,False),
          "conv-like": (64,288,121,False,False)}
only = sys.argv[1:] 
rng = np.random.default_rng(0)
print(threadpoolctl.threadpool_info())
for name,(m,k,n,ta,tb) in shapes.items():
    if only and not any(o in name for o in only): continue
    a = rng.standard_normal((k,m) if ta else (m,k)).astype(np.float32)
    b = rng.standard_normal((n,k) if tb else (k,n)).astype(np.float32)
    A = a.T if ta else a; B = b.T if tb else b
    tc = CLOCK(); out = mm.matmul(a,b,trans_a=ta,trans_b=tb); tc = CLOCK()-tc
    ref = A.astype(np.float64) @ B.astype(np.float64)
    err = np.abs(out-ref).max()/ (np.abs(ref).max())
    fj = lambda: mm.matmul(a,b,trans_a=ta,trans_b=tb, out=out)
    o2 = np.empty_like(out)
    fn = lambda: np.matmul(A,B,out=o2)
    flops = 2*m*n*k
    num = max(1, int(2e8/flops))
    tj=[];tn=[]
    for r in range(int(os.environ.get("REPS", "9"))):
        s=CLOCK()
        for _ in range(num): fj()
        tj.append((CLOCK()-s)/num)
        s=CLOCK()
        for _ in range(num): fn()
        tn.append((CLOCK()-s)/num)
    mj=statistics.median(tj); mn=statistics.median(tn)
    print(f"{name:16s} jit {mj*1e6:9.1f}us {flops/mj/1e9:6.1f}GF  numpy {mn*1e6:9.1f}us {flops/mn/1e9:6.1f}GF  ratio {mn/mj:5.2f}  first {tc:.2f}s err {err:.1e}", flush=True)
