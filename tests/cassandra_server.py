"""The real Apache Cassandra the tests run against, chosen by environment variables.

- default: ``scripts/cassandra.py`` installs Cassandra into the cache (once) and starts a
  node with username/password authentication on free ports in a temporary folder;
- ``CASSANDRA_TEST_BACKEND=testcontainers``: testcontainers' ``cassandra:5.0`` (needs Docker);
- ``CASSANDRA_TEST_CONTACT_POINTS=host[,host]`` (with ``CASSANDRA_TEST_PORT``,
  ``CASSANDRA_TEST_USERNAME``, ``CASSANDRA_TEST_PASSWORD``): a server that already runs. The
  tests create ``test_*`` keyspaces there and write sample rows into ``flaskandmnist``, so
  point this only at a disposable server; it cannot be restarted by the tests.

These variables configure the test harness only; the service reads its settings in
flaskandmnist/config.py.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from cassandra.cluster import NoHostAvailable
from support import REPO_ROOT

from flaskandmnist.config import CassandraSettings
from flaskandmnist.storage import StorageError, build_cluster

CONTAINER_IMAGE = "cassandra:5.0"
HEAP = "1g"
NOT_OURS = "the tests cannot restart a server they did not start (CASSANDRA_TEST_CONTACT_POINTS)"


def load_local_cassandra() -> ModuleType:
    """scripts/cassandra.py as a module (its file name would shadow the driver's package)."""
    spec = importlib.util.spec_from_file_location(
        "local_cassandra", REPO_ROOT / "scripts" / "cassandra.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CassandraServer:
    """Where the test server answers, and how to stop and start it again."""

    kind = "external"

    def __init__(self, host: str, port: int, username: str | None, password: str | None):
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        #: Seconds taken by each step, e.g. {"install": 0.1, "start": 14.2, "restart": 20.3}.
        self.timings: dict[str, float] = {}

    def settings(self, keyspace: str) -> CassandraSettings:
        return CassandraSettings(
            contact_points=(self.host,),
            port=self.port,
            keyspace=keyspace,
            username=self.username,
            password=self.password,
        )

    def environ(self) -> dict[str, str]:
        """CASSANDRA_* variables that point csd.py or the service at this server."""
        env = {"CASSANDRA_CONTACT_POINTS": self.host, "CASSANDRA_PORT": str(self.port)}
        if self.username:
            env |= {"CASSANDRA_USERNAME": self.username, "CASSANDRA_PASSWORD": self.password or ""}
        return env

    def stop(self) -> None:
        raise RuntimeError(NOT_OURS)

    def start(self) -> None:
        raise RuntimeError(NOT_OURS)

    def shutdown(self) -> None:
        """Called once at the end of the session."""


class LocalServer(CassandraServer):
    """A node of scripts/cassandra.py in ``data_dir``, with PasswordAuthenticator."""

    kind = "local"

    def __init__(self, data_dir: Path):
        self._script = load_local_cassandra()
        #: The node's folder, as ``scripts/cassandra.py --data-dir`` takes it.
        self.data_dir = data_dir
        super().__init__("127.0.0.1", self._script.free_port(), "cassandra", "cassandra")
        started = time.monotonic()
        self._script.install(self._script.DEFAULT_VERSION, self._script.default_cache_dir())
        self.timings["install"] = time.monotonic() - started
        self.start()

    def start(self) -> None:
        seconds = self._script.start(
            version=self._script.DEFAULT_VERSION,
            cache=self._script.default_cache_dir(),
            data_dir=self.data_dir,
            port=self.port,
            storage_port=None,
            heap=HEAP,
            auth=True,
            wait_timeout=300.0,
        )
        self.timings["restart" if "start" in self.timings else "start"] = seconds

    def stop(self) -> None:
        self._script.stop(self.data_dir)

    def shutdown(self) -> None:
        self.stop()


class ContainerServer(CassandraServer):
    """testcontainers' Cassandra on a fixed host port (so that it survives a restart)."""

    kind = "testcontainers"

    def __init__(self) -> None:
        from testcontainers.community.cassandra import CassandraContainer

        super().__init__("127.0.0.1", load_local_cassandra().free_port(), "cassandra", "cassandra")
        container = CassandraContainer(CONTAINER_IMAGE).with_bind_ports(9042, self.port)
        # Cassandra reads yaml overrides from system properties when allowed to.
        container.with_env(
            "JVM_OPTS",
            f"{container.env['JVM_OPTS']} -Dcassandra.config.allow_system_properties=true "
            "-Dcassandra.settings.authenticator=PasswordAuthenticator "
            "-Dcassandra.superuser_setup_delay_ms=0",
        )
        container.with_env("MAX_HEAP_SIZE", HEAP.upper())
        self._container = container
        started = time.monotonic()
        container.start()
        self._wait_for_login()
        self.timings["start"] = time.monotonic() - started

    def _wait_for_login(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            cluster = build_cluster(self.settings("system"))
            try:
                cluster.connect()
                return
            except NoHostAvailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
            finally:
                cluster.shutdown()

    def stop(self) -> None:
        self._container.get_wrapped_container().stop()

    def start(self) -> None:
        started = time.monotonic()
        self._container.get_wrapped_container().start()
        self._wait_for_login()
        self.timings["restart"] = time.monotonic() - started

    def shutdown(self) -> None:
        self._container.stop()


def open_server(data_dir: Path) -> CassandraServer:
    """The server the environment asks for, started and answering CQL."""
    if os.environ.get("CASSANDRA_TEST_BACKEND") == "testcontainers":
        return ContainerServer()
    if contact_points := os.environ.get("CASSANDRA_TEST_CONTACT_POINTS"):
        return CassandraServer(
            contact_points.split(",")[0].strip(),
            int(os.environ.get("CASSANDRA_TEST_PORT") or 9042),
            os.environ.get("CASSANDRA_TEST_USERNAME") or None,
            os.environ.get("CASSANDRA_TEST_PASSWORD") or None,
        )
    return LocalServer(data_dir)


T = TypeVar("T")


def eventually(call: Callable[[], T], timeout: float = 60.0) -> T:
    """``call()``'s result once it stops failing: after a restart, the driver reconnects in
    the background."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (StorageError, NoHostAvailable):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
