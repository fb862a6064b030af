#!/usr/bin/env bash
# Installs everything trunkline needs on a fresh Debian machine with Python 3.11:
# the Debian packages (SIPp for interop tests, sox and espeak-ng for audio, Redis and
# PostgreSQL servers that the tests start on loopback) and a virtual environment in
# .venv with trunkline and its pinned dependencies.
# Safe to run again: every step checks or is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(sip-tester sox espeak-ng redis-server postgresql chromium)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# SIPp replays RTP from pcap files through a raw socket; without root it needs the
# capability (only the interop tests use it).
if [ "$(id -u)" -ne 0 ] && command -v setcap >/dev/null && command -v sipp >/dev/null; then
  getcap "$(command -v sipp)" | grep -q cap_net_raw || sudo setcap cap_net_raw+ep "$(command -v sipp)" || true
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.trunkline-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing trunkline and its pinned dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
echo "setup: ready"
