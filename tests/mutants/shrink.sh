#!/usr/bin/env bash
# Shrinks the first failing seed of known-bug mutants (issue 9 acceptance;
# docs/simulator.md "Shrinking"). For each mutant: a detached worktree of COMMIT
# with the patch applied, a release build of mq-sim ($MUTANTS_TARGET_DIR, shared
# with tests/mutants/run.sh), a campaign that stops at the first failing seed, and
# `mq-sim shrink` of that seed. Results: $OUT/shrink-NAME.out and the schedules
# $OUT/shrunk-NAME.json. Not part of `cargo test`: each mutant costs a release build.
#
#   bash tests/mutants/shrink.sh HEAD ack_before_persist truncate_to_hw_kip101
#   SEEDS=300 RUNS=400 OUT=/tmp/mq-shrink bash tests/mutants/shrink.sh HEAD $(ls tests/mutants/*.patch | xargs -n1 basename | sed 's/.patch//')
set -uo pipefail

repo="$(git -C "$(dirname "$0")/../.." rev-parse --show-toplevel)"
commit="${1:?usage: shrink.sh COMMIT MUTANT...}"
shift
target="${MUTANTS_TARGET_DIR:-/tmp/mq-mutants-target}"
out="${OUT:-/tmp/mq-shrink}"
mkdir -p "$out"
# shellcheck source=tests/mutants/lib.sh
source "$repo/tests/mutants/lib.sh"
for name in "$@"; do
  build_mutant "$repo" "$commit" "$repo/tests/mutants/$name.patch" "$target" "$out/build-$name.log" "$out/mq-sim-$name"
  case $? in
    1) echo "$name: patch does not apply ($out/build-$name.log)"; continue ;;
    2) echo "$name: build failed ($out/build-$name.log)"; continue ;;
  esac
  seed=$("$out/mq-sim-$name" run --seeds "${SEEDS:-300}" --fail-fast --jobs 1 | grep -m1 -o "FAIL seed=[0-9]*" | cut -d= -f2)
  if [ -z "$seed" ]; then
    echo "$name: no failing seed in ${SEEDS:-300} seeds"
    continue
  fi
  echo "$name: first failing seed $seed"
  (cd "$out" && "./mq-sim-$name" shrink --seed "$seed" --out "shrunk-$name.json" --max-runs "${RUNS:-400}" > "shrink-$name.out" 2>&1)
  tail -4 "$out/shrink-$name.out"
done
