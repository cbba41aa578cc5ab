"""Case tables shared by the hardening tests of every backend (cpu, reference, cuda).

``WRITING_CASES``: every kernel argument a kernel writes into (``out=``, the
parameters and state of the in-place optimizer updates), as
``(label, argument name, call)`` where ``call(K, make)`` runs the kernel of
backend module ``K`` with ``make(name, array)`` turning each host array into
what that backend takes (identity on the CPU, a device copy on CUDA) — except
the argument under test, which ``make`` turns into a read-only array.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

F4 = np.float32


def _x(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=F4).reshape(shape) / 7


def _matmul(K: Any, make: Callable) -> Any:
    return K.matmul(make("a", _x(3, 4)), make("b", _x(4, 5)), out=make("out", np.zeros((3, 5), F4)))


def _conv2d(K: Any, make: Callable) -> Any:
    return K.conv2d(make("x", _x(1, 2, 5, 5)), make("w", _x(3, 2, 3, 3)), make("b", _x(3)),
                    out=make("out", np.zeros((1, 3, 3, 3), F4)))


def _conv2d_backward_input(K: Any, make: Callable) -> Any:
    return K.conv2d_backward_input(make("grad_out", _x(1, 3, 3, 3)), make("w", _x(3, 2, 3, 3)),
                                   input_shape=(1, 2, 5, 5), out=make("out", np.zeros((1, 2, 5, 5), F4)))


def _sgd(K: Any, make: Callable) -> Any:
    return K.sgd_update(make("param", _x(6)), make("grad", _x(6)), make("momentum_buf", np.zeros(6, F4)),
                        lr=0.1, momentum=0.9)


def _adam(K: Any, make: Callable) -> Any:
    return K.adam_update(make("param", _x(6)), make("grad", _x(6)), make("exp_avg", np.zeros(6, F4)),
                         make("exp_avg_sq", np.zeros(6, F4)), step=1, lr=0.1)


#: (label, written argument, call)
WRITING_CASES = [
    ("matmul", "out", _matmul),
    ("conv2d", "out", _conv2d),
    ("conv2d_backward_input", "out", _conv2d_backward_input),
    ("sgd_update", "param", _sgd),
    ("sgd_update", "momentum_buf", _sgd),
    ("adam_update", "param", _adam),
    ("adam_update", "exp_avg", _adam),
    ("adam_update", "exp_avg_sq", _adam),
]

#: Arguments only read: a read-only array there must be accepted.
READ_ONLY_OK = [("sgd_update", "grad", _sgd), ("adam_update", "grad", _adam), ("matmul", "a", _matmul),
                ("conv2d", "w", _conv2d)]


def read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a
