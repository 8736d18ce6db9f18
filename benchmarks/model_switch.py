"""Model switch benchmark: promote and roll back under load, without a restart.

Starts a Cassandra node (scripts/cassandra.py, in a temporary folder), creates the schema
with csd.py and serves the app under gunicorn as the Docker image runs it; registers the
shipped LiteRT file again under another version name (a candidate as good as the active
one) and POSTs MNIST digits from --concurrency client threads. After --before seconds it
runs ``python -m flaskandmnist promote``, --hold seconds later ``rollback``, and goes on for
--after seconds. For each switch it prints how long the command took (most of it starting
Python and connecting), the seconds from its start to the last request answered by the old
version (then every worker had switched), and the latency of the requests sent meanwhile
against those before; then the requests by status.

    .venv/bin/python -m benchmarks.model_switch [--concurrency 8] [--workers 2]
        [--before 10] [--hold 15] [--after 10]

Needs Java 17 and Maven (for Cassandra) and MNIST (MNIST_DIR). Exit status 1 when a request
got no answer or another status than 201, or a worker did not switch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from benchmarks.fault import Answer, Load, Node, mnist_bodies, percentile
from benchmarks.load import free_port, gunicorn
from flaskandmnist.classifier import Classifier
from flaskandmnist.config import DEFAULT_MODEL_PATH

REPO_ROOT = Path(__file__).resolve().parent.parent
CANDIDATE = "mnist-deep-switch-candidate"


def cli(env: dict[str, str], *args: str) -> float:
    """Runs ``python -m flaskandmnist ARGS``; the seconds it took."""
    started = time.monotonic()
    command = [sys.executable, "-m", "flaskandmnist", *args]
    subprocess.run(command, check=True, env=env, cwd=REPO_ROOT)
    return time.monotonic() - started


def latency(answers: Sequence[Answer]) -> str:
    seconds = [a.seconds for a in answers]
    return (
        f"{len(seconds)} requests, p50 {percentile(seconds, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(seconds, 0.99) * 1000:.0f} ms"
    )


def report_switch(
    what: str, started: float, took: float, old: str, answers: Sequence[Answer]
) -> bool:
    """Prints one switch's figures from the answers to requests sent after the command
    started (and before the next one); whether every worker switched."""
    after = [a for a in answers if a.sent >= started]
    window = max((a.sent - started for a in after if a.model_version == old), default=0.0)
    during = [a for a in after if a.sent <= started + window]
    print(
        f"{what}: command {took:.1f} s; last answer by {old} sent {window:.1f} s after it "
        f"started; during the switch: {latency(during)}"
    )
    return bool(after) and after[-1].model_version != old


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="WEB_WORKERS")
    parser.add_argument("--before", type=float, default=10, help="seconds of load before")
    parser.add_argument("--hold", type=float, default=15, help="seconds between the switches")
    parser.add_argument("--after", type=float, default=10, help="seconds of load after")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="switch-"))
    node = Node(work / "cassandra", free_port())
    env = {
        **os.environ,
        "CASSANDRA_CONTACT_POINTS": "127.0.0.1",
        "CASSANDRA_PORT": str(node.port),
        "CASSANDRA_KEYSPACE": f"switch_{time.strftime('%Y%m%d_%H%M%S')}",
        "WEB_HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "WEB_WORKERS": str(args.workers),
        "OUTBOX_DIR": str(work / "outbox"),
        "RATE_LIMIT": "off",  # one client address sends everything
    }
    shipped = Classifier.load(DEFAULT_MODEL_PATH)
    (work / "candidate.json").write_text(json.dumps({**shipped.card, "model_version": CANDIDATE}))
    (work / "candidate.tflite").write_bytes(shipped.litert)
    bodies = mnist_bodies()
    node.start()
    try:
        subprocess.run([sys.executable, "csd.py"], check=True, cwd=REPO_ROOT, env=env)
        with gunicorn(env, work / "gunicorn.log"):
            cli(env, "register", str(work / "candidate.weights.h5"))
            url = f"http://127.0.0.1:{env['PORT']}/api/v1/predictions"
            print(f"{args.workers} workers, {args.concurrency} clients", flush=True)
            load = Load([url], bodies, args.concurrency).start()
            time.sleep(args.before)
            promote_started = time.monotonic()
            promoted = cli(env, "promote", CANDIDATE)
            time.sleep(args.hold)
            rollback_started = time.monotonic()
            rolled_back = cli(env, "rollback")
            time.sleep(args.after)
            answers = load.stop()
    finally:
        node.stop()
    shutil.rmtree(work, ignore_errors=True)

    print(f"before the switch: {latency([a for a in answers if a.sent < promote_started])}")
    ok = report_switch(
        "promote",
        promote_started,
        promoted,
        shipped.version,
        [a for a in answers if a.sent < rollback_started],
    )
    ok &= report_switch("rollback", rollback_started, rolled_back, CANDIDATE, answers)
    statuses = Counter(a.status for a in answers)
    print(f"requests: {len(answers)}; by status: {dict(statuses)}")
    failed = not ok or set(statuses) != {201}
    print("FAILED" if failed else "OK: every request answered 201, every worker switched")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
