#!/usr/bin/env bash
# Known-bug mutants (DESIGN.md section 12, layer 5; issue 4): applies each
# tests/mutants/*.patch to a scratch copy of the committed tree (a detached git
# worktree under /tmp), builds mq-sim in release there and runs a campaign that
# stops at the first failing seed. A mutant is *caught* when the campaign fails;
# one that survives every seed makes this script exit 1.
#
#   bash tests/mutants/run.sh                        # every patch, up to 1000 seeds each
#   MUTANT_SEEDS=300 bash tests/mutants/run.sh tests/mutants/read_above_hw.patch
#
# All mutants share one build directory ($MUTANTS_TARGET_DIR, default
# /tmp/mq-mutants-target) so only the mutated crates rebuild; your own build is
# never touched. Not part of `cargo test`: each mutant costs a release build.
#
# A seed counts as catching a mutant only if the unmutated tree passes it: the
# script first builds that tree (or takes $MUTANT_BASELINE, a release mq-sim
# binary of it), and when a mutant's first failing seed also fails there, the
# mutant's campaign goes on from the next seed (the seed is listed as
# "baseline also fails").
set -euo pipefail

repo="$(git -C "$(dirname "$0")/../.." rev-parse --show-toplevel)"
seeds="${MUTANT_SEEDS:-1000}"
jobs="${MUTANT_JOBS:-2}"
target="${MUTANTS_TARGET_DIR:-/tmp/mq-mutants-target}"
if [ "$#" -gt 0 ]; then patches=("$@"); else patches=("$repo"/tests/mutants/*.patch); fi

# shellcheck source=tests/mutants/lib.sh
source "$repo/tests/mutants/lib.sh"

baseline="${MUTANT_BASELINE:-}"
if [ -z "$baseline" ]; then
  baseline="/tmp/mq-mutant-baseline.bin"
  echo "baseline: building the unmutated tree"
  if ! build_mutant "$repo" HEAD /dev/null "$target" /tmp/mq-mutant-baseline.log "$baseline"; then
    echo "the unmutated tree does not build (log in /tmp/mq-mutant-baseline.log)"
    exit 2
  fi
fi

# run_until_caught BIN LOG: runs BIN's campaign from seed 0 to $seeds, stopping at
# the first failing seed the baseline passes. Exit 0: survived; 1: caught.
run_until_caught() {
  local bin="$1" log="$2" start=0 low verdict
  while [ "$start" -lt "$seeds" ]; do
    "$bin" run --seeds $((seeds - start)) --start-seed "$start" --jobs "$jobs" --fail-fast >> "$log" 2>&1 && return 0
    low="$(grep '^FAIL' "$log" | sed -E 's/^FAIL seed=([0-9]+).*/\1/' | sort -n | awk -v s="$start" '$1 >= s' | head -1)"
    [ -n "$low" ] || return 2 # the campaign failed without a FAIL line
    # Not `replay | grep -q`: with pipefail, grep's early exit fails the replay.
    verdict="$("$baseline" replay --seed "$low" 2>/dev/null | grep -E '^(PASS|FAIL)' || true)"
    if [[ "$verdict" == PASS* ]]; then
      echo "caught at $low" >> "$log"
      return 1
    fi
    echo "seed $low: baseline also fails" >> "$log"
    start=$((low + 1))
  done
  return 0
}

survivors=0
report=()
for patch in "${patches[@]}"; do
  name="$(basename "$patch" .patch)"
  log="/tmp/mq-mutant-$name.log"
  bin="/tmp/mq-mutant-$name.bin"
  echo "mutant $name: building and running up to $seeds seeds"
  set +e
  build_mutant "$repo" HEAD "$patch" "$target" "$log" "$bin"
  build=$?
  if [ "$build" -eq 0 ]; then
    run_until_caught "$bin" "$log"
    code=$?
  else
    code=255
  fi
  set -e
  # The seed that caught it (the lowest failing seed the baseline passes): seeds
  # run from 0, so it is caught within seed+1 seeds.
  low="$(grep '^caught at ' "$log" | sed -E 's/^caught at ([0-9]+)/\1/' | head -1 || true)"
  first="$(grep -m1 "^FAIL seed=$low " "$log" || true)"
  skipped="$(grep -c 'baseline also fails' "$log" || true)"
  if [ "$build" -ne 0 ]; then
    line="$name: PATCH OR BUILD FAILED (log in $log)"
    survivors=$((survivors + 1))
  elif [ "$code" -eq 0 ]; then
    line="$name: SURVIVED $seeds seeds (log in $log)"
    survivors=$((survivors + 1))
  elif [ "$code" -ne 1 ] || [ -z "$low" ]; then
    line="$name: CAMPAIGN ERROR without a FAIL line (log in $log)"
    survivors=$((survivors + 1))
  else
    inv="$(echo "$first" | sed -E 's/^FAIL seed=[0-9]+ invariant=([a-z_]+):.*/\1/')"
    line="$name: caught after $((low + 1)) seed(s) (seed $low, invariant $inv)"
    if [ "$skipped" -gt 0 ]; then line="$line; $skipped earlier failing seed(s) skipped: the baseline fails them too"; fi
  fi
  echo "  $line"
  report+=("$line")
done

echo "mutants report:"
for line in "${report[@]}"; do echo "  $line"; done
if [ "$survivors" -gt 0 ]; then
  echo "$survivors mutant(s) survived"
  exit 1
fi
echo "every mutant was caught"
