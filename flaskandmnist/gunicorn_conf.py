"""gunicorn settings of the web service, shared by the Docker image and scripts/serve.sh.

    gunicorn --config python:flaskandmnist.gunicorn_conf "flaskandmnist.web:create_app()"

Address, workers, threads and timeout come from :class:`flaskandmnist.config.WebSettings`
(``WEB_HOST``, ``PORT``, ``WEB_WORKERS``, ``WEB_THREADS``, ``WEB_TIMEOUT``), the one place
configuration is read.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from flaskandmnist.config import Settings

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

# Validates every setting in the master, so a bad variable stops the server at once
# instead of killing each worker in turn.
_web = Settings.from_env().web

bind = f"[{_web.host}]:{_web.port}" if ":" in _web.host else f"{_web.host}:{_web.port}"
workers = _web.workers
# Threads let a worker serve other requests while one waits on Cassandra; predictions are
# short CPU bursts.
worker_class = "gthread"
threads = _web.threads
# Each worker listens on its own socket (SO_REUSEPORT) and the kernel spreads connections
# over them evenly. On one shared socket, whichever worker wakes first accepts: a burst of
# keep-alive connections (a load test, a proxy's pool) could land almost all on one worker,
# whose GIL then sets the pace of the whole server. The price: when a worker dies, the
# connections still waiting in its socket's queue are reset.
reuse_port = True
timeout = _web.timeout_s
# On SIGTERM (docker stop, Ctrl-C) requests in flight get as long to finish as any request.
graceful_timeout = _web.timeout_s
# Access and error log on stdout/stderr, where docker logs and the terminal read them.
accesslog = "-"
errorlog = "-"
# No preload_app: the outbox drainer thread and the Cassandra driver's threads do not
# survive a fork, so each worker builds the app (model, recorder, session) after it is forked.
preload_app = False
# The heartbeat file is touched every second; on a disk-backed /tmp (Docker's overlay
# file system) that can block a worker, so it goes to memory where there is /dev/shm.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None

# Sessions and CSRF tokens are signed with SECRET_KEY and must verify in every worker. When
# it is not set, the master makes one random key for all its workers (raw_env is exported
# before they fork); it changes on every restart, so set SECRET_KEY to keep sessions.
raw_env = [] if _web.secret_key else [f"SECRET_KEY={secrets.token_urlsafe(32)}"]


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """Runs in the worker as it stops: replays what its outbox holds while Cassandra takes
    it (a graceful stop leaves nothing queued), then closes the Cassandra session."""
    if getattr(worker, "wsgi", None) is None:
        return  # the app failed to load: nothing was started
    # Imported here, in the worker that already loaded the app: imported at the top, it
    # would load prometheus_client into the master before PROMETHEUS_MULTIPROC_DIR is set.
    from flaskandmnist.web import close_app

    close_app(worker.wsgi)


# Prometheus metrics of all workers (flaskandmnist/metrics.py): prometheus_client keeps each
# process's values in files in PROMETHEUS_MULTIPROC_DIR, which must be set before a worker
# imports it (raw_env is exported before the workers fork) and hold no files of earlier
# runs. The master never imports the app, so its own import of prometheus_client (below,
# when a worker dies) comes after the variable is set.
_metrics_dir = Settings.from_env().metrics.multiproc_dir
_own_metrics_dir = _metrics_dir is None
if _metrics_dir is None:
    _metrics_dir = Path(tempfile.mkdtemp(prefix="flaskandmnist-metrics-"))
raw_env.append(f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir}")


class ListeningAddress(logging.Filter):
    """Names the address in gunicorn's "Listening at:" line. gunicorn builds that line from
    the master's sockets, and with reuse_port the master has none (each worker binds its
    own), so it would read "Listening at:  (pid)"."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            isinstance(record.msg, str)
            and record.msg.startswith("Listening at:")
            and isinstance(record.args, tuple)
            and record.args[:1] == ("",)
        ):
            record.args = (f"http://{bind} (a socket per worker)", *record.args[1:])
        return True


def on_starting(server: Arbiter) -> None:
    """Stops if another server listens on the port; forgets the metrics of an earlier run
    in a PROMETHEUS_MULTIPROC_DIR that was given; names the address in the log."""
    _refuse_a_taken_port()
    logging.getLogger("gunicorn.error").addFilter(ListeningAddress())
    for stale in _metrics_dir.glob("*.db"):
        stale.unlink()


def _refuse_a_taken_port() -> None:
    # With reuse_port the master binds nothing, and the workers bind with SO_REUSEPORT: a
    # second copy of this server on the same port (same user) would silently take half of
    # the connections instead of failing. A plain bind finds any listener there.
    family, kind, proto, _, address = socket.getaddrinfo(
        _web.host, _web.port, type=socket.SOCK_STREAM
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise SystemExit(f"cannot listen on {bind}: {error}") from None


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Drops a dead worker's live gauges: its outbox depth is counted again by the worker
    that adopts its queue file."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))


def on_exit(server: Arbiter) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
