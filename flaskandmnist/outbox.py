"""A durable local queue of the predictions Cassandra has not stored yet: the outbox.

Each process appends to its own SQLite file in the outbox folder, in WAL mode with
``synchronous=FULL``: when :meth:`Outbox.append_many` returns, the records are fsynced and
survive the process being killed (or the machine losing power). A process owns a file while
it holds an exclusive ``flock`` on the file's ``.lock`` beside it; the kernel drops the lock
when the process dies, however it dies, and another process of the same service then adopts
the file (:meth:`Outbox.adopt_orphans`) and replays what is left.

Files are named ``<keyspace>-<pid>-<random>.sqlite``: a process adopts only files of its own
keyspace. The folder must be on a local disk (flock over NFS is unreliable).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

from flaskandmnist.domain import Prediction

logger = logging.getLogger(__name__)

_BLOBS = ("image", "model_input_png")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,  -- append order: replays go oldest first
    id TEXT NOT NULL,         -- the prediction's id, for people inspecting a file
    fields TEXT NOT NULL,     -- JSON: every field of the prediction but the two images
    image BLOB NOT NULL,
    model_input_png BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS probe (k INTEGER PRIMARY KEY, at TEXT NOT NULL);
"""


class OutboxError(RuntimeError):
    """The outbox could not be written or read (disk full, folder not writable, ...)."""


def _encode(p: Prediction) -> tuple[str, str, bytes, bytes]:
    values = {f.name: getattr(p, f.name) for f in fields(Prediction) if f.name not in _BLOBS}
    # json writes floats exactly (shortest repr), so a replay stores the same doubles.
    values |= {"id": str(p.id), "created_at": p.created_at.isoformat()}
    return str(p.id), json.dumps(values), p.image, p.model_input_png


def _decode(values_json: str, image: bytes, model_input_png: bytes) -> Prediction:
    values = json.loads(values_json)
    return Prediction(
        **values
        | {
            "id": uuid.UUID(values["id"]),
            "created_at": datetime.fromisoformat(values["created_at"]),
            "image": image,
            "model_input_png": model_input_png,
        }
    )


def _fsync_folder(folder: Path) -> None:
    """Makes a file just created in ``folder`` survive a power loss (its directory entry)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Deletes a queue file whose lock this process holds, and the lock file last: whoever
    sees the database file finds its lock."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    QueueFile.lock_path(path).unlink(missing_ok=True)


class QueueFile:
    """One queue file, locked by this process; not thread-safe (the Outbox locks)."""

    def __init__(self, path: Path, lock_fd: int, db: sqlite3.Connection) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._db = db
        self.depth: int = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]

    @staticmethod
    def lock_path(path: Path) -> Path:
        return path.with_suffix(".lock")

    @staticmethod
    def _open_db(path: Path, create: bool) -> sqlite3.Connection:
        mode = "rwc" if create else "rw"  # an adopted file that vanished is not re-created
        db = sqlite3.connect(
            f"{path.as_uri()}?mode={mode}", uri=True, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: in WAL mode, fsync the log at every commit (NORMAL could lose the last
            # commits on power loss).
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    @classmethod
    def create(cls, folder: Path, name: str) -> QueueFile:
        """A new, empty queue file of this process in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{os.getpid()}-{secrets.token_hex(4)}.sqlite"
        # The lock is taken before the database exists: whoever sees the .sqlite file
        # finds it locked while this process lives.
        lock_fd = os.open(cls.lock_path(path), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            queue = cls(path, lock_fd, cls._open_db(path, create=True))
        except BaseException:
            _remove(path)
            os.close(lock_fd)
            raise
        _fsync_folder(folder)
        return queue

    @classmethod
    def adopt(cls, path: Path) -> QueueFile | None:
        """The queue file at ``path`` if no live process owns it (it is then ours), else
        None."""
        lock_path = cls.lock_path(path)
        try:
            lock_fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            return None  # removed meanwhile by the process that drained it
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The files may have been removed (drained by another process) between our
            # listing and our flock: then the lock we hold guards nothing.
            if os.fstat(lock_fd).st_ino != os.stat(lock_path).st_ino or not path.exists():
                raise FileNotFoundError(path)
            return cls(path, lock_fd, cls._open_db(path, create=False))
        except (BlockingIOError, FileNotFoundError):  # owned by a live process, or gone
            os.close(lock_fd)
            return None
        except sqlite3.Error as error:
            os.close(lock_fd)
            logger.error("outbox: cannot read %s, left for a person to look at: %s", path, error)
            return None
        except BaseException:
            os.close(lock_fd)
            raise

    def append_many(self, predictions: Sequence[Prediction]) -> None:
        """Appends the records in one transaction: one fsync for all of them."""
        with self._db:  # BEGIN ... COMMIT, or ROLLBACK on an error
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO records (id, fields, image, model_input_png) VALUES (?, ?, ?, ?)",
                [_encode(p) for p in predictions],
            )
        self.depth += len(predictions)

    def oldest(self, limit: int) -> list[tuple[int, Prediction]]:
        """Up to ``limit`` records, oldest first, with their sequence numbers."""
        rows = self._db.execute(
            "SELECT seq, fields, image, model_input_png FROM records ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [(seq, _decode(*values)) for seq, *values in rows]

    def delete_through(self, seq: int) -> int:
        """Deletes the records up to and including ``seq``; returns how many."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            deleted = self._db.execute("DELETE FROM records WHERE seq <= ?", (seq,)).rowcount
        self.depth -= deleted
        return deleted

    def probe(self) -> None:
        """Commits a tiny write: raises if the disk cannot take one now."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("REPLACE INTO probe (k, at) VALUES (0, datetime('now'))")

    def close(self) -> None:
        """Closes the file, deleting it when empty; a non-empty one stays for adoption."""
        self._db.close()
        if self.depth == 0:
            _remove(self.path)
        os.close(self._lock_fd)  # releases the flock


@dataclass(frozen=True)
class Batch:
    """The oldest records of one queue file, to replay and then remove."""

    queue: QueueFile
    records: list[tuple[int, Prediction]]

    @property
    def predictions(self) -> list[Prediction]:
        return [prediction for _, prediction in self.records]


class Outbox:
    """This process's queue file (created on the first append) and the orphaned files it
    adopted, behind one lock; safe to share between threads."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self._lock = threading.Lock()
        self._own: QueueFile | None = None
        self._adopted: list[QueueFile] = []

    def _own_file(self) -> QueueFile:
        if self._own is None:
            self._own = QueueFile.create(self.folder, self.name)
            logger.info("outbox: queueing into %s", self._own.path)
        return self._own

    def append_many(self, predictions: Sequence[Prediction]) -> None:
        """Queues the predictions durably (fsynced when this returns); raises OutboxError."""
        with self._lock:
            try:
                self._own_file().append_many(predictions)
            except (OSError, sqlite3.Error) as error:
                raise OutboxError(f"cannot queue in {self.folder}: {error}") from error

    def probe(self) -> None:
        """Raises OutboxError unless this process can queue a record now."""
        with self._lock:
            try:
                self._own_file().probe()
            except (OSError, sqlite3.Error) as error:
                raise OutboxError(f"cannot queue in {self.folder}: {error}") from error

    def depth(self) -> int:
        """Records waiting in this process's files (its own and those it adopted)."""
        with self._lock:
            return sum(queue.depth for queue in self._files())

    def _files(self) -> list[QueueFile]:
        # Adopted files first: they hold the older records.
        return [*self._adopted, *([self._own] if self._own else [])]

    def adopt_orphans(self) -> int:
        """Takes over the files of this service's dead processes; returns the records they
        hold (0 when there are none)."""
        with self._lock:
            ours = {queue.path for queue in self._files()}
            found = 0
            for path in sorted(self.folder.glob(f"{self.name}-*.sqlite")):
                if path in ours or (queue := QueueFile.adopt(path)) is None:
                    continue
                if queue.depth == 0:  # e.g. a worker that had drained its queue
                    queue.close()
                    continue
                logger.warning("outbox: adopted %s with %d records", path, queue.depth)
                self._adopted.append(queue)
                found += queue.depth
            return found

    def oldest(self, limit: int) -> Batch | None:
        """The next records to replay, oldest first, from one file; None when all are empty."""
        with self._lock:
            for queue in self._files():
                if queue.depth:
                    return Batch(queue, queue.oldest(limit))
            return None

    def remove(self, batch: Batch) -> None:
        """Deletes a replayed batch; a drained adopted file is deleted altogether."""
        with self._lock:
            batch.queue.delete_through(batch.records[-1][0])
            if batch.queue in self._adopted and batch.queue.depth == 0:
                self._adopted.remove(batch.queue)
                batch.queue.close()

    def close(self) -> None:
        """Releases the files: empty ones are deleted, others wait for adoption."""
        with self._lock:
            for queue in self._files():
                queue.close()
            self._own, self._adopted = None, []
