"""Reads the container files as Docker and Docker Compose read them, for the container tests.

The Dockerfile is parsed into its instructions (continuation lines joined, comments left
out), the build context is computed by docker-py's implementation of .dockerignore, and the
compose file is loaded by Docker Compose itself (``docker-compose config``), which needs no
Docker engine. Docker Compose comes from scripts/install-compose.sh (run by scripts/test.sh).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from docker.utils.build import exclude_paths
from support import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKER_COMPOSE = Path(sys.executable).parent / "docker-compose"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the instruction, continuation lines joined

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD/ENTRYPOINT (or a HEALTHCHECK's CMD)."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text[text.index(" CMD ") + len(" CMD ") :]
        command = json.loads(text)
        assert isinstance(command, list), f"{self.keyword} is not in exec form: {self.args}"
        return command

    def pairs(self) -> dict[str, str]:
        """``KEY=value`` pairs of an ENV instruction (the only form this project uses)."""
        return dict(word.split("=", 1) for word in shlex.split(self.args))


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, in order."""
    instructions: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    return instructions


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    """The one instruction with this keyword (CMD, HEALTHCHECK, ...)."""
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def build_context() -> set[str]:
    """Paths (relative, / separated) that `docker build .` sends, after .dockerignore."""
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return set(exclude_paths(str(REPO_ROOT), patterns))


def run_compose(
    *args: str, env: Mapping[str, str] | None = None, compose_file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f FILE ARGS`` with only ``env`` as variables: neither the caller's
    shell nor a developer's .env file reaches the interpolation."""
    if not DOCKER_COMPOSE.exists():
        pytest.fail(f"{DOCKER_COMPOSE} is missing: run scripts/install-compose.sh")
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    return subprocess.run(
        [str(DOCKER_COMPOSE), "-f", str(compose_file), "--env-file", os.devnull, *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose_config(*profiles: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose project as Docker Compose resolves it (validated, interpolated, merged)."""
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = run_compose(*flags, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
