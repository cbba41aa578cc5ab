"""The process world: who launched us, ``init()``, ranks, and ending the job on failure.

MPI is entered only when a launcher started this process: ``mpirun``/
``mpiexec`` of Open MPI (``OMPI_COMM_WORLD_SIZE``), MPICH or Intel MPI
(``PMI_SIZE``), any PMIx launcher (``PMIX_RANK``) or Slurm's ``srun``
(``SLURM_PROCID`` in a job step). Otherwise the world is one process and
``mpi4py`` is never imported, so a plain ``python train.py`` costs nothing
and needs no MPI installed.

Failure policy: MPI's default is to wait forever for a rank that died or
raised. Here an uncaught exception on any rank prints the rank and the
error, then calls ``MPI_Abort``, which ends every rank; a collective that
has not completed after ``timeout`` seconds (a rank hung or killed without
the launcher noticing) aborts the job the same way, naming the rank that
gave up and the collective it was waiting for.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

__all__ = ["init", "is_initialized", "get_rank", "get_world_size", "get_local_rank", "is_main_process",
           "launched_by_mpi", "abort", "DEFAULT_TIMEOUT"]

#: Environment variables that a launcher sets in every process it starts.
_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_ID")

#: Seconds a collective may wait for the other ranks before the job is aborted.
DEFAULT_TIMEOUT = 600.0


class _World:
    """One process's view of the job: its rank, the world size and (under MPI) the communicator."""

    def __init__(self, comm: Any, rank: int, size: int, local_rank: int, timeout: float) -> None:
        self.comm = comm
        self.rank = rank
        self.size = size
        self.local_rank = local_rank
        self.timeout = timeout
        self.host = socket.gethostname()


_world: _World | None = None


def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpirun, mpiexec, srun) started this process.

    ``JITGRAD_DISTRIBUTED=0`` forces False (run one process even inside a
    launcher), ``JITGRAD_DISTRIBUTED=1`` forces True (e.g. an unusual launcher).
    """
    forced = os.environ.get("JITGRAD_DISTRIBUTED")
    if forced in ("0", "1"):
        return forced == "1"
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def _timeout_from_env() -> float:
    text = os.environ.get("JITGRAD_DIST_TIMEOUT")
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"JITGRAD_DIST_TIMEOUT must be a positive number of seconds, got {text!r}")
    return value


def init(timeout: float | None = None) -> None:
    """Join the job's world; idempotent (later calls only update ``timeout``).

    Under a launcher this initialises MPI (through ``mpi4py``), reads the
    rank and world size from ``MPI.COMM_WORLD``, and installs the failure
    policy (see the module docstring). Without one it sets up a world of one
    process and never touches MPI.

    Parameters
    ----------
    timeout : float, optional
        Seconds any collective may wait for the other ranks before the job
        is aborted; default ``JITGRAD_DIST_TIMEOUT`` or 600.

    Raises
    ------
    ImportError
        Launched by MPI but ``mpi4py`` is missing (``pip install 'jitgrad[mpi]'``).
    RuntimeError
        ``srun`` started several tasks but MPI sees a world of one (Slurm
        was not told which PMI to use: ``srun --mpi=pmix``).
    """
    global _world
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout > 0):
        raise ValueError(f"init: timeout must be a positive number of seconds, got {timeout!r}")
    if _world is not None:
        if timeout is not None:
            _world.timeout = float(timeout)
        return
    timeout = float(timeout) if timeout is not None else _timeout_from_env()
    if not launched_by_mpi():
        _world = _World(None, 0, 1, 0, timeout)
        return
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("jitgrad.distributed: this process was started by an MPI launcher but mpi4py is "
                          "not installed; pip install 'jitgrad[mpi]'") from error
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    tasks = os.environ.get("SLURM_NTASKS")
    if size == 1 and "SLURM_STEP_ID" in os.environ and tasks is not None and tasks.isdigit() and int(tasks) > 1:
        raise RuntimeError(f"jitgrad.distributed: srun started {tasks} tasks but each sees an MPI world of 1; "
                           "launch with srun --mpi=pmix (or your site's PMI plugin) or with mpirun")
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    local_rank = local.Get_rank()
    local.Free()
    _world = _World(comm, rank, size, local_rank, timeout)
    if size > 1:
        _install_excepthook()


def _get() -> _World:
    if _world is None:
        init()
    assert _world is not None
    return _world


def is_initialized() -> bool:
    """True once ``init()`` ran (explicitly, or through the first collective or rank query)."""
    return _world is not None


def get_rank() -> int:
    """This process's rank, 0 to ``get_world_size() - 1`` (calls ``init()`` if needed)."""
    return _get().rank


def get_world_size() -> int:
    """Number of processes in the job; 1 when not launched by MPI (calls ``init()`` if needed)."""
    return _get().size


def get_local_rank() -> int:
    """Rank among the processes on this machine: pick GPU ``get_local_rank() % n_gpus`` with it."""
    return _get().local_rank


def is_main_process() -> bool:
    """True on rank 0: the one process that prints, writes checkpoints and plots."""
    return _get().rank == 0


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` with this rank's name to stderr, then end every rank of the job.

    With a world of one this raises ``SystemExit(code)`` after printing.
    """
    world = _get()
    sys.stderr.write(f"jitgrad.distributed: rank {world.rank} of {world.size} (host {world.host}): {message}; "
                     f"aborting the job\n")
    sys.stderr.flush()
    if world.comm is None or world.size == 1:
        raise SystemExit(code)
    world.comm.Abort(code)


def _install_excepthook() -> None:
    previous = sys.excepthook

    def excepthook(exc_type: type, exc: BaseException, tb: Any) -> None:
        previous(exc_type, exc, tb)
        abort(f"uncaught {exc_type.__name__}: {exc}")

    sys.excepthook = excepthook


def _wait(requests: list[Any], what: str) -> None:
    """Wait for MPI requests, aborting the job if they take longer than the world's timeout.

    An MPI ``Wait`` cannot time out, so this polls ``Testall`` (which also
    drives Open MPI's progress engine): busy for the first millisecond (a
    message between ranks of one machine takes microseconds, and a yield
    on a loaded machine can cost a whole time slice), then yielding the
    core after each poll up to 10 ms (ranks may outnumber cores, and the
    rank we wait for needs the core), then sleeping up to 1 ms between polls.
    """
    from mpi4py import MPI

    if MPI.Request.Testall(requests):
        return
    world = _get()
    start = time.monotonic()
    deadline = start + world.timeout
    pause = 1e-4
    while not MPI.Request.Testall(requests):
        now = time.monotonic()
        if now - start < 1e-3:
            continue
        if now > deadline:
            abort(f"{what} did not complete within {world.timeout:g} s (JITGRAD_DIST_TIMEOUT): another "
                  "rank has died, hangs, or runs a different sequence of collectives")
        if now - start < 1e-2:
            os.sched_yield()
        else:
            time.sleep(pause)
            pause = min(2 * pause, 1e-3)
