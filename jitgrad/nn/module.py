"""``Module``: the base of every layer and model, and ``Parameter``.

A module owns parameters and child modules, registered simply by assigning
them as attributes (``self.weight = Parameter(...)``, ``self.body =
Sequential(...)``), and buffers (state that is not trained, such as
BatchNorm's running statistics) registered with ``register_buffer``. From that
registry come ``parameters()``, ``named_parameters()`` (PyTorch's dotted
names, ``0.weight`` inside a ``Sequential``), ``buffers()``,
``state_dict()``/``load_state_dict()`` (parameters and persistent buffers,
under PyTorch's names), ``train()``/``eval()``, ``zero_grad()``,
``requires_grad_()`` and ``to()``/``cuda()``/``cpu()``. Registered objects
are also stored as ordinary instance attributes, so reading ``self.weight``
in ``forward`` costs a plain attribute lookup.

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


def _convert_state_value(key: str, value: Any, target: Tensor) -> np.ndarray | tuple[str, str]:
    """``value`` as a C-contiguous host array of ``target``'s shape and dtype, or ``(kind, message)``."""
    try:
        array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
    except Exception as error:  # whatever np.asarray raises for an odd object
        return "value", f"cannot convert {key} (a {type(value).__name__}) to an array: {error}"
    if array.dtype.kind not in "biuf":
        return "value", f"{key} has dtype {array.dtype}, expected a numeric array"
    if array.shape != tuple(target.shape):
        return "shape", f"{key}: checkpoint {array.shape}, model {tuple(target.shape)}"
    return np.array(array, dtype=target.dtype, order="C", copy=True)


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
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        registry = self.__dict__.get("_parameters")
        if registry is None:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning "
                                 f"attribute {name!r}")
        modules = self.__dict__["_modules"]
        buffers = self.__dict__["_buffers"]
        if name in buffers and not isinstance(value, (Parameter, Module)):
            # Assigning to a buffer replaces its value (PyTorch's ``self.running_mean = ...``).
            buffers[name] = value = self._as_buffer(name, value)
            object.__setattr__(self, name, value)
            return
        buffers.pop(name, None)
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
        self._buffers.pop(name, None)
        self._non_persistent.discard(name)
        object.__delattr__(self, name)

    def _as_buffer(self, name: str, value: Any) -> Tensor | None:
        """A buffer value as a Tensor outside the graph (arrays are wrapped without a copy)."""
        if value is None:
            return None
        if isinstance(value, Tensor):
            return value if not value.requires_grad else value.detach()
        if isinstance(value, np.ndarray) or hasattr(value, "copy_to_host"):
            return Tensor(value)
        raise TypeError(f"{type(self).__name__}: buffer {name!r} must be a Tensor, an array or None, "
                        f"got {type(value).__name__}")

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Register a buffer: module state that is not a parameter (e.g. BatchNorm's ``running_mean``).

        Buffers travel with :meth:`to`, are read as attributes
        (``self.running_mean``) and, when ``persistent``, appear in
        :meth:`state_dict` and are loaded by :meth:`load_state_dict` under
        ``name`` (dotted with the module path, as PyTorch). Assigning the
        attribute later replaces the value; ``None`` leaves the buffer
        registered but empty (it is then left out of the state dict).

        Parameters
        ----------
        name : str
            Attribute name; no dots, not already a parameter or sub-module.
        tensor : Tensor, ndarray, device array or None
            Arrays are wrapped in a Tensor without a copy.
        persistent : bool, default True
            Whether the buffer is part of the state dict.
        """
        owner = type(self).__name__
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{owner}.register_buffer: name must be a non-empty string without '.', got {name!r}")
        if name in self._parameters or name in self._modules or (
                hasattr(self, name) and name not in self._buffers):
            raise KeyError(f"{owner}.register_buffer: attribute {name!r} already exists")
        self._buffers[name] = self._as_buffer(name, tensor)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        object.__setattr__(self, name, self._buffers[name])

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
        yield from self._named_members("_parameters", prefix)

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter, each once; pass them to an optimizer."""
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """``(dotted name, buffer)`` for every buffer that holds a value, each once (``bn.running_mean``)."""
        yield from self._named_members("_buffers", prefix)

    def _named_members(self, registry: str, prefix: str) -> Iterator[tuple[str, Any]]:
        """``(dotted name, value)`` for every non-None entry of each module's ``registry`` dict, each object once."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def buffers(self) -> Iterator[Tensor]:
        """Every buffer that holds a value, each once."""
        for _, buf in self.named_buffers():
            yield buf

    def _state_entries(self) -> dict[str, Tensor]:
        """The state dict's Tensors by name: per module, its parameters then its persistent buffers (PyTorch's order)."""
        entries: dict[str, Tensor] = {}
        seen: set[int] = set()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            items = list(module._parameters.items()) + [
                (name, buf) for name, buf in module._buffers.items()
                if buf is not None and name not in module._non_persistent]
            for name, value in items:
                if id(value) in seen:
                    continue
                seen.add(id(value))
                entries[prefix + name] = value
        return entries

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

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` on every parameter (``False`` freezes the module); returns self.

        An optimizer built over all parameters skips frozen ones.
        """
        if not isinstance(requires_grad, bool):
            raise TypeError(f"{type(self).__name__}.requires_grad_: requires_grad must be a bool, "
                            f"got {type(requires_grad).__name__}")
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self) -> None:
        """Set every parameter's gradient to ``None`` (allocates nothing)."""
        for param in self.parameters():
            param.grad = None

    # ------------------------------------------------------------ state dict
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter and persistent buffer as a NumPy copy, by dotted name, in PyTorch's order.

        Names are PyTorch's (``0.weight``, ``1.running_mean``,
        ``1.num_batches_tracked``), so a PyTorch state dict of the same
        architecture loads by name and the other way round.
        """
        return {name: np.array(value.numpy(), copy=True) for name, value in self._state_entries().items()}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy ``state_dict``'s arrays into this module's parameters and buffers, in place.

        Everything is checked and converted before anything is written: on
        error the model is untouched. Parameters and buffers keep their
        identity (an optimizer holding them stays valid); values are cast to
        each one's dtype. Values may be NumPy arrays, Tensors or anything
        ``numpy.asarray`` takes (a PyTorch tensor on the CPU included).

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
            Listing every shape mismatch and every value that cannot be converted.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        targets = self._state_entries()
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if problems:
            raise KeyError(f"{name}.load_state_dict: " + "; ".join(problems))
        values = {}
        mismatches, bad_values = [], []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            converted = _convert_state_value(key, state_dict[key], target)
            if isinstance(converted, tuple):
                (mismatches if converted[0] == "shape" else bad_values).append(converted[1])
            else:
                values[key] = converted
        if mismatches or bad_values:
            parts = (["shape mismatch for " + "; ".join(mismatches)] if mismatches else []) + bad_values
            raise ValueError(f"{name}.load_state_dict: " + "; ".join(parts) + " (nothing was loaded)")
        for key, value in values.items():
            data = targets[key].data
            if isinstance(data, np.ndarray):
                data[...] = value
            else:
                data.copy_to_device(value)
        return missing, unexpected

    # ----------------------------------------------------------------- device
    def to(self, device: str | None = None, *, dtype: Any = None) -> Module:
        """Move every parameter and buffer to ``device`` and/or cast it to ``dtype``, in place; returns self.

        Only floating-point buffers are cast (``num_batches_tracked`` stays
        int64). Parameters keep their identity (only their ``data`` changes), so
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
        for buf in self.buffers():
            if target is not None and buf.device != target:
                buf.data = buf.to(target).data
            if dtype is not None and np.dtype(buf.dtype).kind == "f" and buf.dtype != dtype:
                buf.data = backend_for(buf.data).astype(buf.data, dtype)
        return self

    def cuda(self) -> Module:
        """Move parameters and buffers to the GPU (``to("cuda")``); returns self."""
        return self.to("cuda")

    def cpu(self) -> Module:
        """Move parameters and buffers to the CPU (``to("cpu")``); returns self."""
        return self.to("cpu")

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
