#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 60 seconds, every target (`cargo fuzz list`: the frame decoders and the
# node, controller, producer and consumer state machines). Works on a stable
# toolchain: builds without a sanitizer (`-s none`) and with debug assertions
# (`-a`), so integer overflow panics and the machines run their own debug-build
# invariant checks after every input. Environment:
#
#   FUZZ_ASAN=1                 build with AddressSanitizer (sets RUSTC_BOOTSTRAP=1
#                               on stable); MQ_FUZZ_SANITIZER=address is the same
#   MQ_FUZZ_DEBUG_ASSERTIONS=0  build without debug assertions (faster, checks less)
#   MQ_FUZZ_JOBS=N              libFuzzer -fork=N workers per target (default 1)
#
# An empty fuzz/corpus/<target>/ gets a few seed inputs first (the corpus is
# git-ignored, so the seeds live here). Crashes land in fuzz/artifacts/<target>/;
# the script stops at the first target that finds one, prints the artifact and
# how to reproduce it, and exits 1. A summary table ends every run.
# See fuzz/README.md and docs/simulator.md ("Fuzzing the state machines").
set -euo pipefail

seconds="${1:-60}"
shift || true
sanitizer="${MQ_FUZZ_SANITIZER:-none}"
if [[ "${FUZZ_ASAN:-0}" == 1 ]]; then
    sanitizer=address
fi
jobs="${MQ_FUZZ_JOBS:-1}"
fork_flags=()
if [[ "$jobs" -gt 1 ]]; then
    # -fork keeps every worker's output on stdout (unlike -jobs, which writes logs).
    fork_flags=(-fork="$jobs")
fi
build_flags=(-s "$sanitizer")
if [[ "${MQ_FUZZ_DEBUG_ASSERTIONS:-1}" != 0 ]]; then
    build_flags+=(-a)
fi

cd "$(dirname "$0")/../fuzz"
unset CARGO_TARGET_DIR # cargo-fuzz builds into fuzz/target
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
if [[ "$sanitizer" != none ]]; then
    export RUSTC_BOOTSTRAP=1
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# Seed inputs: the first byte of each state-machine target picks its set-up (see
# fuzz/src/*.rs); the rest are steps.
seed() { # target name bytes-as-printf-format
    mkdir -p "corpus/$1"
    printf "$3" >"corpus/$1/seed-$2"
}
seed_corpus() {
    local t="$1"
    [[ -d "corpus/$t" && -n "$(ls -A "corpus/$t" 2>/dev/null)" ]] && return 0
    case "$t" in
    node)
        # single node warmed up (topic t) with requests, persists and timeouts;
        # three voters; a non-voter broker
        seed node warm '\x01\x00\x01\x00\x00\x0a\x00\x08\x01\x02\x00\x0f\x08\x00\x03\x00\x00\x0b'
        seed node voters '\x02\x04\x02\x00\x05\x04\x01\x00\x08\x0a\x08\x04\x03\x01'
        seed node broker '\x03\x05\x01\x00\x08\x04\x00\x02\x0a\x00\x08\x09\x30'
        ;;
    controller)
        # clusters of 1 and 3 voters stepping through timeouts, persists and
        # deliveries; one replica among 3 voters receiving messages
        seed controller one '\x80\x00\x04\x00\x07\x00\x07\x00\x04\x00\x07\x00\x0a\x00\x07'
        seed controller three '\x82\x00\x04\x00\x07\x01\x00\x02\x00\x01\x07\x02\x07\x00\x00\x00\x01\x00\x07\x00\x04'
        seed controller peer '\x02\x00\x00\x00\x02\x00\x01\x00\x05\x00\x07\x00\x00\x04\x00'
        ;;
    producer)
        seed producer sends '\x21\x00\x00\x00\x00\x00\x01\x02\x03\x09\x03\x00\x02\x09\x04\x01'
        ;;
    consumer)
        seed consumer partition '\x00\x00\x00\x00\x06\x01\x00\x00\x02\x06\x00'
        seed consumer group '\x00\x01\x00\x00\x06\x00\x00\x02\x06\x08\x09\x0b\x06'
        ;;
    esac
}

echo "== building ${targets[*]} (cargo fuzz build ${build_flags[*]})"
cargo fuzz build "${build_flags[@]}"

summary=()
status=0
for target in "${targets[@]}"; do
    seed_corpus "$target"
    mkdir -p "corpus/$target" "artifacts/$target"
    log="$(mktemp)"
    echo "== fuzzing $target for ${seconds}s (sanitizer: $sanitizer)"
    set +e
    cargo fuzz run "${build_flags[@]}" "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${fork_flags[@]}" 2>&1 | tee "$log" |
        grep -E '^#[0-9]+ +(INITED|DONE)|panicked|^Done|SUMMARY|Test unit written'
    rc=${PIPESTATUS[0]}
    set -e
    # (grep finds nothing in a clean run: under pipefail that must not end the script)
    runs="$({ grep -o 'stat::number_of_executed_units: [0-9]*' "$log" || true; } | awk '{s += $2} END {print s + 0}')"
    corpus="$(find "corpus/$target" -type f | wc -l)"
    artifact="$({ grep -o 'Test unit written to [^ ]*' "$log" || true; } | tail -1 | sed 's/Test unit written to //')"
    if [[ $rc -eq 0 && -z "$artifact" ]]; then
        result=ok
    else
        result="CRASH ${artifact:-(exit $rc, see the log above)}"
        grep -A2 'panicked at' "$log" | head -3 || true
    fi
    rm -f "$log"
    summary+=("$(printf '%-16s %12s %8s  %s' "$target" "$runs" "$corpus" "$result")")
    if [[ $result != ok ]]; then
        status=1
        echo "== $target found a crash; reproduce and minimise it with"
        echo "   cd fuzz && cargo fuzz run ${build_flags[*]} $target ${artifact:-artifacts/$target/<crash>}"
        echo "   cd fuzz && cargo fuzz tmin ${build_flags[*]} $target ${artifact:-artifacts/$target/<crash>}"
        break
    fi
done

echo
printf '%-16s %12s %8s  %s\n' target runs corpus result
printf '%s\n' "${summary[@]}"
exit $status
