#!/usr/bin/env bash
# ca-server against itself: two revisions, alternating, in one run.
#   bash bench/ab.sh BASE NEW [--rounds 8] [--seconds 5] [--concurrency 1,16]
# BASE and NEW are git revisions (NEW may be "." for the working tree as it
# is). Each is built once (release, into bench-ab/<rev> under the target
# directory, sharing its compiled dependencies), then `ca-bench` runs each
# in turn, every other round in reverse order so neither always goes first
# on this shared machine, and prints every turn and, per level, the median
# of NEW ÷ BASE over the rounds for the rate and the p50, and the mean
# difference in server CPU µs per certificate with its spread: a change
# smaller than that spread is not resolved by this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
target_dir="$(realpath -m -- "${CARGO_TARGET_DIR:-target}")"

usage() { sed -n '2,3p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
base="$1" new="$2"
shift 2
rounds=8 seconds=5 concurrency=1,16
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    *) usage ;;
  esac
done

work="$(mktemp -d)"
cleanup() { git -C "$repo" worktree remove --force "$work/tree" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# `rev`'s ca-server and ca-bench, built once, in $target_dir/bench-ab/NAME;
# prints NAME and nothing else on stdout. (Run in a command substitution,
# where bash drops `set -e`: hence its own.)
build() {
  set -e
  local rev="$1" name out src
  if [ "$rev" = "." ]; then
    name="working-tree" src="$repo"
  else
    name="$(git rev-parse --short "$rev^{commit}")"
    src="$work/tree"
  fi
  out="$target_dir/bench-ab/$name"
  if [ "$rev" = "." ] || [ ! -x "$out/ca-bench" ]; then
    if [ "$rev" != "." ]; then
      git worktree add --force --detach "$src" "$rev" >&2
    fi
    echo "ab: building $name" >&2
    # A build that fails must not leave the other revision's binaries to be
    # copied: they are removed first.
    rm -f "$target_dir/bench-ab/build/release/ca-server" "$target_dir/bench-ab/build/release/ca-bench"
    (cd "$src" && CARGO_TARGET_DIR="$target_dir/bench-ab/build" \
      cargo build --release --quiet -p ca-server --bin ca-server --bin ca-bench) >&2
    mkdir -p "$out"
    cp "$target_dir/bench-ab/build/release/ca-server" "$target_dir/bench-ab/build/release/ca-bench" "$out/"
    [ "$rev" = "." ] || git worktree remove --force "$src"
  fi
  echo "$name"
}
base_name="$(build "$base")"
new_name="$(build "$new")"
if [ "$base_name" = "$new_name" ]; then
  echo "ab: $base and $new are the same revision ($base_name)" >&2
  exit 2
fi

results="$work/results"
echo "round variant connections req/s p50_ms p99_ms errors server_cpu_us/cert"
for r in $(seq 1 "$rounds"); do
  order=("$base_name" "$new_name")
  [ $((r % 2)) -eq 0 ] && order=("$new_name" "$base_name")
  for v in "${order[@]}"; do
    # ca-bench finds the ca-server beside it.
    "$target_dir/bench-ab/$v/ca-bench" --concurrency "$concurrency" --seconds "$seconds" 2>&1 |
      awk -v v="$v" -v r="$r" '$2 == "ca-server" && $1 ~ /^[0-9]+$/ {print r, v, $1, $3, $4, $5, $6, $7}' |
      tee -a "$results"
  done
done
python3 - "$results" "$base_name" "$new_name" <<'EOF'
import collections, statistics, sys
path, base, new = sys.argv[1:]
turns = collections.defaultdict(dict)
skipped = 0
for line in open(path):
    r, v, c, rate, p50, _, errors, cpu = line.split()
    try:
        turn = (float(rate), float(p50), float(cpu))
    except ValueError:  # ca-bench prints "-" for a figure it could not read
        turn = None
    if turn is None or errors != "0" or turn[0] <= 0:
        skipped += 1
        continue
    turns[(int(c), int(r))][v] = turn
if skipped:
    print(f"{skipped} turn(s) left out: errors, no requests, or a figure ca-bench could not read")
for c in sorted({c for c, _ in turns}):
    pairs = [t for (cc, _), t in sorted(turns.items()) if cc == c and base in t and new in t]
    if not pairs:
        continue
    rate = [t[new][0] / t[base][0] for t in pairs]
    p50 = [t[new][1] / t[base][1] for t in pairs]
    cpu = [t[new][2] - t[base][2] for t in pairs]
    print(f"{c} connections, {len(pairs)} pairs, {new} against {base}: "
          f"rate {statistics.median(rate):.3f}x (median; {min(rate):.2f}-{max(rate):.2f}), "
          f"p50 {statistics.median(p50):.3f}x, "
          f"server CPU per certificate {statistics.mean(cpu):+.1f} us "
          f"(mean of the pairs' differences, {min(cpu):+.0f} to {max(cpu):+.0f})")
EOF
