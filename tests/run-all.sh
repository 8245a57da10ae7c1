#!/usr/bin/env bash
# The whole test suite, as the README and CI run it:
#   bash tests/run-all.sh
# Installs missing external test tools, then checks formatting, lints with
# clippy (warnings are errors) and runs every test: unit, conformance (x509-limbo)
# and end-to-end tests that start the real binaries and real clients; then a
# short fuzz run of every parser that meets untrusted bytes (tests/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

# One clean build: incremental state would only add gigabytes on CI's disk.
export CARGO_INCREMENTAL=0
echo "== disk before the build: $(df -h . | awk 'NR==2 {print $4 " free of " $2}')"

bash tests/install-test-tools.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path tests/fuzz/Cargo.toml -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace --no-fail-fast

echo "== fuzz smoke run (every target, ${FUZZ_SECONDS:-20} s each)"
bash tests/fuzz/smoke.sh

echo "== disk after the suite: target $(du -sh target | cut -f1), $(df -h . | awk 'NR==2 {print $4}') free"
