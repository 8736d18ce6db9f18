"""Fault benchmark: the service under load while Cassandra stops and a worker is killed.

Starts a Cassandra node (scripts/cassandra.py, in a temporary folder) and the service under
gunicorn as the Docker image runs it, then POSTs MNIST digits to /api/v1/predictions from
--concurrency client threads: --before seconds, then it stops Cassandra, SIGKILLs a gunicorn
worker while that worker has predictions waiting in its outbox, starts Cassandra again
--outage seconds after it began stopping it, and goes on for --after seconds. Afterwards it
waits until the outboxes are drained and checks that every 201 response's prediction is in
Cassandra exactly once. Prints requests, answers by status, errors, rows per table, missing
and duplicate ids, the outbox depth peak and the drain time.

    .venv/bin/python -m benchmarks.fault [--concurrency 16] [--before 10] [--outage 20]
                                         [--after 20] [--workers 2]

Needs Java 17 and Maven (for Cassandra) and MNIST (MNIST_DIR). Exit status 1 when a 201
response's prediction is missing or stored twice, or a request was answered with a 5xx.
tests/test_fault.py runs a smaller version of the same scenario with the classes here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from cassandra.cluster import Session
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from benchmarks.bodies import Body, make_body
from benchmarks.load import free_port, gunicorn
from flaskandmnist.config import CassandraSettings
from flaskandmnist.mnist import load_mnist
from flaskandmnist.storage import build_cluster

REPO_ROOT = Path(__file__).resolve().parent.parent
CASSANDRA_SCRIPT = REPO_ROOT / "scripts" / "cassandra.py"
#: The tables that hold one row per prediction.
TABLES = ("predictions", "predictions_by_minute", "predictions_by_digit_minute")


def mnist_bodies(count: int = 50, workload: str = "mnist28") -> list[Body]:
    """Request bodies of ``workload`` (benchmarks/bodies.py) from the first ``count`` MNIST
    test digits."""
    folder = os.environ.get("MNIST_DIR") or REPO_ROOT.parent / "shared" / "data" / "mnist"
    images = load_mnist(folder).test_images[:count]
    return [make_body(workload, image, seed=index) for index, image in enumerate(images)]


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent, and its status and prediction id (None: no answer)."""

    sent: float
    seconds: float
    status: int | None
    prediction_id: str | None
    #: When the connection that carried it was opened.
    connected: float
    #: The model version that answered (stored answers).
    model_version: str | None = None

    @property
    def stored(self) -> bool:
        """Answered with a stored prediction: 201, or 422 "not a digit"."""
        return self.prediction_id is not None


class Load:
    """Client threads, each POSTing one body after another, to the URLs in turn (a
    round-robin client in front of several instances), on a keep-alive connection each."""

    def __init__(self, urls: Sequence[str], bodies: Sequence[Body], concurrency: int) -> None:
        self._targets = [urlsplit(url) for url in urls]
        self._bodies = bodies
        self._stop = threading.Event()
        self.answers: list[Answer] = []  # list.append is atomic: shared by the threads
        self._threads = [
            threading.Thread(target=self._client, args=(index, concurrency), daemon=True)
            for index in range(concurrency)
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Answer]:
        """Stops the clients once their requests in flight are answered."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.answers

    def _client(self, index: int, step: int) -> None:
        def connect(target: SplitResult) -> http.client.HTTPConnection:
            return http.client.HTTPConnection(target.hostname, target.port, timeout=60)

        connections = [connect(target) for target in self._targets]
        # When each connection was made (http.client connects on its first request).
        connected = [time.monotonic()] * len(connections)
        while not self._stop.is_set():
            body = self._bodies[index % len(self._bodies)]
            turn = index % len(self._targets)
            target, connection = self._targets[turn], connections[turn]
            index += step
            sent = time.monotonic()
            try:
                headers = {"Content-Type": body.content_type}
                connection.request("POST", target.path, body.data, headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                # No answer (e.g. the worker was killed): whether it was stored is unknown.
                self.answers.append(
                    Answer(sent, time.monotonic() - sent, None, None, connected[turn])
                )
                connection.close()
                connections[turn] = connect(target)
                connected[turn] = time.monotonic()
                continue
            answer = json.loads(data) if response.status in (201, 422) else {}
            # "Not a digit" (422) is stored all the same: its prediction comes with the error.
            created = answer.get("prediction", {}) if response.status == 422 else answer
            self.answers.append(
                Answer(
                    sent,
                    time.monotonic() - sent,
                    response.status,
                    created.get("id"),
                    connected[turn],
                    created.get("model_version"),
                )
            )
        for connection in connections:
            connection.close()


def scrape(base_url: str) -> list[Sample]:
    """The samples of the service's /metrics (all workers)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def total(samples: Sequence[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` that carry ``labels``."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def workers_of(master: int) -> list[int]:
    """The gunicorn workers (children) of the master process."""
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def queued_records(outbox_dir: Path) -> dict[int, int]:
    """Records waiting in the outbox folder, by the pid in each file's name."""
    waiting: Counter[int] = Counter()
    for path in outbox_dir.glob("*.sqlite"):
        pid = int(path.name.split("-")[-2])
        try:
            with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
                waiting[pid] += db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        except sqlite3.Error:
            continue  # removed meanwhile (drained)
    return dict(waiting)


class OutboxWatch:
    """Counts the records in the outbox folder (live and dead workers' files) four times a
    second: the peak, and when the folder last held any."""

    def __init__(self, outbox_dir: Path) -> None:
        self._folder = outbox_dir
        self.peak = 0
        self.last_nonempty = 0.0  # time.monotonic() of the last sample with records
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            if depth := sum(queued_records(self._folder).values()):
                self.peak = max(self.peak, depth)
                self.last_nonempty = time.monotonic()

    def wait_empty(self, timeout: float) -> None:
        """Returns once no record waits in any outbox file; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while sum(queued_records(self._folder).values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the outbox was not drained within {timeout:.0f} s")
            time.sleep(0.25)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def kill_a_worker_with_a_queue(master: int, outbox_dir: Path, timeout: float = 60) -> int:
    """SIGKILLs a worker while records wait in its outbox; returns its pid once the master
    reaped it: then all its threads are gone and the kernel has closed its sockets, so a
    connection made after that reaches a live worker. (Its main thread shows as a zombie
    earlier, while other threads, holding the sockets, still exit.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = workers_of(master)
        waiting = queued_records(outbox_dir)
        if candidates := [pid for pid in workers if waiting.get(pid)]:
            os.kill(candidates[0], signal.SIGKILL)
            while Path(f"/proc/{candidates[0]}").exists():
                time.sleep(0.01)
            return candidates[0]
        time.sleep(0.2)
    raise TimeoutError("no worker had records in its outbox")


def stored_ids(session: Session, keyspace: str) -> dict[str, Counter[str]]:
    """How often each prediction id occurs in each table of one row per prediction."""
    return {
        table: Counter(str(row.id) for row in session.execute(f"SELECT id FROM {keyspace}.{table}"))
        for table in TABLES
    }


@dataclass(frozen=True)
class Check:
    """Cassandra's rows against the answers."""

    rows: dict[str, int]
    #: 201 answers whose id a table lacks, and ids a table holds more than once.
    missing: int
    duplicates: int
    #: Rows of requests that got no answer (the killed worker's last ones): allowed.
    unanswered_rows: int

    @classmethod
    def of(cls, answers: Sequence[Answer], ids: dict[str, Counter[str]]) -> Check:
        created = {a.prediction_id for a in answers if a.prediction_id}
        return cls(
            rows={table: sum(counts.values()) for table, counts in ids.items()},
            missing=sum(len(created - counts.keys()) for counts in ids.values()),
            duplicates=sum(n > 1 for counts in ids.values() for n in counts.values()),
            unanswered_rows=max(len(counts.keys() - created) for counts in ids.values()),
        )


@dataclass(frozen=True)
class Node:
    """A scripts/cassandra.py node in ``folder``, without authentication."""

    folder: Path
    port: int

    def _script(self, *args: str) -> None:
        command = [sys.executable, str(CASSANDRA_SCRIPT), *args, "--data-dir", str(self.folder)]
        subprocess.run(command, check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)

    def start(self, heap: str = "1g") -> None:
        # The first start records port and heap in node.json; a later one reuses them.
        first = not (self.folder / "node.json").exists()
        self._script("start", *(["--port", str(self.port), "--heap", heap] if first else []))

    def stop(self) -> None:
        self._script("stop")


def percentile(values: Sequence[float], share: float) -> float:
    return statistics.quantiles(values, n=100)[round(share * 100) - 1] if len(values) > 1 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--before", type=float, default=10, help="seconds of load before")
    parser.add_argument(
        "--outage", type=float, default=20, help="seconds from stopping Cassandra to starting it"
    )
    parser.add_argument("--after", type=float, default=20, help="seconds of load after")
    parser.add_argument("--workers", type=int, default=2, help="WEB_WORKERS")
    parser.add_argument("--drain-timeout", type=float, default=300)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fault-"))
    node = Node(work / "cassandra", free_port())
    keyspace = f"fault_{time.strftime('%Y%m%d_%H%M%S')}"
    env = {
        **os.environ,
        "CASSANDRA_CONTACT_POINTS": "127.0.0.1",
        "CASSANDRA_PORT": str(node.port),
        "CASSANDRA_KEYSPACE": keyspace,
        "WEB_HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "WEB_WORKERS": str(args.workers),
        "OUTBOX_DIR": str(work / "outbox"),
        "RATE_LIMIT": "off",  # one client address sends everything
    }
    bodies = mnist_bodies()
    node.start()
    cluster = build_cluster(CassandraSettings.from_env(env))
    try:
        subprocess.run([sys.executable, "csd.py"], check=True, cwd=REPO_ROOT, env=env)
        with gunicorn(env, work / "gunicorn.log") as master:
            base = f"http://127.0.0.1:{env['PORT']}"
            print(
                f"{args.workers} workers, {args.concurrency} clients; keyspace {keyspace}",
                flush=True,
            )
            watch = OutboxWatch(work / "outbox")
            load = Load([f"{base}/api/v1/predictions"], bodies, args.concurrency).start()
            began = time.monotonic()

            def event(what: str) -> float:
                now = time.monotonic()
                print(f"{now - began:6.1f} s  {what}", flush=True)
                return now

            time.sleep(args.before)
            down = event("stopping Cassandra")
            node.stop()
            event("Cassandra stopped")
            event(f"killed worker {kill_a_worker_with_a_queue(master, work / 'outbox')}")
            time.sleep(max(0.0, args.outage - (time.monotonic() - down)))
            event("starting Cassandra")
            node.start()
            back = event("Cassandra answers again")
            time.sleep(args.after)
            answers = load.stop()
            ended = event("load stopped")
            watch.wait_empty(args.drain_timeout)
            watch.stop()
            # Nothing waits in an outbox: every 201 answer's prediction must be stored now.
            check = Check.of(answers, stored_ids(cluster.connect(), keyspace))
            metrics = scrape(base)
    finally:
        cluster.shutdown()
        node.stop()

    statuses = Counter(a.status for a in answers if a.status is not None)
    print(
        f"\nrequests sent: {len(answers)} in {ended - began:.0f} s "
        f"({len(answers) / (ended - began):.1f}/s); answers by status: {dict(statuses)}; "
        f"no answer (killed worker): {sum(a.status is None for a in answers)}"
    )
    for phase, first, last in (
        ("before the outage", began, down),
        ("while Cassandra was down", down, back),
        ("after it answered again", back, ended),
    ):
        seconds = [a.seconds for a in answers if first <= a.sent < last]
        print(
            f"{phase} ({last - first:.0f} s): {len(seconds)} requests, latency p50 "
            f"{percentile(seconds, 0.5) * 1000:.0f} ms, p99 "
            f"{percentile(seconds, 0.99) * 1000:.0f} ms"
        )
    drain = watch.last_nonempty - back
    print(
        f"outbox: {total(metrics, 'flaskandmnist_outbox_queued_total'):.0f} queued, "
        f"{total(metrics, 'flaskandmnist_outbox_replayed_total'):.0f} replayed "
        f"(all workers, the killed one's included); depth peak {watch.peak} (all files); "
        + (f"empty {drain:.1f} s after Cassandra answered again" if drain > 0 else "")
    )
    print(
        "rows: "
        + ", ".join(f"{table} {n}" for table, n in check.rows.items())
        + f"; 201 answers: {statuses[201]}; missing: {check.missing}; duplicates: "
        f"{check.duplicates}; rows of unanswered requests: {check.unanswered_rows}"
    )
    shutil.rmtree(work, ignore_errors=True)
    failed = check.missing or check.duplicates or any(s >= 500 for s in statuses)
    print("FAILED" if failed else "OK: every 201 answer's prediction is in Cassandra once")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
