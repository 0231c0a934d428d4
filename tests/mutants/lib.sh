# Shared by tests/mutants/run.sh and shrink.sh (sourced, not run).
#
# build_mutant REPO COMMIT PATCH TARGET LOG DEST
#   A detached worktree of COMMIT under /tmp with PATCH applied, a release build of
#   mq-sim there into TARGET (shared by all mutants, so only the mutated crates
#   rebuild), the binary copied to DEST, the worktree removed. The build's output
#   goes to LOG. Returns 0 when built, 1 when the patch does not apply, 2 when the
#   build fails.
build_mutant() {
  local repo="$1" commit="$2" patch="$3" target="$4" log="$5" dest="$6"
  local name scratch status=0
  name="$(basename "$patch" .patch)"
  patch="$(realpath "$patch")"
  : > "$log"
  scratch="$(mktemp -d /tmp/mq-mutant-"$name".XXXXXX)"
  rmdir "$scratch"
  git -C "$repo" worktree add --quiet --detach "$scratch" "$commit"
  # /dev/null as PATCH builds the unmutated tree (run.sh's baseline).
  if [ "$patch" != /dev/null ] && ! git -C "$scratch" apply "$patch" > "$log" 2>&1; then
    status=1
  elif ! (cd "$scratch" && CARGO_TARGET_DIR="$target" cargo build --quiet --release -p mq-sim) >> "$log" 2>&1; then
    status=2
  else
    cp "$target/release/mq-sim" "$dest"
  fi
  git -C "$repo" worktree remove --force "$scratch" 2>/dev/null || rm -rf "$scratch"
  git -C "$repo" worktree prune
  return "$status"
}
