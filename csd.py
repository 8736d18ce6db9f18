#!/usr/bin/env python3
"""Creates or upgrades the flaskandmnist keyspace and tables in Cassandra; safe to re-run.

This file is the one definition of the schema (docs/cassandra.md documents it). On an existing
keyspace it creates missing tables and adds missing columns, copies the listings of the
day-bucketed layout into the minute buckets once (recorded in schema_migrations), and sets
the listing rows' TTL when asked; it never drops anything, so tables of earlier versions and
their data stay as they are. Settings
default to the CASSANDRA_* environment variables (flaskandmnist/config.py).

Exit codes: 0 schema ready; 2 bad arguments or settings; 3 Cassandra did not answer within
--wait-timeout; 4 authentication failed; 5 an existing table conflicts with this schema, or
Cassandra refused a statement.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from cassandra import (
    AuthenticationFailed,
    DriverException,
    OperationTimedOut,
    UnresolvableContactPoints,
)
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.query import SimpleStatement
from cassandra.util import datetime_from_uuid1

from flaskandmnist.config import (
    CassandraSettings,
    ConfigError,
    datacenter_factors,
    keyspace_name,
)
from flaskandmnist.domain import PredictionSummary
from flaskandmnist.storage import PredictionStore, StorageError, build_cluster

EXIT_OK, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_SCHEMA = 0, 2, 3, 4, 5


@dataclass(frozen=True)
class Table:
    """A table as this version needs it: its key and the columns it must have."""

    name: str
    comment: str
    partition_key: tuple[tuple[str, str], ...]
    #: Clustering columns as (name, type, "ASC" | "DESC").
    clustering: tuple[tuple[str, str, str], ...]
    columns: tuple[tuple[str, str], ...]
    #: Further table options in CQL, e.g. the compaction strategy.
    options: tuple[str, ...] = ()
    #: Whether ``--listing-ttl-days`` applies (default_time_to_live).
    listing: bool = False

    def create_cql(self, keyspace: str) -> str:
        key_columns = [*self.partition_key, *((name, kind) for name, kind, _ in self.clustering)]
        columns = ",\n".join(f"    {name} {kind}" for name, kind in (*key_columns, *self.columns))
        partition = ", ".join(name for name, _ in self.partition_key)
        clustering = "".join(f", {name}" for name, _, _ in self.clustering)
        options = [f"comment = '{self.comment}'", *self.options]
        if self.clustering:
            order = ", ".join(f"{name} {direction}" for name, _, direction in self.clustering)
            options.insert(0, f"CLUSTERING ORDER BY ({order})")
        return (
            f"CREATE TABLE IF NOT EXISTS {keyspace}.{self.name} (\n{columns},\n"
            f"    PRIMARY KEY (({partition}){clustering})\n) WITH {' AND '.join(options)}"
        )


# What a listing shows without reading the original image: a summary and the 28x28 PNG.
_LISTING_COLUMNS = (
    ("created_at", "timestamp"),
    ("source", "text"),
    ("filename", "text"),
    ("content_type", "text"),
    ("image_size", "int"),
    ("confidence", "double"),
    ("model_version", "text"),
    ("model_input_png", "blob"),
    ("not_a_digit", "boolean"),
)
_NEWEST_FIRST = (("id", "timeuuid", "DESC"),)
# Listing rows are written once, at about the time they describe (USING TIMESTAMP of their
# creation), and read newest first: time windows keep a day's rows in its own SSTables,
# compact only within a window, and let whole SSTables go when rows expire (a TTL), where
# size-tiered compaction would rewrite old rows again and again.
_TIME_WINDOWS = (
    "compaction = {'class': 'TimeWindowCompactionStrategy', "
    "'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}"
)

TABLES = (
    Table(
        name="predictions",
        comment="One row per prediction, by id: the original image and all model outputs",
        partition_key=(("id", "timeuuid"),),
        clustering=(),
        columns=(
            ("created_at", "timestamp"),
            ("source", "text"),
            ("image", "blob"),
            ("content_type", "text"),
            ("image_size", "int"),
            ("filename", "text"),
            ("model_input_png", "blob"),
            ("digit", "tinyint"),
            ("confidence", "double"),
            ("probabilities", "frozen<list<double>>"),
            ("model_version", "text"),
            ("processing_ms", "double"),
            ("not_a_digit", "boolean"),
        ),
    ),
    Table(
        name="predictions_by_minute",
        comment="Predictions of one UTC minute and shard, newest first",
        partition_key=(("minute", "timestamp"), ("shard", "tinyint")),
        clustering=_NEWEST_FIRST,
        columns=(("digit", "tinyint"), *_LISTING_COLUMNS),
        options=(_TIME_WINDOWS,),
        listing=True,
    ),
    Table(
        name="predictions_by_digit_minute",
        comment="Predictions naming one digit in one UTC minute and shard, newest first",
        partition_key=(("digit", "tinyint"), ("minute", "timestamp"), ("shard", "tinyint")),
        clustering=_NEWEST_FIRST,
        columns=_LISTING_COLUMNS,
        options=(_TIME_WINDOWS,),
        listing=True,
    ),
    Table(
        name="prediction_minutes",
        comment="The UTC minutes of one day that hold predictions, newest first",
        partition_key=(("day", "date"),),
        clustering=(("minute", "timestamp", "DESC"),),
        columns=(),
        listing=True,
    ),
    Table(
        name="prediction_days",
        comment="The UTC days that hold predictions, newest first (scope is always all)",
        partition_key=(("scope", "text"),),
        clustering=(("day", "date", "DESC"),),
        columns=(),
    ),
    Table(
        name="corrections",
        comment="True digits people gave for predictions, by the prediction UTC day",
        partition_key=(("day", "date"),),
        clustering=_NEWEST_FIRST,
        columns=(
            ("true_digit", "tinyint"),
            ("predicted_digit", "tinyint"),
            ("corrected_at", "timestamp"),
            ("model_version", "text"),
            ("model_input_png", "blob"),
        ),
    ),
    # The model registry (flaskandmnist/registry.py): every version with its card and its
    # LiteRT file, which version is active, and each change of it.
    Table(
        name="model_versions",
        comment="Registered model versions with their cards (scope is always all)",
        partition_key=(("scope", "text"),),
        clustering=(("version", "text", "ASC"),),
        columns=(
            ("card", "text"),
            ("parent", "text"),
            ("trained_on", "text"),
            ("created_at", "timestamp"),
            ("litert_sha256", "text"),
            ("litert_size", "int"),
            ("chunks", "int"),
            # The Keras weights a retrain starts from; null for versions registered without.
            ("weights_sha256", "text"),
            ("weights_size", "int"),
            ("weights_chunks", "int"),
        ),
    ),
    Table(
        name="model_chunks",
        comment="The LiteRT file of one model version, in chunks, in order",
        partition_key=(("version", "text"),),
        clustering=(("chunk", "int", "ASC"),),
        columns=(("data", "blob"),),
    ),
    Table(
        name="model_weight_chunks",
        comment="The Keras weights file of one model version, in chunks, in order",
        partition_key=(("version", "text"),),
        clustering=(("chunk", "int", "ASC"),),
        columns=(("data", "blob"),),
    ),
    Table(
        name="model_active",
        comment="The model version every app instance serves (scope is always all)",
        partition_key=(("scope", "text"),),
        clustering=(),
        columns=(
            ("version", "text"),
            ("rollback_to", "text"),
            ("action", "text"),
            ("activated_at", "timestamp"),
        ),
    ),
    Table(
        name="model_activations",
        comment="Each change of the active model version, newest first (scope is always all)",
        partition_key=(("scope", "text"),),
        clustering=(("id", "timeuuid", "DESC"),),
        columns=(("version", "text"), ("rollback_to", "text"), ("action", "text")),
    ),
    Table(
        name="schema_migrations",
        comment="Data migrations csd.py has done in this keyspace, by name",
        partition_key=(("name", "text"),),
        clustering=(),
        columns=(("applied_at", "timestamp"), ("detail", "text")),
    ),
)


class SchemaConflict(RuntimeError):
    """An existing table cannot be brought to this schema without losing data."""


@dataclass
class SchemaResult:
    """What ensure_schema changed, and what it left alone but reports."""

    changes: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


def replication_of(settings: CassandraSettings) -> dict[str, str]:
    """The keyspace replication map: NetworkTopologyStrategy if data centres are given."""
    if settings.datacenters:
        return {
            "class": "NetworkTopologyStrategy",
            **{dc: str(n) for dc, n in settings.datacenters},
        }
    return {"class": "SimpleStrategy", "replication_factor": str(settings.replication_factor)}


def _cql_map(values: dict[str, str]) -> str:
    # Names and numbers were validated by the config parsers; quotes are escaped anyway.
    def quote(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return "{" + ", ".join(f"{quote(k)}: {quote(v)}" for k, v in values.items()) + "}"


def _short_class(replication: dict[str, str]) -> dict[str, str]:
    return {**replication, "class": replication["class"].rsplit(".", 1)[-1]}


#: Schema changes flush system tables and wait for schema agreement: on a small, busy node
#: that can take longer than an ordinary request's timeout.
DDL_TIMEOUT_S = 60.0


def ensure_schema(
    session: Session,
    keyspace: str,
    replication: dict[str, str],
    listing_ttl_days: int | None = None,
    recopy_listings: bool = False,
) -> SchemaResult:
    """Creates what is missing of the keyspace and TABLES, and copies the listings of the
    day-bucketed layout into the minute buckets once (again with ``recopy_listings``);
    raises SchemaConflict.

    ``listing_ttl_days`` sets how long listing rows live (0: for ever); None leaves the
    tables' setting as it is.
    """
    keyspace = keyspace_name(keyspace, "keyspace")
    result = SchemaResult()
    row = session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    if row is None:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {_cql_map(replication)}",
            timeout=DDL_TIMEOUT_S,
        )
        result.changes.append(f"created keyspace {keyspace} with replication {replication}")
    elif _short_class(dict(row.replication)) != replication:
        # Changing replication needs a repair afterwards: an operator's decision.
        result.warnings.append(
            f"keyspace {keyspace} keeps its replication {_short_class(dict(row.replication))}; "
            f"requested {replication} (ALTER KEYSPACE and repair to change it)"
        )
    for table in TABLES:
        _ensure_table(session, keyspace, table, result)
    if listing_ttl_days is not None:
        _ensure_listing_ttl(session, keyspace, listing_ttl_days * 86_400, result)
    _copy_day_listings(session, keyspace, recopy_listings, result)
    return result


def _ensure_listing_ttl(
    session: Session, keyspace: str, seconds: int, result: SchemaResult
) -> None:
    for table in TABLES:
        if not table.listing:
            continue
        row = session.execute(
            "SELECT default_time_to_live FROM system_schema.tables "
            "WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table.name),
        ).one()
        if row.default_time_to_live != seconds:
            session.execute(
                f"ALTER TABLE {keyspace}.{table.name} WITH default_time_to_live = {seconds}",
                timeout=DDL_TIMEOUT_S,
            )
            result.changes.append(
                f"set default_time_to_live of {keyspace}.{table.name} to {seconds} s"
            )


#: The listing table of the day-bucketed layout (before minute buckets), and the name its
#: copy is recorded under in schema_migrations.
DAY_LISTING = "predictions_by_day"
DAY_LISTING_COPY = "listings_by_minute"
#: Rows written to the new tables at once while copying.
COPY_CHUNK = 200


def _copy_day_listings(session: Session, keyspace: str, again: bool, result: SchemaResult) -> None:
    """Copies every row of the old day listing into the minute-bucketed tables.

    The copy is idempotent (the same rows, written with the time of each prediction), so
    it can run again (``--recopy-listings``) to pick up rows that instances of the previous
    version wrote after the first copy. The old tables are left as they are.
    """
    have = _columns(session, keyspace, DAY_LISTING)
    if not have:
        return
    migrations = f"{keyspace}.schema_migrations"
    done = session.execute(
        f"SELECT detail FROM {migrations} WHERE name = %s", (DAY_LISTING_COPY,)
    ).one()
    if done is not None and not again:
        return
    names = [f.name for f in dataclasses.fields(PredictionSummary)]
    query = SimpleStatement(
        f"SELECT {', '.join(n for n in names if n in have)} FROM {keyspace}.{DAY_LISTING}",
        fetch_size=COPY_CHUNK * 5,
    )
    store = PredictionStore(session.cluster, session, keyspace)
    copied = 0
    chunk: list[PredictionSummary] = []
    for row in session.execute(query, timeout=DDL_TIMEOUT_S):
        values = {name: getattr(row, name, None) for name in names}
        # Rows of early versions may lack created_at; the time-based id carries it.
        created_at = row.created_at if "created_at" in have else None
        values["created_at"] = (created_at or datetime_from_uuid1(row.id)).replace(tzinfo=UTC)
        chunk.append(PredictionSummary(**values))
        if len(chunk) == COPY_CHUNK:
            store.save_listings(chunk)
            copied, chunk = copied + len(chunk), []
    store.save_listings(chunk)
    copied += len(chunk)
    detail = f"copied {copied} rows of {keyspace}.{DAY_LISTING} into the minute buckets"
    session.execute(
        f"INSERT INTO {migrations} (name, applied_at, detail) VALUES (%s, toTimestamp(now()), %s)",
        (DAY_LISTING_COPY, detail),
    )
    result.changes.append(f"{detail} (the day tables are kept)")


def _columns(session: Session, keyspace: str, table: str) -> set[str]:
    rows = session.execute(
        "SELECT column_name FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    return {row.column_name for row in rows}


def _ensure_table(session: Session, keyspace: str, table: Table, result: SchemaResult) -> None:
    rows = list(
        session.execute(
            "SELECT column_name, kind, position, type, clustering_order FROM system_schema.columns "
            "WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table.name),
        )
    )
    if not rows:
        session.execute(table.create_cql(keyspace), timeout=DDL_TIMEOUT_S)
        result.changes.append(f"created table {keyspace}.{table.name}")
        return
    existing = {row.column_name: row for row in rows}

    def key(kind: str) -> list[tuple[str, str, str]]:
        found = sorted((row for row in rows if row.kind == kind), key=lambda row: row.position)
        return [(row.column_name, row.type, row.clustering_order.upper()) for row in found]

    have = key("partition_key") + key("clustering")
    want = [(name, kind, "NONE") for name, kind in table.partition_key] + list(table.clustering)
    if have != want:
        raise SchemaConflict(
            f"table {keyspace}.{table.name} exists with another primary key "
            f"({', '.join(name for name, _, _ in have)}); this version needs "
            f"({', '.join(name for name, _, _ in want)}). It was left untouched: "
            "rename it or use another keyspace, then run csd.py again"
        )
    for name, kind in table.columns:
        if name not in existing:
            session.execute(
                f"ALTER TABLE {keyspace}.{table.name} ADD {name} {kind}", timeout=DDL_TIMEOUT_S
            )
            result.changes.append(f"added column {name} {kind} to {keyspace}.{table.name}")
        elif existing[name].type != kind:
            raise SchemaConflict(
                f"column {keyspace}.{table.name}.{name} is {existing[name].type}, "
                f"this version needs {kind}; it was left untouched"
            )


class Unreachable(RuntimeError):
    """Cassandra did not accept a connection before the deadline."""


def connect(settings: CassandraSettings, wait_timeout: float) -> tuple[Cluster, Session]:
    """Connects, retrying until wait_timeout; bad credentials fail at once."""
    deadline = time.monotonic() + wait_timeout
    while True:
        try:
            cluster = build_cluster(settings)
        except UnresolvableContactPoints:  # a name may resolve soon (a container starting)
            reason = "no contact point resolves to an address"
        else:
            try:
                return cluster, cluster.connect()
            except NoHostAvailable as error:
                cluster.shutdown()
                causes = error.errors.values()
                if any(isinstance(cause, AuthenticationFailed) for cause in causes):
                    raise AuthenticationFailed(str(error)) from error
                reason = str(error)
        if time.monotonic() >= deadline:
            raise Unreachable(reason)
        time.sleep(1.0)


def _parser(defaults: CassandraSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[-1],
    )
    parser.add_argument(
        "--contact-points",
        default=",".join(defaults.contact_points),
        help="comma-separated hosts (default: %(default)s)",
    )
    parser.add_argument("--port", type=int, default=defaults.port, help="(default: %(default)s)")
    parser.add_argument("--keyspace", default=defaults.keyspace, help="(default: %(default)s)")
    replication = parser.add_mutually_exclusive_group()
    replication.add_argument(
        "--replication-factor",
        type=int,
        default=defaults.replication_factor,
        help="SimpleStrategy with this factor (default: %(default)s)",
    )
    replication.add_argument(
        "--datacenter",
        action="append",
        metavar="DC:FACTOR",
        help="NetworkTopologyStrategy; repeat for each data centre, e.g. dc1:3",
    )
    parser.add_argument(
        "--listing-ttl-days",
        type=int,
        metavar="DAYS",
        help="listing rows expire after DAYS (0: never); left out, the tables keep theirs. "
        "Predictions themselves never expire",
    )
    parser.add_argument(
        "--recopy-listings",
        action="store_true",
        help="copy the day-bucketed listings of an earlier version into the minute buckets "
        "again (after the last instance of that version stopped writing)",
    )
    parser.add_argument("--username", default=defaults.username)
    parser.add_argument("--password", default=defaults.password, help="prefer CASSANDRA_PASSWORD")
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for Cassandra to answer (default: %(default)s)",
    )
    return parser


def _settings(args: argparse.Namespace, defaults: CassandraSettings) -> CassandraSettings:
    if args.replication_factor < 1:
        raise ConfigError("--replication-factor must be at least 1")
    if args.listing_ttl_days is not None and args.listing_ttl_days < 0:
        raise ConfigError("--listing-ttl-days must be 0 or more")
    datacenters = (
        datacenter_factors(",".join(args.datacenter), "--datacenter")
        if args.datacenter
        else defaults.datacenters
    )
    return dataclasses.replace(
        defaults,
        contact_points=tuple(p.strip() for p in args.contact_points.split(",") if p.strip()),
        port=args.port,
        keyspace=keyspace_name(args.keyspace, "--keyspace"),
        username=args.username or None,
        password=args.password or None,
        replication_factor=args.replication_factor,
        datacenters=datacenters,
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="csd.py: %(levelname)s: %(message)s")
    # Our messages say what failed; the driver's per-attempt connection warnings are noise.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    try:
        defaults = CassandraSettings.from_env()
        args = _parser(defaults).parse_args(argv)
        settings = _settings(args, defaults)
    except ConfigError as error:
        print(f"csd.py: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    where = f"{','.join(settings.contact_points)}:{settings.port}"
    try:
        cluster, session = connect(settings, args.wait_timeout)
    except AuthenticationFailed as error:
        print(f"csd.py: error: authentication to {where} failed: {error}", file=sys.stderr)
        return EXIT_AUTH
    except Unreachable as error:
        print(
            f"csd.py: error: Cassandra at {where} did not answer within "
            f"{args.wait_timeout:g} s: {error}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    try:
        result = ensure_schema(
            session,
            settings.keyspace,
            replication_of(settings),
            listing_ttl_days=args.listing_ttl_days,
            recopy_listings=args.recopy_listings,
        )
    except (NoHostAvailable, OperationTimedOut, StorageError) as error:
        print(f"csd.py: error: lost Cassandra at {where}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (SchemaConflict, DriverException) as error:
        print(f"csd.py: error: {error}", file=sys.stderr)
        return EXIT_SCHEMA
    finally:
        cluster.shutdown()
    for line in result.changes:
        print(f"csd.py: {line}")
    for line in result.warnings:
        print(f"csd.py: warning: {line}", file=sys.stderr)
    state = f"{len(result.changes)} change(s)" if result.changes else "nothing to change"
    print(f"csd.py: schema of keyspace {settings.keyspace} on {where} is ready ({state})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
