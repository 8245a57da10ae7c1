#!/usr/bin/env bash
# Issuance side by side with CFSSL and step-ca, in one run on this machine:
#   bash bench/peers.sh [--seconds 5] [--rounds 3] [--concurrency 1,16,64] [--seed 1000000]
# (--rounds N: each level in N turns per server, the servers alternating;
# PEERS_NO_STEP_CA=1 leaves step-ca out; PEERS_NO_SYNCS_OFF=1 leaves out the
# second ca-server whose syncs eatmydata makes no-ops, measured for what
# durability costs: Debian's eatmydata is installed when missing)
# Installs Debian's golang-cfssl when missing, makes a P-256 root and issuing
# CA with it, starts `cfssl serve` over HTTPS on a free loopback port; builds
# step-ca 0.19 once from Debian's packaged sources (golang-go and
# golang-github-smallstep-certificates-dev, installed when missing; the
# command is bench/step-ca/main.go) and starts two on the same issuing CA, one
# storing in bbolt (a synced commit per certificate), one in badger (synced,
# concurrent writes batched), each driven through its mutual-TLS renewal
# endpoint (signs and
# stores a certificate; no CSR to check); builds and starts a ca-server
# (through ca-bench); and drives them all with the same Rust load generator
# (ca-bench), printing one table: req/s, p50, p99, each server's CPU µs per
# certificate, the load generator's CPU µs per request, the crypto floor,
# store growth per certificate (disk blocks taken), and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
# Absolute: the script works from a temporary directory, and Go refuses a
# relative GOCACHE.
target_dir="$(realpath -m -- "${CARGO_TARGET_DIR:-target}")"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if ! command -v cfssl >/dev/null || ! command -v cfssljson >/dev/null; then
  echo "peers: installing golang-cfssl"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends golang-cfssl >/dev/null
fi

syncs_off_args=()
if [ "${PEERS_NO_SYNCS_OFF:-0}" != 1 ]; then
  if ! dpkg -s libeatmydata1 >/dev/null 2>&1; then
    echo "peers: installing eatmydata (a second ca-server runs with its syncs made no-ops)"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends eatmydata >/dev/null
  fi
  eatmydata_lib="$(dpkg -L libeatmydata1 | grep -m1 '/libeatmydata\.so$')" || {
    echo "peers: libeatmydata1 lists no libeatmydata.so (PEERS_NO_SYNCS_OFF=1 runs without it)" >&2
    exit 1
  }
  syncs_off_args=(--syncs-off-peer "$eatmydata_lib")
fi

work="$(mktemp -d)"
cfssl_pid=""
step_pids=()
bench_pid=""
# Gone within 10 s, or killed.
stop_group() {
  kill -TERM -- "-$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 -- "-$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}
cleanup() {
  # A second interrupt must not cut the cleanup short.
  trap '' INT TERM
  # Interrupted while measuring: ca-bench and the servers it started (its
  # process group), then the temporary directories it would have removed.
  if [ -n "$bench_pid" ]; then
    stop_group "$bench_pid"
    wait "$bench_pid" 2>/dev/null || true
    rm -rf "${TMPDIR:-/tmp}/ca-bench-$bench_pid-"*
  fi
  [ -n "$cfssl_pid" ] && kill "$cfssl_pid" 2>/dev/null || true
  for pid in "${step_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Gone before their files are (badger writes until it exits), within 10 s.
  for pid in "${step_pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# So that an interrupt runs the cleanup at once (while `wait` waits).
trap 'exit 130' INT
trap 'exit 143' TERM
cd "$work"

# A P-256 root and issuing CA; leaves live 90 days for server auth, like ours.
cat > config.json <<'JSON'
{"signing": {
  "default": {"usages": ["digital signature", "key encipherment", "server auth"], "expiry": "2160h"},
  "profiles": {
    "intermediate": {"usages": ["cert sign", "crl sign"], "expiry": "43800h",
                     "ca_constraint": {"is_ca": true, "max_path_len": 0, "max_path_len_zero": true}},
    "server": {"usages": ["digital signature", "key encipherment", "server auth"], "expiry": "2160h"},
    "client": {"usages": ["digital signature", "client auth"], "expiry": "2160h"}}}}
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

port="$(free_port)"
cfssl serve -address 127.0.0.1 -port "$port" -ca issuing.pem -ca-key issuing-key.pem \
  -config config.json -tls-cert tls.pem -tls-key tls-key.pem -loglevel 5 \
  >"$work/cfssl.log" 2>&1 &
cfssl_pid=$!
ready=""
for _ in $(seq 1 100); do
  kill -0 "$cfssl_pid" 2>/dev/null || break
  if curl -s --cacert root.pem -o /dev/null "https://127.0.0.1:$port/api/v1/cfssl/health" \
     || curl -s --cacert root.pem -o /dev/null "https://127.0.0.1:$port/"; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "peers: cfssl serve did not start:" >&2
  cat "$work/cfssl.log" >&2
  exit 1
fi
echo "peers: cfssl $(cfssl version | head -1 | tr -s ' ') serving on https://127.0.0.1:$port (pid $cfssl_pid)"

# step-ca: built once per Debian package version and main.go, into the
# target directory. Any failure here leaves step-ca out of the run (say so
# and go on: CFSSL and ours are still measured).
step_args=()
start_step_ca() {
  if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/smallstep/certificates ]; then
    echo "peers: installing golang-go and golang-github-smallstep-certificates-dev (step-ca's sources)"
    local sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq || return 1
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
      golang-go golang-github-smallstep-certificates-dev >/dev/null || return 1
  fi
  local version hash step_ca
  version="$(dpkg-query -W -f='${Version}' golang-github-smallstep-certificates-dev)" || return 1
  hash="$(sha256sum "$repo/bench/step-ca/main.go" | cut -c1-12)" || return 1
  step_ca="$target_dir/peers/step-ca-$version-$hash"
  if [ ! -x "$step_ca" ]; then
    echo "peers: building step-ca $version from Debian's sources (once, into $target_dir/peers)"
    mkdir -p "$target_dir/peers" || return 1
    if ! (cd "$repo/bench/step-ca" && GO111MODULE=off GOPATH=/usr/share/gocode \
      GOCACHE="$target_dir/peers/gocache" go build -o "$step_ca" . 2>"$work/step-build.log"); then
      cat "$work/step-build.log" >&2
      return 1
    fi
  fi
  # A client certificate from the same issuing CA: each request renews it.
  echo '{"CN": "bench-renew.example", "hosts": ["bench-renew.example"], "key": {"algo": "ecdsa", "size": 256}}' > client.json
  cfssl gencert -ca issuing.pem -ca-key issuing-key.pem -config config.json -profile client \
    client.json 2>/dev/null | cfssljson -bare client || return 1
  cat client.pem issuing.pem > client-chain.pem || return 1
  local store step_port step_pid ready
  for store in bbolt badgerv2; do
    step_port="$(free_port)" || return 1
    # step-ca's defaults otherwise: its TLS certificate from the issuing CA,
    # each request logged at info level (to a file here).
    cat > "step-$store.json" <<JSON
{"root": "$work/root.pem", "crt": "$work/issuing.pem", "key": "$work/issuing-key.pem",
 "address": "127.0.0.1:$step_port", "dnsNames": ["127.0.0.1"],
 "logger": {"format": "text"},
 "db": {"type": "$store", "dataSource": "$work/step-$store.db"},
 "authority": {"provisioners": []}}
JSON
    "$step_ca" "step-$store.json" >"$work/step-$store.log" 2>&1 &
    step_pid=$!
    step_pids+=("$step_pid")
    ready=""
    for _ in $(seq 1 100); do
      kill -0 "$step_pid" 2>/dev/null || break
      if curl -sf --cacert root.pem -o /dev/null "https://127.0.0.1:$step_port/health"; then
        ready=1
        break
      fi
      sleep 0.1
    done
    if [ -z "$ready" ]; then
      echo "peers: step-ca ($store) did not start:" >&2
      cat "$work/step-$store.log" >&2
      return 1
    fi
    echo "peers: step-ca (Debian's $version sources, $store) serving on https://127.0.0.1:$step_port (pid $step_pid)"
    step_args+=(--step-ca "${store%v2},127.0.0.1:$step_port,$step_pid,$work/step-$store.db")
  done
  step_args+=(--step-ca-root "$work/root.pem" --step-ca-client-chain "$work/client-chain.pem"
    --step-ca-client-key "$work/client-key.pem")
}
if [ "${PEERS_NO_STEP_CA:-0}" != 1 ] && ! start_step_ca; then
  echo "peers: step-ca could not be set up (above); measuring without it (PEERS_NO_STEP_CA=1 skips it)" >&2
  step_args=()
  # One may have started before another failed: none runs beside the bench.
  for pid in "${step_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${step_pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  step_pids=()
fi

cd "$repo"
cargo build --release -p ca-server --bin ca-server --bin ca-bench
# Its own process group, so that an interrupt can stop it with its servers.
setsid "$target_dir/release/ca-bench" --cfssl "127.0.0.1:$port" --cfssl-ca "$work/root.pem" \
  --cfssl-pid "$cfssl_pid" "${step_args[@]}" "${syncs_off_args[@]}" "$@" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
# (Still stopped by the cleanup: servers a crashed ca-bench left behind.)
exit "$status"
