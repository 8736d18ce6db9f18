#!/usr/bin/env bash
# Installs Debian packages (the arguments) as root, or through sudo. The install scripts of
# the tools the tests and benchmarks need call it once they found a tool missing.
set -euo pipefail
if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "apt-install.sh: neither root nor sudo is available; install the Debian" \
        "package(s) $*" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package index may be empty on a fresh machine; update only when apt cannot see it.
if ! apt-cache show "$1" >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update -qq
fi
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
