"""The README's cqlsh commands, run verbatim (through scripts/cqlsh) against the test server."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cassandra.cluster import Session
from cassandra_server import REPO_ROOT, CassandraServer
from sample_predictions import make_prediction

from csd import ensure_schema, replication_of
from flaskandmnist.domain import Prediction
from flaskandmnist.storage import PredictionStore

pytestmark = pytest.mark.cassandra

MARKER = "<!-- cqlsh-examples:"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: The README's commands name this keyspace; the tests own the server, so it is theirs.
KEYSPACE = "flaskandmnist"


def readme_commands() -> dict[str, str]:
    """The shell lines of the README's marked block, keyed by the comment above them."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text[text.index(MARKER) :].split("```sh\n", 1)[1].split("```", 1)[0]
    commands: dict[str, str] = {}
    title = ""
    for line in block.splitlines():
        if line.startswith("# "):
            title = line[2:]
        elif line.strip():
            commands[title] = commands.get(title, "") + line + "\n"
    return commands


COMMANDS = readme_commands()


def command(start: str) -> str:
    """The lines under the title that begins with ``start``, after the line that sets
    ``$minute`` (a reader runs them in one shell)."""
    (found,) = (lines for title, lines in COMMANDS.items() if title.startswith(start))
    return COMMANDS[next(iter(COMMANDS))] + found


@pytest.fixture(scope="module")
def store(cassandra: CassandraServer, cql_session: Session) -> Iterator[PredictionStore]:
    ensure_schema(cql_session, KEYSPACE, replication_of(cassandra.settings(KEYSPACE)))
    store = PredictionStore.connect(cassandra.settings(KEYSPACE))
    yield store
    store.close()


@pytest.fixture(scope="module")
def saved(store: PredictionStore) -> dict[str, Prediction]:
    """Six predictions in the current minute (the README's queries read the newest minute);
    "newest" is made last, the one the by-id example finds."""
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    predictions = {
        name: make_prediction(
            digit, filename=f"{name}.png", seed=seed, created_at=minute + timedelta(seconds=seed)
        )
        for seed, (name, digit) in enumerate(
            [("first7", 7), ("three", 3), ("second7", 7), ("one", 1), ("zero", 0)]
        )
    }
    predictions["newest"] = make_prediction(
        4, filename="newest.png", created_at=minute + timedelta(seconds=59)
    )
    for prediction in predictions.values():
        store.save(prediction)
    return predictions


@pytest.fixture(scope="module")
def cqlsh_env(cassandra: CassandraServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Environment that points scripts/cqlsh at the test server (its CQLSH_HOST and
    CQLSH_PORT), with the README's keyspace."""
    home = tmp_path_factory.mktemp("cqlsh-home")
    if cassandra.username:
        credentials = home / ".cassandra" / "credentials"
        credentials.parent.mkdir()
        credentials.write_text(
            f"[plain_text_auth]\nusername = {cassandra.username}\npassword = {cassandra.password}\n"
        )
        credentials.chmod(0o600)
    env = {key: value for key, value in os.environ.items() if key != "CASSANDRA_KEYSPACE"}
    return {
        **env,
        "HOME": str(home),
        "CQLSH_HOST": cassandra.host,
        "CQLSH_PORT": str(cassandra.port),
    }


def cqlsh(lines: str, env: dict) -> str:
    """Runs the README's lines as a reader's shell would, from the checkout."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", lines],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{lines}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def rows_of(output: str) -> list[list[str]]:
    """The cells of each result row of cqlsh's table output."""
    lines = output.splitlines()
    # The rule under the header: dashes, with a + between columns.
    start = next(i for i, line in enumerate(lines) if line and set(line) <= set("-+"))
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append([cell.strip() for cell in line.split("|")])
    count = re.search(r"\((\d+) rows\)", output)
    assert count is not None and int(count.group(1)) == len(rows), output
    return rows


def test_the_readme_has_the_four_questions() -> None:
    assert [title.split(" ")[0] for title in COMMANDS] == [
        "Minute:",
        "Latest",
        "One",
        "Predictions",
        "Count",
    ]
    for lines in COMMANDS.values():
        assert all(
            "scripts/cqlsh -e " in line and "-k " not in line for line in lines.splitlines()
        ), lines


def test_latest_predictions(store: PredictionStore, saved: dict, cqlsh_env: dict) -> None:
    output = cqlsh(command("Latest"), cqlsh_env)
    ids = [UUID.search(" ".join(row)).group(0) for row in rows_of(output)]
    today = datetime.now(UTC).date()
    assert ids == [str(s.id) for s in store.latest(20) if s.day == today]
    ours = [str(saved[name].id) for name in ("zero", "one", "second7", "three", "first7")]
    assert [i for i in ids if i in ours] == ours  # newest first


def test_one_prediction_by_the_id_of_the_newest(saved: dict, cqlsh_env: dict) -> None:
    newest = saved["newest"]
    (row,) = rows_of(cqlsh(command("One prediction"), cqlsh_env))
    assert row[0] == str(newest.id)
    assert row[3:7] == ["newest.png", "image/png", str(newest.image_size), "4"]
    assert row[9] == newest.model_version


def test_predictions_of_digit_7_today(store: PredictionStore, saved: dict, cqlsh_env: dict) -> None:
    rows = rows_of(cqlsh(command("Predictions of digit 7"), cqlsh_env))
    ids = [row[1] for row in rows]
    assert ids == [str(s.id) for s in store.by_digit(7)]
    assert {str(saved["first7"].id), str(saved["second7"].id)} <= set(ids)


def test_count_of_digit_7(store: PredictionStore, saved: dict, cqlsh_env: dict) -> None:
    ((count,),) = rows_of(cqlsh(command("Count of digit 7"), cqlsh_env))
    assert int(count) == store.digit_counts(datetime.now(UTC).date())[7] == 2
