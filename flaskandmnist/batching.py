"""Micro-batching: concurrent calls of a batch function, answered by one call of it.

gunicorn's threads each handle one request, but a model call costs little more for a batch
of images than for one. :class:`MicroBatcher` lets the calls of all threads of a process
that arrive while the function runs wait, and runs them together as the next batch. It
never waits for a batch to fill: a lone caller runs the function at once, in its own thread.

There is no serving thread: whoever finds the batcher idle runs the function itself (the
leader), and hands the calls that queued meanwhile to one of their callers, which runs them
as one batch and hands over in turn. A serving thread would add two thread switches to every
call, which costs more than the handover on a busy machine.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

#: A batch of items, e.g. images stacked on an array's first axis.
B = TypeVar("B", bound=Sized)
T = TypeVar("T")

#: Most items per call of the function (a caller's items are never split).
MAX_BATCH = 64


@dataclass
class _Call(Generic[B, T]):
    items: B
    #: Set once the call is answered, or once its caller is to run ``batch``.
    wake: threading.Event = field(default_factory=threading.Event)
    batch: list[_Call[B, T]] | None = None
    result: Sequence[T] = ()
    error: BaseException | None = None

    def outcome(self) -> Sequence[T]:
        if self.error is not None:
            raise self.error
        return self.result


class MicroBatcher(Generic[B, T]):
    """``batcher(items)`` returns ``function(items)``, computed together with the items of
    other threads calling at the same time.

    ``function`` maps a batch to one result per item, in order (e.g. :meth:`Classifier.predict
    <flaskandmnist.classifier.Classifier.predict>` on images stacked on the first axis; the
    arrays of several calls are concatenated into one batch). When a batch of
    several calls fails, each call runs again on its own, so that only the callers whose
    items fail get the error (one bad image).
    """

    def __init__(
        self,
        function: Callable[[B], Sequence[T]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._function = function
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._running = False  # a batch is running: new calls wait for the next one
        self._waiting: deque[_Call[B, T]] = deque()

    def __call__(self, items: B) -> Sequence[T]:
        """One result per item; raises what ``function`` raised on these items."""
        call: _Call[B, T] = _Call(items)
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
            self._run(call.batch or [call])
        finally:
            self._hand_over()
        return call.outcome()

    def _hand_over(self) -> None:
        """Gives the calls waiting (up to max_batch items) to the first of their callers
        to run, or marks the batcher idle."""
        with self._lock:
            if not self._waiting:
                self._running = False
                return
            first = self._waiting.popleft()
            batch, size = [first], len(first.items)
            while self._waiting and size + len(self._waiting[0].items) <= self._max_batch:
                call = self._waiting.popleft()
                batch.append(call)
                size += len(call.items)
        batch[0].batch = batch
        batch[0].wake.set()

    def _run(self, batch: list[_Call[B, T]]) -> None:
        """Answers every call of the batch, with its results or with the error."""
        try:
            items = batch[0].items if len(batch) == 1 else np.concatenate([c.items for c in batch])
            results = self._function(items)
            if len(results) != len(items):
                raise ValueError(f"{len(items)} items gave {len(results)} results")
        except BaseException as error:
            if len(batch) > 1:
                for call in batch:
                    self._run([call])
                return
            for call in batch:
                call.error = error
        else:
            start = 0
            for call in batch:
                call.result = results[start : start + len(call.items)]
                start += len(call.items)
        for call in batch:
            call.wake.set()
