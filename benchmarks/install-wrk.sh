#!/usr/bin/env bash
# Installs wrk, the HTTP load generator of the load benchmark (benchmarks/load.py), from
# Debian's packages. Idempotent: returns at once when wrk is there.
set -euo pipefail
if command -v wrk >/dev/null; then
    exit 0
fi
"$(dirname "$0")/../scripts/apt-install.sh" wrk
wrk --version | head -n 1 || true
