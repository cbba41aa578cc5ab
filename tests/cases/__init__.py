"""Case tables shared by the CPU tests (tests/kernels) and the CUDA tests (tests/cuda).

One table per kernel family: both halves of the suite parametrise over the same
rows, the CUDA half with the device conversion as the only difference, so the
backends cannot drift apart in what they are tested on.
"""
