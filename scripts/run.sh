#!/usr/bin/env bash
# Runs the product's command line (`python -m flaskandmnist ...`) in the project's venv,
# from the caller's folder so that relative image paths work. `predict` needs the serving
# requirements only; train, export and evaluate need TensorFlow (requirements-train.txt).
set -euo pipefail
if [[ "${1:-}" == predict ]]; then
    source "$(dirname "$0")/venv.sh" requirements.txt
else
    source "$(dirname "$0")/venv.sh" requirements-train.txt
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$ROOT/.venv/bin/python" -m flaskandmnist "$@"
