"""``Module``: the base of every layer and model, and ``Parameter``.

A module owns parameters and child modules, registered simply by assigning
them as attributes (``self.weight = Parameter(...)``, ``self.body =
Sequential(...)``). From that registry come ``parameters()``,
``named_parameters()`` (PyTorch's dotted names, ``0.weight`` inside a
``Sequential``), ``state_dict()``/``load_state_dict()``, ``train()``/``eval()``,
``zero_grad()`` and ``to()``. Registered objects are also stored as ordinary
instance attributes, so reading ``self.weight`` in ``forward`` costs a plain
attribute lookup.

The repr is Flux's: one line per layer, ``Linear(256 => 120)``,
``Conv2d(1 => 6, 5×5)``, containers indented.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from jitgrad import config
from jitgrad.autograd.backend import backend_for, get_backend
from jitgrad.autograd.tensor import Tensor

__all__ = ["Module", "Parameter"]


class Parameter(Tensor):
    """A Tensor that a :class:`Module` registers as a trainable parameter.

    A subclass (not a factory) so that assignment to a module attribute can
    recognise it; it behaves as any Tensor with ``requires_grad=True``.
    Unlike ``jitgrad.tensor``, NumPy float arrays keep their dtype and
    everything else becomes ``config.default_dtype``; the data is copied.

    Parameters
    ----------
    data : array_like
        Initial value; Python data and NumPy arrays are copied in
        ``dtype`` (default: ``config.default_dtype`` for non-array input, the
        array's own float dtype otherwise).
    requires_grad : bool, default True
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if dtype is None and not (isinstance(data, np.ndarray) and data.dtype in config.FLOAT_DTYPES):
            dtype = config.default_dtype
        if isinstance(data, np.ndarray) or not hasattr(data, "copy_to_host"):
            data = np.array(data, dtype=dtype, order="C", copy=True)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__() + ")"


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.split("\n"))


class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, assign parameters and
    sub-modules as attributes, and implement ``forward``. Calling the module
    calls ``forward``.

    Attributes
    ----------
    training : bool
        True in training mode (dropout active), False after :meth:`eval`.
    """

    training: bool

    def __init__(self) -> None:
        # Registries in assignment order; object.__setattr__ bypasses our own hook.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        registry = self.__dict__.get("_parameters")
        if registry is None:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning "
                                 f"attribute {name!r}")
        modules = self.__dict__["_modules"]
        if isinstance(value, Parameter):
            modules.pop(name, None)
            registry[name] = value
        elif isinstance(value, Module):
            registry.pop(name, None)
            modules[name] = value
        elif name in registry:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to parameter "
                                f"{name!r}; wrap it in nn.Parameter (or assign None)")
            # None removes the parameter (e.g. a layer built with bias=False).
            del registry[name]
        elif name in modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} to submodule "
                                f"{name!r}; expected a Module or None")
            del modules[name]
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (same as assigning the attribute)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}.register_parameter: expected a Parameter or None, "
                            f"got {type(param).__name__}")
        setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` under ``name`` (same as assigning the attribute)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: expected a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # ------------------------------------------------------------- traversal
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for each direct sub-module, in registration order."""
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        """Direct sub-modules, in registration order."""
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """``(dotted name, module)`` for this module (name ``prefix``) and all descendants, each once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and all descendants, each once, depth first."""
        for _, module in self.named_modules():
            yield module

    def get_submodule(self, target: str) -> Module:
        """The descendant at dotted path ``target`` (``""`` is this module), e.g. ``"body.0"``."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{type(self).__name__}.get_submodule: no submodule {target!r} "
                                     f"({type(module).__name__} has no child {part!r})")
            module = module._modules[part]
        return module

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` for every parameter, each once (shared ones under their first name).

        Names are PyTorch's: ``weight``, ``0.weight``, ``encoder.1.bias``.
        """
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter, each once; pass them to an optimizer."""
        for _, param in self.named_parameters():
            yield param

    def num_parameters(self) -> int:
        """Total number of scalars in all parameters."""
        return sum(int(np.prod(p.shape)) for p in self.parameters())

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode on this module and all descendants."""
        if not isinstance(mode, bool):
            raise TypeError(f"{type(self).__name__}.train: mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode (dropout off); same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to ``None`` (allocates nothing)."""
        for param in self.parameters():
            param.grad = None

    # ------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter as a NumPy copy, by dotted name (``0.weight``), in registration order."""
        return {name: param.numpy().copy() for name, param in self.named_parameters()}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy ``state_dict``'s arrays into this module's parameters, in place.

        Everything is checked before anything is written: on error the model
        is untouched. Parameters keep their identity (an optimizer holding
        them stays valid); values are cast to each parameter's dtype.

        Parameters
        ----------
        state_dict : dict of str to array_like
            As returned by :meth:`state_dict` or ``jitgrad.load``.
        strict : bool, default True
            Raise if keys are missing or unexpected. Shape mismatches raise
            regardless.

        Returns
        -------
        (missing, unexpected) : tuple of list of str
            Keys of the model absent from ``state_dict``, and keys of
            ``state_dict`` the model lacks (both empty under ``strict``).

        Raises
        ------
        KeyError
            With ``strict``, listing every missing and unexpected key.
        ValueError
            Listing every shape mismatch.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        params = dict(self.named_parameters())
        missing = [key for key in params if key not in state_dict]
        unexpected = [key for key in state_dict if key not in params]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if problems:
            raise KeyError(f"{name}.load_state_dict: " + "; ".join(problems))
        values = {}
        mismatches = []
        for key, param in params.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if value.shape != tuple(param.shape):
                mismatches.append(f"{key}: checkpoint {value.shape}, model {tuple(param.shape)}")
            values[key] = value
        if mismatches:
            raise ValueError(f"{name}.load_state_dict: shape mismatch for " + "; ".join(mismatches))
        for key, value in values.items():
            data = params[key].data
            if isinstance(data, np.ndarray):
                data[...] = value
            else:
                data.copy_to_device(np.array(value, dtype=data.dtype, order="C"))
        return missing, unexpected

    # ----------------------------------------------------------------- device
    def to(self, device: str | None = None, *, dtype: Any = None) -> Module:
        """Move every parameter to ``device`` and/or cast it to ``dtype``, in place; returns self.

        Parameters keep their identity (only their ``data`` changes), so
        create the optimizer after moving, or before: both work (optimizer
        state follows each parameter to its device at the next step).
        Gradients move with their parameters; a dtype cast drops them.
        ``"cpu"`` on a CPU model is a no-op.

        Parameters
        ----------
        device : str, optional
            ``"cpu"``, or ``"cuda"`` once a CUDA backend is registered.
        dtype : numpy dtype, optional
            ``float32`` or ``float64``.
        """
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype not in config.FLOAT_DTYPES:
                raise TypeError(f"{type(self).__name__}.to: dtype must be float32 or float64, got {dtype}")
        # get_backend also turns "cuda" without a GPU into a clear RuntimeError, before anything moves.
        target = get_backend(device).name if device is not None else None
        for param in self.parameters():
            if target is not None and param.device != target:
                param.data = param.to(target).data
                if param.grad is not None:
                    param.grad = Tensor(param.grad.to(target).data)
            if dtype is not None and param.dtype != dtype:
                param.data = backend_for(param.data).astype(param.data, dtype)
                param.grad = None
        return self

    # ---------------------------------------------------------------- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every subclass implements it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        """What goes between the parentheses of a leaf's repr; layers override it."""
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        body = ",\n".join(_indent(repr(child)) for child in self._modules.values())
        return f"{type(self).__name__}(\n{body},\n)"
