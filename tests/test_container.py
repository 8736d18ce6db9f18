"""The container files, checked without a Docker engine: docker-compose.yml as Docker Compose
itself loads and validates it, the Dockerfile and its build context, the gunicorn settings
the image runs with, the Dockerfile linter, and scripts/serve.sh (the route without Docker).

tests/test_container_command.py runs what the image runs, against the real Cassandra.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from cassandra_server import load_local_cassandra
from container_files import (
    COMPOSE_FILE,
    REPO_ROOT,
    Instruction,
    build_context,
    compose_config,
    dockerfile,
    only,
    run_compose,
)
from docker.utils.build import exclude_paths
from gunicorn.config import Config

import flaskandmnist.web
from flaskandmnist.config import ConfigError, Settings, WebSettings
from flaskandmnist.web.services import Services

HADOLINT = Path(sys.executable).parent / "hadolint"
#: What gunicorn runs in the image, and scripts/serve.sh too.
GUNICORN_COMMAND = [
    "gunicorn",
    "--config",
    "python:flaskandmnist.gunicorn_conf",
    "flaskandmnist.web:create_app()",
]
#: Variables the app reads that compose does not pass on: MNIST is for training only, and
#: the address inside the container is fixed (port 5000, published as WEB_PUBLISHED_PORT).
NOT_PASSED = {"MNIST_DIR", "MNIST_DOWNLOAD", "WEB_HOST", "PORT"}


def seconds(duration: str) -> float:
    """A compose duration such as ``1m30s`` in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def names_the_app_reads() -> set[str]:
    """Every environment variable Settings.from_env looks at, found by letting it look."""

    class Recorder(dict[str, str]):
        def __init__(self) -> None:
            super().__init__()
            self.names: set[str] = set()

        def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
            self.names.add(name)
            return default

    recorder = Recorder()
    Settings.from_env(recorder)
    return recorder.names


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """docker-compose.yml as Docker Compose resolves it with no variables set."""
    return compose_config()


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return dockerfile()


# --- docker-compose.yml ---------------------------------------------------------------


def test_compose_file_is_valid_and_runs_three_services(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"cassandra", "schema", "web"}
    assert run_compose("config", "--quiet").returncode == 0


def test_compose_validation_rejects_what_the_specification_does(tmp_path: Path) -> None:
    broken = COMPOSE_FILE.read_text().replace("service_completed_successfully", "service_done")
    assert broken != COMPOSE_FILE.read_text()
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = run_compose("config", "--quiet", compose_file=tmp_path / "docker-compose.yml")
    assert result.returncode != 0
    assert "services.web.depends_on.schema.condition value must be one of" in result.stderr


def test_cassandra_is_the_pinned_official_image_the_local_tests_use(
    config: dict[str, Any],
) -> None:
    image = config["services"]["cassandra"]["image"]
    assert re.fullmatch(r"cassandra:5\.0\.\d+", image)
    assert image == f"cassandra:{load_local_cassandra().DEFAULT_VERSION}"


def test_cassandra_heap_is_sized_for_a_laptop_and_can_be_changed(config: dict[str, Any]) -> None:
    environment = config["services"]["cassandra"]["environment"]
    assert (environment["MAX_HEAP_SIZE"], environment["HEAP_NEWSIZE"]) == ("1G", "256M")
    bigger = compose_config(env={"CASSANDRA_MAX_HEAP_SIZE": "4G", "CASSANDRA_HEAP_NEWSIZE": "1G"})
    environment = bigger["services"]["cassandra"]["environment"]
    assert (environment["MAX_HEAP_SIZE"], environment["HEAP_NEWSIZE"]) == ("4G", "1G")


def test_cassandra_keeps_its_data_in_a_named_volume(config: dict[str, Any]) -> None:
    [volume] = config["services"]["cassandra"]["volumes"]
    assert (volume["type"], volume["target"]) == ("volume", "/var/lib/cassandra")
    assert volume["source"] in config["volumes"]


def test_web_keeps_its_outbox_in_a_named_volume_the_app_user_owns(
    config: dict[str, Any], instructions: list[Instruction]
) -> None:
    env = {k: v for i in instructions if i.keyword == "ENV" for k, v in i.pairs().items()}
    outbox = env["OUTBOX_DIR"]
    [volume] = config["services"]["web"]["volumes"]
    assert (volume["type"], volume["target"]) == ("volume", outbox)
    assert volume["source"] in config["volumes"]
    # A new named volume takes the owner of the image's folder: the service's user.
    uid = only(instructions, "USER").args.split(":")[0]
    assert any(
        i.keyword == "RUN" and f"chown {uid}:" in i.args and "$OUTBOX_DIR" in i.args
        for i in instructions
    )


def test_cassandra_is_healthy_once_cql_answers(config: dict[str, Any]) -> None:
    check = config["services"]["cassandra"]["healthcheck"]
    assert check["test"] == ["CMD", "cqlsh", "-e", "describe keyspaces"]
    assert seconds(check["start_period"]) >= 60  # a first boot takes about a minute
    # Marked unhealthy only after start_period and then `retries` failed checks.
    assert seconds(check["start_period"]) + check["retries"] * seconds(check["interval"]) >= 180
    assert config["services"]["cassandra"]["restart"] == "unless-stopped"


def test_schema_job_runs_csd_once_cassandra_is_healthy(config: dict[str, Any]) -> None:
    schema, web = config["services"]["schema"], config["services"]["web"]
    assert schema["command"][:2] == ["python", "csd.py"]
    wait = schema["command"][schema["command"].index("--wait-timeout") + 1]
    assert float(wait) >= 60
    assert schema["depends_on"]["cassandra"] == {"condition": "service_healthy", "required": True}
    assert schema["restart"] == "no"  # a one-shot job
    assert schema["healthcheck"] == {"disable": True}  # the image's probes the web server
    # The same image as web, built from this repository's Dockerfile.
    assert schema["image"] == web["image"]
    assert schema["build"] == web["build"]
    assert Path(web["build"]["context"]) == REPO_ROOT
    assert web["build"]["dockerfile"] == "Dockerfile"


def test_web_starts_after_the_schema_job_succeeded(config: dict[str, Any]) -> None:
    assert config["services"]["web"]["depends_on"] == {
        "schema": {"condition": "service_completed_successfully", "required": True}
    }


def test_web_publishes_port_5000_or_the_one_asked_for(config: dict[str, Any]) -> None:
    [port] = config["services"]["web"]["ports"]
    assert (port["target"], port["published"], port["protocol"]) == (5000, "5000", "tcp")
    assert port["target"] == WebSettings().port  # where gunicorn listens in the container
    [port] = compose_config(env={"WEB_PUBLISHED_PORT": "8080"})["services"]["web"]["ports"]
    assert (port["target"], port["published"]) == (5000, "8080")


def test_web_healthcheck_is_the_dockerfiles(
    config: dict[str, Any], instructions: list[Instruction]
) -> None:
    check = config["services"]["web"]["healthcheck"]
    assert check["test"] == ["CMD", *only(instructions, "HEALTHCHECK").exec_form()]
    assert "/healthz" in check["test"][-1]
    assert seconds(check["timeout"]) < seconds(check["interval"])
    assert config["services"]["web"]["restart"] == "unless-stopped"


def test_compose_passes_every_service_setting_and_nothing_else(config: dict[str, Any]) -> None:
    passed = config["services"]["web"]["environment"]
    wanted = names_the_app_reads() - NOT_PASSED
    assert not wanted - set(passed), "add these to x-app in docker-compose.yml and docs"
    assert not set(passed) - wanted, "the app reads none of these"
    assert config["services"]["schema"]["environment"] == passed
    # Only the Cassandra of the compose file is fixed; the rest keep the app's defaults.
    assert {name: value for name, value in passed.items() if value is not None} == {
        "CASSANDRA_CONTACT_POINTS": "cassandra,cassandra-2,cassandra-3",
        "CASSANDRA_PORT": "9042",
    }


def test_variables_from_the_shell_reach_the_app(config: dict[str, Any]) -> None:
    shell = {
        "CASSANDRA_KEYSPACE": "shop",
        "CASSANDRA_CONSISTENCY": "ONE",
        "MAX_IMAGE_BYTES": "123456",
        "WEB_WORKERS": "4",
        # A developer's settings for a local node must not reach the containers.
        "CASSANDRA_CONTACT_POINTS": "127.0.0.1",
        "CASSANDRA_PORT": "9043",
    }
    environment = compose_config(env=shell)["services"]["web"]["environment"]
    assert {name: environment[name] for name in shell} == {
        **shell,
        "CASSANDRA_CONTACT_POINTS": "cassandra,cassandra-2,cassandra-3",
        "CASSANDRA_PORT": "9042",
    }


def test_docs_document_every_variable_of_the_compose_file(config: dict[str, Any]) -> None:
    readme = (REPO_ROOT / "docs" / "operations.md").read_text()
    section = readme[readme.index("## Run with Docker") :]
    compose_only = {"WEB_PUBLISHED_PORT", "CASSANDRA_MAX_HEAP_SIZE", "CASSANDRA_HEAP_NEWSIZE"}
    passed = set(config["services"]["web"]["environment"]) - {
        "CASSANDRA_CONTACT_POINTS",
        "CASSANDRA_PORT",
    }
    missing = {name for name in passed | compose_only if f"`{name}`" not in readme}
    assert not missing, f"docs/operations.md documents no {sorted(missing)}"
    assert "docker compose up" in section
    assert "docker compose exec cassandra cqlsh" in section
    assert "scripts/serve.sh" in section


def test_cluster_profile_adds_two_nodes_that_join_the_first_in_turn() -> None:
    cluster = compose_config("cluster")
    services = cluster["services"]
    assert set(services) == {"cassandra", "cassandra-2", "cassandra-3", "schema", "web"}
    first = services["cassandra"]
    for name, after in (("cassandra-2", "cassandra"), ("cassandra-3", "cassandra-2")):
        node = services[name]
        assert node["image"] == first["image"]
        assert node["environment"]["CASSANDRA_SEEDS"] == "cassandra"
        assert node["healthcheck"] == first["healthcheck"]
        assert node["depends_on"] == {after: {"condition": "service_healthy", "required": True}}
        [volume] = node["volumes"]
        assert volume["target"] == "/var/lib/cassandra"
        assert volume["source"] in cluster["volumes"]
    sources = {
        services[n]["volumes"][0]["source"] for n in ("cassandra", "cassandra-2", "cassandra-3")
    }
    assert len(sources) == 3
    # The schema job waits for the last node; without the profile that wait is dropped.
    assert services["schema"]["depends_on"]["cassandra-3"] == {
        "condition": "service_healthy",
        "required": False,
    }
    replicated = compose_config("cluster", env={"CASSANDRA_REPLICATION_FACTOR": "3"})
    assert replicated["services"]["schema"]["environment"]["CASSANDRA_REPLICATION_FACTOR"] == "3"


# --- Dockerfile and build context -------------------------------------------------------


def test_base_image_is_a_slim_official_python_of_the_projects_version(
    instructions: list[Instruction],
) -> None:
    assert instructions[0].keyword == "FROM"
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", instructions[0].args)
    assert match, instructions[0].args
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert requires["requires-python"] == f">={match[1]}.{match[2]}"


def test_dependencies_are_a_cached_layer_installed_before_the_code_is_copied(
    instructions: list[Instruction],
) -> None:
    steps = [(i.keyword, i.args) for i in instructions]
    copy_requirements = steps.index(("COPY", "requirements.txt ./"))
    install = steps.index(("RUN", "pip install -r requirements.txt"))
    copies = [n for n, (keyword, _) in enumerate(steps) if keyword == "COPY"]
    assert copy_requirements < install < min(n for n in copies if n != copy_requirements)
    environment = {k: v for i in instructions if i.keyword == "ENV" for k, v in i.pairs().items()}
    assert environment["PIP_NO_CACHE_DIR"] == "1"
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert environment["PYTHONUNBUFFERED"] == "1"


def pinned_lines(name: str) -> list[str]:
    """The requirement lines of a requirements file, comments left out."""
    lines = [line.split("#")[0].strip() for line in (REPO_ROOT / name).read_text().splitlines()]
    return [line for line in lines if line]


def test_serving_requirements_are_pinned_and_leave_tensorflow_out() -> None:
    requirements = pinned_lines("requirements.txt")
    assert requirements
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+(\s*;.*)?", r) for r in requirements)
    names = {re.split(r"[=;\s]", r)[0].lower() for r in requirements}
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "tf-keras"}


def test_training_requirements_add_cpu_tensorflow_on_linux() -> None:
    requirements = pinned_lines("requirements-train.txt")
    assert requirements[0] == "-r requirements.txt"
    assert any(
        re.fullmatch(r'tensorflow-cpu==[\w.]+; sys_platform == "linux"', r) for r in requirements
    )
    assert pinned_lines("requirements-dev.txt")[0] == "-r requirements-train.txt"


def test_image_runs_as_a_fixed_non_root_user(instructions: list[Instruction]) -> None:
    users = [n for n, i in enumerate(instructions) if i.keyword == "USER"]
    assert users, "the image would run as root"
    user = instructions[users[-1]].args
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric uid:gid, not root"
    uid = user.split(":")[0]
    runs = [n for n, i in enumerate(instructions) if i.keyword == "RUN"]
    assert max(runs) < users[-1], "nothing may run as root after USER"
    assert any(f"useradd --uid {uid} " in instructions[n].args for n in runs), (
        "the user exists in the image (a home for gunicorn's control socket)"
    )


def test_image_exposes_the_app_port_and_checks_the_health_route(
    instructions: list[Instruction],
) -> None:
    assert only(instructions, "EXPOSE").args == str(WebSettings().port)
    check = only(instructions, "HEALTHCHECK")
    assert re.search(r"--start-period=\d+s", check.args)
    command = check.exec_form()
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2]


def test_command_is_gunicorn_with_the_projects_configuration(
    instructions: list[Instruction],
) -> None:
    assert only(instructions, "CMD").exec_form() == GUNICORN_COMMAND
    assert not [i for i in instructions if i.keyword == "ENTRYPOINT"]


def test_build_context_holds_the_code_and_the_model(instructions: list[Instruction]) -> None:
    context = build_context()
    for path in (
        "requirements.txt",
        "csd.py",
        "flaskandmnist/gunicorn_conf.py",
        "flaskandmnist/web/__init__.py",
        "flaskandmnist/models/mnist_deep.json",
        "flaskandmnist/models/mnist_deep.tflite",
    ):
        assert path in context, path
    # The Keras weights are for training; serving runs the LiteRT model.
    assert "flaskandmnist/models/mnist_deep.weights.h5" not in context
    for copy in (i for i in instructions if i.keyword == "COPY"):
        source = copy.args.split()[0].rstrip("/")
        assert source in context, f"COPY {copy.args}: not in the build context"
    # Nothing but what the COPY lines take (Docker always sends the last two).
    assert {path.split("/")[0] for path in context} == {
        "requirements.txt",
        "csd.py",
        "flaskandmnist",
        "Dockerfile",
        ".dockerignore",
    }


def test_dockerignore_keeps_data_caches_and_tests_out(tmp_path: Path) -> None:
    wanted = {
        "requirements.txt",
        "csd.py",
        "flaskandmnist/__init__.py",
        "flaskandmnist/models/mnist_deep.tflite",
    }
    unwanted = {
        "flaskandmnist/models/mnist_deep.weights.h5",
        ".git/HEAD",
        ".venv/bin/python",
        ".cache/flaskandmnist/data/x.db",
        ".env",
        "data/mnist/t10k-images-idx3-ubyte.gz",
        "tests/test_api.py",
        "benchmarks/inference.py",
        "artifacts/screenshot.png",
        ".pytest_cache/v/cache",
        ".ruff_cache/CACHEDIR.TAG",
        "flaskandmnist/__pycache__/config.cpython-311.pyc",
        "flaskandmnist/web/__pycache__/api.cpython-311.pyc",
        "README.md",
        "docker-compose.yml",
    }
    for path in wanted | unwanted:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    shutil.copy(REPO_ROOT / ".dockerignore", tmp_path)
    patterns = [
        line.strip()
        for line in (tmp_path / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files = {p for p in exclude_paths(str(tmp_path), patterns) if (tmp_path / p).is_file()}
    assert files == wanted | {".dockerignore"}


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(HADOLINT), str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_hadolint_reports_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD python app.py\n")
    result = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3025"):  # latest tag, unpinned pip, shell-form CMD
        assert rule in result.stdout


# --- gunicorn settings ------------------------------------------------------------------


LoadConf = Callable[..., ModuleType]


@pytest.fixture
def load_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LoadConf:
    """Evaluates a fresh copy of flaskandmnist/gunicorn_conf.py under the given variables
    (the app's defaults for the others; metrics files in a folder of this test)."""

    def load(**environ: str) -> ModuleType:
        for name in names_the_app_reads():
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        path = REPO_ROOT / "flaskandmnist" / "gunicorn_conf.py"
        spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def defined_names(path: Path) -> set[str]:
    """Public names a module assigns or defines at its top level."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    return {name for name in names if not name.startswith("_")}


def as_gunicorn_config(module: ModuleType) -> Config:
    """The module's settings as gunicorn loads a ``python:`` config (its validators run)."""
    config = Config()
    for name, value in vars(module).items():
        if name in config.settings:
            config.set(name, value)
    return config


def test_gunicorn_settings_come_from_web_settings(load_conf: LoadConf) -> None:
    module = load_conf(
        PORT="5123",
        WEB_HOST="127.0.0.1",
        WEB_WORKERS="3",
        WEB_THREADS="4",
        WEB_TIMEOUT="45",
    )
    config = as_gunicorn_config(module)
    assert config.bind == ["127.0.0.1:5123"]
    assert (config.workers, config.threads, config.worker_class_str) == (3, 4, "gthread")
    assert (config.timeout, config.graceful_timeout) == (45, 45)
    assert (config.accesslog, config.errorlog) == ("-", "-")
    assert config.reuse_port  # a socket per worker: the kernel spreads connections evenly
    assert config.preload_app is False
    # Every name the file defines is a gunicorn setting: a misspelt one would be ignored.
    assert defined_names(Path(module.__file__)) <= set(config.settings)


def test_gunicorn_defaults_are_the_web_settings_defaults(load_conf: LoadConf) -> None:
    config = as_gunicorn_config(load_conf())
    defaults = WebSettings()
    assert config.bind == [f"{defaults.host}:{defaults.port}"]
    assert (config.workers, config.threads) == (defaults.workers, defaults.threads)
    assert config.timeout == defaults.timeout_s


def test_gunicorn_binds_ipv6_hosts(load_conf: LoadConf) -> None:
    config = as_gunicorn_config(load_conf(WEB_HOST="::", PORT="8000"))
    assert config.bind == ["[::]:8000"]


def test_a_port_another_server_listens_on_stops_the_server(load_conf: LoadConf) -> None:
    """Each worker binds with SO_REUSEPORT, which would let a second copy of the server
    share the port silently; the master checks first."""
    with socket.socket() as other:  # a running copy: its workers listen with SO_REUSEPORT
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        module = load_conf(WEB_HOST="127.0.0.1", PORT=str(port))
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}"):
            module.on_starting(None)
    module.on_starting(None)  # the port is free again


def test_workers_share_one_secret_key_when_none_is_set(load_conf: LoadConf) -> None:
    first = as_gunicorn_config(load_conf()).env
    second = as_gunicorn_config(load_conf()).env
    assert len(first["SECRET_KEY"]) >= 32
    assert first["SECRET_KEY"] != second["SECRET_KEY"]  # random per server start
    given = as_gunicorn_config(load_conf(SECRET_KEY="k" * 40)).env
    assert "SECRET_KEY" not in given  # the workers read the one given


def test_bad_settings_stop_the_server_before_any_worker(load_conf: LoadConf) -> None:
    with pytest.raises(ConfigError, match="WEB_WORKERS"):
        load_conf(WEB_WORKERS="0")


def test_worker_exit_closes_the_app(load_conf: LoadConf, monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn's hook stops what the app started through the app's one close
    (tests/test_outbox.py runs the real thing under gunicorn)."""
    closed: list[object] = []
    monkeypatch.setattr(flaskandmnist.web, "close_app", closed.append)
    hook = as_gunicorn_config(load_conf()).worker_exit
    app = object()
    hook(None, SimpleNamespace(wsgi=app))
    assert closed == [app]
    hook(None, SimpleNamespace(wsgi=None))  # the app failed to load: nothing was started
    assert closed == [app]


def test_closing_the_services_closes_the_model_poller_and_recorder_then_the_store() -> None:
    """The model poller and the recorder use the store's session, so they close first."""
    closed: list[str] = []
    services = Services(
        settings=Settings(),
        model=SimpleNamespace(close=lambda: closed.append("model")),
        recognizer=None,
        recorder=SimpleNamespace(close=lambda: closed.append("recorder")),
        stores=SimpleNamespace(close=lambda: closed.append("store")),
    )
    services.close()
    assert closed == ["model", "recorder", "store"]


# --- scripts/serve.sh -------------------------------------------------------------------


def test_serve_script_runs_the_images_command_after_cassandra_and_the_schema() -> None:
    script = REPO_ROOT / "scripts" / "serve.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    lines = [line.strip() for line in script.read_text().splitlines()]
    [start] = [
        n for n, line in enumerate(lines) if line.startswith("python3 scripts/cassandra.py start")
    ]
    [schema] = [n for n, line in enumerate(lines) if line.startswith(".venv/bin/python csd.py")]
    # In the background, in a session of its own: the script waits for it to be ready, says
    # where to open it, and stops it on Ctrl-C.
    [serve] = [n for n, line in enumerate(lines) if line.startswith("setsid .venv/bin/gunicorn ")]
    assert start < schema < serve
    command = shlex.split(lines[serve])
    assert command[-1] == "&"
    assert ["gunicorn", *command[2:-1]] == GUNICORN_COMMAND
