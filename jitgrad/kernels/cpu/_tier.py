"""Tiered compilation: on an empty cache the first steps run serial twins of the parallel drivers
while their ``parallel=True`` versions compile in one background process.

A ``parallel=True`` driver costs several times its serial compile: each
``prange`` loop becomes a gufunc that links in, re-optimises and re-codegens
the whole callee tree (the GEMM micro-kernel, packing, im2col), and the outer
function does it again. On a cold cache a first LeNet-5 step spent most of its
~50 s there. So each driver marked ``@tiered`` has two Numba dispatchers built
from the one Python function:

* ``kernel.parallel``: the decorated ``@njit(parallel=True, ...)`` dispatcher;
* ``kernel.serial``: its *twin*, the same code object compiled without
  ``parallel`` (``prange`` runs as ``range``), under the qualname
  ``<name>__serial`` so Numba's cache files of the two never collide.

A call goes to the parallel version when its *ready marker* exists: a file
``<cache_dir>/jitgrad-tier-<digest>/<module.qualname>.ready``, where the
digest covers the kernel sources, Numba, Python and the CPU, written by the
first process that ran the parallel version (so its machine code is in the
cache). Otherwise, with tiering on, the call goes to the serial twin and one
background process, ``python -m jitgrad.compile --background`` (niced, same
cache), compiles the parallel versions; each kernel switches to its parallel
version the first call after its marker appears (checked at most every
0.2 s, then memoised). The parallel version never compiles in this process
while the background one runs; if that process is gone and a kernel still has
no marker (a signature or kernel it does not cover), the kernel compiles
here, as without tiering.

The background process first compiles, at normal priority, the serial twins
the step reaches last (``jitgrad.compile.BACKGROUND_SERIAL_TASKS``: loss,
optimizers, the conv backward kernels) while the step compiles its forward
kernels, so a cold step's compiles are spread over two cores; before them, the
jobs a step asked for (:func:`request`: a recurrent cell's backward loop,
which no fixed task reaches), and then the loss and optimizers first. A claim file per
twin (``<name>__serial.claim``, holding a pid: :class:`PidLock`, the same lock
as the background's pid file) makes exactly one process compile it; the other
waits for ``<name>__serial.ready`` and loads it from the cache. Callees that
both processes reach (the GEMM block: conv forward in the step, the conv
backwards in the background) are marked :func:`shared` and claimed the same
way (``<name>__shared.claim``), so none is compiled twice. Then, niced, the
background compiles the parallel versions.

``JITGRAD_TIERED=0`` switches tiering off (always the parallel version, as
before; markers are still written), ``1`` on. Unset, it is on for a cache
that never held a complete compile (a first run on a machine, see
:func:`fresh_cache`), so benchmarks after a kernel edit never time a serial
twin. ``python -m jitgrad.compile`` (the Makefile, CI) runs the parallel
versions and so leaves every marker behind: a filled cache never tiers. The test suite sets
``JITGRAD_TIERED=0`` in ``tests/conftest.py`` so it never spawns compiles.
Tiering is off on Windows (no ``os.kill(pid, 0)`` liveness check there).
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numba
from numba.core.caching import NullCache

from jitgrad import config

from ._jit import code_copy

ENV_VAR = "JITGRAD_TIERED"
#: Seconds between two looks for a kernel's marker while it runs its serial twin.
RECHECK_S = 0.2
#: Suffix of the twins' qualnames (their cache files' names).
TWIN_SUFFIX = "__serial"
#: Suffix of a :func:`shared` callee's claim and ready marker.
SHARED_SUFFIX = "__shared"

_PACKAGE = Path(__file__).resolve().parents[2]  # jitgrad/
#: Every tiered kernel, by ``module.qualname``.
REGISTRY: dict[str, Tiered] = {}
#: "parallel" or "serial" forces every tiered kernel to one version (the compile processes, tests).
_forced: str | None = None
_marker_dir: Path | None = None
_background: subprocess.Popen | None = None
_background_started = False
_fresh: bool | None = None


def force(version: str | None) -> None:
    """Run every tiered kernel's ``"parallel"`` or ``"serial"`` version from now on; ``None``: the default rule.

    Kernels already switched keep their choice only under the default rule.
    """
    global _forced
    if version not in (None, "parallel", "serial"):
        raise ValueError(f"force: version must be 'parallel', 'serial' or None, got {version!r}")
    _forced = version
    for kernel in REGISTRY.values():
        kernel._fn = None
        kernel._serial_until = 0.0


def enabled() -> bool:
    """Whether tiering is on: ``JITGRAD_TIERED=1`` (or unset, on a fresh cache, see
    :func:`fresh_cache`); ``0`` turns it off. Off on Windows, where the liveness check of the
    background process, ``os.kill(pid, 0)``, would end it."""
    if os.name == "nt":
        return False
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value:
        return value not in ("0", "false", "no", "off")
    return fresh_cache()


def fresh_cache() -> bool:
    """Whether the cache never held a complete compile (no ``jitgrad-compiled-*.stamp`` of any
    kernel source: ``python -m jitgrad.compile`` and a finished background compile write one).

    The default tiers only there, a first run on a machine: after a kernel edit a developer's
    cache has a stamp, so drivers compile their parallel versions in-process as before and a
    benchmark never times a serial twin. Memoised per process.
    """
    global _fresh
    if _fresh is None:
        _fresh = not any(config.cache_dir().glob("jitgrad-compiled-*.stamp"))
    return _fresh


def marker_dir() -> Path:
    """The folder of the ready markers for this kernel source and checkout, Numba, Python and CPU (memoised)."""
    global _marker_dir
    if _marker_dir is None:
        import llvmlite.binding as llvm

        cpu = os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name()
        features = os.environ.get("NUMBA_CPU_FEATURES") or llvm.get_host_cpu_features().flatten()
        digest = config.source_digest(extra=(numba.__version__, sys.version, cpu, features, str(_PACKAGE)))
        _marker_dir = config.cache_dir() / f"jitgrad-tier-{digest}"
    return _marker_dir


def _marker(name: str) -> Path:
    return marker_dir() / f"{name}.ready"


def is_ready(name: str) -> bool:
    """Whether kernel ``name`` (``module.qualname``) has its ready marker: its parallel version is cached."""
    return _marker(name).is_file()


def _write_marker(name: str) -> None:
    path = _marker(name)
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"parallel version cached by pid {os.getpid()}\n")
        except OSError:  # a read-only cache: the kernel just tiers again next run
            pass


def _claim(key: str) -> PidLock:
    return PidLock(marker_dir() / f"{key}.claim")


def _claim_twin(key: str) -> bool:
    """Claim the first compile of ``key`` (a twin, ``<name>__serial``, or a :func:`shared` callee) for
    this process; False when a live process holds it."""
    try:
        return _claim(key).acquire()
    except OSError:  # a read-only cache: compile here
        return True


def _wait_for_twin(key: str) -> None:
    """Wait until ``key`` is in the cache (its ``.ready`` marker), or the process compiling it is gone."""
    claim, ready = _claim(key), marker_dir() / f"{key}.ready"
    while not ready.is_file() and claim.held_by_other():
        time.sleep(0.05)


def _sharing() -> bool:
    """Whether this process shares first compiles with another: a tiering step that started (or
    found) the background compile, or that background process's serial phase."""
    return _forced == "serial" or (_forced is None and _background_started)


def _compile_shared(key: str, first_call: Any) -> Any:
    """``first_call()`` (a first compile, or a load from the cache), done by one process only.

    While a cold cache tiers, the first step and the background process share
    the serial twins' compiles (and :func:`shared` callees'): whichever reaches
    one first claims and compiles it, then leaves ``<key>.ready``; the other
    waits for that marker and loads it from the cache.
    """
    ready = marker_dir() / f"{key}.ready"
    if ready.is_file():
        return first_call()
    if not _claim_twin(key):
        _wait_for_twin(key)
        if ready.is_file():
            return first_call()
    try:  # claimed, or its claimer died without it
        return first_call()
    finally:
        try:
            ready.touch()
        except OSError:
            pass


def shared(dispatcher: Any) -> Any:
    """Decorator over a cached ``@njit`` callee of several tiered drivers (the GEMM block, compiled
    into the conv forward, both conv backwards and the GEMM): its first compile in a process that
    shares compiles (see :func:`_sharing`) goes through :func:`_compile_shared`, so the cold step
    and the background process never both compile it. Returns ``dispatcher`` itself; outside a
    tiered cold start its ``compile`` runs as Numba's."""
    name = f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"
    numba_compile = dispatcher.compile
    first = [True]

    def compile(sig: Any) -> Any:
        if not (first[0] and _sharing()):
            return numba_compile(sig)
        first[0] = False
        return _compile_shared(f"{name}{SHARED_SUFFIX}", lambda: numba_compile(sig))

    dispatcher.compile = compile
    return dispatcher


# ----------------------------------------------------------------------------- requests

#: Compile jobs a first step may ask the background's serial phase for (:func:`request`), by name.
REQUESTABLE: dict[str, Any] = {}
_requested: set[str] = set()


def requestable(name: str, job: Any) -> None:
    """Register ``job()`` (it calls serial twins once on small inputs) as the compile job ``name``."""
    REQUESTABLE[name] = job


def request(name: str) -> None:
    """Ask the background compile of a tiered cold start for the job ``name`` (:func:`requestable`):
    its serial phase runs requested jobs before each of its fixed tasks, so a step that will call
    kernels those tasks do not reach (a recurrent layer's loops: :data:`REQUESTABLE`) has their
    later twins compiled on the other core while it compiles its earlier ones. A file
    ``requests/<name>`` in the marker folder, written once per process and only while tiering;
    the twins' claims keep the two processes from compiling one twin twice."""
    if name in _requested:
        return
    _requested.add(name)
    if _forced is not None or not enabled():
        return
    try:
        folder = marker_dir() / "requests"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()
    except OSError:  # a read-only cache: the step compiles them itself
        pass


def run_requests(done: set[str]) -> None:
    """Run the requested jobs not in ``done`` (the background's serial phase), adding them to it."""
    try:
        names = sorted(path.name for path in (marker_dir() / "requests").iterdir())
    except OSError:
        return
    for name in names:
        if name in REQUESTABLE and name not in done:
            done.add(name)
            REQUESTABLE[name]()


# ----------------------------------------------------------------------------- pid locks

def _pid_alive(pid: int) -> bool:
    if _background is not None and pid == _background.pid:
        return _background.poll() is None  # our child: a zombie until reaped answers os.kill
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PidLock:
    """A file naming the process that holds a lock: the background compile's pid file, a twin's claim.

    :meth:`acquire` creates it with its content in one step (a temporary file
    hard-linked to ``path``, which fails when ``path`` exists), so a reader
    never sees it empty; a lock whose process is gone is stale and taken over.
    Two processes taking over the same stale lock at once may both win: the
    cost is one compile done twice, never a wrong result (the cache is shared).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def holder(self) -> int:
        """The pid in the file; 0 when it is absent or unreadable."""
        try:
            return int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def held(self) -> bool:
        """Whether a live process (this one included) holds the lock."""
        pid = self.holder()
        return bool(pid) and (pid == os.getpid() or _pid_alive(pid))

    def held_by_other(self) -> bool:
        """Whether a live process other than this one holds the lock."""
        pid = self.holder()
        return bool(pid) and pid != os.getpid() and _pid_alive(pid)

    def _temporary(self, pid: int) -> Path:
        """A temporary file beside the lock, holding ``pid``: renamed or hard-linked into place whole."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(str(pid))
        return tmp

    def _write_new(self, pid: int) -> None:
        tmp = self._temporary(pid)
        try:
            os.link(tmp, self.path)  # FileExistsError when held
        finally:
            tmp.unlink(missing_ok=True)

    def acquire(self) -> bool:
        """Take the lock for this process unless another live process holds it; returns whether it is ours.

        Raises ``OSError`` when the folder cannot be written (a read-only cache).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                self._write_new(os.getpid())
                return True
            except FileExistsError:
                if self.holder() == os.getpid():
                    return True
                if self.held_by_other():
                    return False
                self.path.unlink(missing_ok=True)  # stale: its process is gone
        return False

    def hand_over(self, pid: int) -> None:
        """Name ``pid`` (a child this process started) as the holder, atomically."""
        os.replace(self._temporary(pid), self.path)

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if self.holder() == os.getpid():
            self.path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- the background process

def _pid_file() -> Path:
    return marker_dir() / "background.pid"


def background_running() -> bool:
    """Whether a background compile for this cache is running (ours or another process's)."""
    if _background is not None and _background.poll() is None:
        return True
    return PidLock(_pid_file()).held()


def background_started() -> bool:
    """Whether this process started (or found running) a background compile."""
    return _background_started


def start_background() -> bool:
    """Start ``python -m jitgrad.compile --background`` unless one runs for this cache; returns whether one runs."""
    global _background, _background_started
    if background_running():
        _background_started = True
        return True
    lock = PidLock(_pid_file())  # holds this process's pid until the child's replaces it
    try:
        if not lock.acquire():  # another process started one meanwhile
            _background_started = background_running()
            return _background_started
    except OSError:  # a read-only cache
        return False
    env = dict(os.environ, JITGRAD_CACHE_DIR=str(config.cache_dir()), JITGRAD_COMPILE_NOTICE="0")
    root = str(_PACKAGE.parent)
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
    try:
        with open(marker_dir() / "background.log", "ab") as log:
            _background = subprocess.Popen([sys.executable, "-m", "jitgrad.compile", "--background"], env=env,
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=root,
                                           start_new_session=True)
        lock.hand_over(_background.pid)
    except OSError:
        lock.release()
        _background_started = _background is not None
        return _background_started
    _background_started = True
    return True


def background_main(serial_phase, parallel_phase) -> None:
    """The body of ``python -m jitgrad.compile --background`` (see ``jitgrad.compile``).

    ``serial_phase()`` first, at normal priority, with the serial twins forced:
    it compiles twins the first step will need later (sharing them through
    claims, see :func:`_claim_twin`), so the step's compiles are spread over
    two cores. Then ``parallel_phase()``, niced, with the parallel versions
    forced: every tiered kernel it calls leaves its ready marker.
    """
    start, cpu = time.perf_counter(), time.process_time()
    try:
        force("serial")
        serial_phase()
        force(None)
        print(f"background compile {os.getpid()}: serial twins after {time.perf_counter() - start:.1f} s "
              f"(CPU {time.process_time() - cpu:.1f} s)", flush=True)
        try:
            os.nice(10)
        except OSError:
            pass
        parallel_phase()
        print(f"background compile {os.getpid()}: wall {time.perf_counter() - start:.1f} s, "
              f"CPU {time.process_time() - cpu:.1f} s", flush=True)
    finally:
        try:
            PidLock(_pid_file()).release()
        except OSError:
            pass


# ----------------------------------------------------------------------------- the kernels

class Tiered:
    """A ``parallel=True`` dispatcher and its serial twin behind one callable (see the module doc).

    Attributes other than ``parallel``/``serial`` (``py_func``, ``signatures``,
    ``inspect_asm`` ...) are the parallel dispatcher's.
    """

    def __init__(self, dispatcher: Any) -> None:
        py = dispatcher.py_func
        twin = code_copy(py, py.__name__ + TWIN_SUFFIX, py.__qualname__ + TWIN_SUFFIX)
        options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("parallel", "nopython")}
        self.parallel = dispatcher
        self.serial = numba.njit(cache=not isinstance(dispatcher._cache, NullCache), **options)(twin)
        self.name = f"{py.__module__}.{py.__qualname__}"
        self._fn: Any = None  # the version chosen for good
        self._serial_until = 0.0
        self._twin_called = False  # in this process (then the twin is compiled or loaded)
        functools.update_wrapper(self, py)
        REGISTRY[self.name] = self

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.parallel, attr)

    def __call__(self, *args: Any) -> Any:
        fn = self._fn
        if fn is not None:
            return fn(*args)
        fn, final = self._choose(args)
        if fn is self.serial and not self._twin_called and (_forced == "serial" or _background_started):
            result = self._call_twin(args)
        else:
            result = fn(*args)
        if fn is self.parallel:
            _write_marker(self.name)  # its machine code is in the cache now (compiled or loaded)
        elif _forced is None:
            self._serial_until = time.monotonic() + RECHECK_S  # the next look for the marker
        if final:
            self._fn = fn
        return result

    def ready(self) -> bool:
        """Whether a call now runs the parallel version (the same rule as a call; may start the
        background compile). A caller with a serial kernel of its own (``matmul``'s
        ``gemm_serial``) runs that meanwhile instead of compiling this twin as well."""
        if self._fn is None:
            fn, final = self._choose()
            if final:
                self._fn = fn
                if fn is self.parallel:
                    _write_marker(self.name)  # the caller runs it next (or it is cached already)
            elif fn is self.serial and _forced is None:
                self._serial_until = time.monotonic() + RECHECK_S
            return fn is self.parallel
        return self._fn is self.parallel

    def _call_twin(self, args: tuple) -> Any:
        """The first call of the serial twin while tiering: compiled here, or by the process that claimed it."""
        try:
            return _compile_shared(f"{self.name}{TWIN_SUFFIX}", lambda: self.serial(*args))
        finally:
            self._twin_called = True

    def _in_cache(self, args: tuple | None) -> bool:
        """Whether Numba's cache holds the parallel version for these arguments' types (any, for
        ``args=None``, from :meth:`ready`): a cache filled before the markers' digest last changed
        (an edit elsewhere in ``kernels/``) must not tier again."""
        d = self.parallel
        try:
            index = d._cache._cache_file._load_index()
            codegen = d.targetctx.codegen()
            if args is None:
                magic = codegen.magic_tuple()
                return any(key[1] == magic for key in index)
            return d._cache._index_key(tuple(d.typeof_pyval(a) for a in args), codegen) in index
        except (AttributeError, TypeError, ValueError, OSError, EOFError, pickle.UnpicklingError):
            return False  # no cache, or Numba's internals moved: tier as if absent

    def _choose(self, args: tuple | None = None) -> tuple[Any, bool]:
        """``(version, final)``: the version for this call, and whether it stays for the process's life."""
        if _forced is not None:
            return (self.parallel if _forced == "parallel" else self.serial), False
        if not enabled():
            return self.parallel, True
        now = time.monotonic()
        if now < self._serial_until:
            return self.serial, False
        if is_ready(self.name) or (self._serial_until == 0.0 and self._in_cache(args)):
            return self.parallel, True
        if background_running() or (not _background_started and start_background()):
            return self.serial, False
        # No background compile (it ended without this kernel, or could not start): compile here.
        return self.parallel, True

    def __repr__(self) -> str:
        return f"<tiered kernel {self.name}>"


def tiered(dispatcher: Any) -> Tiered:
    """Decorator over ``@njit(parallel=True, ...)``: the driver runs its serial twin until its parallel
    version is in the cache (see the module doc)."""
    return Tiered(dispatcher)
