#!/usr/bin/env bash
# Runs every fuzz target in the module, one after another.
#
#   test/fuzz.sh                 each target for its execution budget below (what make test runs)
#   FUZZTIME=10m test/fuzz.sh    each target for ten minutes (or FUZZTIME=200000x for a count)
#   test/fuzz.sh FuzzLoad        only the targets whose names match
#
# An execution budget (-fuzztime=Nx) has no deadline, so a slow or loaded machine only makes the
# run longer. A duration budget can hit a race in Go 1.26's fuzz coordinator (golang/go#75804):
# the target fails with a bare "context deadline exceeded" at the end of its time and writes no
# input under testdata/fuzz/. That is not a finding, and this script says so and goes on. A real
# finding always writes its failing input first; the script then prints the input's file and the
# command that re-runs it, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-}
filter=${1:-}

# Executions per target, sized so the whole run takes about a minute on two busy cores once the
# packages are built. A target that is not listed gets the default.
default_budget=20000x
declare -A budget=(
  [FuzzLoad]=10000x
  [FuzzEditAccount]=10000x
  [FuzzDecodeRecord]=20000x
)

log=$(mktemp)
trap 'rm -f "$log"' EXIT

failed=0
for pkg in $($GO list ./...); do
  dir=$($GO list -f '{{.Dir}}' "$pkg")
  for f in $($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    if [ -n "$filter" ] && [[ ! $f =~ $filter ]]; then continue; fi
    t=${FUZZTIME:-${budget[$f]:-$default_budget}}
    echo "fuzz $pkg $f ($t)"
    before=$(find "$dir/testdata/fuzz/$f" -type f 2>/dev/null | sort || true)
    if $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 10000x "$pkg" >"$log" 2>&1; then
      continue
    fi
    after=$(find "$dir/testdata/fuzz/$f" -type f 2>/dev/null | sort || true)
    new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
    if [ -z "$new" ] && ! grep -q 'Failing input written to' "$log" \
      && grep -q 'context deadline exceeded' "$log" && [[ ! $t =~ x$ ]]; then
      echo "  $f: \"context deadline exceeded\" with no failing input: Go's fuzz coordinator"
      echo "  raced its own -fuzztime deadline (golang/go#75804), not a finding; going on."
      continue
    fi
    grep -v '^fuzz: elapsed' "$log" || true
    # A new input the fuzzer found, or one already under testdata/fuzz/ that fails again.
    [ -n "$new" ] || new=$(grep -oE -- "(--- FAIL: |seed corpus entry: )$f/[0-9a-zA-Z_#-]+" "$log" \
      | sed "s|.*/||; s|^|$dir/testdata/fuzz/$f/|" | sort -u | while read -r p; do [ -f "$p" ] && echo "$p"; done || true)
    for file in $new; do
      echo "failing input: ${file#"$PWD"/}"
      echo "re-run it:     $GO test -run '^$f/$(basename "$file")\$' $pkg"
    done
    failed=1
  done
done
exit $failed
