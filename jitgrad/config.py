"""The one place for jitgrad's settings.

Everything a user may want to tune lives here: CPU threads, the fastmath flag
set the CPU kernels are compiled with, CUDA threads per block, the default
floating dtype and where datasets are looked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# Numba's OpenMP pool (and OpenBLAS's, and PyTorch's) busy-waits between
# parallel regions by default. When two pools share a process, as NumPy's BLAS
# and jitgrad's kernels do in any real program, each spins on the cores the
# other needs: a 5 ms conv then takes 50 ms; on a machine shared with other
# processes a spinning thread holds its core for a whole time slice (a LeNet-5
# step 2x slower with even a 2000-spin wait). Passive waiting removes that
# cliff; its price is a wake-up per parallel region: microseconds on bare
# metal, ~100 us on a VM whose idle vCPUs halt (bench/omp_wait.py measures
# both), which the kernels' serial thresholds account for. Set before numba
# starts its pool; an explicit OMP_WAIT_POLICY (or GOMP_SPINCOUNT) from the
# user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: glibc's malloc serves a block above its mmap threshold (128 KiB at start,
#: raised to the size of the largest such block freed, at most 32 MiB) with a
#: fresh ``mmap`` and unmaps it on ``free``, and it returns the heap's free top
#: to the kernel beyond twice that threshold. A training step allocates and
#: frees activations of megabytes every step, so each step touched fresh
#: pages: 8,000 page faults a Keras-convnet step at batch 128 (2,000 for
#: LeNet-5), ~4 us each on a VM, 55 ms a step against 20 ms without them, and
#: the same in PyTorch (9,600 faults, 50 against 36 ms). At import jitgrad
#: therefore fixes the threshold at glibc's maximum and trims the top only
#: beyond ``MALLOC_TRIM_THRESHOLD``: blocks up to 32 MiB are reused from the
#: heap, larger ones still come and go by ``mmap``, and a process keeps up to
#: 1 GiB of freed top of heap (PyTorch's CUDA caching allocator keeps all of
#: it). ``JITGRAD_MALLOC_TUNING=0``, or any of glibc's own ``MALLOC_*_``
#: variables or ``glibc.malloc`` tunables set in the environment, leaves
#: malloc as it is. See docs/performance.md (Page faults).
MALLOC_MMAP_THRESHOLD = 32 << 20
MALLOC_TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (<malloc.h>)
_GLIBC_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TOP_PAD_")


def _tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds (see above); whether they were set."""
    if os.environ.get("JITGRAD_MALLOC_TUNING", "1") == "0":
        return False
    if any(name in os.environ for name in _GLIBC_MALLOC_ENV) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
    except (AttributeError, ValueError, OSError):  # not glibc (macOS, Windows, musl)
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # a process without the symbol in reach: nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD))


#: Whether this process's malloc thresholds were set at import (see above).
malloc_tuned: bool = _tune_malloc()

#: LLVM fast-math flags for every ``@njit`` kernel. ``nnan`` and ``ninf`` are
#: deliberately absent: softmax and log-sum-exp must see ``-inf`` logits.
FASTMATH: frozenset[str] = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

#: Threads per block for CUDA launches. Read at launch time (not compile
#: time), so tests may shrink it to exercise multi-block and tail paths.
cuda_threads_per_block: int = int(os.environ.get("JITGRAD_CUDA_THREADS_PER_BLOCK", "256"))

#: Floating dtype of new parameters and of ``jitgrad.tensor`` from Python data.
default_dtype: np.dtype = np.dtype(np.float32)

#: Float dtypes every kernel accepts.
FLOAT_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.float32), np.dtype(np.float64))

DATA_ENV_VAR = "JITGRAD_DATA"


def data_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the dataset directory.

    Order: the explicit ``root`` argument, then the ``JITGRAD_DATA``
    environment variable, then ``~/.cache/jitgrad``.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "jitgrad"


#: Whether float32 ``matmul`` and the activations run on jitgrad's GEMM helper threads
#: (``kernels/cpu/_team.py``, ``_team_spans.py``; Linux x86-64 only): ``JITGRAD_GEMM_TEAM=0`` at
#: start-up, or ``jitgrad.config.gemm_team = False`` at any time, sends their work back to one
#: thread and Numba's OpenMP pool (docs/guarantees.md).
gemm_team: bool = os.environ.get("JITGRAD_GEMM_TEAM", "1").strip().lower() not in ("0", "false", "no", "off")


def set_num_threads(n: int) -> None:
    """Set the number of threads the parallel CPU kernels use.

    This maps onto ``numba.set_num_threads`` and so is capped by
    ``NUMBA_NUM_THREADS`` (by default the number of cores), which must be set
    before numba is imported to raise the cap. ``OMP_NUM_THREADS`` and BLAS
    thread settings do not affect jitgrad's kernels (they call no BLAS); they
    only affect NumPy code, such as the reference kernels.
    """
    import numba

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        raise ValueError(f"set_num_threads: n must be in [1, {limit}] (NUMBA_NUM_THREADS), got {n}")
    numba.set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of threads the parallel CPU kernels currently use."""
    import numba

    return numba.get_num_threads()


# ----------------------------------------------------------------------------- compiled-kernel cache

CACHE_ENV_VAR = "JITGRAD_CACHE_DIR"


def cache_dir() -> Path:
    """Where Numba's on-disk cache of jitgrad's compiled kernels lives.

    One location for every entry point (``make``, ``python script.py``,
    ``python -m jitgrad.compile``, pytest), so kernels compiled once are
    reused everywhere. Order: ``JITGRAD_CACHE_DIR``, then a
    ``NUMBA_CACHE_DIR`` the user set, then ``$XDG_CACHE_HOME/jitgrad/numba``
    (``~/.cache/jitgrad/numba``). Numba's files go to a sub-folder per
    version of the kernel sources (:func:`numba_cache_dir`), where Numba
    keeps each source directory in a sub-folder keyed by its absolute path,
    so two checkouts never mix their kernels.
    """
    for var in (CACHE_ENV_VAR, "NUMBA_CACHE_DIR"):
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "jitgrad" / "numba").absolute()


_PACKAGE = Path(__file__).resolve().parent


#: A source file changed less than this long ago is always read, never looked up by its time stamps:
#: an edit that keeps the size within the file system's time stamp granularity would keep them too.
_RECENT_NS = 2_000_000_000
#: Per digest store file: absolute source path -> [mtime_ns, ctime_ns, size, inode, sha256 of its bytes].
_FILE_DIGESTS: dict[Path, dict[str, list]] = {}


def _file_digests(paths: list[str]) -> list[str]:
    """SHA-256 of each file's bytes, looked up by its (mtime, ctime, size, inode) in a small store in
    the cache folder when the file is older than ``_RECENT_NS``, else read and hashed.

    A warm start then stats the sources instead of reading and hashing them all (about 4 ms
    instead of 35-50 ms per digest on a loaded 2-core machine). Any write to a file changes its
    ctime (which no tool can set back), so a changed file is always read again.
    """
    import hashlib
    import json
    import time

    store = cache_dir() / "jitgrad-source-digests.json"
    known = _FILE_DIGESTS.get(store)
    if known is None:
        try:
            known = json.loads(store.read_text())
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict):
            known = {}
        _FILE_DIGESTS[store] = known
    now = time.time_ns()
    digests, changed = [], False
    for path in paths:
        st = os.stat(path)
        key = [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino]
        entry = known.get(path)
        settled = now - max(st.st_mtime_ns, st.st_ctime_ns) > _RECENT_NS
        if settled and isinstance(entry, list) and len(entry) == 5 and entry[:4] == key:
            digests.append(entry[4])
            continue
        with open(path, "rb") as file:
            digest = hashlib.sha256(file.read()).hexdigest()
        digests.append(digest)
        if settled:
            known[path] = key + [digest]
            changed = True
    if changed:
        tmp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(known))
            os.replace(tmp, store)
        except OSError:  # a read-only cache: hash again next time
            pass
    return digests


def source_digest(prefixes: tuple[str, ...] = ("kernels/",), extra: tuple[str, ...] = (),
                  root: Path = _PACKAGE) -> str:
    """A hex digest of the Python sources under ``root`` whose relative path starts with one of
    ``prefixes`` (plus ``config.py``, whose flags every kernel is compiled with), and of ``extra``.

    Numba invalidates a cached function only when *its own* file changes, not
    when a callee in another file does (a documented limitation): a kernel in
    ``softmax.py`` kept running the old code of a helper edited in
    ``_softmax_rows.py``. Keying the cache folder by this digest of every kernel
    source makes any kernel edit, or an upgraded jitgrad, compile afresh.
    Each file's own digest comes from :func:`_file_digests` (its bytes, hashed
    once while its time stamps stay the same).
    """
    import hashlib

    top = str(root)
    rels = []
    for folder, subfolders, files in os.walk(top):
        subfolders[:] = [d for d in subfolders if d != "__pycache__"]
        base = os.path.relpath(folder, top).replace(os.sep, "/")
        for name in files:
            if name.endswith(".py"):
                rel = name if base == "." else f"{base}/{name}"
                if rel.startswith(prefixes) or rel == "config.py":
                    rels.append(rel)
    rels.sort()
    digest = hashlib.sha256()
    for rel, file_digest in zip(rels, _file_digests([os.path.join(top, rel) for rel in rels])):
        digest.update(rel.encode())
        digest.update(file_digest.encode())
    for part in extra:
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def numba_cache_dir() -> Path:
    """The folder Numba writes jitgrad's kernels to: ``cache_dir() / "kernels-<digest>"``,
    one per version of the kernel sources (see :func:`source_digest`)."""
    return cache_dir() / f"kernels-{source_digest()}"


def _use_cache_dir() -> Path:
    # Numba picks a function's cache directory when the decorator runs (at
    # jitgrad's kernel imports, which all come after this module), from
    # numba.core.config.CACHE_DIR, which it reads from the environment when
    # numba is imported and again whenever the environment changed. Setting
    # the variable covers a numba imported later (and subprocesses); setting
    # the attribute covers a numba imported before jitgrad. JITGRAD_CACHE_DIR
    # is set too, so a child process resolves the same root (not the
    # digest folder as its root).
    import sys

    root = cache_dir()
    path = numba_cache_dir()
    os.environ[CACHE_ENV_VAR] = str(root)
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:
        numba_config.CACHE_DIR = str(path)
    return path


#: Directory of Numba's cache of jitgrad's kernels (see :func:`numba_cache_dir`).
CACHE_DIR: Path = _use_cache_dir()


TUNE_ENV_VAR = "JITGRAD_TUNE_CPU"
#: Host CPUs (LLVM's names) for which jitgrad compiles with another CPU's tuning, and which: the
#: host's features (its instruction set) are kept, only LLVM's scheduling model and unrolling
#: choices change. On a Zen 3 EPYC (AVX2), LLVM's own ``znver3`` tuning unrolled the GEMM
#: micro-kernel's loops into ~80 instructions per 24 FMAs where ``znver2`` (or ``haswell``) emits
#: 44-48: one thread ran 47-50 GFLOP/s against 59-64 (256-2048 cubed, the CNN products 20-35 %
#: faster; ``docs/performance.md``, "Zen 3's own tuning"). Compile times are the same.
TUNE_CPU: dict[str, str] = {"znver3": "znver2"}


def _tune_cpu() -> str | None:
    """Set ``NUMBA_CPU_NAME`` to the tuning :data:`TUNE_CPU` gives the host CPU; return it (else None).

    A ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES`` the user set wins (a child process inherits the
    name this set, and so reports the same tuning), as does ``JITGRAD_TUNE_CPU=0``. Numba reads the
    name when its code generator starts (the first compile): the variable covers a numba imported
    later and child processes (the background compile, ``jitgrad.compile``'s workers), the
    attribute a numba imported but not compiling yet. Once Numba has compiled, its code generator
    keeps the host's tuning and this leaves it alone.
    """
    import sys

    import llvmlite.binding as llvm

    tuned = TUNE_CPU.get(llvm.get_host_cpu_name())
    if tuned is None or os.environ.get("NUMBA_CPU_FEATURES") is not None:
        return None
    name = os.environ.get("NUMBA_CPU_NAME")
    if name:
        return tuned if name == tuned else None
    if os.environ.get(TUNE_ENV_VAR, "1").strip() == "0":
        return None
    registry = sys.modules.get("numba.core.registry")
    if registry is not None and "_toplevel_target_context" in vars(registry.cpu_target):
        return None  # Numba's code generator already exists, for the host's tuning
    os.environ["NUMBA_CPU_NAME"] = tuned
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:
        numba_config.CPU_NAME = tuned
    return tuned


#: The LLVM CPU whose tuning the kernels compile with instead of the host's (None: the host's).
TUNED_CPU: str | None = _tune_cpu()
