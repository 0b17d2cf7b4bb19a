#!/usr/bin/env bash
# README command 2: set up everything a fresh Debian machine lacks, then lint, type-check and run the whole suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
V="$ROOT/.venv/bin"
echo "== ruff"; "$V/ruff" check .
echo "== mypy"; "$V/mypy"
echo "== pytest"
mkdir -p artifacts
exec "$V/pytest" -ra -p no:cacheprovider --junitxml=artifacts/junit.xml "$@"
