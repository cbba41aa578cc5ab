"""``retain_freed_memory``: an explicit, process-wide opt-in to glibc malloc settings that keep freed memory.

Inference on an imported graph allocates each op's output afresh. glibc
serves blocks above its mmap threshold with ``mmap`` and returns them with
``munmap``, so every call page-faults its large activations in again (at
ResNet-50 batch 16: 62 k faults and about 1 s of system time per call).
Raising the threshold and the trim threshold keeps freed blocks in the heap
for the next call. This changes the allocator of the whole process, so
jitgrad never does it on its own: the user calls this function.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["retain_freed_memory"]

# mallopt parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX): 32 MiB.
_MMAP_MAX = 32 * 1024 * 1024


def retain_freed_memory(mmap_threshold: int = _MMAP_MAX, trim_threshold: int = 1024 ** 3,
                        top_pad: int = 256 * 1024 ** 2) -> bool:
    """Tell glibc malloc to keep freed memory for reuse (process-wide; opt-in, never called by jitgrad).

    The same as starting the process with ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` set: blocks up to
    ``mmap_threshold`` bytes come from the heap instead of fresh mappings,
    the heap is only given back to the system above ``trim_threshold`` bytes
    of free space at its top, and it grows ``top_pad`` bytes at a time. The
    process then keeps up to about ``trim_threshold`` bytes it no longer uses.

    Parameters
    ----------
    mmap_threshold, trim_threshold, top_pad : int
        Bytes; ``mmap_threshold`` at most 32 MiB (glibc's limit), the others below 2 GiB (a C int), all
        >= 0. The defaults suit ResNet-50 at batch 16 (its live activations stay under 1 GiB).

    Returns
    -------
    bool
        True when glibc took all three settings; False where the C library is
        not glibc (macOS, Windows, musl): nothing is changed there.
    """
    for name, value, top in [("mmap_threshold", mmap_threshold, _MMAP_MAX),
                             ("trim_threshold", trim_threshold, 2 ** 31 - 1), ("top_pad", top_pad, 2 ** 31 - 1)]:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise ValueError(f"retain_freed_memory: {name} must be an int of bytes in [0, {top}], got {value!r}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl has mallopt as a no-op stub
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(p, v) == 1 for p, v in [(_M_MMAP_THRESHOLD, mmap_threshold),
                                                (_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad)])
