#!/usr/bin/env bash
# Make the broker's TLS material with openssl: a Kuat CA, a server certificate for the broker, and optionally
# client certificates (mutual TLS). Keep ca.key offline; put server.key in the Ansible vault.
#
#   deploy/tls/make-certs.sh OUT_DIR BROKER_NAME [BROKER_IP] [CLIENT ...]
#   e.g. deploy/tls/make-certs.sh ansible/inventory/dpc1/files mqtt.dpc1.local 10.20.0.10 gw-a1 gw-a2
#
# An existing CA in OUT_DIR is reused (rotate the server certificate without touching the gateways' CA file).
set -euo pipefail
if (($# < 2)); then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
out="$1"; name="$2"; ip="${3:-}"; shift 2; (($# > 0)) && shift
days="${KUAT_CERT_DAYS:-825}"
mkdir -p "$out"
umask 077
if [ ! -f "$out/ca.key" ]; then
  openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 3650 -subj "/CN=Kuat MQTT CA" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
  echo "made CA $out/ca.crt" >&2
fi
san="DNS:$name"
[ -n "$ip" ] && san="$san,IP:$ip"
issue() {  # issue NAME SUBJECT_ALT_NAMES EXTENDED_KEY_USAGE
  openssl req -newkey rsa:2048 -sha256 -nodes -subj "/CN=$1" -keyout "$out/$1.key" -out "$out/$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$2" "$3" >"$out/$1.ext"
  openssl x509 -req -in "$out/$1.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -days "$days" \
    -sha256 -extfile "$out/$1.ext" -out "$out/$1.crt" 2>/dev/null
  rm -f "$out/$1.csr" "$out/$1.ext"
  echo "made $out/$1.crt" >&2
}
issue server "$san" serverAuth
for client in "$@"; do
  issue "$client" "DNS:$client" clientAuth
done
chmod 0644 "$out"/*.crt
