#!/usr/bin/env bash
# The project's one test command: installs what the tests need, lints, and runs pytest with
# the arguments given (none: the whole suite, as .ci/run does).
#
#   scripts/test.sh                                                  # everything
#   scripts/test.sh -m "not slow and not browser and not cassandra"  # the quick tier
#   scripts/test.sh tests/test_api.py -x                             # any pytest arguments
#
# The real Apache Cassandra is installed and started by the test fixtures themselves (see
# tests/conftest.py and scripts/cassandra.py). docs/testing.md describes the tiers.
set -euo pipefail
source "$(dirname "$0")/venv.sh" requirements-dev.txt
cd "$ROOT"
echo "Docker Compose for the container tests (built from source once: a few minutes)" >&2
scripts/install-compose.sh
echo "Debian's Chromium for the browser test (installed through apt once)" >&2
scripts/install-browser.sh
echo "Linting with ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
