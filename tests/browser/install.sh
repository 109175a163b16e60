#!/usr/bin/env bash
# Make Debian's Chromium available for the browser tests (tests/test_site_browser.py).
#
#   sudo bash tests/browser/install.sh    # idempotent: does nothing when chromium is there
#
# The tests drive /usr/bin/chromium through Playwright for Python (executable_path): no
# browser is ever downloaded at test time. This script installs the `chromium` package with
# apt when that executable is missing, then checks that it starts headless.
#
# Exit codes: 0 ready; 3 Chromium cannot be installed here (no apt, package unreachable, not
# root while it is missing): the reason is printed; any other non-zero code is a failure.

set -euo pipefail

CHROMIUM=${ACTPIPE_CHROMIUM:-/usr/bin/chromium}

say() { echo "install.sh: $*"; }

cannot_install() {
    echo "install.sh: Chromium cannot be installed here: $*" >&2
    exit 3
}

if [[ ! -x $CHROMIUM ]]; then
    [[ $(id -u) -eq 0 ]] || cannot_install "$CHROMIUM is missing and this is not root"
    command -v apt-get >/dev/null 2>&1 || cannot_install "no apt-get on this machine"
    say "installing chromium with apt"
    if ! timeout 600 apt-get update >/tmp/actpipe-browser-apt-update.log 2>&1; then
        cannot_install "apt-get update failed (log: /tmp/actpipe-browser-apt-update.log)"
    fi
    if ! DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends \
        chromium fonts-dejavu-core >/tmp/actpipe-browser-apt-install.log 2>&1; then
        cannot_install "apt-get install chromium failed (log: /tmp/actpipe-browser-apt-install.log)"
    fi
    [[ -x $CHROMIUM ]] || cannot_install "$CHROMIUM still missing after apt-get install"
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
if ! timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --no-first-run --disable-sync --disable-quic \
    --user-data-dir="$profile" --dump-dom about:blank >/dev/null 2>"$profile/stderr"; then
    echo "install.sh: FAILED: $CHROMIUM does not start headless:" >&2
    tail -5 "$profile/stderr" >&2
    exit 1
fi
say "ready: $("$CHROMIUM" --version 2>/dev/null | head -1)"
