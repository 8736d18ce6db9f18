#!/usr/bin/env bash
# Docker Compose v2 (the `docker compose` users run) for the container tests, on machines
# without it: built once from its pinned source on the Go module proxy (go.sum checks it)
# into the cache, and linked into .venv/bin as docker-compose. Without a Docker engine,
# `docker-compose config` still loads, interpolates and validates docker-compose.yml
# against the Compose specification. Needs Go 1.24+; quick when already built.
set -euo pipefail
source "$(dirname "$0")/venv.sh"

version=v2.40.3
module=github.com/docker/compose/v2
target="${FLASKANDMNIST_CACHE:-$HOME/.cache/flaskandmnist}/tools/docker-compose-$version"
binary="$target/docker-compose"

if [[ ! -x "$binary" ]]; then
    if ! command -v go >/dev/null; then
        echo "install-compose.sh: Go 1.24 or later is needed to build Docker Compose" >&2
        exit 1
    fi
    echo "Building Docker Compose $version from source (once; a few minutes)" >&2
    go mod download "$module@$version"
    mkdir -p "$target"
    # Built as the project's Makefile builds it; a temporary name, so that an interrupted
    # build never passes for a finished one.
    (cd "$(go env GOMODCACHE)/$module@$version" &&
        go build -trimpath -ldflags "-w -X $module/internal.Version=$version" \
            -o "$binary.partial" ./cmd)
    mv "$binary.partial" "$binary"
fi
ln -sfn "$binary" "$ROOT/.venv/bin/docker-compose"
