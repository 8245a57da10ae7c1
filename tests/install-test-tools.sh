#!/usr/bin/env bash
# Installs the programs the end-to-end tests drive and the Rust toolchain does
# not bring: openssl, curl, certutil (libnss3-tools), Chromium, python3.
# Does nothing when they are all present. Debian/Ubuntu (apt-get), as root or with sudo.
set -euo pipefail

declare -A package_for=(
  [openssl]=openssl
  [curl]=curl
  [certutil]=libnss3-tools
  [chromium]=chromium
  [python3]=python3
)
missing=()
for tool in "${!package_for[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_for[$tool]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools: all present"
  exit 0
fi
echo "test tools: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
echo "test tools: installed ${missing[*]}"
