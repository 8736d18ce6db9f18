"""csd.py against the real Cassandra: idempotent creation, upgrades, exit codes."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator

import pytest
from cassandra.cluster import Session
from cassandra_server import CassandraServer, load_local_cassandra

from csd import EXIT_AUTH, EXIT_OK, EXIT_SCHEMA, EXIT_UNREACHABLE, EXIT_USAGE, TABLES

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


def test_upgrades_an_older_schema_and_keeps_the_seed_table(
    run_csd: RunCsd, cql_session: Session, keyspace: str
) -> None:
    create_bare_keyspace(cql_session, keyspace)
    # The seed's table, and a listing table from an earlier version without two columns.
    cql_session.execute(
        f"CREATE TABLE {keyspace}.mnist (time text PRIMARY KEY, filename text, digit text)"
    )
    cql_session.execute(
        f"INSERT INTO {keyspace}.mnist (time, filename, digit) VALUES ('12:00', 'a.png', '7')"
    )
    cql_session.execute(
        f"CREATE TABLE {keyspace}.predictions_by_day (day date, id timeuuid, digit tinyint, "
        "created_at timestamp, PRIMARY KEY ((day), id)) WITH CLUSTERING ORDER BY (id DESC)"
    )
    cql_session.execute(
        f"INSERT INTO {keyspace}.predictions_by_day (day, id, digit) "
        "VALUES ('2020-01-01', now(), 3)"
    )

    result = run_csd("--keyspace", keyspace)

    assert result.returncode == EXIT_OK, result.stderr
    assert f"added column model_input_png blob to {keyspace}.predictions_by_day" in result.stdout
    assert "created keyspace" not in result.stdout
    assert tables(cql_session, keyspace) == {"mnist"} | {table.name for table in TABLES}
    by_day = next(table for table in TABLES if table.name == "predictions_by_day")
    assert columns(cql_session, keyspace, "predictions_by_day") == {
        "day": "date",
        "id": "timeuuid",
        "digit": "tinyint",
        **dict(by_day.columns),
    }
    old = cql_session.execute(f"SELECT filename, digit FROM {keyspace}.mnist").all()
    assert [(row.filename, row.digit) for row in old] == [("a.png", "7")]
    kept = cql_session.execute(f"SELECT digit FROM {keyspace}.predictions_by_day").all()
    assert [row.digit for row in kept] == [3]
    assert run_csd("--keyspace", keyspace).returncode == EXIT_OK


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
    ],
)
def test_bad_arguments_exit_2(run_csd: RunCsd, args: tuple[str, ...]) -> None:
    result = run_csd(*args)
    assert result.returncode == EXIT_USAGE
    assert "error" in result.stderr
