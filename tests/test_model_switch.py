"""End to end, under real gunicorn and Cassandra: an operator registers a model version,
promotes it and rolls back with the command line, and the running server switches each
time without a restart and without failing a request (flaskandmnist/active_model.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from cassandra_server import CassandraServer
from support import REPO_ROOT, gunicorn, wait_until

from flaskandmnist.classifier import Classifier

#: What the issue asks of a switch: every worker serves the new version within this.
SWITCH_S = 10.0
NEW_VERSION = "mnist-deep-e2e-candidate"


def run_cli(env: dict[str, str], *args: str) -> str:
    """``python -m flaskandmnist ARGS`` as an operator runs it; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "flaskandmnist", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
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


@pytest.mark.slow
def test_promote_and_rollback_switch_the_running_server_without_a_failed_request(
    cassandra: CassandraServer,
    new_keyspace: Callable[[str], str],
    classifier: Classifier,
    digit_pngs: dict[int, bytes],
    tmp_path: Path,
) -> None:
    env = {
        **cassandra.environ(),
        "CASSANDRA_KEYSPACE": new_keyspace("test_switch"),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "RATE_LIMIT": "off",
    }
    # The shipped LiteRT file under another version name: a candidate as good as the active.
    (tmp_path / "candidate.json").write_text(
        json.dumps({**classifier.card, "model_version": NEW_VERSION})
    )
    (tmp_path / "candidate.tflite").write_bytes(classifier.litert)
    with gunicorn(env, tmp_path / "gunicorn.log", workers=2) as url:
        with Poster(url, digit_pngs[7]) as poster:
            wait_until(serves_only(poster, classifier.version), what="the shipped model answers")
            run_cli(env, "register", str(tmp_path / "candidate.weights.h5"), "--parent", "x")
            assert NEW_VERSION in run_cli(env, "models")

            run_cli(env, "promote", NEW_VERSION)

            wait_until(serves_only(poster, NEW_VERSION), SWITCH_S, "every worker serves it")
            assert f"* {NEW_VERSION}" in run_cli(env, "models")
            with urllib.request.urlopen(f"{url}/readyz") as ready:
                assert json.load(ready)["model"] == NEW_VERSION

            run_cli(env, "rollback")

            wait_until(serves_only(poster, classifier.version), SWITCH_S, "back to the first")

        assert poster.failures == []
        assert {status for status, _, _ in poster.answers} == {201}
        # Each stored prediction names the version that answered it.
        by_new = [answer for answer in poster.answers if answer[1] == NEW_VERSION]
        for _, version, record in [*by_new[:20], *by_new[-20:], *poster.answers[-20:]]:
            with urllib.request.urlopen(f"{url}{record}") as response:
                assert json.load(response)["model_version"] == version
