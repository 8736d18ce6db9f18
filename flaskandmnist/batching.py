"""Micro-batching: concurrent calls of a batch function, answered by one call of it.

gunicorn's threads each classify one image per request. One model call on a batch costs
little more than on one image (README: "Benchmarks"), so :class:`MicroBatcher` lets the
calls of all threads of a process that arrive while the model runs wait, and runs them
together as the next batch. It never waits for a batch to fill: a lone caller runs the
function at once, in its own thread.

There is no serving thread: whoever finds the batcher idle runs the function itself (the
leader), and hands the calls that queued meanwhile to one of their callers, which runs them
as one batch and hands over in turn. A serving thread would add two thread switches to every
call, a millisecond or more on a busy machine (measured: 10.4 ms -> 12-14 ms per request
through the whole app, single client).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

#: Most images per call of the function (a caller's images are never split).
MAX_BATCH = 64


@dataclass
class _Call(Generic[T]):
    images: np.ndarray
    #: Set once the call is answered, or once its caller is to run ``batch``.
    wake: threading.Event = field(default_factory=threading.Event)
    batch: list[_Call[T]] | None = None
    result: Sequence[T] = ()
    error: BaseException | None = None

    def outcome(self) -> Sequence[T]:
        if self.error is not None:
            raise self.error
        return self.result


class MicroBatcher(Generic[T]):
    """``batcher(images)`` returns ``function(images)``, computed together with the
    images of other threads calling at the same time.

    ``function`` maps images stacked on the first axis to one result per image, in order
    (e.g. :meth:`Classifier.predict <flaskandmnist.model.Classifier.predict>`).
    """

    def __init__(
        self, function: Callable[[np.ndarray], Sequence[T]], max_batch: int = MAX_BATCH
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._function = function
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._running = False  # a batch is running: new calls wait for the next one
        self._waiting: deque[_Call[T]] = deque()

    def __call__(self, images: np.ndarray) -> Sequence[T]:
        """One result per image; raises what ``function`` raised on these images."""
        call: _Call[T] = _Call(np.asarray(images))
        with self._lock:
            lead = not self._running
            if lead:
                self._running = True
            else:
                self._waiting.append(call)
        if not lead:
            call.wake.wait()
            if call.batch is None:
                return call.outcome()  # answered in another caller's batch
        try:
            _run(self._function, call.batch or [call])
        finally:
            self._hand_over()
        return call.outcome()

    def _hand_over(self) -> None:
        """Gives the calls waiting (up to max_batch images) to the first of their callers
        to run, or marks the batcher idle."""
        with self._lock:
            if not self._waiting:
                self._running = False
                return
            first = self._waiting.popleft()
            batch, size = [first], len(first.images)
            while self._waiting and size + len(self._waiting[0].images) <= self._max_batch:
                call = self._waiting.popleft()
                batch.append(call)
                size += len(call.images)
        batch[0].batch = batch
        batch[0].wake.set()


def _run(function: Callable[[np.ndarray], Sequence[T]], batch: list[_Call[T]]) -> None:
    """Answers every call of the batch, with its results or with the error."""
    try:
        images = batch[0].images if len(batch) == 1 else np.concatenate([c.images for c in batch])
        results = function(images)
        if len(results) != len(images):
            raise ValueError(f"{len(images)} images gave {len(results)} results")
    except BaseException as error:
        if len(batch) > 1:
            # Each call on its own, so that only the callers whose images fail get the error.
            for call in batch:
                _run(function, [call])
            return
        batch[0].error = error
    else:
        start = 0
        for call in batch:
            call.result = results[start : start + len(call.images)]
            start += len(call.images)
    for call in batch:
        call.wake.set()
