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
for name in "$@"; do
  wt="$(mktemp -d /tmp/mq-shrink-"$name".XXXXXX)"
  rmdir "$wt"
  git -C "$repo" worktree add --quiet --detach "$wt" "$commit"
  if ! git -C "$wt" apply "$repo/tests/mutants/$name.patch"; then
    echo "$name: patch does not apply"
    git -C "$repo" worktree remove --force "$wt"
    continue
  fi
  if ! CARGO_TARGET_DIR="$target" cargo build --quiet --release -p mq-sim --manifest-path "$wt/Cargo.toml" > "$out/build-$name.log" 2>&1; then
    echo "$name: build failed ($out/build-$name.log)"
    git -C "$repo" worktree remove --force "$wt"
    continue
  fi
  cp "$target/release/mq-sim" "$out/mq-sim-$name"
  git -C "$repo" worktree remove --force "$wt"
  seed=$("$out/mq-sim-$name" run --seeds "${SEEDS:-300}" --fail-fast --jobs 1 | grep -m1 -o "FAIL seed=[0-9]*" | cut -d= -f2)
  if [ -z "$seed" ]; then
    echo "$name: no failing seed in ${SEEDS:-300} seeds"
    continue
  fi
  echo "$name: first failing seed $seed"
  (cd "$out" && "./mq-sim-$name" shrink --seed "$seed" --out "shrunk-$name.json" --max-runs "${RUNS:-400}" > "shrink-$name.out" 2>&1)
  tail -4 "$out/shrink-$name.out"
done
