"""Kernel launches without Numba's per-call typing: the second launch of a signature is a plain driver call.

On an H200 a Numba launch cost the host 19 us with one array argument and 55 us
with six arrays and four scalars (``bench/gpu_overhead.py``), longer than most
of jitgrad's kernels run on the GPU. Most of it is redone identically on every
call: typing each argument, looking up the compiled overload, building the
launch configuration, and marshalling each array through a memory-view shim.

:class:`FastKernel` wraps one ``@cuda.jit`` kernel. The first launch with a new
argument signature goes through Numba as usual (compiling if needed); then the
signature's recipe is kept: the compiled kernel and one converter per argument,
taken from the argument types of the compiled overload, packing the same
parameters Numba's ``_prepare_args`` packs (an array: meminfo and parent as 0,
size, itemsize, data pointer, shape, byte strides; a scalar: its ctypes value).
Later launches with that signature build the parameter list and call the
driver's launch on the default stream, which is also Numba's default.

The signature of an argument is what Numba types it by: a device array's dtype,
ndim and layout (computed by Numba's own rule, ``DeviceNDArray._numba_type_``),
a scalar's Python type, a tuple's (shapes and strides) its elements' signatures.
Anything else (host arrays, other array types, integers outside int64, launch
configurations with a stream or shared memory) takes Numba's path every time.
``JITGRAD_CUDA_FAST_LAUNCH=0`` turns the wrapper off; under the simulator it is
never installed.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any, Callable, Iterable

import numpy as np

_SCALARS = (int, float, bool, np.float32, np.float64, np.int32, np.int64, np.bool_, np.uint32, np.uint64,
            np.int8, np.int16, np.uint8, np.uint16)
_INT64 = 1 << 63


class _NotFast(Exception):
    """An argument Numba's path must handle."""


def _arg_key(a: Any, device_array: type) -> Any:
    t = type(a)
    if t is device_array:
        # Numba's rule (DeviceNDArray._numba_type_): C before F, and a broadcast array (a zero
        # stride in a non-empty array) is "A" whatever its flags say.
        flags = a.flags
        broadcast = 0 in a.strides and a.size != 0
        if flags["C_CONTIGUOUS"] and not broadcast:
            layout = "C"
        elif flags["F_CONTIGUOUS"] and not broadcast:
            layout = "F"
        else:
            layout = "A"
        return (a.dtype, a.ndim, layout)
    if t in _SCALARS:
        if t is int and not -_INT64 <= a < _INT64:
            raise _NotFast  # Numba types it uint64 or refuses it
        return t
    if t is tuple:  # shapes and strides: Numba types a tuple by its elements' types
        return (tuple, *[_arg_key(e, device_array) for e in a])
    raise _NotFast


def _pack_array(a: Any, params: list) -> None:
    ptr = a.device_ctypes_pointer.value or 0
    params += (0, 0, a.size, a.dtype.itemsize, ptr, *a.shape, *a.strides)


def _converter(ty: Any) -> Callable[[Any, list], None] | None:
    """The parameter packer of one argument of numba type ``ty`` (as Numba's ``_prepare_args``), or None."""
    from numba.cuda import types

    if isinstance(ty, types.Array):
        return _pack_array
    if isinstance(ty, types.Boolean):
        return lambda v, params: params.append(v)
    if isinstance(ty, types.Integer):
        ctype = getattr(ctypes, f"c_{ty}")
        return lambda v, params: params.append(ctype(v))
    if ty == types.float32:
        return lambda v, params: params.append(ctypes.c_float(v))
    if ty == types.float64:
        return lambda v, params: params.append(ctypes.c_double(v))
    if isinstance(ty, types.BaseTuple):  # its elements' parameters in turn (as _prepare_args)
        converters = [_converter(t) for t in ty]
        if any(c is None for c in converters):
            return None

        def pack_tuple(v: tuple, params: list) -> None:
            for convert, e in zip(converters, v):
                convert(e, params)

        return pack_tuple
    return None


class FastKernel:
    """A ``@cuda.jit`` kernel whose launches of a known signature skip Numba's dispatch.

    ``kernel[grid, block](*args)`` as before; every other attribute is the wrapped dispatcher's.
    """

    def __init__(self, dispatcher: Any) -> None:
        from numba.cuda import dispatcher as nd
        from numba.cuda.cudadrv.devicearray import DeviceNDArray

        self.dispatcher = dispatcher
        self._recipes: dict[tuple, Any] = {}
        self._device_array = DeviceNDArray
        self._nd = nd
        functools.update_wrapper(self, dispatcher.py_func, updated=())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dispatcher, name)

    def __getitem__(self, config: Any) -> Callable[..., None]:
        if type(config) is tuple and len(config) == 2:
            return functools.partial(self._launch, config[0], config[1])
        return self.dispatcher[config]

    def _launch(self, griddim: Any, blockdim: Any, *args: Any) -> None:
        device_array = self._device_array
        try:
            key = tuple([_arg_key(a, device_array) for a in args])
            recipe = self._recipes.get(key)
        except _NotFast:
            key = recipe = False
        if not recipe:  # Numba's launch (it compiles if needed); a new signature's recipe serves the next call
            self.dispatcher[griddim, blockdim](*args)
            if recipe is None:
                self._recipes[key] = self._recipe(args)
            return
        kernel, converters = recipe
        params: list = []
        for convert, a in zip(converters, args):
            convert(a, params)
        nd = self._nd
        nd.launch(_default_stream(nd), _launch_config(nd, griddim, blockdim),
                  kernel._codelibrary.get_cufunc().kernel, *params)

    def _recipe(self, args: tuple) -> Any:
        """``(compiled kernel, converters)`` for ``args``' signature, or False when Numba must launch it."""
        d = self.dispatcher
        argtypes = tuple(d.typeof_pyval(a) for a in args)
        kernel = d.overloads.get(argtypes)
        if (kernel is None or kernel.debug or kernel.cooperative or getattr(kernel, "extensions", None)
                or tuple(kernel.argument_types) != argtypes):
            return False
        converters = [_converter(ty) for ty in argtypes]
        if any(c is None for c in converters):
            return False
        return kernel, converters


@functools.lru_cache(maxsize=None)
def _launch_config(nd: Any, griddim: Any, blockdim: Any) -> Any:
    """The driver's launch configuration of a ``[griddim, blockdim]`` launch, normalised as Numba does."""
    griddim, blockdim = nd.normalize_kernel_dimensions(griddim, blockdim)
    if nd.CUDA_CORE_GE_1_0:
        return nd.LaunchConfig(grid=griddim, block=blockdim, shmem_size=0, is_cooperative=False)
    return nd.LaunchConfig(grid=griddim, block=blockdim, shmem_size=0, cooperative_launch=False)


@functools.lru_cache(maxsize=None)
def _default_stream(nd: Any) -> Any:
    return nd.driver._to_core_stream(0)


def accelerate(modules: Iterable[Any]) -> int:
    """Wrap every ``@cuda.jit`` kernel (not device functions) in ``modules``' globals; how many were wrapped.

    No-op with ``JITGRAD_CUDA_FAST_LAUNCH=0``. Call only off the simulator.
    """
    if os.environ.get("JITGRAD_CUDA_FAST_LAUNCH", "1") == "0":
        return 0
    from numba.cuda.dispatcher import CUDADispatcher

    wrapped = 0
    for module in modules:
        for name, obj in list(vars(module).items()):
            if isinstance(obj, CUDADispatcher) and not obj.targetoptions.get("device"):
                setattr(module, name, FastKernel(obj))
                wrapped += 1
    return wrapped
