#!/usr/bin/env bash
# Makes sure Debian's chromium is at /usr/bin/chromium for the browser tests (Playwright
# drives it; Playwright's own browser download is never used). Installs it with apt-get
# when missing (needs root, or sudo without a password); fails loudly otherwise.
#
#   bash scripts/ensure-chromium.sh
set -euo pipefail

readonly CHROMIUM=/usr/bin/chromium
[[ -x $CHROMIUM ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and apt-get is not available;" \
        "install chromium so that $CHROMIUM exists" >&2
    exit 1
fi
sudo=()
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
        echo "ensure-chromium: $CHROMIUM is missing; run as root: apt-get install -y chromium" >&2
        exit 1
    fi
    sudo=(sudo -n)
fi

echo "ensure-chromium: installing chromium with apt-get" >&2
log=$(mktemp "${TMPDIR:-/tmp}/ensure-chromium.XXXXXX")
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq chromium; } \
    >"$log" 2>&1; then
    cat "$log" >&2
    echo "ensure-chromium: FAILED to install chromium (apt-get output above)" >&2
    exit 1
fi
if [[ ! -x $CHROMIUM ]]; then
    echo "ensure-chromium: FAILED: apt-get succeeded but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "ensure-chromium: $("$CHROMIUM" --version 2>/dev/null || echo chromium) installed" >&2
