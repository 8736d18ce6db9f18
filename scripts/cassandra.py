#!/usr/bin/env python3
"""A real Apache Cassandra for development, tests and CI, without Docker: one node, or a
cluster of N nodes on the loopback addresses 127.0.0.1 .. 127.0.0.N.

Maven Central does not publish the 5.0.x binary tarball, so ``install`` resolves the server
jar ``org.apache.cassandra:cassandra-all`` and its runtime dependencies with Maven into
``$FLASKANDMNIST_CACHE/cassandra-<version>/lib`` (default cache: ``~/.cache/flaskandmnist``);
a second install is a no-op. ``start`` writes a minimal configuration into the data folder,
launches ``CassandraDaemon`` in the background with a small heap and waits until the node
answers the CQL native protocol. ``cluster-start`` does the same for N nodes, as ccm does:
each node has its own folder and address, and all use the same ports; the first is the
seed, and the tokens split the ring evenly. Needs Java 17 and Maven; uses the standard
library only, so it runs before any virtual environment exists.

    scripts/cassandra.py install
    scripts/cassandra.py start --port 9042 --data-dir ~/.cache/flaskandmnist/data
    scripts/cassandra.py status --data-dir ~/.cache/flaskandmnist/data
    scripts/cassandra.py stop --data-dir ~/.cache/flaskandmnist/data
    scripts/cassandra.py cluster-start --nodes 3 --port 9042 --data-dir ~/.cache/flaskandmnist/ring
    scripts/cassandra.py cluster-status --data-dir ~/.cache/flaskandmnist/ring
    scripts/cassandra.py start --data-dir ~/.cache/flaskandmnist/ring/node2   # one node again
    scripts/cassandra.py cluster-stop --data-dir ~/.cache/flaskandmnist/ring
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

DEFAULT_VERSION = "5.0.9"
DEFAULT_PORT = 9042
DEFAULT_HEAP = "1g"
#: Three nodes of this heap, and the memory around each JVM's heap, fit a small machine.
DEFAULT_CLUSTER_HEAP = "512m"
DEFAULT_CLUSTER_NODES = 3
HOST = "127.0.0.1"
MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
# Pinned so that an install is reproducible whatever the local Maven defaults to.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

# The module-system openings Cassandra 5.0 needs on Java 17, as listed in the JPMS section
# of the distribution's conf/jvm17-server.options (the tarball is not on Maven Central).
JVM17_MODULE_OPTIONS = [
    *(
        f"--add-exports={name}=ALL-UNNAMED"
        for name in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
            "jdk.compiler/com.sun.tools.javac.file",
            "jdk.attach/sun.tools.attach",
        )
    ),
    *(
        f"--add-opens={name}=ALL-UNNAMED"
        for name in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "jdk.compiler/com.sun.tools.javac",
            "java.base/java.lang",
            "java.base/java.util",
        )
    ),
]

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>flaskandmnist.local</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""

# Only what differs from Cassandra's built-in defaults, sized for a laptop or a CI runner.
CASSANDRA_YAML = """# Written by scripts/cassandra.py at every start: edit the script instead.
cluster_name: flaskandmnist-local
num_tokens: 1
initial_token: {initial_token}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seeds}"
listen_address: {host}
rpc_address: {host}
storage_port: {storage_port}
native_transport_port: {port}
start_native_transport: true
auto_bootstrap: false
authenticator: {authenticator}
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
data_file_directories: ["{data}/data"]
commitlog_directory: "{data}/commitlog"
hints_directory: "{data}/hints"
saved_caches_directory: "{data}/saved_caches"
cdc_raw_directory: "{data}/cdc_raw"
commitlog_sync: periodic
commitlog_sync_period: 10000ms
disk_failure_policy: stop
commit_failure_policy: stop
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
concurrent_compactors: 1
# A node back from an outage gets the writes it missed from the others' hints; the default
# throttle (1 MiB/s, shared among the nodes) is sized for a network a local ring does not use.
hinted_handoff_throttle: 16MiB
"""

LOGBACK_XML = """<configuration>
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>${cassandra.logdir}/system.log.%i</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""


class CassandraError(RuntimeError):
    """Something this script cannot do; the message says what and how to fix it."""


def default_cache_dir() -> Path:
    # A tooling setting, not a service setting: it must work before the venv exists.
    return Path(os.environ.get("FLASKANDMNIST_CACHE") or "~/.cache/flaskandmnist").expanduser()


def home_dir(cache: Path, version: str) -> Path:
    return cache / f"cassandra-{version}"


def _installed_marker(home: Path) -> Path:
    return home / "installed.json"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialises installs of one version (parallel test runs share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def install(version: str, cache: Path) -> Path:
    """Resolves cassandra-all and its runtime jars into the cache once; returns its folder."""
    home = home_dir(cache, version)
    if _installed_marker(home).is_file():
        return home
    if shutil.which("mvn") is None:
        raise CassandraError("Maven (mvn) is needed to fetch Cassandra from Maven Central")
    with _locked(cache / f"cassandra-{version}.lock"):
        if _installed_marker(home).is_file():
            return home
        started = time.monotonic()
        partial = cache / f"cassandra-{version}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        (partial / "pom.xml").write_text(POM.format(version=version))
        command = [
            "mvn",
            "--batch-mode",
            "--quiet",
            f"-Dmaven.repo.local={cache / 'maven-repository'}",
            "-f",
            str(partial / "pom.xml"),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={partial / 'lib'}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CassandraError(
                f"Maven could not fetch org.apache.cassandra:cassandra-all:{version} "
                f"(exit {result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        if not (partial / "lib" / f"cassandra-all-{version}.jar").is_file():
            raise CassandraError(f"Maven finished but cassandra-all-{version}.jar is missing")
        jars = sorted(path.name for path in (partial / "lib").glob("*.jar"))
        marker = {"version": version, "jars": len(jars), "seconds": time.monotonic() - started}
        _installed_marker(partial).write_text(json.dumps(marker, indent=2) + "\n")
        shutil.rmtree(home, ignore_errors=True)
        partial.rename(home)
        print(f"installed Cassandra {version} ({len(jars)} jars) in {marker['seconds']:.1f} s")
    return home


def _java_major(java: str) -> int:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', result.stderr)
    if result.returncode != 0 or match is None:
        raise CassandraError(f"cannot run {java} -version: {result.stderr.strip()}")
    return int(match.group(1))


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        raise CassandraError("Java 17 is needed: no java on PATH and JAVA_HOME is unset")
    if (major := _java_major(java)) != 17:
        raise CassandraError(f"Cassandra 5.0 is run here on Java 17, but {java} is Java {major}")
    return java


def cql_answers(port: int, host: str = HOST, timeout: float = 2.0) -> bool:
    """True when the node answers an OPTIONS request of the CQL native protocol (v4)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            # Header: version 4, no flags, stream 0, opcode OPTIONS (0x05), empty body.
            sock.sendall(struct.pack(">BBhBi", 0x04, 0, 0, 0x05, 0))
            header = sock.recv(9)
    except OSError:
        return False
    # A response frame has the direction bit set; opcode 0x06 is SUPPORTED.
    return len(header) == 9 and header[0] == 0x84 and header[4] == 0x06


def _port_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _pidfile(data_dir: Path) -> Path:
    return data_dir / "cassandra.pid"


def _node_file(data_dir: Path) -> Path:
    return data_dir / "node.json"


def _alive(pid: int) -> bool:
    """Whether pid is a live (not zombie) Cassandra process; our child is reaped by init."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in {"Z", "X"} and MAIN_CLASS.encode() in cmdline


def running_pid(data_dir: Path) -> int | None:
    try:
        pid = int(_pidfile(data_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _log_tail(data_dir: Path, lines: int = 40) -> str:
    parts = []
    for log in (data_dir / "logs" / "stdout.log", data_dir / "logs" / "system.log"):
        if log.is_file():
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} ---\n" + "\n".join(text))
    return "\n".join(parts)


def _jvm_command(
    java: str, home: Path, data_dir: Path, conf: Path, heap: str, auth: bool
) -> list[str]:
    lib = home / "lib"
    jamm = sorted(lib.glob("jamm-*.jar"))
    return [
        java,
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-Xss256k",
        "-XX:+UseG1GC",
        "-XX:+ParallelRefProcEnabled",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:+PerfDisableSharedMem",
        "-Djava.net.preferIPv4Stack=true",
        "-Djdk.attach.allowAttachSelf=true",
        *JVM17_MODULE_OPTIONS,
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dio.netty.allocator.useCacheForAllThreads=true",
        "-Dio.netty.allocator.maxOrder=11",
        # Cassandra measures object sizes with jamm; the official launcher loads it as agent.
        *(f"-javaagent:{jar}" for jar in jamm[:1]),
        f"-Dcassandra.config={(conf / 'cassandra.yaml').as_uri()}",
        f"-Dlogback.configurationFile={(conf / 'logback.xml').as_uri()}",
        f"-Dcassandra.storagedir={data_dir}",
        f"-Dcassandra.logdir={data_dir / 'logs'}",
        f"-Dcassandra.triggers_dir={conf / 'triggers'}",
        "-Dcassandra-foreground=yes",
        # One node: nothing to gossip with, so do not wait for gossip to settle.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        # The default superuser (cassandra/cassandra) is otherwise created 10 s after start.
        *(["-Dcassandra.superuser_setup_delay_ms=0"] if auth else []),
        # No JMX port: nothing to clash with; stop the node with `stop` (SIGTERM drains it).
        "-cp",
        str(lib / "*"),
        MAIN_CLASS,
    ]


def start(
    *,
    version: str,
    cache: Path,
    data_dir: Path,
    port: int | None,
    storage_port: int | None,
    heap: str | None,
    auth: bool | None,
    wait_timeout: float,
    started_file: Path | None = None,
    host: str | None = None,
    seeds: str | None = None,
    initial_token: int | None = None,
) -> float:
    """Starts the node (installing first if needed); returns seconds until CQL answered.

    Settings left out are taken from the previous start in the same data folder, so
    ``start --data-dir D`` brings a stopped node back exactly as it was. ``started_file``
    gets the node's pid when this call started it, and nothing when the node already ran:
    a caller that stops what it started (scripts/serve.sh) leaves a running node alone.
    """
    data_dir = data_dir.resolve()
    previous = _read_node(data_dir)
    node = {
        "version": version,
        "host": host or previous.get("host") or HOST,
        "port": port or previous.get("port") or DEFAULT_PORT,
        "storage_port": storage_port or previous.get("storage_port") or free_port(),
        "heap": heap or previous.get("heap") or DEFAULT_HEAP,
        "auth": previous.get("auth", False) if auth is None else auth,
        "initial_token": previous.get("initial_token", 0)
        if initial_token is None
        else initial_token,
    }
    # A node alone is its own seed.
    node["seeds"] = seeds or previous.get("seeds") or f"{node['host']}:{node['storage_port']}"
    if (pid := running_pid(data_dir)) is not None:
        print(f"Cassandra already running in {data_dir} (pid {pid})")
        return _wait_for_cql(node, wait_timeout, lambda: _alive(pid), data_dir)
    for name in ("port", "storage_port"):
        if not _port_free(node[name], node["host"]):
            raise CassandraError(
                f"{name.replace('_', ' ')} {node[name]} is already in use on {node['host']}"
            )

    home = install(version, cache)
    fresh = not (data_dir / "data").exists()
    java = _java()
    conf = data_dir / "conf"
    logs = data_dir / "logs"
    (conf / "triggers").mkdir(parents=True, exist_ok=True)
    logs.mkdir(exist_ok=True)
    (conf / "cassandra.yaml").write_text(
        CASSANDRA_YAML.format(
            host=node["host"],
            seeds=node["seeds"],
            initial_token=node["initial_token"],
            port=node["port"],
            storage_port=node["storage_port"],
            data=data_dir,
            authenticator="PasswordAuthenticator" if node["auth"] else "AllowAllAuthenticator",
        )
    )
    (conf / "logback.xml").write_text(LOGBACK_XML)
    _node_file(data_dir).write_text(json.dumps(node, indent=2) + "\n")

    command = _jvm_command(java, home, data_dir, conf, node["heap"], node["auth"])
    started = time.monotonic()
    with (logs / "stdout.log").open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this script and the caller's Ctrl-C
        )
    _pidfile(data_dir).write_text(f"{process.pid}\n")
    if started_file is not None:
        started_file.write_text(f"{process.pid}\n")
    # Our own child is watched through poll(): its /proc cmdline reads empty for a moment
    # after exec, which _alive() would take for a dead process on a busy machine.
    try:
        _wait_for_cql(node, wait_timeout, lambda: process.poll() is None, data_dir)
        if node["auth"] and fresh:
            _wait_for_superuser(data_dir, wait_timeout - (time.monotonic() - started))
    except BaseException:
        # Never leave a half-started node behind (a failed or interrupted start).
        process.kill()
        process.wait()
        _pidfile(data_dir).unlink(missing_ok=True)
        raise
    seconds = time.monotonic() - started
    print(
        f"Cassandra {version} (pid {process.pid}) answers CQL on {node['host']}:{node['port']} "
        f"after {seconds:.1f} s; data in {data_dir}"
    )
    return seconds


def _read_node(data_dir: Path) -> dict:
    try:
        return json.loads(_node_file(data_dir).read_text())
    except (OSError, ValueError):
        return {}


def _wait_for_cql(node: dict, timeout: float, alive: Callable[[], bool], data_dir: Path) -> float:
    started = time.monotonic()
    host, port = node.get("host", HOST), node["port"]
    while time.monotonic() - started < timeout:
        if cql_answers(port, host):
            return time.monotonic() - started
        if not alive():
            _pidfile(data_dir).unlink(missing_ok=True)
            raise CassandraError(f"Cassandra exited during start-up:\n{_log_tail(data_dir)}")
        time.sleep(0.5)
    stop(data_dir)
    raise CassandraError(
        f"Cassandra did not answer CQL on {host}:{port} within {timeout:.0f} s; stopped it.\n"
        f"{_log_tail(data_dir)}"
    )


def _wait_for_superuser(data_dir: Path, timeout: float) -> None:
    """On a fresh node the default superuser is created just after CQL opens; wait for it."""
    deadline = time.monotonic() + timeout
    log = data_dir / "logs" / "system.log"
    while time.monotonic() < deadline:
        if "Created default superuser role" in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise CassandraError(f"the default superuser was not created in time:\n{_log_tail(data_dir)}")


def stop(data_dir: Path, timeout: float = 60.0) -> bool:
    """Stops the node gracefully (SIGTERM drains it), killing it after timeout seconds.

    Returns whether a running node was stopped.
    """
    data_dir = data_dir.resolve()
    pid = running_pid(data_dir)
    if pid is None:
        _pidfile(data_dir).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    _pidfile(data_dir).unlink(missing_ok=True)
    return True


# --- a cluster of N nodes on 127.0.0.1 .. 127.0.0.N ---------------------------------------


def _cluster_file(data_dir: Path) -> Path:
    return data_dir / "cluster.json"


def _read_cluster(data_dir: Path) -> dict:
    try:
        return json.loads(_cluster_file(data_dir).read_text())
    except (OSError, ValueError):
        return {}


def node_dirs(data_dir: Path) -> list[Path]:
    """The folders of the cluster's nodes, the seed first."""
    nodes = _read_cluster(data_dir.resolve()).get("nodes", 0)
    return [data_dir.resolve() / f"node{index}" for index in range(1, nodes + 1)]


def node_host(index: int) -> str:
    """The loopback address of node ``index`` (1-based)."""
    return f"127.0.0.{index}"


def ring_tokens(nodes: int) -> list[int]:
    """One Murmur3 token per node, evenly spaced, so that each node owns as much data."""
    return [-(2**63) + index * (2**64 // nodes) for index in range(nodes)]


def _peer_states(data_dir: Path) -> dict[str, bool]:
    """What a node's log last said of each peer: up (True) or down (False)."""
    log = data_dir / "logs" / "system.log"
    states: dict[str, bool] = {}
    if log.is_file():
        for match in re.finditer(
            r"/([\d.]+):\d+ is now (UP|DOWN)", log.read_text(errors="replace")
        ):
            states[match.group(1)] = match.group(2) == "UP"
    return states


def wait_for_ring(data_dir: Path, timeout: float) -> float:
    """Waits until every running node of the cluster sees every other running node up (its
    log says so): before that, a node may answer Unavailable for ranges it thinks are down.
    Returns the seconds waited."""
    started = time.monotonic()
    while True:
        running = [d for d in node_dirs(data_dir) if running_pid(d) is not None]
        hosts = {d: _read_node(d).get("host", HOST) for d in running}
        if all(
            _peer_states(d).get(hosts[other], False)
            for d in running
            for other in running
            if other != d
        ):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise CassandraError(f"the nodes did not all see each other within {timeout:.0f} s")
        time.sleep(0.5)


def cluster_start(
    *,
    version: str,
    cache: Path,
    data_dir: Path,
    nodes: int | None,
    port: int | None,
    heap: str | None,
    wait_timeout: float,
) -> float:
    """Starts (or brings back) an N-node cluster; returns seconds until all answered CQL and
    saw each other.

    Node i listens on 127.0.0.i with the same CQL and internode ports as the others, in
    ``data_dir/node<i>`` (a node of its own, which ``start --data-dir`` restarts alone).
    The seed starts first; the others join it together. Settings left out are taken from the
    previous start in the same folder. A failed start stops every node it started.
    """
    data_dir = data_dir.resolve()
    previous = _read_cluster(data_dir)
    cluster = {
        "nodes": nodes or previous.get("nodes") or DEFAULT_CLUSTER_NODES,
        "port": port or previous.get("port") or DEFAULT_PORT,
        "storage_port": previous.get("storage_port") or free_port(),
        "heap": heap or previous.get("heap") or DEFAULT_CLUSTER_HEAP,
    }
    if not 1 <= cluster["nodes"] <= 254:
        raise CassandraError(f"a cluster has 1 to 254 nodes, not {cluster['nodes']}")
    for index in range(1, cluster["nodes"] + 1):
        # Any free port binds unless the address is unusable: macOS, for one, routes only
        # 127.0.0.1 until aliases are added.
        if not _port_free(0, node_host(index)):
            raise CassandraError(
                f"cannot listen on {node_host(index)}; on macOS first run "
                f"`sudo ifconfig lo0 alias {node_host(index)} up`"
            )
    data_dir.mkdir(parents=True, exist_ok=True)
    _cluster_file(data_dir).write_text(json.dumps(cluster, indent=2) + "\n")
    tokens = ring_tokens(cluster["nodes"])
    seed = f"{node_host(1)}:{cluster['storage_port']}"
    started = time.monotonic()

    def start_node(index: int) -> float:
        return start(
            version=version,
            cache=cache,
            data_dir=data_dir / f"node{index}",
            port=cluster["port"],
            storage_port=cluster["storage_port"],
            heap=cluster["heap"],
            auth=False,
            wait_timeout=wait_timeout,
            host=node_host(index),
            seeds=seed,
            initial_token=tokens[index - 1],
        )

    try:
        start_node(1)
        with ThreadPoolExecutor(max_workers=cluster["nodes"]) as pool:
            for future in [pool.submit(start_node, i) for i in range(2, cluster["nodes"] + 1)]:
                future.result()
        wait_for_ring(data_dir, wait_timeout)
    except BaseException:
        cluster_stop(data_dir)
        raise
    seconds = time.monotonic() - started
    print(
        f"{cluster['nodes']} nodes answer CQL on {node_host(1)}..{node_host(cluster['nodes'])}"
        f":{cluster['port']} and see each other, after {seconds:.1f} s; data in {data_dir}"
    )
    return seconds


def cluster_status(data_dir: Path) -> list[tuple[str, int | None, bool]]:
    """Each node's address, pid (None: not running) and whether it answers CQL."""
    states = []
    for folder in node_dirs(data_dir):
        node = _read_node(folder)
        host, pid = node.get("host", HOST), running_pid(folder)
        answers = pid is not None and cql_answers(node.get("port", DEFAULT_PORT), host)
        states.append((host, pid, answers))
    return states


def cluster_stop(data_dir: Path) -> int:
    """Stops every node of the cluster at once; returns how many were running."""
    with ThreadPoolExecutor(max_workers=max(1, len(node_dirs(data_dir)))) as pool:
        return sum(pool.map(stop, node_dirs(data_dir)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help="where installs are kept (default: $FLASKANDMNIST_CACHE or %(default)s)",
    )
    parser.add_argument(
        "--cassandra-version", default=DEFAULT_VERSION, help="a 5.0.x (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="fetch Cassandra into the cache (no-op when present)")
    data_help = "the node's folder: data, commit log, configuration, logs (default: %(default)s)"
    default_data = default_cache_dir() / "data"
    start_cmd = commands.add_parser("start", help="start a node and wait until CQL answers")
    start_cmd.add_argument("--data-dir", type=Path, default=default_data, help=data_help)
    start_cmd.add_argument("--port", type=int, help=f"CQL port (default {DEFAULT_PORT})")
    start_cmd.add_argument("--storage-port", type=int, help="internode port (default: free)")
    start_cmd.add_argument("--heap", help=f"JVM heap, -Xms and -Xmx (default {DEFAULT_HEAP})")
    start_cmd.add_argument(
        "--auth",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="require username/password (PasswordAuthenticator, superuser cassandra/cassandra)",
    )
    start_cmd.add_argument("--wait-timeout", type=float, default=300.0, metavar="SECONDS")
    start_cmd.add_argument(
        "--started-file",
        type=Path,
        help="write the node's pid here when this command started it (not when it already ran)",
    )
    for name, text in (("stop", "stop the node gracefully"), ("status", "is the node up?")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--data-dir", type=Path, default=default_data, help=data_help)
    ring_help = "the cluster's folder, one node<i> folder per node (default: %(default)s)"
    default_ring = default_cache_dir() / "ring"
    cluster_cmd = commands.add_parser(
        "cluster-start", help="start N nodes on 127.0.0.1..N and wait until they see each other"
    )
    cluster_cmd.add_argument("--data-dir", type=Path, default=default_ring, help=ring_help)
    cluster_cmd.add_argument(
        "--nodes", type=int, help=f"how many nodes (default {DEFAULT_CLUSTER_NODES})"
    )
    cluster_cmd.add_argument(
        "--port", type=int, help=f"CQL port of every node (default {DEFAULT_PORT})"
    )
    cluster_cmd.add_argument(
        "--heap", help=f"JVM heap of each node (default {DEFAULT_CLUSTER_HEAP})"
    )
    cluster_cmd.add_argument("--wait-timeout", type=float, default=300.0, metavar="SECONDS")
    for name, text in (
        ("cluster-stop", "stop every node of the cluster"),
        ("cluster-status", "which nodes are up? (exit 0: all answer CQL)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--data-dir", type=Path, default=default_ring, help=ring_help)
    return parser


def _print_cluster_status(data_dir: Path) -> int:
    """Prints one line per node; exit 0 all answer CQL, 1 some do not, 3 none runs."""
    states = cluster_status(data_dir)
    for host, pid, answers in states:
        state = (
            "not running"
            if pid is None
            else f"running (pid {pid}), CQL " + ("answers" if answers else "silent")
        )
        print(f"{host}: {state}")
    if not any(pid for _, pid, _ in states):
        print("not running")
        return 3
    return 0 if all(answers for _, _, answers in states) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A caller that gives up (scripts/serve.sh on Ctrl-C) sends SIGTERM: leave as on Ctrl-C,
    # so that a start in progress kills the half-started node.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        if args.command == "install":
            home = install(args.cassandra_version, args.cache_dir)
            print(f"Cassandra {args.cassandra_version} installed in {home}")
        elif args.command == "start":
            start(
                version=args.cassandra_version,
                cache=args.cache_dir,
                data_dir=args.data_dir,
                port=args.port,
                storage_port=args.storage_port,
                heap=args.heap,
                auth=args.auth,
                wait_timeout=args.wait_timeout,
                started_file=args.started_file,
            )
        elif args.command == "stop":
            print("stopped" if stop(args.data_dir) else "not running")
        elif args.command == "cluster-start":
            cluster_start(
                version=args.cassandra_version,
                cache=args.cache_dir,
                data_dir=args.data_dir,
                nodes=args.nodes,
                port=args.port,
                heap=args.heap,
                wait_timeout=args.wait_timeout,
            )
        elif args.command == "cluster-stop":
            print(f"stopped {cluster_stop(args.data_dir)} node(s)")
        elif args.command == "cluster-status":
            return _print_cluster_status(args.data_dir)
        else:
            pid = running_pid(args.data_dir.resolve())
            node = _read_node(args.data_dir.resolve())
            port = node.get("port", DEFAULT_PORT)
            if pid is None:
                print("not running")
                return 3
            answers = cql_answers(port, node.get("host", HOST))
            print(f"running (pid {pid}), CQL on port {port} {'answers' if answers else 'silent'}")
            return 0 if answers else 1
    except CassandraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
