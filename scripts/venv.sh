# Sourced by the project's commands: sets ROOT to the repository and makes sure
# $ROOT/.venv holds requirements.txt (re-installing only when requirements.txt changed).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    python3 -m venv "$ROOT/.venv"
fi
if ! cmp -s "$ROOT/requirements.txt" "$ROOT/.venv/requirements.installed"; then
    "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
    cp "$ROOT/requirements.txt" "$ROOT/.venv/requirements.installed"
fi
# MNIST comes from the local copy beside the checkout unless the caller says otherwise.
export MNIST_DIR="${MNIST_DIR:-$(dirname "$ROOT")/shared/data/mnist}"
