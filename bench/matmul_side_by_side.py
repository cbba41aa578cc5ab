"""matmul: jitgrad vs NumPy side by side in one process, per shape (GFLOP/s and NumPy time / jitgrad time).

THREADS=1 measures thread CPU time (time.thread_time): on a loaded shared machine a lost time slice is
not counted. Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE first; the BLAS kernel in use is printed.
Each repetition times jitgrad then NumPy (interleaved); the ratio is the median of the repetitions'
NumPy / jitgrad pairs (the times printed are each library's median). On more than one
thread each timed block is followed by an untimed pause (PAUSE seconds, 0.2 by default): OpenBLAS's
idle workers spin for ~0.1 s after a call (its THREAD_TIMEOUT) and took the second core from the
jitgrad block that followed (1024^2 on 2 threads: 0.5-0.6x without the pause, 0.83-0.9x with it). After
the pause each block starts with 0.1 s of untimed calls (both libraries): the first ~50 ms after an
idle spell ran up to 2x slow (256^3 on 2 threads: 821, 611, 540, 506 us against 361-374 us without the
pause; 512^3: 13 calls at 3.2-4.2 ms, then 1.9-2.1 ms as in a loop), and the pause busy-waits on the
main thread instead of sleeping: after a 0.2 s sleep 0.1 s of calls was not always enough (256^3 read
0.42-0.48x NumPy in one process and 0.85-0.96x in another; 0.67-0.83x with the busy pause, at the speed
of a tight loop).

Shapes: ``sq*`` square; ``<model>-<layer>-{fwd,gin,gw}`` the three products of a Linear layer at batch
128 (``x @ W.T``, ``g @ W``, ``g.T @ x``) of examples/mnist_cnn.py's lenet5 / convnet (keras) / resnet;
``<model>-<conv>-{fwd,gin,gw}`` a convolution's im2col products over a batch of 16 images
(``W @ cols``, ``W.T @ g``, ``g @ cols.T``: M = C_out, K = C_in*kh*kw, N = 16 * output pixels); ``deep-*`` weight
gradients whose K is a whole batch (an LSTM's over all its steps, a Linear layer's at batch 4096);
``wide-*`` products whose operands are far larger than the caches; ``huge-*`` weight gradients whose transposed
A is (``G^T @ X`` at batch 16384 and 65536); ``vec-*`` matrix-vector products.
Usage: THREADS=1 REPS=7 python bench/matmul_side_by_side.py [shape-substrings...]   (``cnn`` = all CNN shapes)
"""
import os, sys, time, statistics
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np
import threadpoolctl
CLOCK = time.thread_time if os.environ.get("THREADS") == "1" else time.perf_counter
t0 = CLOCK()
import importlib; mm = importlib.import_module("jitgrad.kernels.cpu.matmul")
from jitgrad.kernels.cpu import _isa
import numba
T = int(os.environ.get("THREADS", "2")); numba.set_num_threads(T); threadpoolctl.threadpool_limits(T, user_api="blas")
PAUSE = float(os.environ.get("PAUSE", "0.2")) if T > 1 else 0.0
# One parallel launch first, as in training: until Numba has picked its threading layer every kernel call
# asks for it (kernels/cpu/_threading.py), which would add microseconds to each small product here.
_sq = np.ones((64, 64), np.float32); importlib.import_module("jitgrad.kernels.cpu._gemm").gemm_parallel(_sq, _sq, False, False, _sq.copy(), T, _sq[0], 0)
shapes = {"sq256": (256,256,256,False,False), "sq512": (512,512,512,False,False), "sq1024": (1024,1024,1024,False,False),
          "sq2048": (2048,2048,2048,False,False)}


def linear(model, layer, batch, fan_in, fan_out):
    """(m, k, n, trans_a, trans_b) of a Linear layer's forward, input-gradient and weight-gradient products."""
    shapes[f"cnn-{model}-{layer}-fwd"] = (batch, fan_in, fan_out, False, True)
    shapes[f"cnn-{model}-{layer}-gin"] = (batch, fan_out, fan_in, False, False)
    shapes[f"cnn-{model}-{layer}-gw"] = (fan_out, batch, fan_in, True, False)


def conv(model, layer, c_out, k, npix, images=16):
    n = npix * images
    shapes[f"cnn-{model}-{layer}-fwd"] = (c_out, k, n, False, False)
    shapes[f"cnn-{model}-{layer}-gin"] = (k, c_out, n, True, False)
    shapes[f"cnn-{model}-{layer}-gw"] = (c_out, n, k, False, True)


for name, fi, fo in [("fc1", 256, 120), ("fc2", 120, 84), ("fc3", 84, 10)]:
    linear("lenet", name, 128, fi, fo)
linear("keras", "fc", 128, 1600, 10)
linear("resnet", "fc", 128, 64, 10)
conv("lenet", "conv1", 6, 25, 576); conv("lenet", "conv2", 16, 150, 64)
conv("keras", "conv1", 32, 9, 676); conv("keras", "conv2", 64, 288, 121)
conv("resnet", "c16", 16, 144, 784); conv("resnet", "c32s2", 32, 144, 196); conv("resnet", "c32", 32, 288, 196)
conv("resnet", "c64s2", 64, 288, 49); conv("resnet", "c64", 64, 576, 49)
# Deep weight gradients (``deep``): ``G^T @ X`` with K = all the rows of a batch. The sequence-MNIST
# LSTM's (28 steps x batch 128 = 3584 rows; 4 x 128 gates; 28 inputs, 128 hidden) and a Linear
# layer's at batch 4096 (LeNet fc1's 256 -> 120).
shapes["deep-lstm-gw-ih"] = (512, 3584, 28, True, False)
shapes["deep-lstm-gw-hh"] = (512, 3584, 128, True, False)
shapes["deep-fc1-gw-b4096"] = (120, 4096, 256, True, False)
# Wide products (``wide``): operands far larger than the caches, a language model's output layer at
# batch 128 (512 features, a 50 000-word vocabulary; its weight alone is 100 MB), and a 32-channel
# convolution's im2col product over 16 images of 56 x 56.
for _name, _shape in [("fwd", (128, 512, 50000, False, True)), ("gin", (128, 50000, 512, False, False)),
                      ("gw", (50000, 128, 512, True, False))]:
    shapes[f"wide-lm-{_name}"] = _shape
shapes["wide-conv32-fwd"] = (32, 288, 50176, False, False)
# Weight gradients at huge batches (``huge``): a transposed A of 32-64 MB, packed a K slice at a time
# (``_gemm.a_sliced``): a 512-wide layer's at batch 16384, a 256-wide one's at batch 65536, and a tall
# transposed A.
shapes.update({"huge-gw-b16384": (512, 16384, 512, True, False), "huge-gw-b65536": (256, 65536, 256, True, False),
               "huge-tall-tn": (16384, 512, 512, True, False)})
# Matrix-vector products (``vec``): one row or one column of C (``_gemv``), a batch-1 inference's.
shapes.update({"vec-row-nn": (1, 1024, 1024, False, False), "vec-row-nt": (1, 1024, 1024, False, True),
               "vec-col-nn": (1024, 1024, 1, False, False), "vec-col-tn": (1024, 1024, 1, True, False),
               "vec-big-row-nn": (1, 4096, 4096, False, False), "vec-big-col-nn": (4096, 4096, 1, False, False),
               "vec-lenet-fc1-fwd": (1, 256, 120, False, True), "vec-resnet-fc-fwd": (1, 64, 10, False, True)})
only = sys.argv[1:]
rng = np.random.default_rng(0)
print(f"path: {_isa.describe()}; threads {T}; clock {CLOCK.__name__}")
print([(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpoolctl.threadpool_info()])
ratios = []


def spin(seconds):
    """The pause, busy on this thread: a sleeping machine takes longer than ``warm`` to run at speed again."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass


def warm(f, seconds=0.1):
    """Untimed calls for ``seconds`` (at least one): after the pause the machine runs slow for a while."""
    t0 = time.perf_counter()
    f()
    while time.perf_counter() - t0 < seconds:
        f()


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
        warm(fj)
        s=CLOCK()
        for _ in range(num): fj()
        tj.append((CLOCK()-s)/num)
        spin(PAUSE)
        warm(fn)
        s=CLOCK()
        for _ in range(num): fn()
        tn.append((CLOCK()-s)/num)
        spin(PAUSE)
    mj=statistics.median(tj); mn=statistics.median(tn)
    # The ratio: the median of each repetition's NumPy / jitgrad pair (timed back to back), not the ratio of
    # the two medians: on a VM whose speed changes for seconds at a time (the 2-vCPU Zen 3: whole stretches
    # of two-thread products at one core's speed) a pair shares its stretch, two medians need not.
    ratio = statistics.median(x / y for x, y in zip(tn, tj))
    ratios.append(ratio)
    print(f"{name:22s} {m:5d}x{k:5d}x{n:6d} {'T' if ta else 'N'}{'T' if tb else 'N'} jit {mj*1e6:9.1f}us {flops/mj/1e9:6.1f}GF  "
          f"numpy {mn*1e6:9.1f}us {flops/mn/1e9:6.1f}GF  ratio {ratio:5.2f}  first {tc:.2f}s err {err:.1e}", flush=True)
if ratios:
    print(f"geometric mean ratio {np.exp(np.mean(np.log(ratios))):.2f}, min {min(ratios):.2f}")
