"""One line on stderr when the first jitgrad kernel starts compiling, so a cold first step never looks hung.

Numba compiles a kernel on its first call with new argument types (then
loads it from the cache, :func:`jitgrad.config.cache_dir`). On an empty
cache the first training step spends seconds there; a listener on Numba's
``numba:compile`` event says so once per process, the moment it begins.
Loading from the cache sends no event, so a warm run prints nothing. When
tiered compilation (``_tier``) has started its background process, the line
says that the parallel kernels compile there meanwhile.
``JITGRAD_COMPILE_NOTICE=0`` silences it (``python -m jitgrad.compile`` sets
that in its workers, which show a progress bar instead).
"""

from __future__ import annotations

import os
import sys

from numba.core import event

from jitgrad import config

ENV_VAR = "JITGRAD_COMPILE_NOTICE"


class _Notice(event.Listener):
    def __init__(self) -> None:
        self.shown = False

    def on_start(self, ev: event.Event) -> None:
        if self.shown or os.environ.get(ENV_VAR, "1") == "0":
            return
        dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not module.startswith("jitgrad."):
            return
        self.shown = True
        # Imported here: this module loads with the kernel package, before _tier's first user.
        from . import _tier

        tiered = ("; the first steps run serial kernels while the faster parallel ones compile in a "
                  "background process (JITGRAD_TIERED=0: compile them now instead)"
                  if _tier.background_started() else "")
        print(f"jitgrad: compiling CPU kernels for this machine now, once (cached in {config.cache_dir()}; "
              f"`python -m jitgrad.compile` does it ahead of time){tiered} ...", file=sys.stderr, flush=True)

    def on_end(self, ev: event.Event) -> None:
        pass


_LISTENER = _Notice()
event.register("numba:compile", _LISTENER)
