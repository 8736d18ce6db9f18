"""Every answered prediction ends up in Cassandra exactly once, even while Cassandra is down.

:meth:`Recorder.record_many` stores predictions in Cassandra within the write deadline, or
else appends them to the durable outbox (:mod:`flaskandmnist.outbox`) and returns all the
same: the prediction is answered either way.

A background thread per process (the drainer) connects to Cassandra, adopts the outbox
files of dead processes and replays the queued records oldest first; a record leaves the
outbox only after Cassandra stored it. Replays write the same rows under the same id, so a
record replayed twice (e.g. the process died between the write and the delete) is still
stored once. On close, the drainer first replays what it can: a stopped server leaves
nothing queued while Cassandra is up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from flaskandmnist import metrics
from flaskandmnist.config import Settings
from flaskandmnist.domain import Prediction
from flaskandmnist.outbox import Outbox, OutboxError
from flaskandmnist.storage import PredictionStore, StorageError, StoreConnector

logger = logging.getLogger(__name__)

#: Records replayed per group (written concurrently, then deleted in one transaction).
REPLAY_CHUNK = 64
#: Seconds between looks for orphaned outbox files while there is nothing to replay.
IDLE_S = 5.0
#: Retry delays while Cassandra is down: doubling from the first to the last.
BACKOFF_S = (0.25, 5.0)
#: Seconds a closing recorder keeps replaying before it leaves the rest queued.
CLOSE_DRAIN_S = 10.0


@dataclass(frozen=True)
class Health:
    """What /readyz reports."""

    #: "ok", or why Cassandra cannot be used now.
    cassandra: str
    #: Records waiting in this process's outbox; None without an outbox.
    outbox_depth: int | None
    #: Whether a prediction made now would be stored or durably queued.
    accepting: bool


class Recorder:
    """Stores predictions in Cassandra or queues them; one per app, thread-safe.

    :meth:`start` connects and starts the drainer; :meth:`close` stops it.
    """

    def __init__(self, settings: Settings, stores: StoreConnector) -> None:
        self._stores = stores
        self._deadline_s = settings.outbox.write_deadline_ms / 1000
        self._outbox = (
            Outbox(settings.outbox.directory, settings.cassandra.keyspace)
            if settings.outbox.enabled
            else None
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._drainer: threading.Thread | None = None

    def start(self) -> None:
        """Connects to Cassandra and starts the outbox drainer (with an outbox)."""
        # Connect now, so that the first requests need not queue; if Cassandra is down
        # (logged by the storage module), the drainer keeps trying.
        with contextlib.suppress(StorageError):
            self._stores.get()
        if self._outbox is not None:
            self._drainer = threading.Thread(
                target=self._drain, args=(self._outbox,), name="outbox-drainer", daemon=True
            )
            self._drainer.start()

    def record_many(self, predictions: Sequence[Prediction]) -> None:
        """Stores the predictions in Cassandra, or queues them durably when Cassandra does
        not store them within the write deadline. Raises StorageError when neither worked
        (or, without an outbox, when Cassandra failed): then nothing may be promised."""
        if not predictions:
            return
        if self._outbox is None:
            self._write(self._stores.get(), predictions, "request", self._deadline_s)
        elif not self._stored_now(self._outbox, predictions):
            self._queue(self._outbox, predictions)
        metrics.count_predictions(predictions)

    def _stored_now(self, outbox: Outbox, predictions: Sequence[Prediction]) -> bool:
        # While records wait, Cassandra is most likely down: new ones queue behind them at
        # once instead of each request waiting out the deadline.
        if outbox.depth():
            return False
        # When the connection at start failed, connecting again can take the connect
        # timeout, far longer than a request should wait: the drainer connects instead.
        if (store := self._stores.current()) is None:
            return False
        try:
            self._write(store, predictions, "request", self._deadline_s)
        except StorageError:
            return False
        return True

    def _write(
        self,
        store: PredictionStore,
        predictions: Sequence[Prediction],
        path: str,
        timeout_s: float | None = None,
    ) -> None:
        started = time.perf_counter()
        try:
            store.save_many(predictions, timeout_s)
        except StorageError:
            metrics.CASSANDRA_WRITE_FAILURES.labels(path).inc()
            raise
        metrics.CASSANDRA_WRITE_SECONDS.labels(path).observe(time.perf_counter() - started)

    def _queue(self, outbox: Outbox, predictions: Sequence[Prediction]) -> None:
        try:
            outbox.append_many(predictions)
        except OutboxError as error:
            ids = ", ".join(str(p.id) for p in predictions)
            logger.error("neither Cassandra nor the outbox stored predictions %s: %s", ids, error)
            raise StorageError(f"cannot store or queue predictions: {error}") from error
        metrics.OUTBOX_QUEUED.inc(len(predictions))
        metrics.OUTBOX_DEPTH.inc(len(predictions))
        self._wake.set()

    def health(self) -> Health:
        """Whether Cassandra answers now and, if it does not, whether the outbox can queue."""
        try:
            store = self._stores.get() if self._outbox is None else self._stores.current()
            if store is None:
                raise StorageError("not connected yet (the outbox drainer keeps trying)")
            store.ping(self._deadline_s)
        except StorageError as error:
            cassandra = str(error)
        else:
            cassandra = "ok"
        if self._outbox is None:
            return Health(cassandra, None, accepting=cassandra == "ok")
        accepting = True
        if cassandra != "ok":
            try:
                self._outbox.probe()
            except OutboxError as error:
                logger.error("outbox: %s", error)
                accepting = False
        return Health(cassandra, self._outbox.depth(), accepting)

    def _drain(self, outbox: Outbox) -> None:
        """The drainer thread: connects, adopts orphans and replays until closed."""
        delay = 0.0  # the current retry delay; 0 while Cassandra takes writes
        next_scan = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_scan:
                    metrics.OUTBOX_DEPTH.inc(outbox.adopt_orphans())
                    next_scan = time.monotonic() + IDLE_S
                replayed = self._replay_oldest(outbox, self._stores.get())
                delay = 0.0
            except StorageError:  # logged by the storage module
                replayed = 0
                delay = min(max(delay * 2, BACKOFF_S[0]), BACKOFF_S[1])
            except Exception:
                logger.exception("outbox: drainer failed; trying again")
                replayed = 0
                delay = BACKOFF_S[1]
            if delay:
                # New records do not wake a drainer waiting for Cassandra to come back.
                self._stop.wait(delay)
            elif not replayed:
                self._wake.wait(IDLE_S)
                self._wake.clear()
        if not delay:
            self._replay_before_close(outbox)

    def _replay_before_close(self, outbox: Outbox) -> None:
        """Replays what is queued while Cassandra takes it, for up to CLOSE_DRAIN_S."""
        deadline = time.monotonic() + CLOSE_DRAIN_S
        try:
            store = self._stores.get()
            while time.monotonic() < deadline and self._replay_oldest(outbox, store):
                pass
        except StorageError:
            pass  # logged by the storage module; the records wait for the next process

    def _replay_oldest(self, outbox: Outbox, store: PredictionStore) -> int:
        """Replays the oldest queued records; returns how many (0: none waited)."""
        if (batch := outbox.oldest(REPLAY_CHUNK)) is None:
            return 0
        self._write(store, batch.predictions, "replay")
        outbox.remove(batch)
        replayed = len(batch.records)
        metrics.OUTBOX_REPLAYED.inc(replayed)
        metrics.OUTBOX_DEPTH.dec(replayed)
        return replayed

    def close(self) -> None:
        """Stops the drainer and releases the outbox files (waiting records stay queued for
        the next process of this service)."""
        self._stop.set()
        self._wake.set()
        if self._drainer is not None:
            self._drainer.join()
        if self._outbox is not None:
            metrics.OUTBOX_DEPTH.dec(self._outbox.depth())
            self._outbox.close()
