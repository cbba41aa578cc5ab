"""Run under ``mpirun -n 2``: rank 1 fails in the way argv[1] names while rank 0 waits in a collective.

- ``raise``: rank 1 raises; the excepthook names it and aborts the job.
- ``kill``: rank 1 is killed by SIGKILL; the launcher ends the job.
- ``hang``: rank 1 sleeps outside any collective; rank 0's barrier times out
  (JITGRAD_DIST_TIMEOUT) and aborts the job naming rank 0 and the barrier.
"""

import os
import signal
import sys
import time

import jitgrad.distributed as dist

dist.init()
dist.barrier()
if dist.get_rank() == 1:
    mode = sys.argv[1]
    if mode == "raise":
        raise ValueError("deliberate failure on rank 1")
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":
        time.sleep(600)
dist.barrier()
print("UNREACHABLE: rank 0 passed the barrier", flush=True)
