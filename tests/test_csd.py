"""csd.py against the real Cassandra: idempotent creation, upgrades, exit codes."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cassandra.cluster import Session
from cassandra_server import CassandraServer, load_local_cassandra
from sample_predictions import make_prediction

from csd import EXIT_AUTH, EXIT_OK, EXIT_SCHEMA, EXIT_UNREACHABLE, EXIT_USAGE, TABLES
from flaskandmnist.domain import Prediction
from flaskandmnist.storage import PredictionStore

pytestmark = pytest.mark.cassandra

RunCsd = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def keyspace(cql_session: Session) -> Iterator[str]:
    """A keyspace name nobody uses yet; dropped after the test."""
    name = f"test_csd_{secrets.token_hex(4)}"
    yield name
    cql_session.execute(f"DROP KEYSPACE IF EXISTS {name}")


def columns(session: Session, keyspace: str, table: str) -> dict[str, str]:
    rows = session.execute(
        "SELECT column_name, type FROM system_schema.columns "
        "WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, table),
    )
    return {row.column_name: row.type for row in rows}


def tables(session: Session, keyspace: str) -> set[str]:
    rows = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    return {row.table_name for row in rows}


def replication(session: Session, keyspace: str) -> dict[str, str]:
    row = session.execute(
        "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    return dict(row.replication)


def create_bare_keyspace(session: Session, keyspace: str) -> None:
    """A keyspace as an earlier version (or an operator) left it, before csd.py runs."""
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )


def test_creates_everything_then_changes_nothing(
    run_csd: RunCsd, cql_session: Session, keyspace: str
) -> None:
    first = run_csd("--keyspace", keyspace)
    assert first.returncode == EXIT_OK, first.stderr
    assert f"created keyspace {keyspace}" in first.stdout
    for table in TABLES:
        assert f"created table {keyspace}.{table.name}" in first.stdout
    assert tables(cql_session, keyspace) == {table.name for table in TABLES}
    assert replication(cql_session, keyspace) == {
        "class": "org.apache.cassandra.locator.SimpleStrategy",
        "replication_factor": "1",
    }
    schema = {table.name: columns(cql_session, keyspace, table.name) for table in TABLES}

    second = run_csd("--keyspace", keyspace)
    assert second.returncode == EXIT_OK, second.stderr
    assert "nothing to change" in second.stdout
    assert "created" not in second.stdout
    assert {table.name: columns(cql_session, keyspace, table.name) for table in TABLES} == schema


# The listing tables of the day-bucketed layout, as csd.py created them before minute buckets.
_DAY_LISTING_COLUMNS = (
    "created_at timestamp, source text, filename text, content_type text, image_size int, "
    "confidence double, model_version text, model_input_png blob"
)
DAY_LAYOUT = (
    "CREATE TABLE {ks}.predictions_by_day (day date, id timeuuid, digit tinyint, "
    f"{_DAY_LISTING_COLUMNS}, PRIMARY KEY ((day), id)) WITH CLUSTERING ORDER BY (id DESC)",
    "CREATE TABLE {ks}.predictions_by_digit (digit tinyint, day date, id timeuuid, "
    f"{_DAY_LISTING_COLUMNS}, PRIMARY KEY ((digit, day), id)) WITH CLUSTERING ORDER BY (id DESC)",
)
_SUMMARY = (
    "id, created_at, source, filename, content_type, image_size, digit, confidence, "
    "model_version, model_input_png"
)


def save_in_day_layout(session: Session, keyspace: str, prediction: Prediction) -> None:
    """Writes a prediction's rows as the day-bucketed version did."""
    p = prediction
    summary = (
        p.id,
        p.created_at,
        p.source,
        p.filename,
        p.content_type,
        p.image_size,
        p.digit,
        p.confidence,
        p.model_version,
        p.model_input_png,
    )
    session.execute(
        f"INSERT INTO {keyspace}.predictions (id, created_at, source, image, content_type, "
        "image_size, filename, model_input_png, digit, confidence, probabilities, "
        "model_version, processing_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, %s)",
        (
            p.id,
            p.created_at,
            p.source,
            p.image,
            p.content_type,
            p.image_size,
            p.filename,
            p.model_input_png,
            p.digit,
            p.confidence,
            list(p.probabilities),
            p.model_version,
            p.processing_ms,
        ),
    )
    values = ", ".join(["%s"] * 11)
    for table in ("predictions_by_day", "predictions_by_digit"):
        session.execute(
            f"INSERT INTO {keyspace}.{table} (day, {_SUMMARY}) VALUES ({values})",
            (p.day, *summary),
        )
    session.execute(
        f"INSERT INTO {keyspace}.prediction_days (scope, day) VALUES ('all', %s)", (p.day,)
    )


def test_migrates_the_day_bucketed_layout_without_losing_a_row(
    run_csd: RunCsd, cql_session: Session, keyspace: str, cassandra: CassandraServer
) -> None:
    create_bare_keyspace(cql_session, keyspace)
    # The seed's table, and the day-bucketed layout of the previous version with its rows.
    cql_session.execute(
        f"CREATE TABLE {keyspace}.mnist (time text PRIMARY KEY, filename text, digit text)"
    )
    cql_session.execute(
        f"INSERT INTO {keyspace}.mnist (time, filename, digit) VALUES ('12:00', 'a.png', '7')"
    )
    for table in TABLES:
        if table.name in {"predictions", "prediction_days"}:  # the same in both layouts
            cql_session.execute(table.create_cql(keyspace))
    for statement in DAY_LAYOUT:
        cql_session.execute(statement.format(ks=keyspace))
    # Two days, several minutes each, some predictions within one millisecond of another.
    start = datetime(2026, 11, 30, 23, 58, 30, tzinfo=UTC)
    made = [
        make_prediction(i % 10, seed=i, created_at=start + timedelta(seconds=17 * i))
        for i in range(40)
    ] + [make_prediction(3, seed=99, created_at=start + timedelta(microseconds=10))]
    for prediction in made:
        save_in_day_layout(cql_session, keyspace, prediction)
    newest_first = sorted(made, key=lambda p: p.id.time, reverse=True)

    result = run_csd("--keyspace", keyspace)

    assert result.returncode == EXIT_OK, result.stderr
    assert f"copied {len(made)} rows of {keyspace}.predictions_by_day" in result.stdout
    store = PredictionStore.connect(cassandra.settings(keyspace))
    try:
        assert [s.id for s in store.latest(100)] == [p.id for p in newest_first]
        pages, before = [], None
        while True:
            page = store.page(7, before)
            pages += [s.id for s in page.items]
            if (before := page.next_before) is None:
                break
        assert pages == [p.id for p in newest_first]
        sevens = [p.id for p in newest_first if p.digit == 7 and p.day == start.date()]
        assert [s.id for s in store.page(100, digit=7, day=start.date()).items] == sevens
        assert store.digit_counts() == {d: sum(p.digit == d for p in made) for d in range(10)}
        store.delete(made[0].id)  # a migrated prediction goes from every table
        assert made[0].id not in [s.id for s in store.latest(100)]
    finally:
        store.close()
    # The old tables and the seed's stay as they were.
    kept = cql_session.execute(f"SELECT id FROM {keyspace}.predictions_by_day").all()
    assert len(kept) == len(made)
    old = cql_session.execute(f"SELECT filename, digit FROM {keyspace}.mnist").all()
    assert [(row.filename, row.digit) for row in old] == [("a.png", "7")]

    again = run_csd("--keyspace", keyspace)
    assert again.returncode == EXIT_OK, again.stderr
    assert "nothing to change" in again.stdout
    recopy = run_csd("--keyspace", keyspace, "--recopy-listings")
    assert f"copied {len(made)} rows" in recopy.stdout
    # The deletion stands (it is newer than the copied rows), and no row is there twice.
    listed = cql_session.execute(f"SELECT id FROM {keyspace}.predictions_by_minute").all()
    assert sorted(row.id for row in listed) == sorted(p.id for p in made[1:])


def test_listing_rows_get_a_ttl_when_asked(
    run_csd: RunCsd, cql_session: Session, keyspace: str
) -> None:
    assert run_csd("--keyspace", keyspace, "--listing-ttl-days", "30").returncode == EXIT_OK
    rows = cql_session.execute(
        "SELECT table_name, default_time_to_live FROM system_schema.tables "
        "WHERE keyspace_name = %s",
        (keyspace,),
    )
    ttls = {row.table_name: row.default_time_to_live for row in rows}
    listing = {"predictions_by_minute", "predictions_by_digit_minute", "prediction_minutes"}
    assert {name: ttls[name] for name in listing} == dict.fromkeys(listing, 30 * 86_400)
    assert ttls["predictions"] == 0  # predictions themselves never expire
    assert "nothing to change" in run_csd("--keyspace", keyspace).stdout


def test_a_table_with_another_key_is_left_alone_with_exit_5(
    run_csd: RunCsd, cql_session: Session, keyspace: str
) -> None:
    create_bare_keyspace(cql_session, keyspace)
    cql_session.execute(
        f"CREATE TABLE {keyspace}.predictions (time text PRIMARY KEY, filename text, digit text)"
    )
    cql_session.execute(
        f"INSERT INTO {keyspace}.predictions (time, filename, digit) VALUES ('t', 'f', '1')"
    )

    result = run_csd("--keyspace", keyspace)

    assert result.returncode == EXIT_SCHEMA
    assert f"table {keyspace}.predictions exists with another primary key (time)" in result.stderr
    assert "left untouched" in result.stderr
    assert columns(cql_session, keyspace, "predictions") == {
        "time": "text",
        "filename": "text",
        "digit": "text",
    }
    assert cql_session.execute(f"SELECT count(*) FROM {keyspace}.predictions").one().count == 1


def test_network_topology_replication_per_data_centre(
    run_csd: RunCsd, cql_session: Session, keyspace: str
) -> None:
    # The single node's data centre is "datacenter1" (SimpleSnitch, testcontainers' default).
    result = run_csd("--keyspace", keyspace, "--datacenter", "datacenter1:1")
    assert result.returncode == EXIT_OK, result.stderr
    assert replication(cql_session, keyspace) == {
        "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
        "datacenter1": "1",
    }
    # Asking for other replication later warns and changes nothing.
    again = run_csd("--keyspace", keyspace, "--replication-factor", "3")
    assert again.returncode == EXIT_OK
    assert "keeps its replication" in again.stderr
    assert replication(cql_session, keyspace)["datacenter1"] == "1"


def test_settings_come_from_the_environment(
    run_csd: RunCsd, cql_session: Session, keyspace: str
) -> None:
    result = run_csd(env={"CASSANDRA_KEYSPACE": keyspace, "CASSANDRA_REPLICATION_FACTOR": "1"})
    assert result.returncode == EXIT_OK, result.stderr
    assert tables(cql_session, keyspace) == {table.name for table in TABLES}


def test_wrong_password_exits_4(cassandra: CassandraServer, run_csd: RunCsd) -> None:
    assert cassandra.username, "the test server must require a password"
    result = run_csd("--password", "not-the-password", "--wait-timeout", "30")
    assert result.returncode == EXIT_AUTH
    assert "authentication" in result.stderr and "failed" in result.stderr


def test_no_server_exits_3_after_the_wait_timeout(run_csd: RunCsd) -> None:
    port = load_local_cassandra().free_port()
    result = run_csd("--port", str(port), "--wait-timeout", "2")
    assert result.returncode == EXIT_UNREACHABLE
    assert f"127.0.0.1:{port} did not answer within 2 s" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--keyspace", "x; DROP KEYSPACE system_auth"),
        ("--datacenter", "dc1:zero"),
        ("--replication-factor", "0"),
        ("--listing-ttl-days", "-1"),
    ],
)
def test_bad_arguments_exit_2(run_csd: RunCsd, args: tuple[str, ...]) -> None:
    result = run_csd(*args)
    assert result.returncode == EXIT_USAGE
    assert "error" in result.stderr
