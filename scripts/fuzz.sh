#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 60 seconds, every target (`cargo fuzz list`). Works on a stable
# toolchain: builds without a sanitizer (`-s none`). Set MQ_FUZZ_SANITIZER=address
# to build with AddressSanitizer instead; on stable that needs RUSTC_BOOTSTRAP=1,
# which this script then sets. Crashes land in fuzz/artifacts/<target>/; the script
# stops at the first target that finds one and exits non-zero. See fuzz/README.md.
set -euo pipefail

seconds="${1:-60}"
shift || true
sanitizer="${MQ_FUZZ_SANITIZER:-none}"

cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
if [[ "$sanitizer" != none ]]; then
    export RUSTC_BOOTSTRAP=1
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build -s "$sanitizer"
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s (sanitizer: $sanitizer)"
    cargo fuzz run -s "$sanitizer" "$target" -- -max_total_time="$seconds" -print_final_stats=1
done
echo "== no crashes in ${#targets[@]} target(s)"
