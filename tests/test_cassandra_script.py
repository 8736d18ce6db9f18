"""scripts/cassandra.py: status, port clashes, cached installs, and who started a node."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cassandra_server import REPO_ROOT, CassandraServer, LocalServer, load_local_cassandra

SCRIPT = REPO_ROOT / "scripts" / "cassandra.py"
local_cassandra = load_local_cassandra()


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_status_of_a_folder_without_a_node_is_exit_3(tmp_path: Path) -> None:
    result = run_script("status", "--data-dir", str(tmp_path))
    assert (result.returncode, result.stdout.strip()) == (3, "not running")
    assert run_script("stop", "--data-dir", str(tmp_path)).stdout.strip() == "not running"


def test_cluster_status_of_a_folder_without_a_cluster_is_exit_3(tmp_path: Path) -> None:
    result = run_script("cluster-status", "--data-dir", str(tmp_path))
    assert (result.returncode, result.stdout.strip()) == (3, "not running")
    stopped = run_script("cluster-stop", "--data-dir", str(tmp_path))
    assert stopped.stdout.strip() == "stopped 0 node(s)"


def test_a_cluster_splits_the_ring_evenly() -> None:
    tokens = local_cassandra.ring_tokens(3)
    assert tokens[0] == -(2**63)
    ranges = [end - start for start, end in zip(tokens, [*tokens[1:], 2**63], strict=True)]
    assert max(ranges) - min(ranges) < 3
    assert [local_cassandra.node_host(i) for i in (1, 2, 3)] == [
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
    ]


def test_start_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cache = str(tmp_path / "cache")
        result = run_script(
            "--cache-dir", cache, "start", "--data-dir", str(tmp_path), "--port", str(port)
        )
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert not (tmp_path / "cache").exists()  # refused before installing anything


def test_nothing_answers_cql_on_a_free_port() -> None:
    assert not local_cassandra.cql_answers(local_cassandra.free_port())


def test_an_installed_version_is_not_fetched_again(tmp_path: Path) -> None:
    home = local_cassandra.home_dir(tmp_path, "5.0.0")
    home.mkdir(parents=True)
    (home / "installed.json").write_text(json.dumps({"version": "5.0.0"}))
    result = run_script("--cache-dir", str(tmp_path), "--cassandra-version", "5.0.0", "install")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Cassandra 5.0.0 installed in {home}"


@pytest.mark.cassandra
def test_start_records_the_node_it_started_and_not_one_that_already_ran(
    cassandra: CassandraServer, tmp_path: Path
) -> None:
    """The decision scripts/serve.sh stops Cassandra by: only a node its own start began."""
    if not isinstance(cassandra, LocalServer):
        pytest.skip("restarts the test server, which only a scripts/cassandra.py node allows")
    data_dir = str(cassandra.data_dir)
    cache = str(local_cassandra.default_cache_dir())
    cassandra.stop()
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    started = run_script(
        "--cache-dir", cache, "start", "--data-dir", data_dir, "--started-file", str(ours)
    )
    assert started.returncode == 0, started.stderr
    pid = local_cassandra.running_pid(cassandra.data_dir.resolve())
    assert pid is not None and ours.read_text().strip() == str(pid)
    assert local_cassandra.cql_answers(cassandra.port)

    again = run_script(
        "--cache-dir", cache, "start", "--data-dir", data_dir, "--started-file", str(theirs)
    )
    assert again.returncode == 0, again.stderr
    assert f"already running in {cassandra.data_dir.resolve()} (pid {pid})" in again.stdout
    assert not theirs.exists()
