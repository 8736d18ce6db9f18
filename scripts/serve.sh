#!/usr/bin/env bash
# The product without Docker: a local Apache Cassandra, the schema, then the Docker image's
# own command. Needs Python 3.11+, Java 17 and Maven.
#
#   scripts/serve.sh    # says "open http://localhost:5000" when ready; Ctrl-C stops it all
#
# Installs the serving requirements only (requirements.txt) into .venv. Cassandra is
# installed into the cache once (scripts/cassandra.py), data in
# ${FLASKANDMNIST_CACHE:-~/.cache/flaskandmnist}/data, CQL on CASSANDRA_PORT (9042). On
# exit this script stops the Cassandra it started; one that was already running is left
# running. Every other setting is the same environment variable as in the container
# (docs/operations.md).
set -euo pipefail
cd "$(dirname "$0")/.."

started_file="$(mktemp)"
cassandra=""
cassandra_up=""
server=""
stop_all() {
    trap - EXIT INT TERM
    if [[ -n "$server" ]] && kill -0 "$server" 2>/dev/null; then
        echo "Stopping the web server"
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [[ -n "$cassandra" ]] && kill -0 "$cassandra" 2>/dev/null; then
        kill -TERM "$cassandra" 2>/dev/null || true # a start in progress kills its node
        wait "$cassandra" 2>/dev/null || true
    fi
    if [[ -s "$started_file" ]]; then
        echo "Stopping the Cassandra this script started (its data stays for the next start)"
        python3 scripts/cassandra.py stop >/dev/null
    elif [[ -n "$cassandra_up" ]]; then
        echo "Cassandra was running before this script started: left running" \
            "(scripts/cassandra.py stop stops it)"
    fi
    rm -f "$started_file"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Cassandra starts while pip installs: scripts/cassandra.py needs Python's standard library
# only. The first time it is fetched with Maven.
echo "Starting Apache Cassandra in the background (the first time it is downloaded first)"
python3 scripts/cassandra.py start --port "${CASSANDRA_PORT:-9042}" \
    --started-file "$started_file" &
cassandra=$!
source scripts/venv.sh requirements.txt
echo "Waiting for Cassandra"
wait "$cassandra"
cassandra=""
cassandra_up=yes
export CASSANDRA_CONTACT_POINTS=127.0.0.1
.venv/bin/python csd.py --wait-timeout 120

# Where a person opens the app, and where this script asks whether it is ready.
read -r url probe < <(.venv/bin/python -c '
from flaskandmnist.config import WebSettings
web = WebSettings.from_env()
wildcard = web.host in ("0.0.0.0", "::", "")
host = "localhost" if wildcard else f"[{web.host}]" if ":" in web.host else web.host
local = "127.0.0.1" if wildcard else host
print(f"http://{host}:{web.port}", f"http://{local}:{web.port}/readyz")')

echo "Starting the web server (each worker loads the model)"
# The Dockerfile's CMD (tests/test_container.py keeps the two the same), in a session of its
# own: Ctrl-C reaches this script, which stops gunicorn once, gracefully (SIGTERM).
setsid .venv/bin/gunicorn --config python:flaskandmnist.gunicorn_conf "flaskandmnist.web:create_app()" &
server=$!
until .venv/bin/python -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=5)' \
    "$probe" 2>/dev/null; do
    if ! kill -0 "$server" 2>/dev/null; then
        wait "$server" || exit $?
        exit 1
    fi
    sleep 0.5
done
if [[ -s "$started_file" ]]; then
    stops="Ctrl-C stops the server and the Cassandra this script started"
else
    stops="Ctrl-C stops the server; Cassandra was already running and stays running"
fi
echo
echo "Ready after ${SECONDS} s: open $url   ($stops)"
echo
wait "$server"
