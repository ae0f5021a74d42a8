#!/usr/bin/env bash
# Make sure Debian's chromium and its matching chromedriver are installed: the control
# room's browser test drives them. Idempotent and quick when both are already there, so
# `make test` can call it on every run; tests never assume a browser that nobody installed.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver)

if [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; then
    exit 0
fi

# apt needs root; use sudo only when we are not root already, and never prompt for a
# password (-n): CI has no terminal, and a hanging prompt is worse than a clear failure.
if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "ensure_chromium: $CHROMIUM or $CHROMEDRIVER is missing and installing them needs root" >&2
    echo "ensure_chromium: run as root, give passwordless sudo, or: apt-get install ${PACKAGES[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no apt-get here; install ${PACKAGES[*]} (Debian) by hand" >&2
    exit 1
fi

echo "ensure_chromium: installing ${PACKAGES[*]} with apt-get" >&2
# Non-interactive so a debconf question can never block an unattended run.
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get update -q; then
    echo "ensure_chromium: apt-get update failed (no access to the package mirror?)" >&2
    exit 1
fi
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; then
    echo "ensure_chromium: apt-get install ${PACKAGES[*]} failed" >&2
    exit 1
fi

if [[ ! -x "$CHROMIUM" || ! -x "$CHROMEDRIVER" ]]; then
    echo "ensure_chromium: installed ${PACKAGES[*]} but $CHROMIUM or $CHROMEDRIVER is still missing" >&2
    exit 1
fi
echo "ensure_chromium: $("$CHROMIUM" --version 2>/dev/null || echo chromium), $("$CHROMEDRIVER" --version 2>/dev/null | head -n1)" >&2
