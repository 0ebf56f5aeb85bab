#!/usr/bin/env bash
# One-time set-up, idempotent: Debian's sound+image stamps for the composed benchmark (the
# stamps alone: not the Tux Paint program they recommend), then a virtual environment with the
# package and its test extras in .venv/. One line per step; what apt, dpkg and pip print goes
# to a log whose path is printed when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG="$(mktemp "${TMPDIR:-/tmp}/dmt_wrap-setup.XXXXXX.log")"

step() {  # step NAME COMMAND...: run COMMAND, its output to $LOG, and say how it went
    local name="$1"
    shift
    printf 'setup: %s ... ' "$name"
    if "$@" >>"$LOG" 2>&1; then
        echo ok
    else
        local status=$?
        echo "FAILED (exit $status); the output is in $LOG"
        exit "$status"
    fi
}

if dpkg -s tuxpaint-stamps-default >/dev/null 2>&1; then
    echo "setup: apt tuxpaint-stamps-default ... already installed"
else
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    step "apt-get update" $SUDO apt-get update -q
    step "apt tuxpaint-stamps-default" $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends tuxpaint-stamps-default
fi

if [ -x .venv/bin/python ]; then
    echo "setup: venv .venv ... already there"
else
    step "venv .venv" python3 -m venv .venv
fi
step "pip install -e .[test]" .venv/bin/python -m pip install --disable-pip-version-check -e '.[test]'
