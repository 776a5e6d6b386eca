#!/usr/bin/env bash
# The web UI tests drive Debian's Chromium with Playwright for Python (Playwright's own
# browser download does not work everywhere): install it when missing. Idempotent and
# silent when /usr/bin/chromium is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "install_browser: installing Debian's chromium (for the web UI tests)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || {
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq chromium >/dev/null
}
if [ ! -x /usr/bin/chromium ]; then
    echo "install_browser: chromium is still missing at /usr/bin/chromium" >&2
    exit 1
fi
