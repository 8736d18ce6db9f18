"""The container's commands, run as the image would run them, without a Docker engine.

The image is rebuilt as a folder that stands for its file system: the Dockerfile is read
instruction by instruction; a fresh virtual environment stands for the base image's Python
and gets the Dockerfile's own ``RUN pip install -r requirements.txt``; the COPY lines copy
from the build context that .dockerignore leaves; WORKDIR, ENV (paths moved into the folder)
and the non-root USER apply as in the image. Then the compose file's schema command, the
Dockerfile's CMD and its HEALTHCHECK run there against the test Cassandra, with the
environment compose gives the web service.

Honest differences from a container: the host's Python 3.11 and libraries stand for the
python:3.11-slim image's, there are no namespaces or networks, and pip installs from a local
folder of the wheels that ``pip download -r requirements.txt`` fetched from the index (once
per requirements.txt; pip's own cache is not used on this machine), so the install is the
same resolver on the same pins without downloading 400 MB on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassandra_server import CassandraServer, load_local_cassandra
from container_files import Instruction, build_context, compose_config, dockerfile
from support import REPO_ROOT, free_port, wait_until, wait_until_serving

from flaskandmnist.imaging import mnist_to_png
from flaskandmnist.mnist import Mnist, to_float

pytestmark = [pytest.mark.slow, pytest.mark.cassandra]

#: Each of the two workers loads the model and connects: slow on a busy two-core machine.
START_TIMEOUT_S = 240.0


@dataclass
class Image:
    """A folder standing for the image's file system, and how its processes run."""

    root: Path
    workdir: Path = Path("/")
    env: dict[str, str] = field(default_factory=dict)
    #: uid and gid of the Dockerfile's USER; None while it has none (root).
    user: tuple[int, int] | None = None
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)

    def path(self, image_path: str) -> Path:
        """Where a path of the image lies in the folder (relative ones start at WORKDIR)."""
        return (
            self.root / image_path.lstrip("/")
            if image_path.startswith("/")
            else (self.workdir / image_path)
        )

    def popen_options(self, env: dict[str, str]) -> dict[str, object]:
        """How to start a process as the image's user, in its WORKDIR, with ``env`` added to
        the image's environment. Only root can switch users; others run as themselves."""
        options: dict[str, object] = {"cwd": self.workdir, "env": {**self.env, **env}}
        if self.user and os.geteuid() == 0:
            options |= {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        return options


def wheelhouse() -> Path:
    """Wheels of requirements.txt, downloaded from the index once per version of the file."""
    requirements = REPO_ROOT / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    folder = load_local_cassandra().default_cache_dir() / "wheelhouse" / digest
    if not (folder / ".complete").exists():
        partial = folder.with_name(f"{digest}.partial-{os.getpid()}")
        download = ["download", "-q", "-r", str(requirements), "-d", str(partial)]
        subprocess.run([sys.executable, "-m", "pip", *download], check=True, timeout=900)
        (partial / ".complete").touch()
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return folder


def base_python(image: str) -> str:
    """The interpreter standing for a python:X.Y image's: the system's pythonX.Y, which the
    image's unprivileged user can run (a per-user install like pyenv's may be closed to
    it), else this one."""
    version = image.removeprefix("python:").split("-")[0].split(".")[:2]
    assert len(version) == 2, f"FROM {image}: not a python:X.Y image"
    system = shutil.which(f"python{'.'.join(version)}", path="/usr/local/bin:/usr/bin:/bin")
    if system:
        return system
    assert tuple(map(int, version)) == sys.version_info[:2], f"no Python of {image} here"
    return sys.executable


def run_instruction(image: Image, instruction: Instruction, context: set[str]) -> None:
    """Does what ``docker build`` does for one instruction, in the image's folder."""
    keyword, args = instruction.keyword, instruction.args
    if keyword == "FROM":
        venv = image.root / "usr" / "local"
        subprocess.run([base_python(args), "-m", "venv", str(venv)], check=True, timeout=120)
        image.env |= {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8"}
        image.env["HOME"] = str(image.path("/root"))
    elif keyword == "ENV":
        for name, value in instruction.pairs().items():
            image.env[name] = str(image.path(value)) if value.startswith("/") else value
    elif keyword == "WORKDIR":
        image.workdir = image.path(args)
        image.workdir.mkdir(parents=True, exist_ok=True)
    elif keyword == "RUN" and args.startswith("pip install "):
        # The Dockerfile's own command line, with pip reading the downloaded wheels.
        offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse())}
        subprocess.run(args, shell=True, check=True, timeout=900, **image.popen_options(offline))
    elif keyword == "RUN" and args.startswith("useradd "):
        words = shlex.split(args)
        uid = int(words[words.index("--uid") + 1])
        home = image.path(f"/home/{words[-1]}")
        home.mkdir(parents=True)
        if os.geteuid() == 0:
            os.chown(home, uid, uid)
        image.env["HOME"] = str(home)  # Docker sets HOME from the USER's passwd entry
    elif keyword == "RUN" and args.startswith("mkdir "):
        # The outbox folder, handed to the service's user (only root can chown).
        command = args if os.geteuid() == 0 else args.partition(" && chown ")[0]
        subprocess.run(command, shell=True, check=True, timeout=60, **image.popen_options({}))
    elif keyword == "COPY":
        *sources, destination = args.split()
        for source in sources:
            source = source.rstrip("/")
            files = sorted(
                p for p in context if p.startswith(f"{source}/") and (REPO_ROOT / p).is_file()
            )
            if (REPO_ROOT / source).is_file():
                files = [source] if source in context else []
                target = image.path(destination) / source
            else:
                target = image.path(destination)
            assert files, f"COPY {args}: nothing of {source} is in the build context"
            for path in files:
                copied = target / Path(path).relative_to(source) if path != source else target
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO_ROOT / path, copied)
    elif keyword == "USER":
        uid, gid = args.split(":")
        image.user = (int(uid), int(gid))
    elif keyword == "CMD":
        image.cmd = instruction.exec_form()
    elif keyword == "HEALTHCHECK":
        image.healthcheck = instruction.exec_form()
    elif keyword != "EXPOSE":
        pytest.fail(f"this test does not know how to build {keyword} {args}")


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The image, built into a temporary folder (readable by its unprivileged user)."""
    root = Path(tempfile.mkdtemp(prefix="flaskandmnist-image-"))
    root.chmod(0o755)
    try:
        built = Image(root)
        context = build_context()
        started = time.monotonic()
        for instruction in dockerfile():
            run_instruction(built, instruction, context)
        print(f"image built in {time.monotonic() - started:.0f} s")
        yield built
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Container:
    url: str
    env: dict[str, str]  # what compose gives web, pointed at the test Cassandra
    keyspace: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(scope="module")
def container(
    image: Image, cassandra: CassandraServer, cql_session: Session
) -> Iterator[Container]:
    """The compose schema job, then the image's CMD, as compose runs web."""
    keyspace = f"test_container_{uuid.uuid4().hex[:8]}"
    # Compose resolves the web service's environment from variables as a user would set
    # them; only the Cassandra location (fixed to the compose service) is this test's.
    shell = {
        "CASSANDRA_KEYSPACE": keyspace,
        "CASSANDRA_USERNAME": cassandra.username or "",
        "CASSANDRA_PASSWORD": cassandra.password or "",
    }
    services = compose_config(env=shell)["services"]
    env = {k: v for k, v in services["web"]["environment"].items() if v is not None}
    env |= cassandra.environ() | {"PORT": str(free_port())}

    schema = subprocess.run(
        services["schema"]["command"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **image.popen_options(env),
    )
    assert schema.returncode == 0, f"schema job failed:\n{schema.stdout}\n{schema.stderr}"

    logs = image.root / "logs"
    logs.mkdir()
    stdout, stderr = logs / "stdout.log", logs / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(image.cmd, stdout=out, stderr=err, **image.popen_options(env))
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        started = time.monotonic()
        wait_until_serving(process, f"{url}/healthz", stderr, START_TIMEOUT_S)
        print(f"CMD answered /healthz after {time.monotonic() - started:.0f} s")
        yield Container(url, env, keyspace, process, stdout, stderr)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        cql_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_schema_job_created_the_keyspace(container: Container, cql_session: Session) -> None:
    tables = {
        row.table_name
        for row in cql_session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
            (container.keyspace,),
        )
    }
    assert {"predictions", "predictions_by_minute", "predictions_by_digit_minute"} <= tables


def test_health_routes_answer(container: Container) -> None:
    assert _get(f"{container.url}/healthz") == (200, {"status": "ok"})
    # A worker may still be connecting to Cassandra.
    wait_until(lambda: _get(f"{container.url}/readyz")[0] == 200, what="/readyz answers 200")


def test_the_images_healthcheck_passes(container: Container, image: Image) -> None:
    result = subprocess.run(
        image.healthcheck,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        **image.popen_options(container.env),
    )
    assert result.returncode == 0, result.stderr


def test_a_prediction_is_made_and_stored_in_cassandra(
    container: Container, mnist: Mnist, cql_session: Session
) -> None:
    index = 0  # MNIST's first test image, a 7, written black on white as a person would
    png = mnist_to_png(1.0 - to_float(mnist.test_images[index]))
    request = urllib.request.Request(
        f"{container.url}/api/v1/predictions",
        data=png,
        headers={"Content-Type": "image/png"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201
        body = json.load(response)
    assert body["digit"] == int(mnist.test_labels[index]) == 7
    assert len(body["probabilities"]) == 11  # ten digits, then "not a digit"
    assert body["confidence"] == pytest.approx(max(body["probabilities"]))
    row = cql_session.execute(
        f"SELECT digit, image, source FROM {container.keyspace}.predictions WHERE id = %s",
        (uuid.UUID(body["id"]),),
    ).one()
    assert row is not None
    assert (row.digit, row.image) == (7, png)
    # The access log goes to stdout, where `docker compose logs` reads it.
    assert "POST /api/v1/predictions" in container.stdout.read_text()


def test_the_configured_number_of_workers_serves(container: Container) -> None:
    children = [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit() and _parent(int(pid)) == container.process.pid
    ]
    assert len(children) == 2  # WEB_WORKERS' default; compose leaves it to the app


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_sigterm_stops_the_server_gracefully(container: Container) -> None:
    """What `docker compose stop` does (runs last: it stops the server)."""
    container.process.send_signal(signal.SIGTERM)
    assert container.process.wait(timeout=60) == 0
    log = container.stderr.read_text()
    assert "Traceback" not in log
    assert "Shutting down" in log
