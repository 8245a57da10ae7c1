#!/usr/bin/env bash
# Installs the programs the end-to-end tests drive and the Rust toolchain does
# not bring: openssl, curl, certutil (libnss3-tools), Chromium, python3,
# libfaketime (to move a server's clock), SoftHSM2 and OpenSC's pkcs11-tool
# (a PKCS#11 token for the HSM tests), prometheus (promtool), certbot, lego and
# Caddy (ACME clients), pebble (its DNS test server), PostgreSQL (a throwaway
# cluster for the shared-store tests), eatmydata (ca-bench's server with its
# syncs made no-ops); and
# cargo-fuzz with the nightly toolchain for the fuzz smoke run.
# Does nothing when they are all present. Debian/Ubuntu (apt-get), as root or with sudo.
set -euo pipefail

declare -A package_for=(
  [openssl]=openssl
  [curl]=curl
  [certutil]=libnss3-tools
  [chromium]=chromium
  [python3]=python3
  [faketime]=faketime
  [softhsm2-util]=softhsm2
  [pkcs11-tool]=opensc
  [promtool]=prometheus
  [certbot]=certbot
  [lego]=lego
  [caddy]=caddy
  [pebble-challtestsrv]=pebble
  [eatmydata]=eatmydata
)
missing=()
for tool in "${!package_for[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_for[$tool]}")
done
# PostgreSQL (the shared-store tests start a throwaway cluster of their own):
# Debian keeps initdb and pg_ctl off PATH, in /usr/lib/postgresql/N/bin.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools: all present"
else
  echo "test tools: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
  echo "test tools: installed ${missing[*]}"
fi

# libFuzzer builds need a nightly compiler; cargo-fuzz drives them.
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "test tools: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "test tools: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

# schemathesis (PyPI) in a virtual environment of its own under target/, so
# the system Python is left alone (Debian marks it externally managed).
schemathesis_version=4.32.5
# hypothesis pinned too, so a new release cannot change a run under us.
hypothesis_version=6.170.17
venv="$(cd "$(dirname "$0")/.." && pwd)/target/test-tools/st-venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  echo "test tools: installing schemathesis $schemathesis_version"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$schemathesis_version" \
    "hypothesis==$hypothesis_version"
fi
