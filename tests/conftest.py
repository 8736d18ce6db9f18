"""Shared fixtures: MNIST (from MNIST_DIR, never downloaded in tests), the shipped model and
the real Apache Cassandra server."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassandra_server import CassandraServer, eventually, open_server
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from support import REPO_ROOT, find_mnist

from csd import DDL_TIMEOUT_S, ensure_schema, replication_of
from flaskandmnist.classifier import Classifier
from flaskandmnist.config import (
    DEFAULT_MODEL_PATH,
    DEFAULT_OUTBOX_DIR,
    CassandraSettings,
    OutboxSettings,
    SecuritySettings,
    Settings,
    WebSettings,
)
from flaskandmnist.mnist import Mnist, load_mnist
from flaskandmnist.storage import PredictionStore, build_cluster
from flaskandmnist.web import close_app, create_app
from flaskandmnist.web.services import services


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The local MNIST folder (tests/support.py says where it is looked for)."""
    folder = find_mnist()
    if not folder.is_dir():
        pytest.fail(f"MNIST folder {folder} not found: set MNIST_DIR to the local copy")
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path) -> Mnist:
    """All of MNIST, verified, loaded once per test session."""
    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    """The trained model shipped in the repository, loaded once."""
    return Classifier.load(DEFAULT_MODEL_PATH)


@pytest.fixture(scope="session")
def digit_pngs(mnist: Mnist) -> dict[int, bytes]:
    """For each digit, the first MNIST test image of it as a black-on-white 112x112 PNG, as a
    person would upload it."""
    pngs: dict[int, bytes] = {}
    for image, label in zip(mnist.test_images, mnist.test_labels, strict=True):
        if int(label) not in pngs:
            inverted = Image.fromarray(255 - image).resize((112, 112), Image.Resampling.BICUBIC)
            out = io.BytesIO()
            inverted.save(out, format="PNG")
            pngs[int(label)] = out.getvalue()
    return pngs


# --- Apache Cassandra: one real server per session (see tests/cassandra_server.py) ---------


@pytest.fixture(scope="session")
def cassandra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraServer]:
    """The test server, started once; if it cannot start, every test using it fails."""
    try:
        server = open_server(tmp_path_factory.mktemp("cassandra"))
    except Exception as error:  # whatever the backend raises, the reason must be shown
        pytest.fail(f"could not start Cassandra for the tests: {error}", pytrace=False)
    _SERVERS.append(server)
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def cql_session(cassandra: CassandraServer) -> Iterator[Session]:
    """An administrator's session on the test server, not bound to a keyspace.

    Tests change the schema through it, so requests get csd.py's schema-change timeout.
    """
    settings = replace(cassandra.settings("system"), request_timeout_s=DDL_TIMEOUT_S)
    cluster = build_cluster(settings)
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def new_keyspace(cql_session: Session) -> Iterator[Callable[[str], str]]:
    """Creates a keyspace with the whole schema (csd.py's ensure_schema); drops them at the end."""
    created: list[str] = []

    def create(prefix: str) -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        ensure_schema(cql_session, name, replication_of(CassandraSettings()))
        created.append(name)
        return name

    yield create
    for name in created:
        # A test may have restarted the server last: the driver reconnects in the background.
        eventually(lambda name=name: cql_session.execute(f"DROP KEYSPACE IF EXISTS {name}"))


@pytest.fixture(scope="session")
def run_csd(cassandra: CassandraServer) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs ``python csd.py ARGS`` against the test server, as an operator would."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "csd.py"), *args],
            env={**os.environ, **cassandra.environ(), **(env or {})},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    return run


# --- The web app, on a keyspace of the real test server -------------------------------------


@pytest.fixture(scope="session")
def make_app(
    cassandra: CassandraServer,
    new_keyspace: Callable[[str], str],
    classifier: Classifier,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Flask]]:
    """Builds an app on a fresh keyspace; keyword arguments override WebSettings fields, and
    ``settings`` gives the others (its cassandra and web are replaced). The apps' outbox
    drainers and Cassandra sessions are closed at the end, before the server (the driver
    would go on reconnecting to a dead one)."""
    # The tests' own outbox folder, never the user's; a generous write deadline, so that a
    # busy CI machine does not queue a write that a test then reads back at once.
    test_outbox = OutboxSettings(
        directory=tmp_path_factory.mktemp("outbox"), write_deadline_ms=10_000
    )

    def make(settings: Settings | None = None, **web: object) -> Flask:
        # Every test client posts from one address: no rate limit unless a test sets one.
        settings = settings or Settings(
            security=SecuritySettings(rate_limit=""), outbox=test_outbox
        )
        if settings.outbox.directory == DEFAULT_OUTBOX_DIR:
            outbox = replace(settings.outbox, directory=test_outbox.directory)
            settings = replace(settings, outbox=outbox)
        settings = replace(
            settings,
            cassandra=cassandra.settings(new_keyspace("test_web")),
            web=WebSettings(**{"secret_key": "test-secret", **web}),
        )
        app = create_app(settings, classifier=classifier)
        made.append(app)
        return app

    made: list[Flask] = []
    yield make
    for app in made:
        close_app(app)


@pytest.fixture(scope="session")
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app most web tests share (one keyspace for all of them)."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def app_store(app: Flask) -> PredictionStore:
    """The store the shared app writes to, to check what a request stored."""
    with app.app_context():
        return services().store


_SERVERS: list[CassandraServer] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Reports how long Cassandra took, so that CI logs show it."""
    for server in _SERVERS:
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in server.timings.items())
        terminalreporter.write_line(f"Cassandra ({server.kind} on port {server.port}): {steps}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test that needs the Cassandra server (through any fixture) ``cassandra``,
    so that ``-m "not cassandra"`` leaves out exactly the tests that would start it."""
    for item in items:
        if "cassandra" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cassandra)
