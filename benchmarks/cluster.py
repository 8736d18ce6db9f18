"""Cluster fault benchmark: two app instances over a three-node Cassandra cluster, nodes lost.

Starts a cluster (``scripts/cassandra.py cluster-start``, in a temporary folder), creates the
keyspace with replication factor 3, and serves the app twice under gunicorn on two ports,
each instance with its own outbox folder, reading and writing at LOCAL_QUORUM. Client threads
POST the canvas workload (benchmarks/bodies.py) to the two instances in turn. The phases:

1. ``before``: all nodes up;
2. ``one node down``: node 2 is killed with SIGKILL, for --down seconds, then started again;
   a quorum (2 of 3) still takes every write, the survivors keep hints for node 2;
3. ``after``: all nodes up again;
4. ``two nodes down``: nodes 2 and 3 are stopped; no quorum, so writes fail and the outboxes
   take them (answered 201 all the same);
5. ``back``: node 2 starts (a quorum again: the outboxes replay), then node 3.

Each phase lasts --phase seconds (--down for the second), or longer while nodes start, and at
least until --min-answers of its requests were answered. Afterwards it waits until both
outboxes are empty and no node holds hints, then reads every table at consistency ALL and
checks that every answered prediction (201, or 422 "not a digit", stored all the same) is
stored exactly once. Prints the counts and latencies of each phase, and one JSON line of the
figures at the end.

    .venv/bin/python -m benchmarks.cluster [--concurrency 8] [--phase 20] [--down 30]

Needs Java 17 and Maven (for Cassandra), MNIST (MNIST_DIR), and about 3 GB of memory.
Exit status 1 when a request failed (no answer, or no stored prediction), a prediction is
missing or stored twice. tests/test_cluster.py runs a short version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.fault import (
    CASSANDRA_SCRIPT,
    REPO_ROOT,
    Answer,
    Check,
    Load,
    OutboxWatch,
    mnist_bodies,
    percentile,
    scrape,
    stored_ids,
    total,
)
from benchmarks.load import free_port, gunicorn
from flaskandmnist.config import CassandraSettings
from flaskandmnist.storage import build_cluster

NODES = 3
INSTANCES = 2


class Ring:
    """A scripts/cassandra.py cluster in ``folder``: node i is ``folder/node<i>``."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port

    def _script(self, *args: str) -> None:
        command = [sys.executable, str(CASSANDRA_SCRIPT), *args]
        subprocess.run(command, check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)

    def node(self, index: int) -> Path:
        return self.folder / f"node{index}"

    @contextmanager
    def running(self, heap: str) -> Iterator[Ring]:
        """The cluster, started; every node is stopped afterwards, also on failure."""
        try:
            self._script(
                "cluster-start",
                *("--nodes", str(NODES), "--port", str(self.port), "--heap", heap),
                *("--data-dir", str(self.folder)),
            )
            yield self
        finally:
            self._script("cluster-stop", "--data-dir", str(self.folder))

    def kill(self, index: int) -> None:
        """SIGKILL: no drain, no flush, as a crash or a pulled plug."""
        os.kill(int((self.node(index) / "cassandra.pid").read_text()), signal.SIGKILL)

    def stop(self, index: int) -> None:
        self._script("stop", "--data-dir", str(self.node(index)))

    def start(self, index: int) -> None:
        """Starts a node again as it was (its node.json) and waits until CQL answers."""
        self._script("start", "--data-dir", str(self.node(index)))

    def hints(self) -> int:
        """Hint files the nodes hold for writes a replica missed (deleted once delivered)."""
        return sum(1 for _ in self.folder.glob("node*/hints/*.hints"))


@dataclass(frozen=True)
class Phase:
    name: str
    began: float
    ended: float
    #: Predictions the instances' outboxes took during the phase.
    queued: int

    def answers(self, answers: Sequence[Answer]) -> list[Answer]:
        return [a for a in answers if self.began <= a.sent < self.ended]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held; TimeoutError naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.25)
    return time.monotonic() - started


def answered(load: Load, since: float) -> int:
    """Requests sent since ``since`` that were answered with a stored prediction."""
    return sum(a.stored and a.sent >= since for a in list(load.answers))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--phase", type=float, default=20, help="seconds of most phases")
    parser.add_argument("--down", type=float, default=30, help="seconds node 2 stays killed")
    parser.add_argument(
        "--min-answers", type=int, default=0, help="stored answers each phase waits for at least"
    )
    parser.add_argument("--workers", type=int, default=1, help="WEB_WORKERS of each instance")
    parser.add_argument("--heap", default="512m", help="JVM heap of each node")
    parser.add_argument("--drain-timeout", type=float, default=300)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="cluster-"))
    ring = Ring(work / "ring", free_port())
    keyspace = f"cluster_{time.strftime('%Y%m%d_%H%M%S')}"
    cassandra_env = {
        "CASSANDRA_CONTACT_POINTS": ",".join(f"127.0.0.{i}" for i in range(1, NODES + 1)),
        "CASSANDRA_PORT": str(ring.port),
        "CASSANDRA_KEYSPACE": keyspace,
        "CASSANDRA_REPLICATION_FACTOR": str(NODES),
        "CASSANDRA_CONSISTENCY": "LOCAL_QUORUM",
    }
    outboxes = [work / f"outbox{i}" for i in range(INSTANCES)]
    ports = [free_port() for _ in range(INSTANCES)]
    bodies = mnist_bodies(50, "canvas")
    phases: list[Phase] = []
    with ExitStack() as stack:
        stack.enter_context(ring.running(args.heap))
        env = {**os.environ, **cassandra_env}
        subprocess.run([sys.executable, "csd.py"], check=True, cwd=REPO_ROOT, env=env)
        for port, outbox in zip(ports, outboxes, strict=True):
            instance_env = {
                **env,
                "WEB_HOST": "127.0.0.1",
                "PORT": str(port),
                "WEB_WORKERS": str(args.workers),
                "OUTBOX_DIR": str(outbox),
                "RATE_LIMIT": "off",  # one client address sends everything
            }
            stack.enter_context(gunicorn(instance_env, work / f"gunicorn-{port}.log"))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        print(
            f"{NODES} nodes (RF {NODES}, LOCAL_QUORUM), {INSTANCES} instances x {args.workers} "
            f"worker(s), {args.concurrency} clients, canvas workload; keyspace {keyspace}",
            flush=True,
        )
        watches = [OutboxWatch(outbox) for outbox in outboxes]
        load = Load([f"{base}/api/v1/predictions" for base in bases], bodies, args.concurrency)
        began = time.monotonic()

        def event(what: str) -> float:
            now = time.monotonic()
            print(f"{now - began:6.1f} s  {what}", flush=True)
            return now

        def queued() -> int:
            """Predictions the outboxes took so far (both instances, all workers)."""
            return round(sum(total(scrape(b), "flaskandmnist_outbox_queued_total") for b in bases))

        def hold(seconds: float, start: float, what: str) -> None:
            """Goes on until ``seconds`` passed and enough answers came since ``start``."""
            time.sleep(max(0.0, seconds - (time.monotonic() - start)))
            wait_for(
                lambda: answered(load, start) >= args.min_answers,
                args.drain_timeout,
                f"{args.min_answers} answers {what}",
            )

        def close(name: str, start: float) -> None:
            """Records the phase from ``start`` until now."""
            taken = queued() - sum(p.queued for p in phases)
            phases.append(Phase(name, start, time.monotonic(), taken))

        load.start()
        hold(args.phase, began, "before")
        close("before", began)
        down = event("killing node 2 (SIGKILL)")
        ring.kill(2)
        hold(args.down, down, "with node 2 down")
        event("starting node 2 again")
        ring.start(2)  # down until it answers
        close("one node down", down)
        back = event("node 2 answers again")
        hold(args.phase, back, "after node 2 came back")
        close("after", back)
        lost = event("stopping nodes 2 and 3")
        ring.stop(2)
        ring.stop(3)
        event("nodes 2 and 3 stopped")
        hold(args.phase, lost, "without a quorum")
        event("starting node 2")
        ring.start(2)
        close("two nodes down", lost)
        quorum = event("node 2 answers: a quorum again")
        ring.start(3)
        event("node 3 answers")
        hold(args.phase, quorum, "with a quorum again")
        close("back", quorum)
        answers = load.stop()
        event("load stopped")
        for watch in watches:
            watch.wait_empty(args.drain_timeout)
            watch.stop()
        event("outboxes empty")
        hints_s = wait_for(lambda: ring.hints() == 0, args.drain_timeout, "hints delivered")
        event("no node holds hints")
        replayed = sum(total(scrape(b), "flaskandmnist_outbox_replayed_total") for b in bases)
        # ALL: every replica must answer, and they must agree (or be repaired) on every row.
        settings = replace(
            CassandraSettings.from_env(cassandra_env), consistency="ALL", request_timeout_s=120
        )
        cluster = build_cluster(settings)
        try:
            check = Check.of(answers, stored_ids(cluster.connect(), keyspace))
        finally:
            cluster.shutdown()

    sent = len(answers)
    failed = sum(not a.stored for a in answers)
    queued_total = sum(p.queued for p in phases)
    print(f"\nrequests sent: {sent}; failed (no answer, or no stored prediction): {failed}")
    latencies = {}
    for p in phases:
        seconds = [a.seconds for a in p.answers(answers)]
        latencies[p.name] = {
            "requests": len(seconds),
            "seconds": round(p.ended - p.began, 1),
            "p50_ms": round(percentile(seconds, 0.5) * 1000),
            "p99_ms": round(percentile(seconds, 0.99) * 1000),
            "outbox_queued": p.queued,
        }
        print(
            f"{p.name} ({p.ended - p.began:.0f} s): {len(seconds)} requests, "
            f"{sum(a.stored for a in p.answers(answers))} answered and stored, latency p50 "
            f"{latencies[p.name]['p50_ms']} ms, p99 {latencies[p.name]['p99_ms']} ms; "
            f"{p.queued} taken by the outboxes"
        )
    print(
        f"outboxes: {queued_total} queued, {replayed:.0f} replayed; hints delivered "
        f"{hints_s:.1f} s after the load stopped and the outboxes emptied"
    )
    print(
        "rows (read at ALL): "
        + ", ".join(f"{table} {n}" for table, n in check.rows.items())
        + f"; lost: {check.missing}; duplicates: {check.duplicates}"
    )
    ok = not (failed or check.missing or check.duplicates)
    print("OK: 0 failed, 0 lost, 0 duplicates" if ok else "FAILED")
    figures = {
        "sent": sent,
        "failed": failed,
        "lost": check.missing,
        "duplicates": check.duplicates,
        "outbox_queued": queued_total,
        "outbox_replayed": round(replayed),
        "latency": latencies,
    }
    print(json.dumps(figures))
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"logs kept in {work}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
