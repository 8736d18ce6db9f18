"""The model registry in Cassandra: every model version, its LiteRT file, and which is active.

The tables are created by ``csd.py``. A version's LiteRT file is stored in chunks
(``model_chunks``, one partition per version) with its sha256 in ``model_versions``, so that
every app instance loads the same bytes without a shared filesystem, and a file that
changed or lost a chunk is refused on load (:class:`ChecksumError`). Its Keras weights,
which a retrain starts from, are stored the same way (``model_weight_chunks``); a version
may have none (registered without them, or before they were kept).

``model_active`` holds the one active version; it changes only by compare-and-set (a
lightweight transaction), so two operators promoting at once cannot both win, and several
workers registering the shipped model on first start agree on one. Each change is also
appended to ``model_activations``: the history a rollback walks back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import PreparedStatement
from cassandra.util import datetime_from_uuid1

from flaskandmnist.classifier import Classifier
from flaskandmnist.config import CassandraSettings, keyspace_name
from flaskandmnist.domain import utc_millis
from flaskandmnist.model_versions import (
    Activation,
    ChecksumError,
    ModelVersion,
    RegistryError,
    promotion_refusal,
)
from flaskandmnist.storage import PredictionStore, StorageError

logger = logging.getLogger(__name__)

#: Bytes per row of model_chunks: a few rows per page keep each response to a megabyte.
CHUNK_BYTES = 256 * 1024
#: Chunk rows read per page when loading a file, and written at once when storing one: a
#: whole weights file in flight overloads the driver's connection (ConnectionBusy).
CHUNKS_PER_PAGE = 4
#: model_versions, model_active and model_activations have a single partition.
SCOPE = "all"
#: Activation rows a rollback reads back through to find where the one before went.
HISTORY_ROWS = 1000

_VERSION_COLUMNS = (
    "version, card, parent, trained_on, created_at, litert_sha256, litert_size, chunks, "
    "weights_sha256, weights_size, weights_chunks"
)


@contextlib.contextmanager
def _cassandra(what: str) -> Iterator[None]:
    """Driver errors as StorageError, as the prediction store raises them."""
    try:
        yield
    except (RegistryError, StorageError):
        raise
    except Exception as error:
        logger.error("Cassandra: %s failed: %r", what, error)
        raise StorageError(f"Cassandra: {what} failed: {error}") from error


class ModelRegistry:
    """Registers, lists, loads, promotes and rolls back model versions through one session
    (the prediction store's); statements are prepared once."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self._session = session
        self.keyspace = ks = keyspace_name(keyspace, "keyspace")

        def prepare(query: str, idempotent: bool = True) -> PreparedStatement:
            statement = session.prepare(query)
            # Plain reads and writes of fixed values may be sent twice; a compare-and-set
            # may not (its second attempt would find its own write and report failure).
            statement.is_idempotent = idempotent
            return statement

        self._insert_version = prepare(
            f"INSERT INTO {ks}.model_versions (scope, {_VERSION_COLUMNS}) "
            f"VALUES ('{SCOPE}', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
            idempotent=False,
        )
        self._select_version = prepare(
            f"SELECT {_VERSION_COLUMNS} FROM {ks}.model_versions "
            f"WHERE scope = '{SCOPE}' AND version = ?"
        )
        self._select_versions = prepare(
            f"SELECT {_VERSION_COLUMNS} FROM {ks}.model_versions WHERE scope = '{SCOPE}'"
        )
        self._insert_chunk = prepare(
            f"INSERT INTO {ks}.model_chunks (version, chunk, data) VALUES (?, ?, ?)"
        )
        self._select_chunks = prepare(
            f"SELECT chunk, data FROM {ks}.model_chunks WHERE version = ?"
        )
        self._insert_weight_chunk = prepare(
            f"INSERT INTO {ks}.model_weight_chunks (version, chunk, data) VALUES (?, ?, ?)"
        )
        self._select_weight_chunks = prepare(
            f"SELECT chunk, data FROM {ks}.model_weight_chunks WHERE version = ?"
        )
        # Only ever sets the weights a version's card names, or that it was registered
        # without: writing them twice writes the same values.
        self._update_weights = prepare(
            f"UPDATE {ks}.model_versions SET weights_sha256 = ?, weights_size = ?, "
            f"weights_chunks = ? WHERE scope = '{SCOPE}' AND version = ?"
        )
        self._select_active = prepare(
            f"SELECT version, rollback_to, action, activated_at FROM {ks}.model_active "
            f"WHERE scope = '{SCOPE}'"
        )
        self._insert_active = prepare(
            f"INSERT INTO {ks}.model_active (scope, version, rollback_to, action, activated_at) "
            f"VALUES ('{SCOPE}', ?, ?, ?, ?) IF NOT EXISTS",
            idempotent=False,
        )
        self._update_active = prepare(
            f"UPDATE {ks}.model_active SET version = ?, rollback_to = ?, action = ?, "
            f"activated_at = ? WHERE scope = '{SCOPE}' IF version = ?",
            idempotent=False,
        )
        self._insert_activation = prepare(
            f"INSERT INTO {ks}.model_activations (scope, id, version, rollback_to, action) "
            f"VALUES ('{SCOPE}', ?, ?, ?, ?)"
        )
        self._select_activations = prepare(
            f"SELECT id, version, rollback_to, action FROM {ks}.model_activations "
            f"WHERE scope = '{SCOPE}' LIMIT ?"
        )

    # --- versions -------------------------------------------------------------------------

    def register(
        self,
        card: dict[str, Any],
        litert: bytes,
        parent: str | None = None,
        trained_on: dict[str, Any] | None = None,
        weights: bytes | None = None,
    ) -> ModelVersion:
        """Registers the model whose card and LiteRT file these are, under the card's
        ``model_version``, with its Keras ``weights`` file if given; registering the same
        file again changes nothing (so that every worker may do it on start), except that
        a version registered without weights gets them. Raises RegistryError if the card
        names another file, or the version is registered with another file."""
        version = card.get("model_version")
        if not isinstance(version, str) or not version:
            raise RegistryError("the model card gives no model_version")
        sha256 = hashlib.sha256(litert).hexdigest()
        if card.get("litert_sha256", sha256) != sha256:
            raise RegistryError(f"the card of {version} names another LiteRT file")
        weights_sha256 = hashlib.sha256(weights).hexdigest() if weights is not None else None
        if weights_sha256 is not None and card.get("weights_sha256", weights_sha256) != (
            weights_sha256
        ):
            raise RegistryError(f"the card of {version} names another weights file")
        if (existing := self.get(version)) is not None:
            existing = self._same_file(existing, sha256)
            if weights is None or existing.weights_sha256 == weights_sha256:
                return existing
            if existing.weights_sha256 is not None:
                raise RegistryError(
                    f"version {version} is registered with other weights "
                    f"(sha256 {existing.weights_sha256})"
                )
            return self._add_weights(existing, weights)
        # The chunks first: a version row is only ever seen with its whole files.
        chunks = self._store_chunks(self._insert_chunk, version, litert, "LiteRT file")
        weight_chunks = (
            self._store_chunks(self._insert_weight_chunk, version, weights, "weights")
            if weights is not None
            else None
        )
        registered = ModelVersion(
            version=version,
            card=card,
            parent=parent if parent is not None else card.get("parent_version"),
            trained_on=trained_on or card.get("trained_on") or {"mnist": card.get("data", {})},
            created_at=_now(),
            litert_sha256=sha256,
            litert_size=len(litert),
            weights_sha256=weights_sha256,
            weights_size=len(weights) if weights is not None else None,
        )
        with _cassandra(f"register {version}"):
            result = self._session.execute(
                self._insert_version,
                (
                    version,
                    json.dumps(card),
                    registered.parent,
                    json.dumps(registered.trained_on),
                    registered.created_at,
                    sha256,
                    len(litert),
                    chunks,
                    weights_sha256,
                    registered.weights_size,
                    weight_chunks,
                ),
            )
        if not result.was_applied:  # another process registered it meanwhile
            return self._same_file(_version(result.one()), sha256)
        return registered

    def _store_chunks(
        self, statement: PreparedStatement, version: str, data: bytes, what: str
    ) -> int:
        """Writes ``data`` in chunks of CHUNK_BYTES; returns how many."""
        starts = range(0, len(data), CHUNK_BYTES)
        rows = [
            (version, index, data[start : start + CHUNK_BYTES])
            for index, start in enumerate(starts)
        ]
        with _cassandra(f"store the {what} of {version}"):
            for ok, result in execute_concurrent_with_args(
                self._session,
                statement,
                rows,
                concurrency=CHUNKS_PER_PAGE,
                raise_on_first_error=False,
            ):
                if not ok:
                    raise result
        return len(rows)

    def _add_weights(self, existing: ModelVersion, weights: bytes) -> ModelVersion:
        """Stores the weights of a version registered without them."""
        version = existing.version
        chunks = self._store_chunks(self._insert_weight_chunk, version, weights, "weights")
        sha256 = hashlib.sha256(weights).hexdigest()
        with _cassandra(f"record the weights of {version}"):
            self._session.execute(self._update_weights, (sha256, len(weights), chunks, version))
        return dataclasses.replace(existing, weights_sha256=sha256, weights_size=len(weights))

    @staticmethod
    def _same_file(existing: ModelVersion, sha256: str) -> ModelVersion:
        if existing.litert_sha256 != sha256:
            raise RegistryError(
                f"version {existing.version} is registered with another LiteRT file "
                f"(sha256 {existing.litert_sha256}); give the new model another version"
            )
        return existing

    def get(self, version: str) -> ModelVersion | None:
        """The registered version of this name, or None."""
        with _cassandra(f"read model version {version}"):
            row = self._session.execute(self._select_version, (version,)).one()
        return None if row is None else _version(row)

    def versions(self) -> list[ModelVersion]:
        """Every registered version, oldest first."""
        with _cassandra("list model versions"):
            rows = list(self._session.execute(self._select_versions))
        return sorted((_version(row) for row in rows), key=lambda v: (v.created_at, v.version))

    def load(self, version: str) -> Classifier:
        """The classifier of a registered version, from its stored LiteRT file; raises
        RegistryError if there is no such version, ChecksumError if the file is not the
        one registered."""
        registered = self._registered(version)
        litert = self._read_chunks(
            self._select_chunks,
            version,
            "LiteRT file",
            registered.litert_sha256,
            registered.litert_size,
        )
        return Classifier(litert, registered.card)

    def weights(self, version: str) -> bytes:
        """The Keras weights file of a registered version, to start a retrain from; raises
        RegistryError if it has none, ChecksumError if they are not the ones registered."""
        registered = self._registered(version)
        if registered.weights_sha256 is None or registered.weights_size is None:
            raise RegistryError(
                f"{version} has no Keras weights in the registry to start from: register "
                f"them with `scripts/run.sh register path/to/its.weights.h5`"
            )
        return self._read_chunks(
            self._select_weight_chunks,
            version,
            "weights",
            registered.weights_sha256,
            registered.weights_size,
        )

    def _registered(self, version: str) -> ModelVersion:
        if (registered := self.get(version)) is None:
            raise RegistryError(f"no model version {version!r} in the registry")
        return registered

    def _read_chunks(
        self, statement: PreparedStatement, version: str, what: str, sha256: str, size: int
    ) -> bytes:
        """A file stored by :meth:`_store_chunks`; ChecksumError unless whole and the one
        registered."""
        bound = statement.bind((version,))
        bound.fetch_size = CHUNKS_PER_PAGE
        with _cassandra(f"read the {what} of {version}"):
            rows = [(row.chunk, row.data or b"") for row in self._session.execute(bound)]
        data = b"".join(chunk for _, chunk in rows)
        complete = [index for index, _ in rows] == list(range(len(rows)))
        found = hashlib.sha256(data).hexdigest()
        if not complete or found != sha256:
            raise ChecksumError(
                f"the stored {what} of {version} is damaged: {len(rows)} chunks of "
                f"{len(data)} bytes with sha256 {found}, registered as {size} bytes with "
                f"sha256 {sha256}; register the model again under a new version"
            )
        return data

    # --- the active version ---------------------------------------------------------------

    def active(self) -> Activation | None:
        """The version every instance serves, or None before the first start."""
        with _cassandra("read the active model version"):
            row = self._session.execute(self._select_active).one()
        if row is None:
            return None
        return Activation(row.version, row.rollback_to, row.action, _utc(row.activated_at))

    def history(self, limit: int = 20) -> list[Activation]:
        """The last changes of the active version, newest first."""
        with _cassandra("read the model activations"):
            rows = list(self._session.execute(self._select_activations, (limit,)))
        return [
            Activation(row.version, row.rollback_to, row.action, _utc(datetime_from_uuid1(row.id)))
            for row in rows
        ]

    def activate_first(self, version: str) -> Activation:
        """Makes ``version`` active unless a version already is; returns the active one."""
        activation = Activation(version, None, "registered", _now())
        with _cassandra("set the first active model version"):
            result = self._session.execute(
                self._insert_active, (version, None, activation.action, activation.activated_at)
            )
        if not result.was_applied:
            row = result.one()
            return Activation(row.version, row.rollback_to, row.action, _utc(row.activated_at))
        self._record(activation)
        return activation

    def promote(self, version: str, force: bool = False) -> Activation:
        """Makes ``version`` active; refuses (RegistryError) a version that is not
        registered, is active already, or fails :func:`promotion_refusal` unless ``force``."""
        if (candidate := self.get(version)) is None:
            raise RegistryError(f"no model version {version!r} in the registry")
        current = self._current()
        if current.version == version:
            raise RegistryError(f"{version} is the active version already")
        active = None if force else self.get(current.version)
        if active is not None and (reason := promotion_refusal(candidate, active)) is not None:
            raise RegistryError(f"not promoted: {reason} (--force promotes it anyway)")
        action = "promote --force" if force else "promote"
        return self._switch(current, Activation(version, current.version, action, _now()))

    def rollback(self) -> Activation:
        """Makes the version that was active before the current one active again; the next
        rollback goes back one more step."""
        current = self._current()
        if current.rollback_to is None:
            raise RegistryError(
                f"{current.version} is the first active version: nothing to roll back to"
            )
        target = current.rollback_to
        if self.get(target) is None:
            raise RegistryError(f"the previous version {target} is no longer registered")
        # Where the target's own activation would have rolled back to.
        earlier = next((a for a in self.history(HISTORY_ROWS)[1:] if a.version == target), None)
        rollback_to = earlier.rollback_to if earlier is not None else None
        return self._switch(current, Activation(target, rollback_to, "rollback", _now()))

    def _current(self) -> Activation:
        if (current := self.active()) is None:
            raise RegistryError(
                "no model version is active yet: start the web app once, which registers "
                "and activates the shipped model"
            )
        return current

    def _switch(self, current: Activation, new: Activation) -> Activation:
        with _cassandra(f"activate {new.version}"):
            result = self._session.execute(
                self._update_active,
                (new.version, new.rollback_to, new.action, new.activated_at, current.version),
            )
        if not result.was_applied:
            raise RegistryError(
                f"the active version changed meanwhile (now {result.one().version}); try again"
            )
        self._record(new)
        return new

    def _record(self, activation: Activation) -> None:
        with _cassandra("record the model activation"):
            self._session.execute(
                self._insert_activation,
                (uuid.uuid1(), activation.version, activation.rollback_to, activation.action),
            )


@contextlib.contextmanager
def open_registry(settings: CassandraSettings) -> Iterator[ModelRegistry]:
    """A registry on its own connection, for a command line process; raises StorageError
    if Cassandra cannot be used."""
    store = PredictionStore.connect(settings)
    try:
        yield ModelRegistry(store.session, store.keyspace)
    finally:
        store.close()


def _version(row: Any) -> ModelVersion:
    return ModelVersion(
        version=row.version,
        card=json.loads(row.card),
        parent=row.parent,
        trained_on=json.loads(row.trained_on or "{}"),
        created_at=_utc(row.created_at),
        litert_sha256=row.litert_sha256,
        litert_size=row.litert_size,
        weights_sha256=row.weights_sha256,
        weights_size=row.weights_size,
    )


def _now() -> datetime:
    return utc_millis(datetime.now(UTC))


def _utc(moment: datetime) -> datetime:
    # The driver returns timestamps as naive datetimes in UTC.
    return moment.replace(tzinfo=UTC)
