#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test (tests/test_browser.py drives it through
# Playwright), and the Inter font so that its screenshots look as designed. Playwright's own
# browser download is not used: CI machines reach only the package registries.
# Idempotent: returns at once when both are there.
set -euo pipefail
if [[ -x /usr/bin/chromium && -d /usr/share/fonts/opentype/inter ]]; then
    exit 0
fi
if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "install-browser.sh: Chromium is missing and neither root nor sudo is available;" \
        "install the Debian package 'chromium'" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package index may be empty on a fresh machine; update only when apt cannot see it.
if ! apt-cache show chromium >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update -qq
fi
"${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-inter >/dev/null
/usr/bin/chromium --version
