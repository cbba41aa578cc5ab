"""The caching device allocator (kernels/cuda/_pool.py), on a stand-in driver: no GPU needed.

The real allocator runs on the GPU (bench/gpu_check.py, bench/gpu_overhead.py); here the
driver's cuMemAlloc/cuMemFree are counted fakes, so the bookkeeping is checked everywhere:
a dropped array's block is handed out again, bins do not mix sizes, and running out of
memory releases the cache and retries.
"""

from __future__ import annotations

import gc

import pytest

numba_cuda_config = pytest.importorskip("numba.cuda").config
if numba_cuda_config.ENABLE_CUDASIM:  # the simulator has its own driver module; this test is the CPU process's
    pytest.skip("the CPU test process checks the allocator (the simulator has no device memory)",
                allow_module_level=True)

from numba.cuda.cudadrv import driver as cuda_driver  # noqa: E402

from jitgrad.kernels.cuda import _pool  # noqa: E402


class FakeDriver:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.used, self.next_ptr = capacity, 0, 4096
        self.allocs: list[int] = []
        self.frees: list[int] = []
        self.sizes: dict[int, int] = {}

    def cuMemAlloc(self, size: int) -> int:  # noqa: N802 - the driver's name
        if self.used + size > self.capacity:
            raise cuda_driver.CudaAPIError(cuda_driver.binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY, "out of memory")
        ptr, self.next_ptr = self.next_ptr, self.next_ptr + size
        self.used += size
        self.sizes[ptr] = size
        self.allocs.append(size)
        return ptr

    def cuMemFree(self, ptr: int) -> None:  # noqa: N802
        self.used -= self.sizes.pop(ptr)
        self.frees.append(ptr)


class FakeContext:
    pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    drv = FakeDriver(capacity=8 << 20)
    monkeypatch.setattr(cuda_driver, "driver", drv)
    context = FakeContext()
    manager = _pool.CachingMemoryManager(context=context)
    yield drv, manager, context


@pytest.mark.parametrize(("size", "block"), [(1, 512), (512, 512), (513, 1024), (1 << 20, 1 << 20),
                                             ((1 << 20) + 1, 2 << 20), (11_075_584, 11 << 20)])
def test_bin_sizes(size: int, block: int) -> None:
    assert _pool.bin_size(size) == block


def test_a_dropped_block_is_handed_out_again(fake) -> None:
    drv, manager, _ = fake
    first = [manager.memalloc(1000) for _ in range(3)]
    assert drv.allocs == [1024] * 3
    pointers = {int(p.device_pointer) for p in first}
    del first
    gc.collect()
    assert manager.cached_bytes == 3 * 1024 and not manager.allocations
    again = [manager.memalloc(900) for _ in range(3)]  # the same bin
    assert drv.allocs == [1024] * 3, "no new driver allocation"
    assert {int(p.device_pointer) for p in again} == pointers
    assert manager.cached_bytes == 0 and len(manager.allocations) == 3
    other = manager.memalloc(4000)  # another bin: a new block
    assert drv.allocs[-1] == 4096 and drv.frees == []
    del other, again


def test_running_out_releases_the_cache_and_retries(fake) -> None:
    drv, manager, _ = fake
    big = manager.memalloc(6 << 20)
    del big
    gc.collect()
    assert manager.cached_bytes == 6 << 20 and drv.used == 6 << 20
    other = manager.memalloc(4 << 20)  # 6 + 4 MiB exceed the 8 MiB device: the cached block is freed first
    assert drv.frees and manager.cached_bytes == 0 and drv.used == 4 << 20
    del other


def test_reset_frees_the_cache(fake) -> None:
    drv, manager, _ = fake
    blocks = [manager.memalloc(s) for s in (100, 5000, 2 << 20)]
    del blocks
    gc.collect()
    manager.reset()
    assert manager.cached_bytes == 0 and drv.used == 0 and len(drv.frees) == 3


def test_install_respects_an_existing_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda_driver, "_memory_manager", cuda_driver.NumbaCUDAMemoryManager)
    assert _pool.install() is False  # a context (or a user's plugin) already chose
    monkeypatch.setattr(cuda_driver, "_memory_manager", None)
    monkeypatch.setenv("JITGRAD_CUDA_POOL", "0")
    assert _pool.install() is False and cuda_driver._memory_manager is None
    monkeypatch.delenv("JITGRAD_CUDA_POOL")
    assert _pool.install() is True and cuda_driver._memory_manager is _pool.CachingMemoryManager

