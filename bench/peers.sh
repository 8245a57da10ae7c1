#!/usr/bin/env bash
# Issuance side by side with CFSSL, in one run on this machine:
#   bash bench/peers.sh [--seconds 5] [--rounds 3] [--concurrency 1,16,64] [--seed 1000000]
# (--rounds N: each level in N turns per server, the servers alternating)
# Installs Debian's golang-cfssl when missing, makes a CFSSL P-256 root and
# issuing CA, starts `cfssl serve` over HTTPS on a free loopback port, builds
# and starts a ca-server (through ca-bench), and drives both with the same Rust
# load generator (ca-bench), printing one table: req/s, p50, p99, each server's
# CPU µs per certificate, the load generator's CPU µs per request, the crypto
# floor, store bytes per certificate, and the ratios.
# (step-ca is not included: Debian ships its sources only, and building it
# needs a Go module tree this machine cannot fetch.)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

if ! command -v cfssl >/dev/null || ! command -v cfssljson >/dev/null; then
  echo "peers: installing golang-cfssl"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends golang-cfssl >/dev/null
fi

work="$(mktemp -d)"
cfssl_pid=""
cleanup() {
  [ -n "$cfssl_pid" ] && kill "$cfssl_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# A P-256 root and issuing CA; leaves live 90 days for server auth, like ours.
cat > config.json <<'JSON'
{"signing": {
  "default": {"usages": ["digital signature", "key encipherment", "server auth"], "expiry": "2160h"},
  "profiles": {
    "intermediate": {"usages": ["cert sign", "crl sign"], "expiry": "43800h",
                     "ca_constraint": {"is_ca": true, "max_path_len": 0, "max_path_len_zero": true}},
    "server": {"usages": ["digital signature", "key encipherment", "server auth"], "expiry": "2160h"}}}}
JSON
echo '{"CN": "Bench CFSSL Root", "key": {"algo": "ecdsa", "size": 256}}' > root.json
echo '{"CN": "Bench CFSSL Issuing CA", "key": {"algo": "ecdsa", "size": 256}}' > issuing.json
echo '{"CN": "127.0.0.1", "hosts": ["127.0.0.1"], "key": {"algo": "ecdsa", "size": 256}}' > tls.json
cfssl gencert -initca root.json 2>/dev/null | cfssljson -bare root
cfssl genkey issuing.json 2>/dev/null | cfssljson -bare issuing
cfssl sign -ca root.pem -ca-key root-key.pem -config config.json -profile intermediate \
  issuing.csr 2>/dev/null | cfssljson -bare issuing
cfssl gencert -ca root.pem -ca-key root-key.pem -config config.json -profile server \
  tls.json 2>/dev/null | cfssljson -bare tls

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cfssl serve -address 127.0.0.1 -port "$port" -ca issuing.pem -ca-key issuing-key.pem \
  -config config.json -tls-cert tls.pem -tls-key tls-key.pem -loglevel 5 \
  >"$work/cfssl.log" 2>&1 &
cfssl_pid=$!
for _ in $(seq 1 100); do
  if curl -s --cacert root.pem -o /dev/null "https://127.0.0.1:$port/api/v1/cfssl/health" \
     || curl -s --cacert root.pem -o /dev/null "https://127.0.0.1:$port/"; then
    break
  fi
  sleep 0.1
done
echo "peers: cfssl $(cfssl version | head -1 | tr -s ' ') serving on https://127.0.0.1:$port (pid $cfssl_pid)"

cd "$repo"
cargo build --release -p ca-server --bin ca-server --bin ca-bench
target/release/ca-bench --cfssl "127.0.0.1:$port" --cfssl-ca "$work/root.pem" \
  --cfssl-pid "$cfssl_pid" "$@"
