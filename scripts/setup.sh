#!/usr/bin/env bash
# One-time set-up, idempotent: Debian's sound+image stamps for the embedded benchmark,
# then a virtual environment with the package and its test extras in .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s tuxpaint-stamps-default >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tuxpaint-stamps-default
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
