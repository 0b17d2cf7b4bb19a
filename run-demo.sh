#!/usr/bin/env bash
# README command 1: set up, then run the demo (a simulated site under quota control, dashboard in a browser).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
exec "$ROOT/.venv/bin/kuat" demo "$@"
