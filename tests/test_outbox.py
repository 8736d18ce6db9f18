"""The outbox and the recorder: queued records are durable, survive a killed process, and
are replayed into the real Cassandra exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassandra_server import CassandraServer
from prometheus_client import REGISTRY
from sample_predictions import make_prediction
from support import gunicorn, wait_until

from benchmarks.bodies import make_body
from benchmarks.fault import scrape, total
from flaskandmnist.config import CassandraSettings, OutboxSettings, Settings
from flaskandmnist.domain import Prediction
from flaskandmnist.mnist import Mnist
from flaskandmnist.outbox import Outbox, OutboxError
from flaskandmnist.recorder import Health, Recorder
from flaskandmnist.storage import PredictionStore, StorageError, StoreConnector

TESTS_DIR = Path(__file__).resolve().parent


def predictions(count: int, digit: int = 3) -> list[Prediction]:
    return [make_prediction(digit, seed=seed) for seed in range(count)]


def files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path, "ks")
    yield outbox
    outbox.close()


# --- The queue files, without Cassandra ---------------------------------------------------


def test_records_come_back_exactly_and_oldest_first(outbox: Outbox) -> None:
    first, second = predictions(3), predictions(2, digit=8)
    outbox.append_many(first)
    outbox.append_many(second)
    assert outbox.depth() == 5

    batch = outbox.oldest(4)
    assert batch is not None
    # Equal dataclasses: the same id, bytes, floats (probabilities exactly) and time.
    assert batch.predictions == [*first, second[0]]
    outbox.remove(batch)
    assert outbox.depth() == 1
    batch = outbox.oldest(4)
    assert batch is not None and batch.predictions == [second[1]]
    outbox.remove(batch)
    assert outbox.oldest(4) is None


def test_a_queue_file_is_made_on_the_first_append_and_fsyncs_every_commit(
    tmp_path: Path, outbox: Outbox
) -> None:
    assert files(tmp_path) == []  # a process that never queues leaves nothing behind
    outbox.append_many(predictions(1))
    database = next(tmp_path.glob(f"ks-{os.getpid()}-*.sqlite"))
    assert (tmp_path / database.with_suffix(".lock").name).exists()
    db = outbox._own._db  # type: ignore[union-attr]  # the connection's own settings
    # WAL with synchronous=FULL (2): the log is fsynced at every commit, so an append that
    # returned survives a power loss, not just a killed process.
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA synchronous").fetchone() == (2,)


def test_close_deletes_an_empty_file_and_leaves_a_full_one_to_adopt(tmp_path: Path) -> None:
    empty = Outbox(tmp_path, "ks")
    empty.append_many(predictions(1))
    empty.remove(empty.oldest(10))  # type: ignore[arg-type]
    empty.close()
    assert files(tmp_path) == []

    full = Outbox(tmp_path, "ks")
    queued = predictions(2)
    full.append_many(queued)
    full.close()
    heir = Outbox(tmp_path, "ks")
    try:
        assert heir.adopt_orphans() == 2
        batch = heir.oldest(10)
        assert batch is not None and batch.predictions == queued
        heir.remove(batch)
        assert files(tmp_path) == []  # a drained adopted file is deleted
    finally:
        heir.close()


_CHILD = """
import sys
from pathlib import Path
from sample_predictions import make_prediction
from flaskandmnist.outbox import Outbox

outbox = Outbox(Path(sys.argv[1]), "ks")
queued = [make_prediction(5, seed=seed) for seed in range(int(sys.argv[2]))]
outbox.append_many(queued)
if sys.argv[3] == "drain":
    outbox.remove(outbox.oldest(len(queued)))
print(" ".join(str(p.id) for p in queued), flush=True)
sys.stdin.read()  # until the test kills us
"""


def queueing_process(
    folder: Path, count: int, drain: bool = False
) -> tuple[subprocess.Popen[str], list[str]]:
    """Another process that queued ``count`` records (and replayed them if ``drain``) and
    waits to be killed; and the ids it queued."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(folder), str(count), "drain" if drain else "keep"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR.parent), str(TESTS_DIR)])},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, child.stdout.readline().split()


def test_records_of_a_killed_process_are_adopted_by_exactly_one_other(tmp_path: Path) -> None:
    child, queued_ids = queueing_process(tmp_path, 7)
    first, second = Outbox(tmp_path, "ks"), Outbox(tmp_path, "ks")
    try:
        assert len(queued_ids) == 7
        assert first.adopt_orphans() == 0  # its owner lives: not an orphan

        child.send_signal(signal.SIGKILL)  # no chance to clean up
        child.wait(timeout=30)
        assert first.adopt_orphans() == 7
        assert second.adopt_orphans() == 0  # one owner at a time
        batch = first.oldest(10)
        assert batch is not None
        assert [str(p.id) for p in batch.predictions] == queued_ids
    finally:
        child.kill()
        first.close()
        second.close()


def test_the_empty_file_of_a_killed_process_is_deleted_when_found(tmp_path: Path) -> None:
    child, _ = queueing_process(tmp_path, 2, drain=True)
    child.kill()
    child.wait(timeout=30)
    assert any(name.endswith(".sqlite") for name in files(tmp_path))
    finder = Outbox(tmp_path, "ks")
    try:
        assert finder.adopt_orphans() == 0
        assert files(tmp_path) == []
    finally:
        finder.close()


def test_only_files_of_the_same_keyspace_are_adopted(tmp_path: Path) -> None:
    other = Outbox(tmp_path, "other_ks")
    other.append_many(predictions(1))
    other.close()
    mine = Outbox(tmp_path, "ks")
    try:
        assert mine.adopt_orphans() == 0
    finally:
        mine.close()


def test_an_outbox_that_cannot_be_written_raises(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    outbox = Outbox(not_a_folder, "ks")
    with pytest.raises(OutboxError, match="cannot queue"):
        outbox.append_many(predictions(1))
    with pytest.raises(OutboxError):
        outbox.probe()


# --- The recorder, with the real Cassandra ------------------------------------------------


def unreachable(settings: CassandraSettings) -> CassandraSettings:
    """The same keyspace on a port nothing listens on: connections are refused."""
    return replace(settings, port=1, connect_timeout_s=1.0)


@pytest.fixture
def ks_settings(
    cassandra: CassandraServer, new_keyspace: Callable[[str], str]
) -> CassandraSettings:
    return cassandra.settings(new_keyspace("test_outbox"))


@pytest.fixture
def ks_store(ks_settings: CassandraSettings) -> Iterator[PredictionStore]:
    """A store of the test's keyspace, to check what a recorder stored."""
    store = PredictionStore.connect(ks_settings)
    yield store
    store.close()


@pytest.fixture
def make_recorder() -> Iterator[Callable[[Settings], Recorder]]:
    """Builds and starts recorders as the app's services do. Each test closes its recorders
    (closing replays through the store); their stores are closed after the test."""
    connectors: list[StoreConnector] = []

    def make(settings: Settings) -> Recorder:
        connectors.append(stores := StoreConnector(settings.cassandra))
        recorder = Recorder(settings, stores)
        recorder.start()
        return recorder

    yield make
    for stores in connectors:
        stores.close()


def recorder_settings(cassandra: CassandraSettings, folder: Path, **outbox: object) -> Settings:
    return Settings(cassandra=cassandra, outbox=OutboxSettings(**{"directory": folder, **outbox}))


def stored_ids(session: Session, keyspace: str, table: str, records: list[Prediction]) -> list:
    """The ids of ``records`` as ``table`` holds them: one per stored row."""
    rows = session.execute(f"SELECT id FROM {keyspace}.{table}")
    wanted = {p.id for p in records}
    return sorted(row.id for row in rows if row.id in wanted)


def assert_stored_once(session: Session, keyspace: str, records: list[Prediction]) -> None:
    """Each of ``records`` is in ``predictions`` exactly once."""
    ids = stored_ids(session, keyspace, "predictions", records)
    assert ids == sorted(p.id for p in records)


@pytest.mark.cassandra
def test_predictions_are_answered_while_cassandra_was_never_reachable_and_replayed_once(
    ks_settings: CassandraSettings,
    tmp_path: Path,
    cql_session: Session,
    make_recorder: Callable[[Settings], Recorder],
    ks_store: PredictionStore,
) -> None:
    queued = predictions(5) + predictions(70, digit=9)  # more than one replay group
    # A worker that never reached Cassandra: it answers and queues...
    down = make_recorder(recorder_settings(unreachable(ks_settings), tmp_path))
    try:
        down.record_many(queued[:5])
        down.record_many(queued[5:])
        assert down.health().outbox_depth == 75
    finally:
        down.close()  # ... and dies; its file waits
    # One prediction reached Cassandra before (its write landed, the answer was lost): the
    # replay writes it again, under the same id.
    ks_store.save(queued[0])

    heir = make_recorder(recorder_settings(ks_settings, tmp_path))
    try:
        wait_until(lambda: files(tmp_path) == [])  # adopted, replayed, deleted
        assert heir.health().outbox_depth == 0
        for table in ("predictions", "predictions_by_minute"):
            ids = stored_ids(cql_session, ks_settings.keyspace, table, queued)
            assert ids == sorted(p.id for p in queued), table  # each exactly once
        assert ks_store.get(queued[-1].id) == queued[-1]
    finally:
        heir.close()


@pytest.mark.cassandra
def test_a_reachable_cassandra_stores_before_the_answer(
    ks_settings: CassandraSettings,
    tmp_path: Path,
    make_recorder: Callable[[Settings], Recorder],
    ks_store: PredictionStore,
) -> None:
    recorder = make_recorder(recorder_settings(ks_settings, tmp_path))
    try:
        made = predictions(3)
        recorder.record_many(made)
        assert [ks_store.get(p.id) for p in made] == made  # no wait: stored, not queued
        assert recorder.health() == Health(cassandra="ok", outbox_depth=0, accepting=True)
        assert files(tmp_path) == []
    finally:
        recorder.close()


def record_concurrently(recorder: Recorder, calls: list[list[Prediction]]) -> None:
    """Each call from its own thread, all at once."""
    start = threading.Barrier(len(calls))

    def call(made: list[Prediction]) -> None:
        start.wait()
        recorder.record_many(made)

    with ThreadPoolExecutor(len(calls)) as pool:
        for future in [pool.submit(call, made) for made in calls]:
            future.result(60)


@pytest.mark.cassandra
def test_concurrent_requests_are_each_stored_before_their_answers(
    ks_settings: CassandraSettings,
    tmp_path: Path,
    cql_session: Session,
    make_recorder: Callable[[Settings], Recorder],
) -> None:
    recorder = make_recorder(recorder_settings(ks_settings, tmp_path))
    calls = [[make_prediction(i % 10, seed=i)] for i in range(64)]
    made = [p for call in calls for p in call]
    try:
        record_concurrently(recorder, calls)
        assert files(tmp_path) == []  # stored before the answers, none queued
        for table in ("predictions", "predictions_by_minute", "predictions_by_digit_minute"):
            ids = stored_ids(cql_session, ks_settings.keyspace, table, made)
            assert ids == sorted(p.id for p in made), table
    finally:
        recorder.close()


@pytest.mark.cassandra
def test_while_cassandra_is_unreachable_concurrent_requests_each_queue_their_own(
    ks_settings: CassandraSettings,
    tmp_path: Path,
    cql_session: Session,
    make_recorder: Callable[[Settings], Recorder],
) -> None:
    calls = [predictions(3, digit=i) for i in range(10)]
    down = make_recorder(recorder_settings(unreachable(ks_settings), tmp_path))
    try:
        record_concurrently(down, calls)  # answered: none raises
        assert down.health().outbox_depth == 30
    finally:
        down.close()
    heir = make_recorder(recorder_settings(ks_settings, tmp_path))
    try:
        wait_until(lambda: files(tmp_path) == [])
        assert_stored_once(cql_session, ks_settings.keyspace, [p for c in calls for p in c])
    finally:
        heir.close()


@pytest.mark.cassandra
def test_a_write_that_misses_the_deadline_is_queued_and_still_stored_once(
    ks_settings: CassandraSettings,
    tmp_path: Path,
    cql_session: Session,
    make_recorder: Callable[[Settings], Recorder],
    ks_store: PredictionStore,
) -> None:
    # 4 MiB cannot reach Cassandra within 1 ms: the request gives up and queues it, while
    # the write it sent may still land; the replay then writes the same rows again.
    slow = make_prediction(2, image=b"\x89PNG" + os.urandom(4 * 1024 * 1024))
    queued_before = REGISTRY.get_sample_value("flaskandmnist_outbox_queued_total") or 0
    recorder = make_recorder(recorder_settings(ks_settings, tmp_path, write_deadline_ms=1))
    try:
        recorder.record_many([slow])
        assert REGISTRY.get_sample_value("flaskandmnist_outbox_queued_total") == (queued_before + 1)
        wait_until(lambda: recorder.health().outbox_depth == 0)  # replayed
        for table in ("predictions", "predictions_by_minute", "predictions_by_digit_minute"):
            assert stored_ids(cql_session, ks_settings.keyspace, table, [slow]) == [slow.id]
        assert ks_store.get(slow.id) == slow
    finally:
        recorder.close()


@pytest.mark.cassandra
def test_closing_replays_what_is_queued_while_cassandra_takes_it(
    ks_settings: CassandraSettings,
    tmp_path: Path,
    cql_session: Session,
    make_recorder: Callable[[Settings], Recorder],
) -> None:
    made = predictions(300)
    queued_before = REGISTRY.get_sample_value("flaskandmnist_outbox_queued_total") or 0
    # 1,200 rows cannot be written within 1 ms: all 300 are queued.
    recorder = make_recorder(recorder_settings(ks_settings, tmp_path, write_deadline_ms=1))
    recorder.record_many(made)
    assert REGISTRY.get_sample_value("flaskandmnist_outbox_queued_total") == queued_before + 300
    recorder.close()  # at once: far from all are replayed yet
    assert files(tmp_path) == []
    assert stored_ids(cql_session, ks_settings.keyspace, "predictions", made) == sorted(
        p.id for p in made
    )


@pytest.mark.cassandra
@pytest.mark.slow
def test_a_gracefully_stopped_server_leaves_nothing_queued(
    cassandra: CassandraServer,
    ks_settings: CassandraSettings,
    tmp_path: Path,
    cql_session: Session,
    mnist: Mnist,
) -> None:
    """gunicorn's worker_exit closes each worker's recorder: queued records are replayed and
    the queue files deleted, not left for the next start."""
    outbox = tmp_path / "outbox"
    env = {
        **cassandra.environ(),
        "CASSANDRA_KEYSPACE": ks_settings.keyspace,
        "OUTBOX_DIR": str(outbox),
        # A 2 MB photo cannot be written within 1 ms: its prediction is queued, and those
        # after it queue behind it while it waits.
        "CASSANDRA_WRITE_DEADLINE_MS": "1",
        "RATE_LIMIT": "off",
    }
    bodies = [make_body("photo", digit, seed) for seed, digit in enumerate(mnist.test_images[:6])]
    ids = []
    with gunicorn(env, tmp_path / "gunicorn.log", workers=2) as url:
        for body in bodies:
            request = urllib.request.Request(
                f"{url}/api/v1/predictions",
                data=body.data,
                headers={"Content-Type": body.content_type},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 201
                ids.append(uuid.UUID(json.load(response)["id"]))
        assert total(scrape(url), "flaskandmnist_outbox_queued_total") > 0
    assert list(outbox.glob("*.sqlite")) == []
    rows = cql_session.execute(f"SELECT id FROM {ks_settings.keyspace}.predictions")
    assert sorted(row.id for row in rows if row.id in set(ids)) == sorted(ids)


def test_without_outbox_a_failed_write_is_an_error(
    tmp_path: Path,
    make_recorder: Callable[[Settings], Recorder],
) -> None:
    settings = recorder_settings(
        unreachable(CassandraSettings(keyspace="ks")), tmp_path, enabled=False
    )
    recorder = make_recorder(settings)
    try:
        with pytest.raises(StorageError):
            recorder.record_many(predictions(1))
        health = recorder.health()
        assert (health.accepting, health.outbox_depth) == (False, None)
        assert files(tmp_path) == []
    finally:
        recorder.close()


def test_when_neither_cassandra_nor_the_outbox_can_store_it_is_an_error(
    tmp_path: Path,
    make_recorder: Callable[[Settings], Recorder],
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    recorder = make_recorder(recorder_settings(unreachable(CassandraSettings()), not_a_folder))
    try:
        with pytest.raises(StorageError, match="cannot store or queue"):
            recorder.record_many(predictions(1))
        assert recorder.health().accepting is False
    finally:
        recorder.close()
