#!/usr/bin/env bash
# Issuance with the CA keys in a PKCS#11 token against software keys, in one run:
#   bash bench/hsm.sh [--seconds 5] [--concurrency 1,16]
# Installs Debian's softhsm2 when missing, makes a SoftHSM2 token in a temporary
# directory (SOFTHSM2_CONF), and runs ca-bench with --pkcs11-*: ca-core's
# in-process issuance rate with a software P-256 key and with a token P-256 key
# (1 and 2 threads), then two servers side by side over mTLS, one with software
# CA keys and one whose CA keys were made in the token.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v softhsm2-util >/dev/null; then
  echo "hsm bench: installing softhsm2"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends softhsm2 >/dev/null
fi
module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu/softhsm/libsofthsm2.so; do
  [ -f "$m" ] && module="$m" && break
done
[ -n "$module" ] || { echo "libsofthsm2.so not found" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
pin="$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')"
softhsm2-util --init-token --free --label ca-bench --pin "$pin" --so-pin "$pin$pin" >/dev/null
printf '%s\n' "$pin" >"$work/pin"
chmod 600 "$work/pin"

cargo build --release -q -p ca-server --bins
./target/release/ca-bench --pkcs11-module "$module" --pkcs11-token ca-bench \
  --pkcs11-pin-file "$work/pin" --concurrency 1,16 "$@"
