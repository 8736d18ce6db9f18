"""The web service under real gunicorn, as production runs it, for the browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Each worker loads TensorFlow and the model: tens of seconds on a busy two-core machine.
READY_TIMEOUT_S = 240.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def gunicorn(env: Mapping[str, str], log: Path, workers: int = 2) -> Iterator[str]:
    """Serves ``flaskandmnist.web:create_app()`` with the project's gunicorn settings on a
    free local port; yields the base URL once ``/readyz`` answers 200, stops it after.

    ``env`` adds to this process's environment (Cassandra settings, keyspace); the server's
    output goes to ``log``, whose end is shown when the server does not come up.
    """
    port = free_port()
    server_env = {
        **os.environ,
        **env,
        "WEB_HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_WORKERS": str(workers),
        "WEB_THREADS": "4",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:flaskandmnist.gunicorn_conf",
        "flaskandmnist.web:create_app()",
    ]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, cwd=REPO_ROOT, env=server_env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready(url):
            if server.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {server.returncode} before it was ready:\n{_tail(log)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"gunicorn was not ready within {READY_TIMEOUT_S:.0f} s:\n{_tail(log)}"
                )
            time.sleep(0.5)
        yield url
    finally:
        # SIGTERM: gunicorn's graceful stop (workers close their Cassandra sessions).
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
