"""``Function``: one differentiable op, its forward and backward side by side.

Subclasses define two static methods, PyTorch style::

    class Mul(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return ctx.backend.multiply(a, b)

        @staticmethod
        def backward(ctx, grad_output):
            a, b = ctx.saved_tensors
            return ctx.backend.multiply(grad_output, b), ctx.backend.multiply(grad_output, a)

and are called as ``Mul.apply(x, y)``. Unlike PyTorch, ``forward`` and
``backward`` see raw backend arrays (NumPy on the CPU), not Tensors: an op is
array code plus kernel calls, with no autograd machinery inside, and ``ctx``
carries the ``backend`` to call. Non-Tensor arguments (Python scalars, NumPy
arrays used as constants, index objects) reach ``forward`` unchanged and
receive no gradient; keyword arguments are hyper-parameters.

``backward`` returns one gradient per positional argument of ``apply`` (a
tuple, or a bare array for a single argument), ``None`` where none is needed
(``ctx.needs_input_grad`` says which). A gradient may have the broadcast
shape of the output: the engine sums it back to the input's shape. It must
not modify ``grad_output`` in place (several inputs may receive that array).
"""

from __future__ import annotations

import weakref
from typing import Any

from jitgrad.autograd import grad_mode
from jitgrad.autograd.backend import backend_for, is_backend_array
from jitgrad.autograd.tensor import Tensor

__all__ = ["Context", "Function"]

#: Called as ``hook(cls, args, kwargs, result)`` after every ``apply`` while set (None: off).
#: ``jitgrad.onnx.export`` sets it for one traced forward pass; nothing else should.
_trace_hook: Any = None

_FREED_MESSAGE = (
    "trying to backward through the graph a second time (its saved arrays were freed by the first "
    "backward); call backward(retain_graph=True) the first time if you need to"
)


class Context:
    """What one call of an op keeps for its backward.

    Attributes
    ----------
    backend : object
        The device backend of the inputs (see :mod:`jitgrad.autograd.backend`).
    needs_input_grad : tuple of bool
        One flag per positional argument of ``apply``: does it need a gradient?
    saved_tensors : tuple of arrays
        What ``save_for_backward`` stored.

    Ops may also set attributes of their own (``ctx.axis = axis``).
    """

    _freed = False
    #: ``(tensor, version)`` of every saved Tensor array, checked when backward reads them.
    _versions: tuple[Any, ...] = ()

    def __init__(self, backend: Any, needs_input_grad: tuple[bool, ...]) -> None:
        self.backend = backend
        self.needs_input_grad = needs_input_grad
        self._saved: tuple[Any, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays (inputs or outputs of ``forward``) for ``backward``; no copy is made."""
        self._saved = arrays

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """The arrays given to ``save_for_backward``."""
        if self._freed:
            raise RuntimeError(_FREED_MESSAGE)
        if self._versions:
            _check_versions(self)
        return self._saved

    def free(self) -> None:
        """Drop saved arrays and parents so the graph's memory is released (the op's class stays)."""
        fn = self.__dict__.get("_fn")
        self.__dict__.clear()
        self._fn = fn
        self._freed = True


class Function:
    """Base class of differentiable ops: override ``forward`` and ``backward``, call ``apply``."""

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        """Compute the output array from input arrays (and save what backward needs)."""
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad_output: Any) -> Any:
        """Gradients of the inputs from the gradient of the output (one per positional input)."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        """Run ``forward`` on the arrays of ``args``; record the graph when gradients are needed.

        Returns
        -------
        Tensor
            The output; ``requires_grad`` is True when grad mode is on and an
            input Tensor requires grad.
        """
        backend = None
        record = False
        raw = []
        needs = []
        for a in args:
            if isinstance(a, Tensor):
                data = a.data
                if backend is None:
                    backend = backend_for(data)
                elif type(data) is not backend.array_type and backend_for(data) is not backend:
                    raise RuntimeError(
                        f"{cls.__name__}: all tensors must be on one device, got {backend.name} "
                        f"and {backend_for(data).name}"
                    )
                raw.append(data)
                needs.append(a.requires_grad)
                record = record or a.requires_grad
            else:
                raw.append(a)
                needs.append(False)
        if backend is None:
            raise TypeError(f"{cls.__name__}.apply needs at least one Tensor argument")
        record = record and grad_mode.grad_enabled()
        ctx = Context(backend, tuple(needs))
        out = cls.forward(ctx, *raw, **kwargs)
        if type(out) is not backend.array_type and not is_backend_array(out):
            # NumPy reductions return scalars (np.float64), not 0-d arrays. (An array of
            # another backend is left alone: ToDevice returns one on purpose.)
            out = backend.asarray(out)
        # Built without __init__: outputs need no conversion or dtype check.
        result = Tensor.__new__(Tensor)
        result.data = out
        result.grad = None
        result.requires_grad = record
        result._ctx = None
        result._grad_hooks = None
        result._version = 0
        if record:
            ctx._fn = cls
            ctx._parents = args
            result._ctx = ctx
            if ctx._saved:
                ctx._versions = _saved_versions(ctx._saved, args, result)
        if _trace_hook is not None:
            _trace_hook(cls, args, kwargs, result)
        return result


def _saved_versions(saved: tuple[Any, ...], args: tuple[Any, ...], result: Tensor) -> tuple[Any, ...]:
    """``(tensor or weak reference, version)`` for each input or output Tensor whose array was saved."""
    ids = {id(a) for a in saved}
    versions: list[Any] = [(a, a._version) for a in args if isinstance(a, Tensor) and id(a.data) in ids]
    if id(result.data) in ids:
        # A weak reference: the output holds this context, a strong one would make a cycle.
        versions.append((weakref.ref(result), 0))
    return tuple(versions)


def _check_versions(ctx: "Context") -> None:
    for owner, version in ctx._versions:
        tensor = owner() if isinstance(owner, weakref.ref) else owner
        if tensor is not None and tensor._version != version:
            raise RuntimeError(
                f"one of the arrays {ctx._fn.__name__} saved for backward was modified in place after it "
                f"was saved (tensor of shape {tensor.shape} is at version {tensor._version}, expected "
                f"{version}); compute the loss again after the in-place update, or clone before modifying"
            )
