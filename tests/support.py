"""What many tests need, in one place: the repository and MNIST folders, free ports, waiting
on a condition, the web service under real gunicorn as production runs it, a client posting
to it throughout, and the operator's command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Each worker loads the model and connects to Cassandra; slow on a busy two-core machine.
READY_TIMEOUT_S = 240.0

T = TypeVar("T")


def find_mnist() -> Path:
    """The local MNIST folder: MNIST_DIR, else the shared copy beside the checkout (tests
    never download it)."""
    return Path(os.environ.get("MNIST_DIR") or REPO_ROOT.parent / "shared" / "data" / "mnist")


def free_port() -> int:
    """A local TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], T], timeout: float = 60.0, what: str = "condition") -> T:
    """``condition()``'s first truthy result, polled until ``timeout`` seconds have passed;
    then AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not met within {timeout:.0f} s"
        time.sleep(0.1)
    return result


def answers_200(url: str) -> bool:
    """Whether GET ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_serving(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = READY_TIMEOUT_S
) -> None:
    """Returns once GET ``url`` answers 200; RuntimeError with the end of ``log`` if
    ``process`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not answers_200(url):
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before {url}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer from {url} within {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.5)


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
        wait_until_serving(server, f"{url}/readyz", log)
        yield url
    finally:
        # SIGTERM: gunicorn's graceful stop (workers close their Cassandra sessions).
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> str:
    """``python -m flaskandmnist ARGS`` as an operator runs it; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "flaskandmnist", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Poster:
    """Posts a digit to the server again and again in a thread, keeping every answer."""

    def __init__(self, url: str, png: bytes) -> None:
        self.answers: list[tuple[int, str, str]] = []  # status, model_version, record url
        self.failures: list[str] = []
        self._url, self._png = url, png
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            request = urllib.request.Request(
                f"{self._url}/api/v1/predictions",
                data=self._png,
                headers={"Content-Type": "image/png"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    body = json.load(response)
                    self.answers.append((response.status, body["model_version"], body["url"]))
            except (urllib.error.URLError, OSError) as error:
                self.failures.append(repr(error))

    def versions_since(self, start: int) -> list[str]:
        """The versions of the answers after the first ``start``."""
        return [version for _, version, _ in self.answers[start:]]

    def __enter__(self) -> Poster:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def serves_only(poster: Poster, version: str) -> Callable[[], bool]:
    """Whether the last ten answers from now on all came from ``version``: then both
    workers have switched."""
    start = len(poster.answers)

    def switched() -> bool:
        versions = poster.versions_since(start)
        return len(versions) >= 10 and set(versions[-10:]) == {version}

    return switched
