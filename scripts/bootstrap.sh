#!/usr/bin/env bash
# Shared set-up for the README's two commands: Debian packages (when root), a virtualenv, the Python packages.
# Idempotent and quick when nothing changed: the venv is rebuilt only when pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KUAT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
# What the test suite and the demo use from Debian. Tests that need a missing one skip and say which.
DEBIAN_PACKAGES=(mosquitto postgresql victoria-metrics snmpd chromium chromium-driver ansible ansible-lint logrotate python3-venv
  jq prometheus-snmp-exporter prometheus)  # jq: the field-CLI pipe test; snmp_exporter: bench/pdu_read.py;
  # prometheus: promtool, for the alert rules' unit tests (deploy/prometheus)

log() { printf '[kuat setup] %s\n' "$*" >&2; }

need_debian=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_debian+=("$p")
done
if ((${#need_debian[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${need_debian[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # policy-rc.d keeps Debian from starting system-wide daemons: Kuat starts its own on 127.0.0.1.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${need_debian[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  else
    log "not root: cannot install Debian packages ${need_debian[*]}."
    log "  install them with: sudo apt-get install ${need_debian[*]}"
    log "  (the demo falls back to an embedded broker; tests needing them are skipped with a reason)"
  fi
fi

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  log "Python >= 3.11 is required (found: $("$PY" --version 2>&1))"; exit 2
fi

stamp="$VENV/.kuat-stamp"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating virtualenv in $VENV and installing Kuat with its dependencies (a few minutes the first time)"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -e "$ROOT[dev]"
  echo "$want" >"$stamp"
fi
