"""The fast kernel launch (kernels/cuda/_fastlaunch.py), checked without a GPU.

The wrapper must type each argument exactly as Numba does (a signature that
lumped two Numba types together would run one's compiled code on the other's
data) and pack exactly the parameters Numba's ``_prepare_args`` packs. Both are
compared here with Numba's own functions on device-array descriptors (no
device memory is touched); the launch logic runs on a stand-in dispatcher.
The real launches run on the GPU in bench/gpu_check.py and bench/gpu_overhead.py.
"""

from __future__ import annotations

import ctypes
import types as pytypes

import numpy as np
import pytest

numba_cuda = pytest.importorskip("numba.cuda")
if numba_cuda.config.ENABLE_CUDASIM:
    pytest.skip("the CPU test process checks the launcher (the simulator has no driver launch)",
                allow_module_level=True)

from numba.cuda.cudadrv.devicearray import DeviceNDArray  # noqa: E402
from numba.cuda.dispatcher import CUDADispatcher, _Kernel  # noqa: E402
from numba.cuda.typing.typeof import typeof  # noqa: E402

import jitgrad.kernels.cuda as kc  # noqa: E402
from jitgrad.kernels.cuda import _fastlaunch  # noqa: E402


class FakeMemory:
    device_ctypes_pointer = ctypes.c_size_t(4096)


def device_array(shape, strides, dtype=np.float32):
    return DeviceNDArray(shape, strides, np.dtype(dtype), gpu_data=FakeMemory())


ARRAYS = {
    "C": device_array((4, 5), (20, 4)),
    "column slice": device_array((4, 3), (20, 8)),
    "F": device_array((4, 5), (4, 16)),
    "broadcast": device_array((4, 5), (0, 4)),
    "float64 row of a wider array": device_array((1, 5), (20, 4), np.float64),
    "C float64": device_array((2, 3), (24, 8), np.float64),
    "1-d": device_array((7,), (4,)),
    "4-d": device_array((2, 3, 4, 5), (240, 80, 20, 4)),
}
SCALARS = [3, -(2**40), True, np.float32(1.5), 2.5, np.int32(4), np.float64(0.25), np.bool_(False)]
#: Shapes and strides (the elementwise and reduction kernels' arguments): before, every launch of a
#: kernel taking one went through Numba's path (6 of a LeNet-5 step's 54 on the H200).
TUPLES = [(4, 5), (np.int64(2), 3, 7), (), (1,), (2, 2.5, True), ((1, 2), np.int32(3))]
NO_DRIVER = pytypes.SimpleNamespace(extensions=[])  # what _prepare_args reads off its kernel (and calls: tuples)
NO_DRIVER._prepare_args = lambda *args: _Kernel._prepare_args(NO_DRIVER, *args)


@pytest.mark.parametrize("name", ARRAYS)
def test_arrays_are_typed_and_packed_as_numba_does(name: str) -> None:
    a = ARRAYS[name]
    ty = typeof(a)
    assert _fastlaunch._arg_key(a, DeviceNDArray) == (a.dtype, a.ndim, ty.layout)
    ours, numbas = [], []
    _fastlaunch._converter(ty)(a, ours)
    _Kernel._prepare_args(NO_DRIVER, ty, a, 0, [], numbas)
    assert ours == numbas


def test_one_signature_is_one_numba_type() -> None:
    keys: dict = {}
    for a in ARRAYS.values():
        keys.setdefault(_fastlaunch._arg_key(a, DeviceNDArray), set()).add(typeof(a))
    assert all(len(types) == 1 for types in keys.values())
    assert len(keys) == len({typeof(a) for a in ARRAYS.values()})


@pytest.mark.parametrize("value", SCALARS + TUPLES, ids=repr)
def test_scalars_are_packed_as_numba_does(value) -> None:
    ty = typeof(value)
    ours, numbas = [], []
    _fastlaunch._converter(ty)(value, ours)
    _Kernel._prepare_args(NO_DRIVER, ty, value, 0, [], numbas)
    assert [type(p) for p in ours] == [type(p) for p in numbas]
    assert [getattr(p, "value", p) for p in ours] == [getattr(p, "value", p) for p in numbas]


def test_one_tuple_signature_is_one_numba_type() -> None:
    values = [*TUPLES, (4, 6), (np.int64(4), 5), (4, np.int32(5)), (2.5, 2, True)]
    keys: dict = {}
    for v in values:
        keys.setdefault(_fastlaunch._arg_key(v, DeviceNDArray), set()).add(typeof(v))
    assert all(len(types) == 1 for types in keys.values())
    assert _fastlaunch._arg_key((4, 5), DeviceNDArray) == _fastlaunch._arg_key((9, 1), DeviceNDArray)


@pytest.mark.parametrize("value", [np.ones(3, np.float32), 2**64, "x", None, (2, 2**64), (ARRAYS["C"], np.ones(2))],
                         ids=repr)
def test_other_arguments_take_numbas_path(value) -> None:
    with pytest.raises(_fastlaunch._NotFast):
        _fastlaunch._arg_key(value, DeviceNDArray)


class FakeDispatcher:
    """Numba's dispatcher as FastKernel sees it: slow launches are recorded, one overload per signature."""

    def __init__(self) -> None:
        self.slow: list = []
        self.overloads: dict = {}
        self.py_func = lambda x, s, out: None

    def typeof_pyval(self, a):
        return typeof(a)

    def __getitem__(self, config):
        def launch(*args):
            self.slow.append((config, args))
            types = tuple(typeof(a) for a in args)
            self.overloads[types] = pytypes.SimpleNamespace(
                argument_types=list(types), debug=False, cooperative=False, extensions=[],
                _codelibrary=pytypes.SimpleNamespace(get_cufunc=lambda: pytypes.SimpleNamespace(kernel="cufunc")))
        return launch


def test_the_second_launch_of_a_signature_is_a_driver_call(monkeypatch: pytest.MonkeyPatch) -> None:
    driver_calls: list = []
    monkeypatch.setattr(_fastlaunch, "_default_stream", lambda nd: "stream0")
    monkeypatch.setattr(_fastlaunch, "_launch_config", lambda nd, g, b: (g, b))
    fake = FakeDispatcher()
    kernel = _fastlaunch.FastKernel(fake)
    monkeypatch.setattr(kernel._nd, "launch", lambda *a: driver_calls.append(a))
    x, out = ARRAYS["C"], ARRAYS["C"]
    kernel[8, 256](x, np.float32(2), out)
    assert len(fake.slow) == 1 and not driver_calls  # compiled (here: recorded) by Numba's path
    kernel[16, 128](x, np.float32(3), out)
    assert len(fake.slow) == 1 and len(driver_calls) == 1
    stream, config, cufunc, *params = driver_calls[0]
    numbas: list = []
    for a in (x, np.float32(3), out):
        _Kernel._prepare_args(NO_DRIVER, typeof(a), a, 0, [], numbas)
    assert (stream, config, cufunc) == ("stream0", (16, 128), "cufunc")
    assert [getattr(p, "value", p) for p in params] == [getattr(p, "value", p) for p in numbas]
    kernel[8, 256](x, 2.0, out)  # a Python float: another signature (float64), Numba's path first
    assert len(fake.slow) == 2
    kernel[8, 256](np.ones((4, 5), np.float32), np.float32(1), out)  # a host array: always Numba's path
    kernel[8, 256](np.ones((4, 5), np.float32), np.float32(1), out)
    assert len(fake.slow) == 4 and len(driver_calls) == 1
    kernel[8, 256, 0, 0](x, np.float32(2), out)  # a stream and shared memory: Numba's
    assert len(fake.slow) == 5
    kernel[8, 256](x, (4, 5), out)  # a shape: Numba's path once, then the driver's
    kernel[8, 256](x, (2, 3), out)
    assert len(fake.slow) == 6 and len(driver_calls) == 2
    numbas = []
    for a in (x, (2, 3), out):
        _Kernel._prepare_args(NO_DRIVER, typeof(a), a, 0, [], numbas)
    assert [getattr(p, "value", p) for p in driver_calls[1][3:]] == [getattr(p, "value", p) for p in numbas]


def test_kernels_are_wrapped_and_device_functions_are_not() -> None:
    from jitgrad.kernels.cuda import _launch, activations

    assert isinstance(activations._relu_kernel, _fastlaunch.FastKernel)
    assert isinstance(activations._relu_kernel.dispatcher, CUDADispatcher)
    assert activations._relu_kernel.py_func.__name__ == "_relu_kernel"  # the PTX test compiles py_func
    assert isinstance(_launch.block_sum, CUDADispatcher)  # called from kernels: must stay Numba's
    assert kc.relu.__module__ == "jitgrad.kernels.cuda.activations"


@pytest.mark.parametrize(("grid", "block"), [(8, 256), ((4, 2), 128), (1, (16, 16))])
def test_the_launch_configuration_is_numbas(grid, block) -> None:
    from numba.cuda import dispatcher as nd

    g, b = nd.normalize_kernel_dimensions(grid, block)  # what Dispatcher.__getitem__ hands _Kernel.launch
    numbas = nd.LaunchConfig(grid=g, block=b, shmem_size=0, is_cooperative=False) if nd.CUDA_CORE_GE_1_0 else \
        nd.LaunchConfig(grid=g, block=b, shmem_size=0, cooperative_launch=False)
    assert repr(_fastlaunch._launch_config(nd, grid, block)) == repr(numbas)
