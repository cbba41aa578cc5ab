"""The task counters of the parallel drivers (``kernels/cpu/_atomic.py``)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from jitgrad.kernels.cpu import _atomic
from jitgrad.kernels.cpu._jit import PRANGE_ONLY


@njit(parallel=PRANGE_ONLY, cache=False)  # as the drivers
def _claim_all(ntasks, nthreads, hits, owners):
    counter = _atomic.new_counter()
    for w in prange(nthreads):
        t = _atomic.next_task(counter)
        while t < ntasks:
            hits[t] += 1
            owners[t] = w
            _atomic.task_end(counter)
            t = _atomic.next_task(counter)
        if w == 0:
            _atomic.wait_running(counter, ntasks)
    return _atomic.load_acquire(counter, 1)


@njit(cache=False)
def _serial_shares(nshares):
    # A parallel driver compiled without ``parallel`` (a tiered serial twin) runs its shares in turn:
    # share 0 must not wait for share 1, which cannot start before it returns.
    counter = _atomic.new_counter()
    for w in range(nshares):
        _atomic.next_task(counter)
        _atomic.share_done(counter, w, nshares)
    return _atomic.load_acquire(counter, 0), _atomic.load_acquire(counter, 1)


@njit(cache=False)
def _wait_on(counter, ntasks):
    _atomic.wait_running(counter, ntasks)


def test_every_task_is_claimed_once():
    ntasks = 5000
    hits = np.zeros(ntasks, np.int64)
    owners = np.full(ntasks, -1, np.int64)
    ended = _claim_all(ntasks, 2, hits, owners)
    assert ended == ntasks
    assert (hits == 1).all(), np.flatnonzero(hits != 1)[:10]
    assert set(np.unique(owners)) <= {0, 1}


def test_fetch_add_returns_the_old_value():
    @njit(cache=False)
    def bump(c):
        return _atomic.fetch_add(c, 3, 7), _atomic.fetch_add(c, 3, -2), _atomic.load_acquire(c, 3)

    c = np.zeros(8, np.int64)
    c[3] = 10
    assert bump(c) == (10, 17, 15)


def test_serial_shares_do_not_wait_for_each_other():
    assert _serial_shares(4) == (4, 4)


def test_a_task_that_never_ends_is_waited_for_a_bounded_time():
    counter = np.zeros(8, np.int64)
    counter[0] = 1  # started, never ended: the wait gives up after MAX_SPINS pauses instead of hanging
    _wait_on(counter, 4)
    counter[0] = 9  # tasks past ntasks are not waited for either: 2 of the first 2 ended
    counter[1] = 2
    _wait_on(counter, 2)
