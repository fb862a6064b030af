#!/usr/bin/env bash
# Installs everything, then runs trunkline's main job on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/trunkline demo "$@"
