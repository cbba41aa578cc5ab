"""Reverse-mode automatic differentiation: ``Tensor``, ``Function``, ``no_grad``, ``gradcheck``, ``grad``."""

from jitgrad.autograd.tensor import Tensor, tensor
from jitgrad.autograd import ops  # noqa: F401  (attaches Tensor's operators and math methods)
from jitgrad.autograd.function import Context, Function
from jitgrad.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from jitgrad.autograd.gradcheck import GradcheckError, grad, gradcheck
from jitgrad.autograd.creation import (
    arange, default_generator, full, manual_seed, ones, ones_like, rand, randn, zeros, zeros_like,
)
from jitgrad.autograd.backend import backend_for, get_backend, register_backend

__all__ = [
    "Tensor", "tensor", "Context", "Function", "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
    "GradcheckError", "gradcheck", "grad", "zeros", "ones", "full", "zeros_like", "ones_like", "randn", "rand",
    "arange", "manual_seed", "default_generator", "backend_for", "get_backend", "register_backend",
]
