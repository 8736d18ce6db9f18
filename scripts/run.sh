#!/usr/bin/env bash
# Runs the product's command line (`python -m flaskandmnist ...`) in the project's venv,
# from the caller's folder so that relative image paths work.
set -euo pipefail
source "$(dirname "$0")/venv.sh"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$ROOT/.venv/bin/python" -m flaskandmnist "$@"
