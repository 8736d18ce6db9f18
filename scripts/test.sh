#!/usr/bin/env bash
# The project's one test command (README): builds the virtual environment if needed,
# lints, and runs the whole pytest suite. The real Apache Cassandra is installed and
# started by the test fixtures themselves (see tests/conftest.py and scripts/cassandra.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt

# MNIST comes from the local copy beside the checkout unless the caller says otherwise.
export MNIST_DIR="${MNIST_DIR:-$(cd .. && pwd)/shared/data/mnist}"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
