"""Where the rate limiter counts by default: this worker's memory, without a thread per post.

limits' ``memory://`` storage expires old counts in a timer thread, and starts a new one on
a post whenever the last has finished, so at a person's pace nearly every post starts a
thread. Starting a thread waits until the new thread holds the GIL, which a worker busy with
another request gives up only every few milliseconds: the post waits with it. This storage
is the same, except that expired counts are dropped on the request path, at most once every
:data:`SWEEP_S`. Counting is unchanged: a count past its expiry is never read (limits checks
expiry on every read); the sweep only frees memory.
"""

from __future__ import annotations

import time

from limits.storage import MemoryStorage

#: The scheme of this storage (``RATE_LIMIT_STORAGE_URI=memory://`` selects it).
URI = "worker-memory://"
#: Seconds between sweeps of expired counts.
SWEEP_S = 1.0


class WorkerMemoryStorage(MemoryStorage):
    STORAGE_SCHEME = "worker-memory"  # registers the scheme with limits

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._next_sweep = time.monotonic() + SWEEP_S

    # MemoryStorage calls this private hook on every count it changes to start its timer
    # thread; overriding it is the one change. The pinned limits version is tested for it
    # (tests/test_security.py).
    def _MemoryStorage__schedule_expiry(self) -> None:
        if (now := time.monotonic()) >= self._next_sweep:
            self._next_sweep = now + SWEEP_S
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
