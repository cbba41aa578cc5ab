"""``Tensor``: an array with a gradient, and ``tensor()``, the way to make one.

A ``Tensor`` wraps one array of its device's backend (a NumPy array on the
CPU) in ``.data``. This module holds what a tensor *is* (shape, dtype,
device, gradient, hooks, the way out to NumPy); its operators and math
methods are one-liners that hand the work to a
:class:`~jitgrad.autograd.Function`, and live beside those Functions:

- ``ops_math``: ``+ - * / ** -``, ``exp``, ``log``, ``sqrt``, ``abs``,
  ``sum``, ``mean``, ``max``, ``min``;
- ``ops_matmul``: ``@``;
- ``ops_layout``: ``reshape``/``view``, ``flatten``, ``permute``,
  ``transpose``, ``T``, ``[]``, ``astype``, ``float``, ``double``, ``to``,
  ``cpu``, ``cuda``;
- ``ops_nn``: ``relu`` ... ``softplus``, ``softmax``, ``log_softmax``;
- ``ops_shape``: ``clamp``, ``squeeze``, ``unsqueeze``, ``split``, ``var``,
  ``std``, ``size()``, ``dim()`` and the ``dim=``/``keepdim=`` spellings.

Each attaches them with :func:`attach_methods` when imported (importing
:mod:`jitgrad.autograd` imports them all), so no module of the autograd
imports one that imports it back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jitgrad import config
from jitgrad.autograd.backend import backend_for, claim_lazily, is_backend_array

__all__ = ["Tensor", "tensor"]

ArrayLike = Any
Axis = int | tuple[int, ...] | None


def _to_array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    """Host array from Python or NumPy data, with ``tensor()``'s dtype rules."""
    if dtype is not None:
        arr = np.array(data, dtype=dtype, copy=copy or None)
    elif isinstance(data, (np.ndarray, np.generic)):
        arr = np.array(data, copy=copy or None)
    else:
        arr = np.array(data)
        if arr.dtype == np.float64:
            # Python floats default to config.default_dtype (float32), as in PyTorch.
            arr = arr.astype(config.default_dtype)
    _check_dtype_kind(arr.dtype, data)
    return arr


def _check_dtype_kind(dtype: np.dtype, data: Any) -> None:
    # Object arrays would reach the kernels as Python objects, complex ones lose their imaginary part.
    if dtype.kind not in "biuf":
        raise TypeError(f"tensor() cannot hold data of dtype {dtype} (from {type(data).__name__}); "
                        "use a bool, integer or float dtype")


def _check_can_require_grad(data: Any) -> None:
    if np.dtype(data.dtype).kind != "f":
        raise TypeError(f"only floating-point tensors can require gradients, got dtype {np.dtype(data.dtype)}")


class _HookHandle:
    """Returned by ``register_post_accumulate_grad_hook``; ``remove()`` unregisters the hook."""

    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list[Any], hook: Any) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor:
    """An array of one device, with an optional gradient and the graph that made it.

    Parameters
    ----------
    data : array_like
        The values. A backend array (``numpy.ndarray`` on the CPU) is wrapped
        without a copy; anything else is converted as :func:`tensor` does.
    requires_grad : bool
        Record operations on this tensor so that ``backward`` can fill ``.grad``.
        Only floating-point tensors can require grad.

    Attributes
    ----------
    data : ndarray
        The raw array (a Numba device array on CUDA). Writing into it in
        place bypasses autograd (that is how optimizers update parameters).
    grad : Tensor or None
        The accumulated gradient of a leaf, same shape and dtype as ``data``.
    requires_grad : bool
        Whether gradients flow to this tensor.
    """

    # Slots: less memory per graph node and faster attribute access on the hot path.
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_grad_hooks", "_version", "__weakref__")

    # ``ndarray + Tensor`` must defer to ``Tensor.__radd__`` rather than let
    # NumPy convert the tensor (through ``__array__``) and drop the graph.
    __array_ufunc__ = None

    def __init__(self, data: ArrayLike, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        elif type(data) is np.ndarray:
            _check_dtype_kind(data.dtype, data)
        elif not is_backend_array(data) and not claim_lazily(data):
            # (A device array made before "cuda" was asked for: claiming it registers the backend.)
            data = _to_array(data, copy=False)
        if requires_grad:
            _check_can_require_grad(data)
        self.data = data
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Any = None
        self._grad_hooks: list[Any] | None = None
        self._version = 0

    # --- what it is ------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Tuple of dimension sizes."""
        shape = self.data.shape
        # The CUDA simulator's shape is a tuple look-alike without negative indexing.
        return shape if type(shape) is tuple else tuple(shape)

    @property
    def dtype(self) -> np.dtype:
        """NumPy dtype of the elements."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return self.data.size

    @property
    def device(self) -> str:
        """Name of the device holding ``data``: ``"cpu"`` or ``"cuda"``."""
        return backend_for(self.data).name

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (their ``.grad`` is filled)."""
        return self._ctx is None

    @property
    def grad_fn(self) -> Any:
        """The ``Function`` class that produced this tensor, or None for a leaf."""
        return None if self._ctx is None else self._ctx._fn

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        data = self.numpy()
        body = np.array2string(data, separator=", ", prefix="tensor(")
        extras = []
        if data.dtype not in (config.default_dtype, np.dtype(np.int64), np.dtype(np.bool_)):
            extras.append(f"dtype={data.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx._fn.__name__}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    # --- leaving autograd -------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a host NumPy array (on the CPU: ``data`` itself, no copy)."""
        return backend_for(self.data).to_numpy(self.data)

    def item(self) -> float | int | bool:
        """The single value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().item()

    def tolist(self) -> Any:
        """The values as (nested) Python lists."""
        return self.numpy().tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.numpy())

    def detach(self) -> "Tensor":
        """A new leaf sharing ``data``, outside the graph (``requires_grad=False``)."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place and return ``self``."""
        if requires_grad:
            _check_can_require_grad(self.data)
        self.requires_grad = bool(requires_grad)
        return self

    def bump_version(self) -> None:
        """Record that ``data`` was modified in place (optimizers call this after each update).

        A backward that needs this tensor as it was when saved then raises
        instead of computing a wrong gradient (PyTorch's version counter).
        """
        self._version += 1

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (``grad = None``)."""
        self.grad = None

    def register_post_accumulate_grad_hook(self, hook: Any) -> "_HookHandle":
        """Call ``hook(self)`` during ``backward()`` right after this leaf's ``.grad`` is final.

        A leaf's gradient is summed over every path before it is stored, so
        when the hook runs ``self.grad`` holds this backward's whole
        contribution (added to what was there before). The rest of the
        graph may still be running: this is where data-parallel training
        starts reducing a gradient while the backward pass goes on (see
        ``jitgrad.distributed``). Hooks run in registration order.

        Returns
        -------
        handle
            ``handle.remove()`` unregisters the hook.
        """
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {type(hook).__name__}")
        if self._ctx is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate .grad; "
                               f"this tensor was made by {self._ctx._fn.__name__}")
        if self._grad_hooks is None:
            self._grad_hooks = []
        self._grad_hooks.append(hook)
        return _HookHandle(self._grad_hooks, hook)

    def backward(self, grad: ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        Parameters
        ----------
        grad : Tensor, array or number, optional
            The gradient of some scalar with respect to ``self``, same shape as
            ``self``. Needed unless ``self`` has one element (then it is 1).
        retain_graph : bool
            Keep the graph (and its saved arrays) so ``backward`` can run again;
            by default it is freed as it is walked.

        Raises
        ------
        RuntimeError
            If ``self`` does not require grad, if ``grad`` is missing for a
            tensor with more than one element, or if the graph was freed by an
            earlier ``backward``.
        """
        # The one lazy import of the package: the engine sits above Tensor (it walks graphs of Tensors).
        from jitgrad.autograd.engine import backward

        backward(self, grad, retain_graph)

    def __pos__(self) -> "Tensor":
        return self

    # --- comparisons: no gradient, boolean tensors -------------------------
    def _compare(self, other: ArrayLike, name: str) -> "Tensor":
        if isinstance(other, Tensor):
            if other.device != self.device:
                raise RuntimeError(f"{name}: all tensors must be on one device, got {self.device} and {other.device}")
            other = other.data
        return Tensor(getattr(backend_for(self.data), name)(self.data, other))

    def __eq__(self, other: ArrayLike) -> "Tensor":  # type: ignore[override]
        return self._compare(other, "equal")

    def __ne__(self, other: ArrayLike) -> "Tensor":  # type: ignore[override]
        return self._compare(other, "not_equal")

    def __lt__(self, other: ArrayLike) -> "Tensor":
        return self._compare(other, "less")

    def __le__(self, other: ArrayLike) -> "Tensor":
        return self._compare(other, "less_equal")

    def __gt__(self, other: ArrayLike) -> "Tensor":
        return self._compare(other, "greater")

    def __ge__(self, other: ArrayLike) -> "Tensor":
        return self._compare(other, "greater_equal")

    # Elementwise ``==`` would make tensors unhashable; identity hashing lets
    # them sit in sets and dict keys, as PyTorch's do.
    __hash__ = object.__hash__
    def argmax(self, axis: int | None = None) -> "Tensor":
        """Index of the first maximum (int64, no gradient)."""
        return Tensor(backend_for(self.data).argmax(self.data, axis))


def attach_methods(namespace: type) -> type:
    """Copy the methods (and properties) defined in the class body ``namespace`` onto ``Tensor``.

    Each ops module writes the Tensor methods of its ops in such a body, next
    to the ops themselves (``ops_math``: ``+``, ``exp``, ``sum``...;
    ``ops_layout``: ``reshape``, ``[]``, ``to``...), so that this module
    needs none of them and the import graph stays a tree.
    """
    for name, member in vars(namespace).items():
        if name in ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__"):
            continue
        function = member.fget if isinstance(member, property) else member
        if callable(function) and not function.__qualname__.startswith("Tensor."):  # (an alias: named once)
            function.__qualname__ = f"Tensor.{name}"
        setattr(Tensor, name, member)
    return namespace


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a new leaf tensor holding a copy of ``data``.

    Parameters
    ----------
    data : array_like or Tensor
        Python numbers and (nested) lists, NumPy arrays and scalars, or a Tensor
        (its values are copied; the result is a new leaf).
    requires_grad : bool
        Whether gradients should be accumulated into ``.grad``.
    dtype : dtype, optional
        The element type. When omitted, PyTorch's rules: Python floats become
        ``config.default_dtype`` (float32), Python ints int64, bools bool;
        NumPy arrays and scalars keep their dtype (a float64 array stays float64).

    Returns
    -------
    Tensor
        A CPU tensor with ``requires_grad`` set.

    Raises
    ------
    TypeError
        For data that is not numeric, or ``requires_grad=True`` with a
        non-floating dtype.
    """
    if isinstance(data, Tensor):
        data = data.numpy()
    return Tensor(_to_array(data, dtype), requires_grad=requires_grad)
