#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test (tests/test_browser.py drives it through
# Playwright), and the Inter font so that its screenshots look as designed. Playwright's own
# browser download is not used: CI machines reach only the package registries.
# Idempotent: returns at once when both are there.
set -euo pipefail
if [[ -x /usr/bin/chromium && -d /usr/share/fonts/opentype/inter ]]; then
    exit 0
fi
"$(dirname "$0")/apt-install.sh" chromium fonts-inter
/usr/bin/chromium --version
