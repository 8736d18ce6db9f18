#!/usr/bin/env bash
# Runs the product's command line (`python -m flaskandmnist ...`) in the project's venv,
# from the caller's folder so that relative image paths work. `predict` and the model
# registry's commands (register, models, promote, rollback) need the serving requirements
# only; train, export and evaluate need TensorFlow (requirements-train.txt).
set -euo pipefail
case "${1:-}" in
    predict | register | models | promote | rollback)
        source "$(dirname "$0")/venv.sh" requirements.txt ;;
    *)
        source "$(dirname "$0")/venv.sh" requirements-train.txt ;;
esac
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$ROOT/.venv/bin/python" -m flaskandmnist "$@"
