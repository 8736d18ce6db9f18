# Sourced by the project's commands: sets ROOT to the repository and makes sure
# $ROOT/.venv holds requirements-dev.txt, which includes requirements.txt (re-installing
# only when either changed).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    python3 -m venv "$ROOT/.venv"
fi
wanted="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt")"
if [[ "$wanted" != "$(cat "$ROOT/.venv/requirements.installed" 2>/dev/null)" ]]; then
    "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
    printf '%s' "$wanted" > "$ROOT/.venv/requirements.installed"
fi
# MNIST comes from the local copy beside the checkout unless the caller says otherwise.
export MNIST_DIR="${MNIST_DIR:-$(dirname "$ROOT")/shared/data/mnist}"
