#!/usr/bin/env bash
# The product without Docker (README, "Without Docker"): a local Apache Cassandra, the
# schema, then the Docker image's own command. Needs Python 3.11+, Java 17 and Maven.
#
#   scripts/serve.sh              # then open http://localhost:5000; Ctrl-C stops the server
#   scripts/cassandra.py stop     # stops Cassandra (it keeps running for the next start)
#
# Cassandra: installed into the cache once, data in ~/.cache/flaskandmnist/data (see
# scripts/cassandra.py), CQL on CASSANDRA_PORT (9042). Already running: it is reused.
# Every other setting is the same environment variable as in the container (README).
set -euo pipefail
source "$(dirname "$0")/venv.sh"
cd "$ROOT"

.venv/bin/python scripts/cassandra.py start --port "${CASSANDRA_PORT:-9042}"
export CASSANDRA_CONTACT_POINTS=127.0.0.1
.venv/bin/python csd.py --wait-timeout 120
# The Dockerfile's CMD (tests/test_container.py keeps the two the same).
exec .venv/bin/gunicorn --config python:flaskandmnist.gunicorn_conf "flaskandmnist.web:create_app()"
