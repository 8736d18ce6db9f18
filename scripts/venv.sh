# Sourced by the project's commands with the requirements file they need:
#
#   source scripts/venv.sh requirements.txt        # serving (scripts/serve.sh)
#   source scripts/venv.sh requirements-train.txt  # training, export, evaluation
#   source scripts/venv.sh                         # everything: tests and tools (the default)
#
# Sets ROOT to the repository and makes sure $ROOT/.venv holds that file. The files nest
# (dev includes train, train includes serving), so a venv that holds a larger one holds the
# smaller ones too; it is installed again only when one of the files changed.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_wanted="${1:-requirements-dev.txt}"
_levels=(requirements.txt requirements-train.txt requirements-dev.txt)
_level() {
    local i
    for i in "${!_levels[@]}"; do [[ "${_levels[$i]}" == "$1" ]] && echo "$i" && return; done
    echo -1
}
if [[ "$(_level "$_wanted")" -lt 0 ]]; then
    echo "venv.sh: unknown requirements file $_wanted (one of ${_levels[*]})" >&2
    exit 2
fi
if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    echo "Creating the virtual environment $ROOT/.venv" >&2
    python3 -m venv "$ROOT/.venv"
fi
# The marker: the file installed last, then the text of all three files at that time.
_marker="$ROOT/.venv/flaskandmnist-requirements"
_files="$(cd "$ROOT" && cat "${_levels[@]}")"
_installed="$(head -n 1 "$_marker" 2>/dev/null || true)"
if [[ "$(tail -n +2 "$_marker" 2>/dev/null)" != "$_files" ||
    "$(_level "$_installed")" -lt "$(_level "$_wanted")" ]]; then
    case "$_wanted" in
        requirements.txt) _took="about a minute" ;;
        requirements-train.txt) _took="a few minutes: TensorFlow is a large download" ;;
        *) _took="a few minutes: TensorFlow, Playwright and the test tools" ;;
    esac
    echo "Installing $_wanted into .venv with pip ($_took the first time)" >&2
    # --no-compile: Python compiles what it imports on first use; compiling every file of
    # scipy and the rest up front would slow the install of a first start.
    "$ROOT/.venv/bin/pip" install --disable-pip-version-check --no-compile \
        -r "$ROOT/$_wanted" >&2
    printf '%s\n%s' "$_wanted" "$_files" >"$_marker"
fi
unset -f _level
unset _wanted _levels _marker _files _installed _took
# MNIST comes from the local copy beside the checkout unless the caller says otherwise.
export MNIST_DIR="${MNIST_DIR:-$(dirname "$ROOT")/shared/data/mnist}"
