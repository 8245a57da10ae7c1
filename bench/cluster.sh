#!/usr/bin/env bash
# Several ca-server nodes on one PostgreSQL, in one run on this machine:
#   bash bench/cluster.sh [--seconds 5] [--connections 16] [--nodes 1,2,3] [--revokes 200] [--kills 5]
# Installs Debian's postgresql when missing, makes a throwaway cluster with
# PostgreSQL's production defaults (fsync and synchronous_commit on) on a
# free loopback port, builds ca-server and cluster-bench, and prints:
# throughput at N connections per node for 1, 2 and 3 nodes beside one redb
# node measured in the same run, revoke-to-OCSP propagation across nodes
# (p50/p99), and kill -9 to served again for a client that knows every node.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

find_bin() {
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}
if [ -z "$(find_bin)" ] || [ ! -x "$(find_bin)/initdb" ]; then
  echo "cluster: installing postgresql"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
pgbin="$(find_bin)"

work="$(mktemp -d)"
as=()
if [ "$(id -u)" -eq 0 ]; then
  # PostgreSQL refuses to run as root.
  chown postgres: "$work"
  as=(runuser -u postgres --)
fi
cleanup() {
  "${as[@]}" "$pgbin/pg_ctl" stop -m fast -D "$work/data" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${as[@]}" "$pgbin/initdb" -D "$work/data" -A trust -U ca -E UTF8 --locale=C >/dev/null
"${as[@]}" "$pgbin/pg_ctl" start -w -D "$work/data" -l "$work/log" \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c max_connections=300" >/dev/null
echo "cluster: PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (fsync on, synchronous_commit on)"

cd "$repo"
cargo build --release -p ca-server --bin ca-server --bin cluster-bench
target/release/cluster-bench --pg-url "postgres://ca@127.0.0.1:$port" "$@"
