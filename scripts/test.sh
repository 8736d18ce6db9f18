#!/usr/bin/env bash
# The project's one test command (README): builds the virtual environment if needed,
# lints, and runs the whole pytest suite. The real Apache Cassandra is installed and
# started by the test fixtures themselves (see tests/conftest.py and scripts/cassandra.py).
set -euo pipefail
source "$(dirname "$0")/venv.sh"
cd "$ROOT"
scripts/install-compose.sh  # docker-compose, for tests/test_container.py
scripts/install-browser.sh  # Debian's Chromium, for tests/test_browser.py
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
