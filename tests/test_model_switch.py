"""End to end, under real gunicorn and Cassandra: an operator registers a model version,
promotes it and rolls back with the command line, and the running server switches each
time without a restart and without failing a request (flaskandmnist/active_model.py)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from cassandra_server import CassandraServer
from support import Poster, gunicorn, run_cli, serves_only, wait_until

from flaskandmnist.classifier import Classifier

#: What the issue asks of a switch: every worker serves the new version within this.
SWITCH_S = 10.0
NEW_VERSION = "mnist-deep-e2e-candidate"


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
