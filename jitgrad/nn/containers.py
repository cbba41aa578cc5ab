"""``ModuleList`` and ``ModuleDict``: containers that register their modules (PyTorch's names and behaviour).

A plain Python list or dict of layers assigned to a module attribute is not
registered, so its parameters would be invisible to ``parameters()``,
``state_dict()`` and ``to()``. These containers register each entry under
its index (``layers.0.weight``) or key (``heads.cls.weight``). They have no
``forward``: the owning module decides how to call the entries.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from jitgrad.nn.module import Module

__all__ = ["ModuleList", "ModuleDict"]


def _check_module(owner: str, what: str, module: Any) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{owner}: {what} must be a Module, got {type(module).__name__}")
    return module


class ModuleList(Module):
    """A list of modules, registered under ``"0"``, ``"1"``, ...; indexable, iterable, appendable.

    Parameters
    ----------
    modules : iterable of Module, optional
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _items(self) -> list[Module]:
        return list(self._modules.values())

    def _index(self, index: Any) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"ModuleList indices must be ints or slices, got {type(index).__name__}")
        n = len(self._modules)
        if not -n <= index < n:
            raise IndexError(f"ModuleList index {index} out of range for {n} modules")
        return int(index) % n

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(self._items()[index])
        return self._items()[self._index(index)]

    def __setitem__(self, index: int, module: Module) -> None:
        setattr(self, str(self._index(index)), _check_module("ModuleList", "an entry", module))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end; returns self."""
        setattr(self, str(len(self._modules)), _check_module("ModuleList.append", "module", module))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Append every module of ``modules``; returns self."""
        if isinstance(modules, Module) and not isinstance(modules, ModuleList):
            raise TypeError("ModuleList.extend: expected an iterable of Modules, got a single "
                            f"{type(modules).__name__}")
        for module in list(modules):
            self.append(module)
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(): iterate over it in the owning module's forward")


class ModuleDict(Module):
    """A dict of modules, registered under their string keys, in insertion order.

    Parameters
    ----------
    modules : mapping or iterable of (str, Module) pairs, optional
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict keys must be non-empty strings without '.', got {key!r}")
        if key in self.__dict__ and key not in self._modules:
            raise KeyError(f"ModuleDict key {key!r} clashes with an attribute of ModuleDict")
        return key

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r}; keys are {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        setattr(self, self._check_key(key), _check_module("ModuleDict", f"entry {key!r}", module))

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018  (raises the KeyError above for an unknown key)
        delattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def keys(self) -> list[str]:
        """The keys, in insertion order."""
        return list(self._modules)

    def values(self) -> list[Module]:
        """The modules, in insertion order."""
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        """``(key, module)`` pairs, in insertion order."""
        return list(self._modules.items())

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace entries from a mapping or from ``(key, module)`` pairs."""
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in list(pairs):
            self[key] = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(): index it in the owning module's forward")
