"""Predictions in Apache Cassandra: one Cluster/Session per process, prepared statements.

The tables are created by ``csd.py`` (the one definition of the schema); this module only
reads and writes them, as the values of :mod:`flaskandmnist.domain`. Every write is
idempotent per prediction id, so a prediction can be saved again after a failure
(:mod:`flaskandmnist.recorder` replays its outbox with :meth:`PredictionStore.save_many`).
A failed read or write raises :class:`StorageError` after logging it; nothing is dropped.

Listings are bucketed by minute and shard (:func:`listing_bucket`): a partition holds the
predictions of one minute whose id hashes to its shard, so that no partition outgrows
Cassandra's guidance at any rate the service reaches, and the writes of a minute spread
over the ring. A listing reads the shards of a minute concurrently and merges them, newest
first; ``prediction_minutes`` says which minutes of a day hold rows. docs/cassandra.md has
the arithmetic.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    FallthroughRetryPolicy,
    LoadBalancingPolicy,
    RetryPolicy,
    RoundRobinPolicy,
    TokenAwarePolicy,
)
from cassandra.query import BatchStatement, BatchType, PreparedStatement
from cassandra.util import datetime_from_uuid1

from flaskandmnist.config import CassandraSettings, keyspace_name
from flaskandmnist.domain import (
    DIGITS,
    Correction,
    Page,
    Prediction,
    PredictionSummary,
    UnknownPrediction,
    unknown_message,
)

logger = logging.getLogger(__name__)

#: Rows an export reads per request: a page of 28x28 PNGs and text, far below a megabyte.
EXPORT_PAGE_ROWS = 500
#: prediction_days has a single partition; one row per day that holds predictions.
DAYS_SCOPE = "all"
#: Partitions per minute of each listing table. A minute of predictions is spread over this
#: many partitions (and so over the ring); a listing reads them all concurrently.
LISTING_SHARDS = 8
#: Minutes this process remembers having indexed, so that each is written to
#: prediction_minutes about once per process instead of with every prediction.
_INDEXED_MINUTES_KEPT = 1024

_CORRECTION_COLUMNS = (
    "id, true_digit, predicted_digit, corrected_at, model_version, model_input_png"
)


class StorageError(RuntimeError):
    """Cassandra could not do a read or write; the cause is chained and was logged."""


# Column names are the dataclasses' field names: one list decides statements and values.
# `predictions` also stores image_size (a property of Prediction) for listings and cqlsh.
_PREDICTION_COLUMNS = (*(f.name for f in fields(Prediction)), "image_size")
# Columns of the two listing tables (predictions_by_minute, predictions_by_digit_minute),
# after the bucket.
_SUMMARY_COLUMNS = tuple(f.name for f in fields(PredictionSummary))


def _insert(table: str, columns: tuple[str, ...]) -> str:
    """An insert written at the time the prediction was made (the last value, microseconds).

    A delete is written at the time it is made, later: a write of the same prediction
    replayed after it (from an outbox, say) is older than the delete, and Cassandra keeps
    the prediction deleted instead of bringing it back.
    """
    values = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) USING TIMESTAMP ?"


def _write_time(p: Prediction) -> int:
    """The write timestamp of a prediction's rows: when it was made, in microseconds."""
    return int(p.created_at.timestamp() * 1_000_000)


@dataclass(frozen=True)
class ListingBucket:
    """Where a prediction's listing rows lie: its UTC minute (naive, as the driver returns
    timestamps) and its shard, both from the time-based id alone, so that a delete or a
    migration finds the rows without reading anything first."""

    minute: datetime
    shard: int

    @property
    def day(self) -> date:
        return self.minute.date()


def listing_bucket(prediction_id: uuid.UUID) -> ListingBucket:
    """The listing bucket of a prediction id.

    The shard is a hash of the id's bytes, not its node field: ids made by ``uuid1()`` on one
    machine share a node and would all land in one shard.
    """
    minute = datetime_from_uuid1(prediction_id).replace(second=0, microsecond=0)
    return ListingBucket(minute, zlib.crc32(prediction_id.bytes) % LISTING_SHARDS)


def _minute_of(prediction_id: uuid.UUID) -> datetime:
    return listing_bucket(prediction_id).minute


def _timeuuid_order(summary: PredictionSummary) -> tuple[int, bytes]:
    """Cassandra's order of timeuuids, as a sort key: by time, then by the remaining bytes
    compared as signed bytes (flipping the sign bit makes that an unsigned comparison)."""
    return summary.id.time, bytes(b ^ 0x80 for b in summary.id.bytes[8:])


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
        # A coordinator that stalls (a GC pause, a node going down before gossip says so)
        # holds a request until its timeout; a second attempt on the next replica after the
        # delay answers instead. Only idempotent statements are tried twice, and every
        # statement here is (writes carry their own timestamp).
        speculative_execution_policy=ConstantSpeculativeExecutionPolicy(
            settings.speculative_delay_ms / 1000, max_attempts=1
        )
        if settings.speculative_delay_ms
        else None,
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
        # Minutes whose prediction_minutes and prediction_days rows this process wrote.
        self._indexed: set[datetime] = set()

        def prepare(query: str) -> PreparedStatement:
            statement = session.prepare(query)
            # Every statement here may be sent twice (speculative execution, retries):
            # reads change nothing, and writes carry their own timestamp (see _insert).
            statement.is_idempotent = True
            return statement

        # Tables are named with their keyspace: Cassandra 5.0 warns about prepared
        # statements on a session bound to a keyspace (USE), as their meaning is ambiguous.
        self._select_release = prepare("SELECT release_version FROM system.local")
        self._insert_prediction = prepare(_insert(f"{ks}.predictions", _PREDICTION_COLUMNS))
        by_minute = f"{ks}.predictions_by_minute"
        by_digit = f"{ks}.predictions_by_digit_minute"
        # Listing tables: the summary's columns after the bucket (digit is part of the
        # by-digit table's partition key and a column of the other).
        self._insert_by_minute = prepare(_insert(by_minute, ("minute", "shard", *_SUMMARY_COLUMNS)))
        self._insert_by_digit = prepare(_insert(by_digit, ("minute", "shard", *_SUMMARY_COLUMNS)))
        self._insert_minute = prepare(
            f"INSERT INTO {ks}.prediction_minutes (day, minute) VALUES (?, ?) USING TIMESTAMP ?"
        )
        self._insert_day = prepare(
            f"INSERT INTO {ks}.prediction_days (scope, day) VALUES ('{DAYS_SCOPE}', ?) "
            "USING TIMESTAMP ?"
        )
        self._delete_prediction = prepare(f"DELETE FROM {ks}.predictions WHERE id = ?")
        self._delete_by_minute = prepare(
            f"DELETE FROM {by_minute} WHERE minute = ? AND shard = ? AND id = ?"
        )
        self._delete_by_digit = prepare(
            f"DELETE FROM {by_digit} WHERE digit = ? AND minute = ? AND shard = ? AND id = ?"
        )
        self._delete_correction = prepare(f"DELETE FROM {ks}.corrections WHERE day = ? AND id = ?")
        self._select_listed_digit = prepare(
            f"SELECT digit FROM {by_minute} WHERE minute = ? AND shard = ? AND id = ?"
        )
        self._select_prediction = prepare(
            _select(f"{ks}.predictions", _PREDICTION_COLUMNS, "id = ?")
        )
        self._select_days = prepare(
            f"SELECT day FROM {ks}.prediction_days WHERE scope = '{DAYS_SCOPE}'"
        )
        self._select_minutes = prepare(f"SELECT minute FROM {ks}.prediction_minutes WHERE day = ?")
        self._select_minutes_until = prepare(
            f"SELECT minute FROM {ks}.prediction_minutes WHERE day = ? AND minute <= ?"
        )
        # Listings of one bucket, newest first; the "before" forms continue from a cursor
        # (timeuuids order by time, so ``id < ?`` is "older than"). Keyed by
        # (by digit, with a cursor).
        bucket_queries = {
            (False, False): _select(by_minute, _SUMMARY_COLUMNS, "minute = ? AND shard = ?"),
            (False, True): _select(
                by_minute, _SUMMARY_COLUMNS, "minute = ? AND shard = ? AND id < ?"
            ),
            (True, False): _select(
                by_digit, _SUMMARY_COLUMNS, "digit = ? AND minute = ? AND shard = ?"
            ),
            (True, True): _select(
                by_digit, _SUMMARY_COLUMNS, "digit = ? AND minute = ? AND shard = ? AND id < ?"
            ),
        }
        self._select_bucket = {
            key: prepare(f"{query} LIMIT ?") for key, query in bucket_queries.items()
        }
        # Whole buckets, for exports: paged by the driver (fetch_size), never held at once.
        self._select_all_by_minute = prepare(
            _select(by_minute, _SUMMARY_COLUMNS, "minute = ? AND shard = ?")
        )
        self._select_all_by_digit = prepare(
            _select(by_digit, _SUMMARY_COLUMNS, "digit = ? AND minute = ? AND shard = ?")
        )
        for statement in (self._select_all_by_minute, self._select_all_by_digit):
            statement.fetch_size = EXPORT_PAGE_ROWS
        self._select_digits = prepare(
            f"SELECT digit FROM {by_minute} WHERE minute = ? AND shard = ?"
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
        self._select_true_digits = prepare(
            f"SELECT id, true_digit FROM {ks}.corrections WHERE day = ? AND id IN ?"
        )
        self._select_day_true_digits = prepare(
            f"SELECT id, true_digit FROM {ks}.corrections WHERE day = ?"
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

    @property
    def session(self) -> Session:
        """The session, shared with the model registry (one session per process)."""
        return self._session

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
            requests = [*self._index_requests(predictions), *self._requests(predictions)]
            self._wait(self._send(requests, timeout_s))
        except Exception as error:
            ids = ", ".join(str(p.id) for p in predictions)
            raise self._failed(f"saving predictions {ids}", error) from error
        self._remember_indexed(listing_bucket(p.id).minute for p in predictions)

    def save_listings(self, summaries: Sequence[PredictionSummary]) -> None:
        """Writes the listing rows of predictions whose full rows are stored already (csd.py
        copies an older layout's listings with it)."""
        requests = [*self._index_requests(summaries), *self._listing_requests(summaries)]
        try:
            self._wait(self._send(requests, None))
        except Exception as error:
            raise self._failed(f"saving {len(summaries)} listing rows", error) from error
        self._remember_indexed(listing_bucket(s.id).minute for s in summaries)

    def _send(
        self, requests: Iterable[tuple[PreparedStatement, tuple[Any, ...]]], timeout_s: float | None
    ) -> list[ResponseFuture]:
        # Every write is sent before any answer is awaited, and each carries the same
        # timeout, so the wait ends within about timeout_s of the first send.
        return [
            self._session.execute_async(statement, values, **_timeout(timeout_s))
            for statement, values in requests
        ]

    @staticmethod
    def _wait(futures: Sequence[ResponseFuture]) -> None:
        for future in futures:
            future.result()

    def _requests(
        self, predictions: Sequence[Prediction]
    ) -> list[tuple[PreparedStatement, tuple[Any, ...]]]:
        """The predictions' rows, one insert each.

        No batches: each row lies in its own partition, and a multi-partition batch loads
        its coordinator and defeats token-aware routing; the inserts are sent concurrently
        instead. A failed save is retried whole (the outbox replays it) and rewrites the
        same rows.
        """
        rows = [
            (self._insert_prediction, (*_values(p, _PREDICTION_COLUMNS), _write_time(p)))
            for p in predictions
        ]
        return [*rows, *self._listing_requests(predictions)]

    def _listing_requests(
        self, summaries: Sequence[Prediction | PredictionSummary]
    ) -> list[tuple[PreparedStatement, tuple[Any, ...]]]:
        requests: list[tuple[PreparedStatement, tuple[Any, ...]]] = []
        for summary in summaries:
            bucket = listing_bucket(summary.id)
            values = (bucket.minute, bucket.shard, *_values(summary, _SUMMARY_COLUMNS))
            written = _write_time(summary)
            requests += [
                (self._insert_by_minute, (*values, written)),
                (self._insert_by_digit, (*values, written)),
            ]
        return requests

    def _index_requests(
        self, summaries: Sequence[Prediction | PredictionSummary]
    ) -> list[tuple[PreparedStatement, tuple[Any, ...]]]:
        """The prediction_minutes and prediction_days rows of minutes this process has not
        written yet: without this memory every prediction would rewrite the same two rows,
        and all writes of a day would meet on the replicas of those partitions."""
        requests: list[tuple[PreparedStatement, tuple[Any, ...]]] = []
        written: dict[datetime, int] = {}
        for summary in summaries:
            minute = listing_bucket(summary.id).minute
            if minute not in self._indexed:
                written.setdefault(minute, _write_time(summary))
        for minute, timestamp in written.items():
            requests += [
                (self._insert_minute, (minute.date(), minute, timestamp)),
                (self._insert_day, (minute.date(), timestamp)),
            ]
        return requests

    def _remember_indexed(self, minutes: Iterable[datetime]) -> None:
        if len(self._indexed) > _INDEXED_MINUTES_KEPT:
            self._indexed.clear()  # written again at most once each: harmless
        self._indexed.update(minutes)

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
        first, across minute buckets; only those naming ``digit`` and made on ``day`` if
        given."""
        if digit is not None and digit not in DIGITS:
            raise ValueError(f"digit must be 0-9, got {digit!r}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        # One more than asked tells whether an older page exists.
        wanted = limit + 1
        found: list[PredictionSummary] = []
        last = _minute_of(before) if before else None
        for minute in self._minutes(day, last):
            found += self._bucket_listing(minute, digit, before, wanted - len(found))
            if len(found) >= wanted:
                break
        items = found[:limit]
        return Page(items, items[-1].id if len(found) > limit else None)

    def _minutes(self, day: date | None, last: datetime | None) -> Iterator[datetime]:
        """The minutes that hold predictions, newest first: of ``day`` if given, none after
        ``last`` if given."""
        for bucket_day in [day] if day else self.days():
            if last and bucket_day > last.date():
                continue
            if last and bucket_day == last.date():
                statement, values = self._select_minutes_until, (bucket_day, last)
            else:
                statement, values = self._select_minutes, (bucket_day,)
            try:
                minutes = [row.minute for row in self._session.execute(statement, values)]
            except Exception as error:
                raise self._failed(f"listing the minutes of {bucket_day}", error) from error
            yield from minutes

    def _bucket_listing(
        self, minute: datetime, digit: int | None, before: uuid.UUID | None, limit: int
    ) -> list[PredictionSummary]:
        """The newest ``limit`` predictions of one minute, its shards read concurrently."""
        statement = self._select_bucket[digit is not None, before is not None]
        key = () if digit is None else (digit,)
        cursor = () if before is None else (before,)
        futures = self._send(
            ((statement, (*key, minute, shard, *cursor, limit)) for shard in range(LISTING_SHARDS)),
            None,
        )
        try:
            rows = [row for future in futures for row in future.result()]
        except Exception as error:
            what = f"{minute:%Y-%m-%d %H:%M}" + ("" if digit is None else f", digit {digit}")
            raise self._failed(f"listing predictions ({what})", error) from error
        summaries = [_from_row(PredictionSummary, row) for row in rows]
        return sorted(summaries, key=_timeuuid_order, reverse=True)[:limit]

    def latest(self, limit: int = 20) -> list[PredictionSummary]:
        """The ``limit`` most recent predictions, newest first, across buckets."""
        return self.page(limit).items

    def by_digit(
        self, digit: int, day: date | None = None, limit: int = 100
    ) -> list[PredictionSummary]:
        """Predictions of ``digit`` on one UTC day (default today), newest first."""
        return self.page(limit, digit=digit, day=day or datetime.now(UTC).date()).items

    def digit_counts(self, day: date | None = None) -> dict[int, int]:
        """How many predictions named each digit: on one UTC day, or on all days.

        Counted from the listing rows (one per prediction id), so the counts stay exact
        when a prediction is saved twice, which counters would not. Reads the digit of
        every row: meant for reports, not for a page.
        """
        counts = dict.fromkeys(DIGITS, 0)
        buckets = [
            (minute, shard)
            for minute in self._minutes(day, None)
            for shard in range(LISTING_SHARDS)
        ]
        try:
            results = execute_concurrent_with_args(
                self._session, self._select_digits, buckets, concurrency=LISTING_SHARDS * 4
            )
            # raise_on_first_error (the default) means every result here is a success;
            # iterating a result fetches its further pages.
            for _, rows in results:
                for row in rows:
                    counts[row.digit] += 1
        except Exception as error:
            raise self._failed("counting predictions per digit", error) from error
        return counts

    def save_correction(self, prediction_id: uuid.UUID, true_digit: int) -> Correction:
        """Records the true digit for a prediction (a later correction replaces it)."""
        if true_digit not in DIGITS:
            raise ValueError(f"true_digit must be 0-9, got {true_digit!r}")
        prediction = self.get(prediction_id)
        if prediction is None:
            raise UnknownPrediction(unknown_message(prediction_id))
        correction = Correction.of(prediction, true_digit)
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

    def true_digits(self, prediction_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """The true digits people gave for these predictions (those corrected only): one
        query per UTC day among them."""
        by_day: dict[date, list[uuid.UUID]] = {}
        for prediction_id in prediction_ids:
            by_day.setdefault(datetime_from_uuid1(prediction_id).date(), []).append(prediction_id)
        found: dict[uuid.UUID, int] = {}
        try:
            for day, ids in by_day.items():
                for row in self._session.execute(self._select_true_digits, (day, ids)):
                    found[row.id] = row.true_digit
        except Exception as error:
            raise self._failed("reading corrections", error) from error
        return found

    def day_true_digits(self, day: date) -> dict[uuid.UUID, int]:
        """The true digits people gave for the predictions of one UTC day."""
        try:
            rows = self._session.execute(self._select_day_true_digits, (day,))
            return {row.id: row.true_digit for row in rows}
        except Exception as error:
            raise self._failed(f"reading the corrections of {day}", error) from error

    def summaries(self, day: date, digit: int | None = None) -> Iterator[PredictionSummary]:
        """Every prediction of one UTC day (only those naming ``digit`` if given), newest
        first, read a page at a time as the caller iterates: a day of any size fits.

        The shards of a minute are read side by side and merged; at most a page of each is
        held at once.
        """
        for minute in self._minutes(day, None):
            if digit is None:
                statement, key = self._select_all_by_minute, (minute,)
            else:
                statement, key = self._select_all_by_digit, (digit, minute)
            try:
                futures = self._send(
                    ((statement, (*key, shard)) for shard in range(LISTING_SHARDS)), None
                )
                shards = [
                    (_from_row(PredictionSummary, row) for row in future.result())
                    for future in futures
                ]
                yield from heapq.merge(*shards, key=_timeuuid_order, reverse=True)
            except Exception as error:
                raise self._failed(f"reading the predictions of {day}", error) from error

    def get_many(self, prediction_ids: Sequence[uuid.UUID]) -> list[Prediction | None]:
        """The predictions with these ids, read concurrently; None where there is none."""
        try:
            results = execute_concurrent_with_args(
                self._session,
                self._select_prediction,
                [(prediction_id,) for prediction_id in prediction_ids],
                concurrency=len(prediction_ids) or 1,
            )
        except Exception as error:
            raise self._failed("reading predictions", error) from error
        rows = [result.one() for _, result in results]
        return [None if row is None else _from_row(Prediction, row) for row in rows]

    def delete(self, prediction_id: uuid.UUID) -> None:
        """Removes a prediction from every table: its row and image, its two listing rows
        and its correction. Raises UnknownPrediction if none of them holds it.

        The row that holds the image goes first, so that from then on no read hands the
        image out; the other rows follow in one logged batch (all of them, or, should it
        fail, none: a repeated delete then finds the listing row and finishes the work).
        The rows of its minute in prediction_minutes and prediction_days stay: an empty
        minute lists nothing.
        """
        stored = self.get(prediction_id)
        if stored is None and prediction_id.version != 1:
            raise UnknownPrediction(unknown_message(prediction_id))
        bucket = listing_bucket(prediction_id)
        if stored is not None:
            digit = stored.digit
        else:
            try:
                listed = self._session.execute(
                    self._select_listed_digit, (bucket.minute, bucket.shard, prediction_id)
                ).one()
            except Exception as error:
                raise self._failed(f"reading prediction {prediction_id}", error) from error
            if listed is None:
                raise UnknownPrediction(unknown_message(prediction_id))
            digit = listed.digit
        batch = BatchStatement(BatchType.LOGGED)
        batch.add(self._delete_by_minute, (bucket.minute, bucket.shard, prediction_id))
        batch.add(self._delete_by_digit, (digit, bucket.minute, bucket.shard, prediction_id))
        batch.add(self._delete_correction, (bucket.day, prediction_id))
        try:
            self._session.execute(self._delete_prediction, (prediction_id,))
            self._session.execute(batch)
        except Exception as error:
            raise self._failed(f"deleting prediction {prediction_id}", error) from error


def _correction(row: Any) -> Correction:
    return Correction(
        prediction_id=row.id,
        true_digit=row.true_digit,
        predicted_digit=row.predicted_digit,
        corrected_at=_utc(row.corrected_at),
        model_version=row.model_version,
        model_input_png=row.model_input_png,
    )


class StoreConnector:
    """This process's store for one keyspace, connected on first use and shared by the app's
    services and recorder; a failed connection raises StorageError and is tried again on the
    next call.

    Fork-safe: a driver Cluster's threads and sockets belong to the process that connected
    it, so a process forked after the connection (e.g. from a gunicorn master that preloads
    the app) connects anew and never touches its parent's session.
    """

    def __init__(self, settings: CassandraSettings) -> None:
        self.settings = settings
        # Per process id; setdefault is atomic, so the threads of a new child agree on one.
        self._slots: dict[int, _Slot] = {}

    def _slot(self) -> _Slot:
        pid = os.getpid()
        return self._slots.get(pid) or self._slots.setdefault(pid, _Slot())

    def get(self) -> PredictionStore:
        """The connected store; connects if this process has none yet."""
        slot = self._slot()
        with slot.lock:
            if slot.store is None:
                slot.store = PredictionStore.connect(self.settings)
            return slot.store

    def current(self) -> PredictionStore | None:
        """The store if this process connected it; never connects, never waits (not even
        for a connection another thread is making under the lock)."""
        return self._slot().store

    def close(self) -> None:
        """Closes this process's store, if any; a later :meth:`get` connects again."""
        slot = self._slot()
        with slot.lock:
            if slot.store is not None:
                slot.store.close()
                slot.store = None


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    store: PredictionStore | None = None
