#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/operators/test_browser.py) when it is missing.
# Playwright drives this system browser through `executable_path`; it never downloads one.
# Usage: bash scripts/install_browser.sh   (needs root or sudo, and apt-get: Debian/Ubuntu)
set -euo pipefail

CHROMIUM="${VCN_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ERROR: $CHROMIUM is missing and apt-get is not available; install Chromium and set VCN_CHROMIUM to its path" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "ERROR: installing chromium needs root (run this script as root or install sudo)" >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "installing chromium with apt-get"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation
if [ ! -x "$CHROMIUM" ]; then
    echo "ERROR: apt-get installed chromium but $CHROMIUM is not there; set VCN_CHROMIUM to its path" >&2
    exit 1
fi
echo "installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
