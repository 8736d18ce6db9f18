"""The fault scenario of benchmarks/fault.py, smaller: under load, Cassandra stops and starts
again and a worker is killed; every answered prediction is stored exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassandra_server import CassandraServer, eventually
from support import gunicorn, wait_until

from benchmarks.fault import (
    Check,
    Load,
    OutboxWatch,
    kill_a_worker_with_a_queue,
    mnist_bodies,
    scrape,
    stored_ids,
    total,
)

pytestmark = [pytest.mark.cassandra, pytest.mark.slow]

CLIENTS = 4


#: Predictions answered in each phase of the test before the next begins.
PER_PHASE = 20


def answered_since(load: Load, moment: float) -> None:
    """Waits until PER_PHASE predictions sent after ``moment`` were answered 201."""
    wait_until(
        lambda: sum(a.status == 201 and a.sent >= moment for a in list(load.answers)) >= PER_PHASE,
        timeout=120,
        what=f"{PER_PHASE} predictions answered",
    )


def test_cassandra_outage_and_a_killed_worker_lose_and_duplicate_nothing(
    cassandra: CassandraServer,
    new_keyspace: Callable[[str], str],
    cql_session: Session,
    tmp_path: Path,
) -> None:
    keyspace = new_keyspace("test_fault")
    outbox = tmp_path / "outbox"
    pidfile = tmp_path / "gunicorn.pid"
    env = {
        **cassandra.environ(),
        "CASSANDRA_KEYSPACE": keyspace,
        "OUTBOX_DIR": str(outbox),
        "RATE_LIMIT": "off",  # one client address sends everything
        "GUNICORN_CMD_ARGS": f"--pid {pidfile}",
    }
    with gunicorn(env, tmp_path / "gunicorn.log", workers=2) as url:
        master = int(pidfile.read_text())
        watch = OutboxWatch(outbox)
        load = Load([f"{url}/api/v1/predictions"], mnist_bodies(20), CLIENTS).start()
        try:
            # Each phase lasts until the service answered a number of predictions in it.
            answered_since(load, 0.0)  # Cassandra up: stored before the answer
            cassandra.stop()
            stopped = time.monotonic()
            killed = kill_a_worker_with_a_queue(master, outbox)
            dead = time.monotonic()
            answered_since(load, stopped)  # Cassandra down: queued in the outbox
            cassandra.start()
            back = time.monotonic()
            answered_since(load, back)
        finally:
            answers = load.stop()
        watch.wait_empty(timeout=120)
        watch.stop()
        metrics = scrape(url)

    # Every request was answered 201, even while Cassandra was down; only requests on
    # connections opened before the killed worker died (to it) got no answer.
    statuses = [a.status for a in answers if a.status is not None]
    unanswered = len(answers) - len(statuses)
    assert set(statuses) == {201}
    late = [
        (a.connected - dead, a.sent - dead, a.seconds)
        for a in answers
        if a.status is None and a.connected >= dead
    ]
    assert late == [], "unanswered on connections opened after the kill (s after it, sent, took)"
    assert sum(a.status == 201 for a in answers if stopped <= a.sent < back) > 0

    # The outbox did its work: records were queued, the dead worker's file was adopted,
    # everything was replayed.
    assert watch.peak > 0
    queued = total(metrics, "flaskandmnist_outbox_queued_total")
    assert queued > 0
    # A record may be replayed twice (its worker died between write and delete), never less.
    assert total(metrics, "flaskandmnist_outbox_replayed_total") >= queued
    assert total(metrics, "flaskandmnist_outbox_depth") == 0
    assert not list(outbox.glob(f"*-{killed}-*"))  # adopted, drained, deleted
    # /metrics adds up all workers, the killed one included (its last answers may be
    # counted but lost).
    posted = total(
        metrics, "flaskandmnist_http_requests_total", route="/api/v1/predictions", status="201"
    )
    assert len(statuses) <= posted <= len(statuses) + unanswered

    check = Check.of(answers, eventually(lambda: stored_ids(cql_session, keyspace), timeout=120))
    assert (check.missing, check.duplicates) == (0, 0), check
    assert check.unanswered_rows <= unanswered
    print(
        f"\nfault test: {len(answers)} requests, {len(statuses)} answered 201, {unanswered} "
        f"unanswered (killed worker), outbox peak {watch.peak}, rows {check.rows}"
    )
