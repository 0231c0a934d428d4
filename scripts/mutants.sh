#!/usr/bin/env bash
# Known-bug mutants (DESIGN.md section 12, layer 5): applies each
# tests/mutants/*.patch to a scratch copy of the committed tree (a detached git
# worktree), runs a simulator campaign there and requires it to FAIL. A mutant the
# campaign does not catch ("survives") makes this script exit 1.
#
#   scripts/mutants.sh                 # every patch, 200 seeds each
#   MUTANT_SEEDS=500 scripts/mutants.sh tests/mutants/ack_before_persist.patch
#
# Builds go to $MUTANTS_TARGET_DIR (default /tmp/mq-mutants-target) so the mutated
# mq-core never invalidates your normal build. Not part of `cargo test`: each mutant
# costs a release build.
set -euo pipefail

repo="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
seeds="${MUTANT_SEEDS:-200}"
target="${MUTANTS_TARGET_DIR:-/tmp/mq-mutants-target}"
if [ "$#" -gt 0 ]; then patches=("$@"); else patches=("$repo"/tests/mutants/*.patch); fi

survivors=0
for patch in "${patches[@]}"; do
  name="$(basename "$patch" .patch)"
  scratch="$(mktemp -d /tmp/mq-mutant-"$name".XXXXXX)"
  rmdir "$scratch"
  git -C "$repo" worktree add --quiet --detach "$scratch" HEAD
  cleanup() { git -C "$repo" worktree remove --force "$scratch" 2>/dev/null || rm -rf "$scratch"; }
  trap cleanup EXIT
  git -C "$scratch" apply "$(realpath "$patch")"
  echo "mutant $name: running $seeds seeds"
  set +e
  (cd "$scratch" && CARGO_TARGET_DIR="$target" cargo run --quiet --release -p mq-sim -- run --seeds "$seeds") \
    > "/tmp/mq-mutant-$name.log" 2>&1
  code=$?
  set -e
  grep -m1 '^FAIL' "/tmp/mq-mutant-$name.log" || true
  grep '^summary:' "/tmp/mq-mutant-$name.log" || true
  if [ "$code" -eq 0 ]; then
    echo "mutant $name: SURVIVED (campaign exit 0; log in /tmp/mq-mutant-$name.log)"
    survivors=$((survivors + 1))
  else
    echo "mutant $name: caught (campaign exit $code)"
  fi
  cleanup
  trap - EXIT
done

if [ "$survivors" -gt 0 ]; then
  echo "$survivors mutant(s) survived"
  exit 1
fi
echo "every mutant was caught"
