"""Load benchmark of the whole service: gunicorn and the real Cassandra, driven by wrk.

Starts a Cassandra node with scripts/cassandra.py (in a temporary folder, or the node of
--cassandra-data-dir), creates a fresh keyspace with csd.py, starts gunicorn with the
Docker image's command, warms up, then POSTs one workload's body (benchmarks/bodies.py:
the drawing pad's request, a 12 MP phone photo, a scan, or the 28x28 MNIST PNG) to
/api/v1/predictions with wrk: from one client (latency), then from --concurrency clients
(throughput). Prints req/s, p50/p95/p99 latency, errors, the CPU time each process spent
per request, the memory (RSS) of each worker and of Cassandra, and checks that Cassandra
holds exactly one prediction per 201 response. With --baseline naive, the same runs go to
a seed-style server (benchmarks/naive.py) too, and the ratio is printed. The last line is
one JSON object of the figures.

    .venv/bin/python -m benchmarks.load [--workload canvas] [--requests 20000]
        [--concurrency 32] [--baseline naive]

Needs wrk (benchmarks/install-wrk.sh), Java 17 and Maven (Cassandra) and MNIST (MNIST_DIR,
default ../shared/data/mnist). Exit status 1 when the rows do not match the 201 responses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cassandra.query import SimpleStatement
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.bodies import WORKLOADS, Body, make_body
from flaskandmnist.config import CassandraSettings
from flaskandmnist.mnist import load_mnist
from flaskandmnist.storage import build_cluster

REPO_ROOT = Path(__file__).resolve().parent.parent
# The Docker image's CMD (Dockerfile), so that what is measured is what is deployed.
GUNICORN = (
    str(Path(sys.executable).with_name("gunicorn")),
    "--config",
    "python:flaskandmnist.gunicorn_conf",
)
SERVICE = "flaskandmnist.web:create_app()"
#: --baseline naive: Flask, PIL and Keras per request, nothing stored.
NAIVE = "benchmarks.naive:create_app()"
#: --without-persistence: the same service, storing nothing (benchmarks/ceiling.py).
CEILING = "benchmarks.ceiling:create_app()"
TICKS = os.sysconf("SC_CLK_TCK")

# wrk runs for a duration, but the rows in Cassandra can only be checked against the
# responses if no request is left in flight when it ends. So every wrk thread holds one
# connection and stops once it has its quota of responses; it says so on stdout, and once
# all have, wrk is interrupted (SIGINT) and prints the results of done().
WRK_SCRIPT = """
statuses = {}
local quota, answered, threads = 0, 0, {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  quota = tonumber(args[1])
  local file = assert(io.open(args[2], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = args[3]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  if answered == quota then
    io.write("finished\\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local out = {
    requests = summary.requests, duration_us = summary.duration,
    socket_errors = e.connect + e.read + e.write + e.timeout,
    p50 = latency:percentile(50), p95 = latency:percentile(95),
    p99 = latency:percentile(99), max = latency.max,
  }
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      out["status_" .. status] = (out["status_" .. status] or 0) + n
    end
  end
  for key, value in pairs(out) do
    io.write(string.format("result %s %d\\n", key, value))
  end
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run; latencies in milliseconds."""

    requests: int
    seconds: float
    p50: float
    p95: float
    p99: float
    max: float
    statuses: dict[int, int]
    socket_errors: int

    @classmethod
    def parse(cls, output: str) -> WrkResult:
        values = {
            key: int(value)
            for line in output.splitlines()
            if line.startswith("result ")
            for _, key, value in [line.split()]
        }
        return cls(
            requests=values["requests"],
            seconds=values["duration_us"] / 1e6,
            p50=values["p50"] / 1000,
            p95=values["p95"] / 1000,
            p99=values["p99"] / 1000,
            max=values["max"] / 1000,
            statuses={int(k[7:]): v for k, v in values.items() if k.startswith("status_")},
            socket_errors=values["socket_errors"],
        )

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

    @property
    def created(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def errors(self) -> int:
        """Responses other than 201, and socket errors (no response, or after --timeout)."""
        return self.requests - self.created + self.socket_errors


def run_wrk(
    url: str, lua: Path, body: Path, content_type: str, requests: int, concurrency: int
) -> WrkResult:
    """``requests`` (rounded up to a multiple of ``concurrency``) POSTs of ``body``."""
    quota = math.ceil(requests / concurrency)
    command = ["wrk", f"-t{concurrency}", f"-c{concurrency}", "-d1h", "--timeout", "10s"]
    command += ["-s", str(lua), url, "--", str(quota), str(body), content_type]
    finished, output = 0, []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as wrk:
        assert wrk.stdout is not None
        try:
            for line in wrk.stdout:
                if line != "finished\n":
                    output.append(line)
                elif (finished := finished + 1) == concurrency:
                    wrk.send_signal(signal.SIGINT)
        except BaseException:
            wrk.kill()  # or leaving the block would wait for it (its duration is an hour)
            raise
    if wrk.returncode != 0:
        sys.exit(f"wrk failed ({wrk.returncode}):\n{''.join(output)}")
    return WrkResult.parse("".join(output))


# --- processes: CPU time and memory from /proc ----------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces; the fields after it do not.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used so far, on all cores."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS  # all but idle and iowait


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(_stat_fields(int(stat.parent.name))[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue  # the process ended meanwhile
    return sorted(found)


# --- the servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def cassandra_node(data_dir: Path | None, heap: str) -> Iterator[tuple[int, int]]:
    """(CQL port, pid) of a scripts/cassandra.py node: the one of ``data_dir`` (started if
    it is not running, and left running), else a new one in a temporary folder, stopped and
    deleted at the end."""
    script = (sys.executable, str(REPO_ROOT / "scripts" / "cassandra.py"))
    with tempfile.TemporaryDirectory(prefix="load-cassandra-") as temporary:
        folder = data_dir or Path(temporary)
        port = [] if data_dir else ["--port", str(free_port())]
        subprocess.run([*script, "start", "--data-dir", folder, "--heap", heap, *port], check=True)
        try:
            node = json.loads((folder / "node.json").read_text())
            yield node["port"], int((folder / "cassandra.pid").read_text())
        finally:
            if data_dir is None:
                subprocess.run([*script, "stop", "--data-dir", folder], check=True)


@contextmanager
def gunicorn(env: dict[str, str], log: Path, app: str = SERVICE) -> Iterator[int]:
    """The service as the Docker image runs it; yields the master's pid once it is ready."""
    with log.open("wb") as out:
        server = subprocess.Popen([*GUNICORN, app], cwd=REPO_ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 180
        while not _ready(f"http://127.0.0.1:{env['PORT']}/readyz"):
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"gunicorn did not get ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server.pid
    finally:
        server.terminate()
        server.wait(120)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def count_rows(settings: CassandraSettings, table: str) -> int:
    """The rows of ``table``, counted here from their ids a small page at a time: the node
    reads whole rows for a page (a photo's is megabytes), and COUNT(*)'s internal pages of
    5,000 rows do not fit a small node's heap."""
    cluster = build_cluster(settings)
    try:
        query = SimpleStatement(f"SELECT id FROM {settings.keyspace}.{table}", fetch_size=20)
        return sum(1 for _ in cluster.connect().execute(query, timeout=300))
    finally:
        cluster.shutdown()


def wait_drained(folder: Path, timeout: float = 600) -> float:
    """Seconds until no record waits in the outbox; exits after ``timeout``."""
    started = time.monotonic()
    while outbox_records(folder):
        if time.monotonic() - started > timeout:
            sys.exit(f"the outbox still held {outbox_records(folder)} records after {timeout} s")
        time.sleep(0.5)
    return time.monotonic() - started


def outbox_records(folder: Path) -> int:
    """Predictions still queued in the outbox's files (not stored in Cassandra)."""
    total = 0
    for path in folder.glob("*.sqlite"):
        with closing(sqlite3.connect(path)) as db:
            total += db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    return total


def request_body(workload: str, index: int) -> Body:
    """The workload's body made from MNIST test image ``index``."""
    folder = os.environ.get("MNIST_DIR") or REPO_ROOT.parent / "shared" / "data" / "mnist"
    return make_body(workload, load_mnist(folder).test_images[index], seed=index)


# --- the benchmark --------------------------------------------------------------------------------


#: The service's metrics the tables use: (name, route or path label) -> key.
METRICS = {
    ("flaskandmnist_http_request_duration_seconds_sum", "/api/v1/predictions"): "flask_s",
    ("flaskandmnist_http_request_duration_seconds_count", "/api/v1/predictions"): "flask_n",
    ("flaskandmnist_cassandra_write_duration_seconds_sum", "request"): "write_s",
    ("flaskandmnist_cassandra_write_duration_seconds_count", "request"): "write_n",
    ("flaskandmnist_predictions_total", None): "predictions",
    ("flaskandmnist_outbox_queued_total", None): "queued",
}


def service_metrics(base_url: str) -> dict[str, float]:
    """Totals of the service's Prometheus metrics (all workers) that the tables use."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=30) as response:
        text = response.read().decode()
    totals = dict.fromkeys(METRICS.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = sample.labels.get("route") or sample.labels.get("path")
            if (key := METRICS.get((sample.name, label))) is not None:
                totals[key] += sample.value
    return totals


@dataclass(frozen=True)
class Run:
    """A wrk run and what the server side spent on it."""

    name: str
    result: WrkResult
    #: CPU milliseconds per request, by process group; "other" is the rest of the machine.
    cpu_ms: dict[str, float]
    #: Share of the workers' CPU time that each worker used.
    worker_shares: list[float]
    #: Share of the machine's CPU capacity (all cores) in use.
    busy: float
    load: float
    #: Means per request from the service's metrics: time in Flask, Cassandra write time.
    flask_ms: float
    write_ms: float
    queued: int


class Bench:
    """Runs wrk against a server and measures each run from /proc and, for the service, from
    its /metrics (``metrics=False``: a server without them, such as the naive baseline)."""

    def __init__(
        self,
        base_url: str,
        files: tuple[Path, Path],
        body: Body,
        processes: tuple[int, int],
        *,
        metrics: bool = True,
    ) -> None:
        master, cassandra = processes
        self.base_url = base_url
        self.files = files
        self.content_type = body.content_type
        self.metrics = metrics
        self.workers = children(master)
        self.groups = {"web": [master, *self.workers], "cassandra": [cassandra]}

    def _usage(self) -> dict[str, float]:
        usage = {str(pid): cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        times = os.times()
        usage["wrk"] = times.children_user + times.children_system  # wrk has ended by now
        usage["machine"] = machine_busy_seconds()
        return usage

    def _metrics(self) -> dict[str, float]:
        return (
            service_metrics(self.base_url) if self.metrics else dict.fromkeys(METRICS.values(), 0.0)
        )

    def run(self, name: str, requests: int, concurrency: int) -> Run:
        load = os.getloadavg()[0]
        before, metrics_before = self._usage(), self._metrics()
        url = f"{self.base_url}/api/v1/predictions"
        result = run_wrk(url, *self.files, self.content_type, requests, concurrency)
        after, metrics_after = self._usage(), self._metrics()
        spent = {key: value - before[key] for key, value in after.items()}
        cpu = {g: sum(spent[str(pid)] for pid in pids) for g, pids in self.groups.items()}
        cpu["wrk"] = spent["wrk"]
        cpu["other"] = spent["machine"] - sum(cpu.values())
        worked = {key: metrics_after[key] - metrics_before[key] for key in metrics_after}
        return Run(
            name=name,
            result=result,
            cpu_ms={key: seconds * 1000 / result.requests for key, seconds in cpu.items()},
            worker_shares=[spent[str(pid)] / max(cpu["web"], 1e-9) for pid in self.workers],
            busy=spent["machine"] / result.seconds / (os.cpu_count() or 1),
            load=load,
            flask_ms=worked["flask_s"] * 1000 / max(worked["flask_n"], 1),
            write_ms=worked["write_s"] * 1000 / max(worked["write_n"], 1),
            queued=int(worked["queued"]),
        )

    def runs(self, args: argparse.Namespace) -> list[Run]:
        """Warm-up, one client, then --concurrency clients."""
        runs = []
        for name, requests, concurrency in (
            ("warm-up", args.warmup, args.concurrency),
            ("1 client", args.single_requests, 1),
            (f"{args.concurrency} clients", args.requests, args.concurrency),
        ):
            runs.append(self.run(name, requests, concurrency))
            print(f"{name}: {runs[-1].result.requests} requests done", flush=True)
        return runs


def print_tables(runs: list[Run]) -> None:
    print(
        f"\n{'run':<11} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
        f" {'max ms':>7} {'errors':>6}"
    )
    for run in runs:
        r = run.result
        print(
            f"{run.name:<11} {r.requests:>8} {r.requests / r.seconds:>7.1f} {r.p50:>7.2f}"
            f" {r.p95:>7.2f} {r.p99:>7.2f} {r.max:>7.1f} {r.errors:>6}"
        )
        if r.errors:
            print(f"{'':<11} statuses {r.statuses}, socket errors {r.socket_errors}")
    print(
        "\nWhere the time went, per request: mean time in Flask and of the Cassandra write "
        "(service metrics);\nCPU ms of gunicorn (master and workers), Cassandra, wrk and the "
        "rest of the machine; each worker's\nshare of gunicorn's CPU; machine busy (all cores); "
        "1-minute load average at the start."
    )
    print(
        f"{'run':<11} {'flask':>6} {'write':>6} | {'web':>5} {'cass':>5} {'wrk':>5} {'other':>5}"
        f" | {'workers':<15} {'busy':>4} {'load':>5}"
    )
    for run in runs:
        cpu = run.cpu_ms
        shares = "/".join(f"{share * 100:.0f}" for share in run.worker_shares)
        print(
            f"{run.name:<11} {run.flask_ms:>6.2f} {run.write_ms:>6.2f} | {cpu['web']:>5.2f}"
            f" {cpu['cassandra']:>5.2f} {cpu['wrk']:>5.2f} {cpu['other']:>5.2f}"
            f" | {shares + ' %':<15} {run.busy * 100:>3.0f}% {run.load:>5.2f}"
        )
        if run.queued:
            print(f"{'':<11} {run.queued} predictions went through the outbox")


def print_ratio(runs: list[Run], naive: list[Run]) -> None:
    """The service's figures over the naive baseline's, run by run."""
    print(f"\n{'run':<11} {'req/s ratio':>11} {'p50 ratio':>10}  (service / naive)")
    for ours, theirs in zip(runs[1:], naive[1:], strict=True):
        rate = ours.result.rate / theirs.result.rate
        print(f"{ours.name:<11} {rate:>10.1f}x {theirs.result.p50 / ours.result.p50:>9.1f}x")


def _figures(run: Run) -> dict[str, object]:
    r = run.result
    return {
        "requests": r.requests,
        "req_s": round(r.rate, 1),
        "p50_ms": r.p50,
        "p95_ms": r.p95,
        "p99_ms": r.p99,
        "errors": r.errors,
        "cpu_ms": {key: round(value, 2) for key, value in run.cpu_ms.items()},
    }


def summary(
    args: argparse.Namespace,
    body: Body,
    runs: list[Run],
    naive: list[Run],
    rows: dict[str, int],
    created: int,
    ok: bool,
) -> dict[str, object]:
    """The run's figures as one JSON-ready object (the last line printed)."""
    figures: dict[str, object] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workload": args.workload,
        "body_bytes": len(body.data),
        "cores": os.cpu_count(),
        "persistence": not args.without_persistence,
        "runs": {run.name: _figures(run) for run in runs[1:]},
        "created": created,
        "rows": rows,
        "rows_match": ok,
    }
    if naive:
        figures["naive"] = {run.name: _figures(run) for run in naive[1:]}
        figures["ratio_req_s"] = {
            ours.name: round(ours.result.rate / theirs.result.rate, 1)
            for ours, theirs in zip(runs[1:], naive[1:], strict=True)
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="at --concurrency")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--single-requests", type=int, default=2000, help="from one client")
    parser.add_argument("--warmup", type=int, default=2000, help="requests before measuring")
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="canvas",
        help="body (benchmarks/bodies.py): the drawing pad's JSON request, a 12 MP phone "
        "photo JPEG, a scanned PNG, or the 28x28 MNIST PNG (the smallest reference)",
    )
    parser.add_argument(
        "--baseline",
        choices=("naive",),
        help="also run the same requests against benchmarks/naive.py (Flask, PIL, Keras per "
        "request, nothing stored) and print the ratio",
    )
    parser.add_argument("--index", type=int, default=0, help="which MNIST test image")
    parser.add_argument("--workers", type=int, help="WEB_WORKERS (default: the service's)")
    parser.add_argument("--threads", type=int, help="WEB_THREADS (default: the service's)")
    parser.add_argument(
        "--cassandra-data-dir",
        type=Path,
        help="use the scripts/cassandra.py node of this folder (started if need be, and "
        "left running with the benchmark's keyspace); default: a new node in a temporary "
        "folder",
    )
    parser.add_argument("--cassandra-heap", default="1g")
    parser.add_argument(
        "--without-persistence",
        action="store_true",
        help="answer predictions without storing them (benchmarks/ceiling.py): the most the "
        "web tier can do on this machine, for comparison; no rows are expected",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: run benchmarks/install-wrk.sh")

    body = request_body(args.workload, args.index)
    keyspace = f"load_{time.strftime('%Y%m%d_%H%M%S')}"
    with (
        tempfile.TemporaryDirectory(prefix="load-") as temporary,
        cassandra_node(args.cassandra_data_dir, args.cassandra_heap) as (cql_port, cassandra),
    ):
        work = Path(temporary)
        files = (work / "post.lua", work / "body")
        files[0].write_text(WRK_SCRIPT)
        files[1].write_bytes(body.data)
        env = {
            **os.environ,
            "CASSANDRA_CONTACT_POINTS": "127.0.0.1",
            "CASSANDRA_PORT": str(cql_port),
            "CASSANDRA_KEYSPACE": keyspace,
            "WEB_HOST": "127.0.0.1",
            "PORT": str(free_port()),
            # Every request comes from one address, which the per-client limit would stop.
            "RATE_LIMIT": "off",
            "OUTBOX_DIR": str(work / "outbox"),
        }
        env |= {"WEB_WORKERS": str(args.workers)} if args.workers else {}
        env |= {"WEB_THREADS": str(args.threads)} if args.threads else {}
        subprocess.run([sys.executable, "csd.py"], check=True, cwd=REPO_ROOT, env=env)
        app = CEILING if args.without_persistence else SERVICE
        with gunicorn(env, work / "gunicorn.log", app) as master:
            base_url = f"http://127.0.0.1:{env['PORT']}"
            bench = Bench(base_url, files, body, (master, cassandra))
            print(
                f"\ngunicorn: {len(bench.workers)} workers, WEB_THREADS="
                f"{env.get('WEB_THREADS', '')} (empty: the default); persistence "
                f"{'OFF (benchmarks/ceiling.py)' if args.without_persistence else 'on'}; "
                f"workload {args.workload}: {body.content_type} body of {len(body.data)} bytes;"
                f" {os.cpu_count()} cores; keyspace {keyspace}",
                flush=True,
            )
            runs = bench.runs(args)
            print_tables(runs)
            print()
            for pid in bench.workers:
                print(f"worker {pid}: RSS {rss_mib(pid):.0f} MiB")
            print(f"gunicorn master: RSS {rss_mib(master):.0f} MiB")
            print(f"Cassandra: RSS {rss_mib(cassandra):.0f} MiB (heap {args.cassandra_heap})")
            answered = int(service_metrics(bench.base_url)["predictions"])
            # Predictions the service queued (Cassandra too slow for the write deadline)
            # reach Cassandra once the workers' drainers replayed them.
            drain_s = wait_drained(work / "outbox")
            print(f"outbox drained {drain_s:.1f} s after the last run")
        naive = []
        if args.baseline:
            naive_env = {**env, "PORT": str(free_port())}
            with gunicorn(naive_env, work / "naive.log", NAIVE) as master:
                url = f"http://127.0.0.1:{naive_env['PORT']}"
                print("\nbaseline: benchmarks/naive.py under the same gunicorn", flush=True)
                naive = Bench(url, files, body, (master, cassandra), metrics=False).runs(args)
            print_tables(naive)
            print_ratio(runs, naive)
        # After gunicorn stopped: every prediction is stored or queued in the outbox by now.
        settings = CassandraSettings.from_env(env)
        rows = {t: count_rows(settings, t) for t in ("predictions", "predictions_by_minute")}
        queued = outbox_records(work / "outbox")
    created = sum(run.result.created for run in runs)
    stored = all(n == created for n in rows.values())
    print(
        f"\n201 responses: {created} (the service counted {answered} predictions);"
        " rows in Cassandra: "
        + ", ".join(f"{table} {n}" for table, n in rows.items())
        + f"; left in the outbox: {queued}"
    )
    if args.without_persistence:
        ok = not any(rows.values()) and not queued
        print(
            "OK: persistence off, nothing stored (figures for comparison only)"
            if ok
            else "MISMATCH: persistence was off, yet predictions were stored or queued"
        )
    else:
        ok = stored
        print(
            "OK: one prediction in Cassandra per 201 response"
            if ok
            else "MISMATCH: Cassandra does not hold exactly one prediction per 201 response"
        )
    print(json.dumps(summary(args, body, runs, naive, rows, created, ok)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
