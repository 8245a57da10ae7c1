#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 20) on the committed seeds.
# New inputs the fuzzer finds go to a scratch corpus, never into seeds/; a
# crash stops the run and names the input that caused it.
#   bash tests/fuzz/smoke.sh                    # the test suite's smoke run
#   FUZZ_SECONDS=600 bash tests/fuzz/smoke.sh   # a campaign (10 min per target)
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-20}"
targets="${FUZZ_TARGETS:-csr pem ocsp_request crl chain lean_decode api_json api_query names store_records}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# One build for every target. No sanitizer: the project forbids unsafe code,
# and libFuzzer's own checks (panics, aborts, timeouts, memory) still apply.
cargo +nightly fuzz build --fuzz-dir . --sanitizer none -O

for t in $targets; do
    mkdir -p "$scratch/$t" "$scratch/artifacts/$t"
    log="$scratch/$t.log"
    if ! cargo +nightly fuzz run --fuzz-dir . --sanitizer none -O "$t" \
        "$scratch/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$scratch/artifacts/$t/" -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 40 "$log"
        mkdir -p crashes
        cp "$scratch/artifacts/$t"/* crashes/ 2>/dev/null || true
        echo "fuzz: $t FAILED; the input is kept in tests/fuzz/crashes/" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo '?')
    echo "fuzz: $t ok: $runs runs in ${seconds}s, coverage $cov edges, $(ls "$scratch/$t" | wc -l) new inputs"
done
