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
set -euo pipefail

repo="$(git -C "$(dirname "$0")/../.." rev-parse --show-toplevel)"
seeds="${MUTANT_SEEDS:-1000}"
jobs="${MUTANT_JOBS:-2}"
target="${MUTANTS_TARGET_DIR:-/tmp/mq-mutants-target}"
if [ "$#" -gt 0 ]; then patches=("$@"); else patches=("$repo"/tests/mutants/*.patch); fi

# shellcheck source=tests/mutants/lib.sh
source "$repo/tests/mutants/lib.sh"

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
    "$bin" run --seeds "$seeds" --jobs "$jobs" --fail-fast >> "$log" 2>&1
    code=$?
  else
    code=255
  fi
  set -e
  first="$(grep -m1 '^FAIL' "$log" || true)"
  ran="$(grep '^summary:' "$log" | sed -E 's/.*seeds=([0-9]+).*/\1/' || true)"
  # The lowest failing seed: seeds run from 0, so it is caught within seed+1 seeds.
  low="$(grep '^FAIL' "$log" | sed -E 's/^FAIL seed=([0-9]+).*/\1/' | sort -n | head -1 || true)"
  if [ "$build" -ne 0 ]; then
    line="$name: PATCH OR BUILD FAILED (log in $log)"
    survivors=$((survivors + 1))
  elif [ "$code" -eq 0 ]; then
    line="$name: SURVIVED $ran seeds (log in $log)"
    survivors=$((survivors + 1))
  else
    inv="$(echo "$first" | sed -E 's/^FAIL seed=[0-9]+ invariant=([a-z_]+):.*/\1/')"
    line="$name: caught after $((low + 1)) seed(s) (seed $low, invariant $inv)"
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
