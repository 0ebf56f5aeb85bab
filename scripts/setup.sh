#!/usr/bin/env bash
# One-time set-up, idempotent: Debian's sound+image stamps for the composed benchmark (the
# stamps alone: not the Tux Paint program they recommend), then a virtual environment with the
# package and its test extras in .venv/. With --demo also the web demo's extra (Gradio) and
# Debian's chromium + chromium-driver, which its test drives headless. One line per step; what
# apt, dpkg and pip print goes to a log whose path is printed when a step fails.
#   bash scripts/setup.sh           # the library, benchmarks and tests
#   bash scripts/setup.sh --demo    # also dmt-wrap demo and its browser test
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=0
for arg in "$@"; do
    case "$arg" in
        --demo) DEMO=1 ;;
        *) echo "setup: unknown option $arg (the one option is --demo)" >&2; exit 2 ;;
    esac
done
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

PACKAGES=(tuxpaint-stamps-default)
[ "$DEMO" -eq 1 ] && PACKAGES+=(chromium chromium-driver)
MISSING=()
for package in "${PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || MISSING+=("$package")
done
if [ "${#MISSING[@]}" -eq 0 ]; then
    echo "setup: apt ${PACKAGES[*]} ... already installed"
else
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    step "apt-get update" $SUDO apt-get update -q
    step "apt ${MISSING[*]}" $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${MISSING[@]}"
fi

if [ -x .venv/bin/python ]; then
    echo "setup: venv .venv ... already there"
else
    step "venv .venv" python3 -m venv .venv
fi
EXTRAS="test"
[ "$DEMO" -eq 1 ] && EXTRAS="test,demo"
step "pip install -e .[$EXTRAS]" .venv/bin/python -m pip install --disable-pip-version-check -e ".[$EXTRAS]"
