#!/usr/bin/env bash
# Installs wrk, the HTTP load generator of the load benchmark (benchmarks/load.py), from
# Debian's packages. Idempotent: returns at once when wrk is there.
set -euo pipefail
if command -v wrk >/dev/null; then
    exit 0
fi
if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "install-wrk.sh: wrk is missing and neither root nor sudo is available;" \
        "install the Debian package 'wrk'" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package index may be empty on a fresh machine; update only when apt cannot see it.
if ! apt-cache show wrk >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update -qq
fi
"${as_root[@]}" apt-get install -y -qq --no-install-recommends wrk >/dev/null
wrk --version | head -n 1 || true
