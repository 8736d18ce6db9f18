"""Predictions in Apache Cassandra: one Cluster/Session per process, prepared statements.

The tables are created by ``csd.py`` (the one definition of the schema, see the README);
this module only reads and writes them. Every write is idempotent per prediction id, so a
prediction can be saved again after a failure (:mod:`flaskandmnist.recorder` replays its
outbox with :meth:`PredictionStore.save_many`).
A failed read or write raises :class:`StorageError` after logging it; nothing is dropped.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    FallthroughRetryPolicy,
    LoadBalancingPolicy,
    RetryPolicy,
    RoundRobinPolicy,
    TokenAwarePolicy,
)
from cassandra.query import BatchStatement, BatchType, PreparedStatement, Statement
from cassandra.util import datetime_from_uuid1, uuid_from_time

from flaskandmnist.config import CassandraSettings, keyspace_name

logger = logging.getLogger(__name__)

SOURCES = frozenset({"upload", "canvas", "api"})
MAX_FILENAME_CHARS = 255
MAX_CONTENT_TYPE_CHARS = 255
DIGITS = range(10)
#: prediction_days has a single partition; one row per day that holds predictions.
DAYS_SCOPE = "all"

_CORRECTION_COLUMNS = (
    "id, true_digit, predicted_digit, corrected_at, model_version, model_input_png"
)


class StorageError(RuntimeError):
    """Cassandra could not do a read or write; the cause is chained and was logged."""


class UnknownPrediction(LookupError):
    """No prediction has the given id."""


def _clean_text(value: str) -> str:
    """NFC text on one line, without control, format, surrogate or unassigned characters."""
    # Category C covers NUL, newlines, bidi overrides (U+202E) and zero-width characters,
    # which could spoof what a person reading a listing sees; whitespace becomes a space.
    kept = (
        " " if char.isspace() else char
        for char in unicodedata.normalize("NFC", value)
        if char.isspace() or unicodedata.category(char)[0] != "C"
    )
    return re.sub(r"\s+", " ", "".join(kept)).strip()


def sanitize_filename(name: str) -> str:
    """The last path component of a client's filename, safe to store and show.

    Unicode letters are kept; directories (``/`` and ``\\``), control and invisible
    characters are dropped, runs of spaces collapsed, leading dots removed (no ``..``
    or hidden names) and the result cut to 255 characters. May return ``""``.
    """
    base = re.split(r"[/\\]", name)[-1]
    return _clean_text(base).lstrip(". ")[:MAX_FILENAME_CHARS].rstrip()


def _utc_millis(moment: datetime) -> datetime:
    """``moment`` in UTC with millisecond precision, as a Cassandra timestamp holds it."""
    if moment.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class _Dated:
    created_at: datetime

    @property
    def day(self) -> date:
        """The UTC day bucket the listing tables file this prediction under."""
        return self.created_at.date()


@dataclass(frozen=True)
class Prediction(_Dated):
    """One prediction and the image it was made from; build new ones with :meth:`create`.

    Normalised on construction: ``created_at`` to UTC milliseconds, ``filename`` and
    ``content_type`` sanitised, ``probabilities`` to a tuple of floats.
    """

    id: uuid.UUID
    created_at: datetime
    source: str
    image: bytes = field(repr=False)
    content_type: str
    filename: str
    model_input_png: bytes = field(repr=False)
    digit: int
    confidence: float
    probabilities: tuple[float, ...]
    model_version: str
    processing_ms: float

    def __post_init__(self) -> None:
        if self.id.version != 1:
            raise ValueError(f"id must be a time-based UUID (version 1), got {self.id}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {sorted(SOURCES)}, got {self.source!r}")
        if self.digit not in DIGITS:
            raise ValueError(f"digit must be 0-9, got {self.digit!r}")
        probabilities = tuple(float(p) for p in self.probabilities)
        if len(probabilities) != len(DIGITS):
            raise ValueError(f"probabilities must hold 10 values, got {len(probabilities)}")
        normalised = {
            "created_at": _utc_millis(self.created_at),
            "filename": sanitize_filename(self.filename),
            "content_type": _clean_text(self.content_type)[:MAX_CONTENT_TYPE_CHARS],
            "probabilities": probabilities,
            "image": bytes(self.image),
            "model_input_png": bytes(self.model_input_png),
            "digit": int(self.digit),
            "confidence": float(self.confidence),
            "processing_ms": float(self.processing_ms),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    @classmethod
    def create(
        cls,
        *,
        source: str,
        image: bytes,
        content_type: str,
        filename: str,
        model_input_png: bytes,
        digit: int,
        confidence: float,
        probabilities: tuple[float, ...],
        model_version: str,
        processing_ms: float,
        created_at: datetime | None = None,
    ) -> Prediction:
        """A new prediction with a fresh time-based id for ``created_at`` (default: now)."""
        created_at = created_at or datetime.now(UTC)
        return cls(
            # From the full-precision time: predictions made within one millisecond (the
            # precision of created_at) still list in the order they were made.
            id=uuid_from_time(created_at),
            created_at=created_at,
            source=source,
            image=image,
            content_type=content_type,
            filename=filename,
            model_input_png=model_input_png,
            digit=digit,
            confidence=confidence,
            probabilities=probabilities,
            model_version=model_version,
            processing_ms=processing_ms,
        )

    @property
    def image_size(self) -> int:
        return len(self.image)


@dataclass(frozen=True)
class PredictionSummary(_Dated):
    """A row of a listing (newest first, or per digit): no original image, the 28x28 PNG."""

    id: uuid.UUID
    created_at: datetime
    source: str
    filename: str
    content_type: str
    image_size: int
    digit: int
    confidence: float
    model_version: str
    model_input_png: bytes = field(repr=False)


@dataclass(frozen=True)
class Correction:
    """The true digit a person gave for a prediction, with what retraining needs."""

    prediction_id: uuid.UUID
    true_digit: int
    predicted_digit: int
    corrected_at: datetime
    model_version: str
    model_input_png: bytes = field(repr=False)


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first, and the cursor for the next (older) page."""

    items: list[PredictionSummary]
    #: Pass as ``before`` to get the next page; None on the last page.
    next_before: uuid.UUID | None


# Column names are the dataclasses' field names: one list decides statements and values.
# `predictions` also stores image_size (a property of Prediction) for listings and cqlsh.
_PREDICTION_COLUMNS = (*(f.name for f in fields(Prediction)), "image_size")
# Columns of the two listing tables (predictions_by_day, predictions_by_digit), after `day`.
_SUMMARY_COLUMNS = tuple(f.name for f in fields(PredictionSummary))


#: Cassandra's defaults: it warns about a batch of more than 5 KiB of data
#: (batch_size_warn_threshold; it refuses those over 50 KiB) and about an unlogged batch
#: over more than 10 partitions (unlogged_batch_across_partitions_warn_threshold).
_BATCH_BYTES = 5 * 1024
_BATCH_PARTITIONS = 10
#: What a prediction's rows hold besides images and text, as Cassandra sizes a batch (cell
#: timestamps, numbers, keys): measured about 950 bytes per prediction, rounded up.
_ROW_BYTES = 1000


def _batch_bytes(p: Prediction) -> int:
    """About how much of a batch a prediction's rows fill: the full row holds the image and
    the 28x28 PNG, each of the two listing rows the PNG; all three hold the text."""
    text = sum(len(t.encode()) for t in (p.source, p.filename, p.content_type, p.model_version))
    return p.image_size + 3 * (len(p.model_input_png) + text) + _ROW_BYTES


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _select(table: str, columns: tuple[str, ...], where: str) -> str:
    return f"SELECT {', '.join(columns)} FROM {table} WHERE {where}"


def _values(record: object, columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(record, column) for column in columns)


def _timeout(seconds: float | None) -> dict[str, float]:
    """The driver's ``timeout`` argument; left out, it uses the profile's request timeout."""
    return {} if seconds is None else {"timeout": seconds}


def _utc(moment: datetime) -> datetime:
    # The driver returns timestamps as naive datetimes in UTC.
    return moment.replace(tzinfo=UTC)


_Row = TypeVar("_Row", Prediction, PredictionSummary)


def _from_row(kind: type[_Row], row: Any) -> _Row:
    """A row selected with exactly ``kind``'s columns, as ``kind``."""
    values = {f.name: getattr(row, f.name) for f in fields(kind)}
    return kind(**{**values, "created_at": _utc(row.created_at)})


def _load_balancing(settings: CassandraSettings) -> LoadBalancingPolicy:
    if settings.load_balancing == "round_robin":
        return RoundRobinPolicy()
    dc_aware = DCAwareRoundRobinPolicy(local_dc=settings.local_dc)
    return dc_aware if settings.load_balancing == "dc_aware" else TokenAwarePolicy(dc_aware)


#: Set on every driver connection, see :func:`build_cluster`.
NO_DELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def build_cluster(settings: CassandraSettings) -> Cluster:
    """A driver Cluster configured from settings (not yet connected)."""
    profile = ExecutionProfile(
        load_balancing_policy=_load_balancing(settings),
        retry_policy=FallthroughRetryPolicy()
        if settings.retry_policy == "fallthrough"
        else RetryPolicy(),
        consistency_level=ConsistencyLevel.name_to_value[settings.consistency],
        request_timeout=settings.request_timeout_s,
    )
    auth = (
        PlainTextAuthProvider(settings.username, settings.password or "")
        if settings.username
        else None
    )
    return Cluster(
        contact_points=list(settings.contact_points),
        port=settings.port,
        protocol_version=settings.protocol_version,
        auth_provider=auth,
        ssl_context=settings.ssl_context(),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=settings.connect_timeout_s,
        control_connection_timeout=settings.connect_timeout_s,
        # The driver's default waits up to 10 minutes between attempts; a node back after a
        # restart should be used again within seconds.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0),
        # The Python driver leaves Nagle's algorithm on (the Java and C++ drivers turn it
        # off): a frame larger than one segment, such as a row with an image, then waits
        # for the node's delayed ACK before its tail is sent.
        sockopts=[NO_DELAY],
    )


class PredictionStore:
    """Reads and writes predictions through one session; statements are prepared once."""

    def __init__(self, cluster: Cluster, session: Session, keyspace: str) -> None:
        self._cluster = cluster
        self._session = session
        self.keyspace = ks = keyspace_name(keyspace, "keyspace")
        # Tables are named with their keyspace: Cassandra 5.0 warns about prepared
        # statements on a session bound to a keyspace (USE), as their meaning is ambiguous.
        prepare = session.prepare
        self._select_release = prepare("SELECT release_version FROM system.local")
        self._insert_prediction = prepare(_insert(f"{ks}.predictions", _PREDICTION_COLUMNS))
        listing = ("day", *_SUMMARY_COLUMNS)
        self._insert_by_day = prepare(_insert(f"{ks}.predictions_by_day", listing))
        self._insert_by_digit = prepare(_insert(f"{ks}.predictions_by_digit", listing))
        self._insert_day = prepare(
            f"INSERT INTO {ks}.prediction_days (scope, day) VALUES ('{DAYS_SCOPE}', ?)"
        )
        self._select_prediction = prepare(
            _select(f"{ks}.predictions", _PREDICTION_COLUMNS, "id = ?")
        )
        self._select_days = prepare(
            f"SELECT day FROM {ks}.prediction_days WHERE scope = '{DAYS_SCOPE}'"
        )
        # Listings, newest first; the "before" forms continue from a cursor (timeuuids order
        # by time, so ``id < ?`` is "older than").
        by_day, by_digit = f"{ks}.predictions_by_day", f"{ks}.predictions_by_digit"
        self._select_by_day = prepare(_select(by_day, _SUMMARY_COLUMNS, "day = ? LIMIT ?"))
        self._select_by_day_before = prepare(
            _select(by_day, _SUMMARY_COLUMNS, "day = ? AND id < ? LIMIT ?")
        )
        self._select_by_digit = prepare(
            _select(by_digit, _SUMMARY_COLUMNS, "digit = ? AND day = ? LIMIT ?")
        )
        self._select_by_digit_before = prepare(
            _select(by_digit, _SUMMARY_COLUMNS, "digit = ? AND day = ? AND id < ? LIMIT ?")
        )
        self._count_by_digit = prepare(
            f"SELECT COUNT(*) FROM {ks}.predictions_by_digit WHERE digit = ? AND day = ?"
        )
        self._insert_correction = prepare(
            f"INSERT INTO {ks}.corrections (day, {_CORRECTION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self._select_corrections = prepare(
            f"SELECT {_CORRECTION_COLUMNS} FROM {ks}.corrections WHERE day = ?"
        )
        self._select_correction = prepare(
            f"SELECT {_CORRECTION_COLUMNS} FROM {ks}.corrections WHERE day = ? AND id = ?"
        )

    @classmethod
    def connect(cls, settings: CassandraSettings) -> PredictionStore:
        """Connects to the keyspace in settings and prepares the statements."""
        cluster = None
        try:
            cluster = build_cluster(settings)  # raises if no contact point resolves
            return cls(cluster, cluster.connect(), settings.keyspace)
        except Exception as error:
            if cluster is not None:
                cluster.shutdown()
            message = (
                f"cannot use keyspace {settings.keyspace!r} on "
                f"{','.join(settings.contact_points)}:{settings.port} "
                f"(is Cassandra up, and was `python csd.py` run?): {error}"
            )
            logger.error(message)
            raise StorageError(message) from error

    def close(self) -> None:
        self._cluster.shutdown()

    def ping(self, timeout_s: float | None = None) -> None:
        """Raises StorageError unless a node answers a trivial query within ``timeout_s``
        (default: the request timeout)."""
        try:
            self._session.execute(self._select_release, **_timeout(timeout_s))
        except Exception as error:
            raise self._failed("ping", error) from error

    def _failed(self, what: str, error: Exception) -> StorageError:
        # The driver raises a zoo of unrelated types (NoHostAvailable, OperationTimedOut,
        # Unavailable, WriteTimeout, ConnectionException, ...); callers get one.
        logger.error("Cassandra: %s failed: %r", what, error)
        return StorageError(f"Cassandra: {what} failed: {error}")

    def save(self, prediction: Prediction) -> None:
        """Stores the prediction in every table; raises StorageError if any write fails."""
        self.save_many([prediction])

    def save_many(self, predictions: Sequence[Prediction], timeout_s: float | None = None) -> None:
        """Stores the predictions in every table, all writes at once; raises StorageError if
        any fails or they have not all finished within ``timeout_s`` (default: the request
        timeout). What landed stays: saving the same predictions again rewrites the same rows.
        """
        try:
            # Every write is sent before any answer is awaited, and each carries the same
            # timeout, so the wait below ends within about timeout_s of the first send.
            futures = [
                self._session.execute_async(statement, values, **_timeout(timeout_s))
                for statement, values in self._requests(predictions)
            ]
            for future in futures:
                future.result()
        except Exception as error:
            ids = ", ".join(str(p.id) for p in predictions)
            raise self._failed(f"saving predictions {ids}", error) from error

    def _requests(
        self, predictions: Sequence[Prediction]
    ) -> list[tuple[Statement, tuple[Any, ...] | None]]:
        """The predictions' rows in as few requests as Cassandra takes without a warning.

        Cassandra spends most of a small write on the request, not the rows (README: "Load
        benchmark"), so rows go as unlogged batches, each holding the rows of as many
        predictions as stay within its size and partition limits. Unlogged, because a logged
        batch costs Cassandra a batchlog write and delete, and atomicity is not needed: a
        failed save is retried whole (the outbox replays it) and rewrites the same rows. A
        full row too large for any batch (an image of more than about 3 KiB, up to
        MAX_IMAGE_BYTES) is written on its own.
        """
        requests: list[tuple[Statement, tuple[Any, ...] | None]] = []
        batch = BatchStatement(BatchType.UNLOGGED)
        size, partitions, days = 0, set[object](), set[date]()
        for p in predictions:
            full_row = (self._insert_prediction, _values(p, _PREDICTION_COLUMNS))
            rows_size = _batch_bytes(p)
            rows_partitions = {("day", p.day), ("digit", p.digit, p.day), ("days",), p.id}
            if rows_size > _BATCH_BYTES:
                requests.append(full_row)
                rows_size -= p.image_size + len(p.model_input_png)
                rows_partitions.remove(p.id)
            if days and (
                size + rows_size > _BATCH_BYTES
                or len(partitions | rows_partitions) > _BATCH_PARTITIONS
            ):
                requests.append((batch, None))
                batch = BatchStatement(BatchType.UNLOGGED)
                size, partitions, days = 0, set(), set()
            summary = (p.day, *_values(p, _SUMMARY_COLUMNS))
            batch.add(self._insert_by_day, summary)
            batch.add(self._insert_by_digit, summary)
            if p.day not in days:
                batch.add(self._insert_day, (p.day,))
                days.add(p.day)
            if p.id in rows_partitions:
                batch.add(*full_row)
            size += rows_size
            partitions |= rows_partitions
        if days:
            requests.append((batch, None))
        return requests

    def get(self, prediction_id: uuid.UUID) -> Prediction | None:
        """The prediction with this id, original image included; None if there is none."""
        if prediction_id.version != 1:
            return None  # ids are timeuuids: Cassandra refuses to look up any other kind
        try:
            row = self._session.execute(self._select_prediction, (prediction_id,)).one()
        except Exception as error:
            raise self._failed(f"reading prediction {prediction_id}", error) from error
        if row is None:
            return None
        return _from_row(Prediction, row)

    def days(self) -> Iterator[date]:
        """The UTC days that hold predictions, newest first (paged lazily)."""
        try:
            for row in self._session.execute(self._select_days):
                yield row.day.date()
        except Exception as error:
            raise self._failed("listing prediction days", error) from error

    def page(
        self,
        limit: int,
        before: uuid.UUID | None = None,
        digit: int | None = None,
        day: date | None = None,
    ) -> Page:
        """Up to ``limit`` predictions older than ``before`` (default: the newest), newest
        first, across day buckets; only those naming ``digit`` and made on ``day`` if given."""
        if digit is not None and digit not in DIGITS:
            raise ValueError(f"digit must be 0-9, got {digit!r}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        # One more than asked tells whether an older page exists.
        wanted = limit + 1
        newest_day = datetime_from_uuid1(before).date() if before else None
        found: list[PredictionSummary] = []
        for bucket in [day] if day else self.days():
            if len(found) >= wanted:
                break
            if newest_day and bucket > newest_day:
                continue
            key = (bucket,) if digit is None else (digit, bucket)
            cursor = (before,) if before else ()
            statement = {
                (False, False): self._select_by_day,
                (False, True): self._select_by_day_before,
                (True, False): self._select_by_digit,
                (True, True): self._select_by_digit_before,
            }[digit is not None, before is not None]
            what = f"{bucket}" if digit is None else f"digit {digit} on {bucket}"
            found += self._listing(statement, (*key, *cursor, wanted - len(found)), what)
        items = found[:limit]
        return Page(items, items[-1].id if len(found) > limit else None)

    def latest(self, limit: int = 20) -> list[PredictionSummary]:
        """The ``limit`` most recent predictions, newest first, across day buckets."""
        return self.page(limit).items

    def by_digit(
        self, digit: int, day: date | None = None, limit: int = 100
    ) -> list[PredictionSummary]:
        """Predictions of ``digit`` on one UTC day (default today), newest first."""
        return self.page(limit, digit=digit, day=day or datetime.now(UTC).date()).items

    def _listing(self, statement: PreparedStatement, values: tuple, what: str) -> list:
        try:
            return [
                _from_row(PredictionSummary, row)
                for row in self._session.execute(statement, values)
            ]
        except Exception as error:
            raise self._failed(f"listing predictions ({what})", error) from error

    def digit_counts(self, day: date | None = None) -> dict[int, int]:
        """How many predictions named each digit: on one UTC day, or on all days.

        Counted from the rows of predictions_by_digit (one per prediction id), so the
        counts stay exact when a prediction is saved twice, which counters would not.
        Costs one small query per digit and day.
        """
        days = [day] if day else list(self.days())
        counts = dict.fromkeys(DIGITS, 0)
        params = [(digit, d) for d in days for digit in DIGITS]
        try:
            results = execute_concurrent_with_args(
                self._session, self._count_by_digit, params, concurrency=20
            )
        except Exception as error:
            raise self._failed("counting predictions per digit", error) from error
        # raise_on_first_error (the default) means every result here is a success.
        for (digit, _), (_, result) in zip(params, results, strict=True):
            counts[digit] += result.one().count
        return counts

    def save_correction(self, prediction_id: uuid.UUID, true_digit: int) -> Correction:
        """Records the true digit for a prediction (a later correction replaces it)."""
        if true_digit not in DIGITS:
            raise ValueError(f"true_digit must be 0-9, got {true_digit!r}")
        prediction = self.get(prediction_id)
        if prediction is None:
            raise UnknownPrediction(f"no prediction with id {prediction_id}")
        correction = Correction(
            prediction_id=prediction.id,
            true_digit=int(true_digit),
            predicted_digit=prediction.digit,
            corrected_at=_utc_millis(datetime.now(UTC)),
            model_version=prediction.model_version,
            model_input_png=prediction.model_input_png,
        )
        try:
            self._session.execute(
                self._insert_correction,
                (
                    prediction.day,
                    correction.prediction_id,
                    correction.true_digit,
                    correction.predicted_digit,
                    correction.corrected_at,
                    correction.model_version,
                    correction.model_input_png,
                ),
            )
        except Exception as error:
            raise self._failed(f"saving correction of {prediction_id}", error) from error
        return correction

    def corrections(self, day: date) -> list[Correction]:
        """Corrections of the predictions made on one UTC day, for retraining."""
        try:
            rows = self._session.execute(self._select_corrections, (day,))
            return [_correction(row) for row in rows]
        except Exception as error:
            raise self._failed(f"listing corrections of {day}", error) from error

    def correction(self, prediction_id: uuid.UUID) -> Correction | None:
        """The latest correction of one prediction, if a person gave one."""
        if prediction_id.version != 1:
            return None
        # Filed under the prediction's day, which its time-based id carries.
        day = datetime_from_uuid1(prediction_id).date()
        try:
            row = self._session.execute(self._select_correction, (day, prediction_id)).one()
        except Exception as error:
            raise self._failed(f"reading the correction of {prediction_id}", error) from error
        return None if row is None else _correction(row)


def _correction(row: Any) -> Correction:
    return Correction(
        prediction_id=row.id,
        true_digit=row.true_digit,
        predicted_digit=row.predicted_digit,
        corrected_at=_utc(row.corrected_at),
        model_version=row.model_version,
        model_input_png=row.model_input_png,
    )


_lock = threading.Lock()
_stores: dict[CassandraSettings, PredictionStore] = {}


def get_store(settings: CassandraSettings | None = None) -> PredictionStore:
    """This process's store for these settings (default: the environment's), connected on
    first use; a failed connection raises StorageError and is tried again on the next call.

    Under gunicorn, call it in the workers (e.g. per request), not at import time in the
    master: a forked child never reuses its parent's connections (see _after_fork).
    """
    settings = settings or CassandraSettings.from_env()
    with _lock:
        if (store := _stores.get(settings)) is None:
            store = _stores[settings] = PredictionStore.connect(settings)
        return store


def current_store(settings: CassandraSettings) -> PredictionStore | None:
    """This process's store for these settings if it is connected; never connects, never
    waits (not even for a connection another thread is making under the lock)."""
    return _stores.get(settings)  # a single dict read is atomic


def close_store() -> None:
    """Closes this process's stores, if any (e.g. in gunicorn's worker_exit hook)."""
    with _lock:
        while _stores:
            _stores.popitem()[1].close()


def _after_fork() -> None:
    # The driver's threads and sockets belong to the parent; the child connects anew.
    global _lock
    _lock = threading.Lock()
    _stores.clear()


os.register_at_fork(after_in_child=_after_fork)
