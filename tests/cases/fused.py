"""The fused kernels' case table, shared by the CPU (tests/kernels/test_fused.py) and CUDA tests.

Linear rows ``(N, in, out)``: a plain-loop product, one tile with ragged
columns, several tiles and a deep one (more than one ``k`` slice of the CPU
GEMM: the epilogue must wait for the last) and one past the parallel threshold; conv rows ``(x shape, w shape,
hyper-parameters)``: the dense GEMM path, padding and stride, grouped and
depthwise (whose activation is a pass after the kernel).
"""

LINEAR_CASES = [
    (3, 4, 5),
    (7, 33, 50),
    (20, 17, 3),
    (30, 300, 40),
    (97, 130, 75),
]

#: Fewer and smaller rows for the CUDA simulator (a Python thread per CUDA thread).
LINEAR_CASES_CUDA = [(3, 4, 5), (5, 17, 67)]

CONV_CASES = [
    ((2, 1, 8, 8), (3, 1, 3, 3), {}),
    ((2, 3, 7, 6), (5, 3, 3, 2), {"padding": 1, "stride": 2}),
    ((1, 4, 6, 6), (4, 2, 3, 3), {"groups": 2}),
    ((2, 3, 5, 5), (3, 1, 3, 3), {"groups": 3, "padding": 1}),
]

CONV_CASES_CUDA = CONV_CASES[:2]

ACTIVATIONS = ("none", "relu")
