"""A caching device allocator for Numba: freed device memory is kept and handed out again.

Numba gives every device array its own ``cuMemAlloc`` and, once the array is
dropped, a ``cuMemFree`` (batched). A training step allocates the same few
dozen sizes every step, so most of that is wasted work, and ``cuMemFree``
waits for the device to go idle. Like PyTorch's caching allocator, this
External Memory Management plugin keeps freed blocks in bins by rounded size;
the next request of that size takes one back with no driver call.

Reuse is safe because jitgrad launches everything on the default stream: a
block is returned when its last array is dropped, and every kernel that will
use it next is queued after every kernel that used it before. Code that runs
jitgrad's arrays on other streams should turn the pool off
(``JITGRAD_CUDA_POOL=0``). When the device runs out of memory the cached blocks
are released and the allocation is tried again.

:func:`install` is called when ``jitgrad.kernels.cuda`` is imported; it only
takes effect if Numba has not created its CUDA context yet (the plugin is
chosen when the context is made) and no other plugin was chosen
(``NUMBA_CUDA_MEMORY_MANAGER``).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from numba.cuda.cudadrv import driver as cudadrv

#: Requests up to this size are rounded up to a multiple of 512 bytes, larger ones to a multiple of 1 MiB.
_SMALL = 1 << 20


def bin_size(size: int) -> int:
    """The size of the block that serves a request of ``size`` bytes (the bin it lives in)."""
    step = 512 if size <= _SMALL else _SMALL
    return -(-size // step) * step


def install() -> bool:
    """Make the caching allocator Numba's memory manager; True when it was installed.

    No-op with ``JITGRAD_CUDA_POOL=0``, when another plugin was chosen, or when Numba's CUDA
    context already exists (then Numba's own manager stays). Not for the simulator (it has no
    device memory to manage; ``jitgrad.kernels.cuda`` does not import this module there).
    """
    from numba.cuda import config as cuda_config

    if os.environ.get("JITGRAD_CUDA_POOL", "1") == "0" or cuda_config.CUDA_MEMORY_MANAGER != "default":
        return False
    if cudadrv._memory_manager not in (None, CachingMemoryManager):
        return False  # a context exists (or someone chose a plugin): leave it alone
    if cudadrv._memory_manager is None:
        cudadrv.set_memory_manager(CachingMemoryManager)
    return True


class CachingMemoryManager(cudadrv.NumbaCUDAMemoryManager):
    """Numba's own manager (pinned host memory, IPC, memory info), with device blocks cached by size."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bins: dict[int, list[Any]] = {}
        self._lock = threading.Lock()
        self.cached_bytes = 0

    def memalloc(self, size: int) -> Any:
        block = bin_size(size)
        with self._lock:
            free = self._bins.get(block)
            ptr = free.pop() if free else None
            if ptr is not None:
                self.cached_bytes -= block
        if ptr is None:
            ptr = self._allocate(block)
        mem = cudadrv.AutoFreePointer(weakref.proxy(self.context), ptr, size,
                              finalizer=_returner(weakref.ref(self), block, ptr))
        # As in Numba's manager: the table holds the pointer object alive; the arrays hold counted
        # references (OwnedPointer), and the last one dropped runs the finalizer.
        self.allocations[ptr] = mem
        return mem.own()

    def _allocate(self, block: int) -> Any:
        # Out of memory: give the cached blocks back to the driver and try once more. (Numba's own
        # retry flushes its deferred frees, which this manager never queues device blocks on.)
        try:
            return cudadrv.driver.cuMemAlloc(block)
        except cudadrv.CudaAPIError as e:
            if e.code != cudadrv.binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY:
                raise
            self.release_cached()
            return cudadrv.driver.cuMemAlloc(block)

    def _give_back(self, block: int, ptr: Any) -> None:
        with self._lock:
            self._bins.setdefault(block, []).append(ptr)
            self.cached_bytes += block

    def release_cached(self) -> None:
        """Free every cached block (the arrays still alive keep theirs)."""
        with self._lock:
            bins, self._bins, self.cached_bytes = self._bins, {}, 0
        for ptrs in bins.values():
            for ptr in ptrs:
                cudadrv.driver.cuMemFree(ptr)

    def reset(self) -> None:
        self.release_cached()
        super().reset()


def _returner(manager_ref: Any, block: int, ptr: Any) -> Any:
    """The finalizer of one block: back into its bin (no reference to the array, none to the manager)."""

    def give_back() -> None:
        manager = manager_ref()
        if manager is not None:
            manager.allocations.pop(ptr, None)
            manager._give_back(block, ptr)

    return give_back
