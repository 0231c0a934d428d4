#!/usr/bin/env bash
# bench/scaling.sh: how mq's throughput and latency change with the number of
# partitions, of clients and with the record size (issue 10; docs/benchmarks.md).
#
# Starts its own broker (or three on loopback) from an `mq` binary in temporary
# data directories, runs `mq bench produce` and then `mq bench consume` (and
# `e2e` if asked) with --json for each point of three series, each varying one
# setting while the others stay at the base point:
#
#   partitions            1, 10, 100, 1000
#   producers = consumers 1, 4, 16
#   record size (bytes)   100, 1024, 16384
#
# and prints a markdown table on stdout (progress on stderr). Every broker it
# started is stopped and every directory it made is removed when it exits.
#
# Usage: bench/scaling.sh [MQ_BINARY]
#   Without a binary (or $MQ) it builds one: cargo build --release -p mq-net,
#   using $CARGO_TARGET_DIR if set (else target/ of this repository).
#
# Settings (environment):
#   RECORDS=200000        measured records per run (fewer for large records: see MAX_RUN_BYTES)
#   WARMUP=               warm-up records per run (default RECORDS/10)
#   MAX_RUN_BYTES=268435456  caps RECORDS * record size per run (256 MiB)
#   BROKERS=1             1, or 3 brokers on loopback
#   REPLICATION=          replication factor (default: BROKERS)
#   MIN_ISR=1             min in-sync replicas of each topic
#   ACKS=                 0, 1 or all (default: 1 with one broker, all with three)
#   FSYNC=always          the brokers' fsync setting: always or interval
#   FSYNC_INTERVAL_MS=1000
#   BASE_PARTITIONS=10  BASE_CLIENTS=4  BASE_SIZE=100   the base point
#   PARTITION_SERIES="1 10 100 1000"  CLIENT_SERIES="1 4 16"  SIZE_SERIES="100 1024 16384"
#   MODES="produce consume"   add e2e to measure it too
#   EXTRA_ARGS=           more flags for every `mq bench` (e.g. "--linger-ms 1")
#   JSONL=                also append every JSON result line to this file
#   BASE_PORT=            first port for three brokers (default: a free one near 20000)
#
# With the defaults it runs 8 points (the base point once) of produce and
# consume; on 2 busy cores that takes a few minutes. RECORDS=2000 checks that
# it works in well under a minute.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

MQ=${1:-${MQ:-}}
RECORDS=${RECORDS:-200000}
WARMUP=${WARMUP:-$((RECORDS / 10))}
MAX_RUN_BYTES=${MAX_RUN_BYTES:-268435456}
BROKERS=${BROKERS:-1}
REPLICATION=${REPLICATION:-$BROKERS}
MIN_ISR=${MIN_ISR:-1}
FSYNC=${FSYNC:-always}
FSYNC_INTERVAL_MS=${FSYNC_INTERVAL_MS:-1000}
BASE_PARTITIONS=${BASE_PARTITIONS:-10}
BASE_CLIENTS=${BASE_CLIENTS:-4}
BASE_SIZE=${BASE_SIZE:-100}
PARTITION_SERIES=${PARTITION_SERIES:-"1 10 100 1000"}
CLIENT_SERIES=${CLIENT_SERIES:-"1 4 16"}
SIZE_SERIES=${SIZE_SERIES:-"100 1024 16384"}
MODES=${MODES:-"produce consume"}
EXTRA_ARGS=${EXTRA_ARGS:-}
JSONL=${JSONL:-}
if [[ -z ${ACKS:-} ]]; then
  if [[ $BROKERS == 1 ]]; then ACKS=1; else ACKS=all; fi
fi

say() { echo "scaling.sh: $*" >&2; }
die() { say "$*"; exit 1; }

[[ $BROKERS == 1 || $BROKERS == 3 ]] || die "BROKERS must be 1 or 3, not $BROKERS"
[[ $RECORDS =~ ^[1-9][0-9]*$ ]] || die "RECORDS must be a positive integer, not $RECORDS"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a number, not $WARMUP"
for m in $MODES; do
  [[ $m == produce || $m == consume || $m == e2e ]] || die "MODES takes produce, consume and e2e, not $m"
done

if [[ -z $MQ ]]; then
  say "building mq (cargo build --release -p mq-net)"
  (cd "$root" && cargo build --release -p mq-net >&2)
  target=${CARGO_TARGET_DIR:-$root/target}
  [[ $target == /* ]] || target=$root/$target
  MQ=$target/release/mq
fi
[[ -x $MQ ]] || die "no mq binary at $MQ"

work=$(mktemp -d "${TMPDIR:-/tmp}/mq-scaling.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits for broker $1's readiness line and prints its address.
wait_ready() {
  local i=$1 line
  for _ in $(seq 1 600); do
    line=$(head -n 1 "$work/broker-$i.out" 2>/dev/null || true)
    if [[ $line == *" ready on "* ]]; then
      echo "${line##* }"
      return 0
    fi
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || die "broker $i exited: $(tail -n 5 "$work/broker-$i.log")"
    sleep 0.1
  done
  die "broker $i was not ready after 60 s: $(tail -n 5 "$work/broker-$i.log")"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fsync_flags=(--fsync "$FSYNC" --fsync-interval-ms "$FSYNC_INTERVAL_MS")
if [[ $BROKERS == 1 ]]; then
  "$MQ" broker --listen 127.0.0.1:0 --data-dir "$work/data-1" "${fsync_flags[@]}" \
    >"$work/broker-1.out" 2>"$work/broker-1.log" &
  pids+=($!)
  BOOTSTRAP=$(wait_ready 1)
else
  port=${BASE_PORT:-$((20000 + $$ % 20000))}
  ports=()
  while ((${#ports[@]} < 3)); do
    if port_free "$port"; then ports+=("$port"); fi
    port=$((port + 1))
  done
  BOOTSTRAP="1=127.0.0.1:${ports[0]},2=127.0.0.1:${ports[1]},3=127.0.0.1:${ports[2]}"
  for i in 1 2 3; do
    "$MQ" broker --id "$i" --peers "$BOOTSTRAP" --data-dir "$work/data-$i" "${fsync_flags[@]}" \
      >"$work/broker-$i.out" 2>"$work/broker-$i.log" &
    pids+=($!)
  done
  for i in 1 2 3; do wait_ready "$i" >/dev/null; done
fi
export MQ_BOOTSTRAP=$BOOTSTRAP
say "$BROKERS broker(s) ready at $BOOTSTRAP (fsync $FSYNC); $RECORDS records per run, warm-up $WARMUP, acks=$ACKS"

# Field $2 of a JSON result line $1 (the line's layout is mq's own, fixed).
field() { sed -E "s/.*\"$2\":\"?([^,\"}]*).*/\1/" <<<"$1"; }

rows=()
seen=" "
run=0
# One point: partitions $1, clients $2, record size $3, series name $4.
point() {
  local partitions=$1 clients=$2 size=$3 series=$4
  local key="$partitions/$clients/$size"
  if [[ $seen == *" $key "* ]]; then return 0; fi
  seen+="$key "
  local records=$RECORDS warmup=$WARMUP
  if ((records * size > MAX_RUN_BYTES)); then
    records=$((MAX_RUN_BYTES / size))
    ((records > 0)) || records=1
    warmup=$((records / 10))
  fi
  run=$((run + 1))
  local topic="scaling-$run-p$partitions-c$clients-s$size"
  local mode out line
  for mode in $MODES; do
    local n=$records w=$warmup
    say "$series: $mode, $partitions partition(s), $clients client(s), $size B, $n records"
    # shellcheck disable=SC2086 # EXTRA_ARGS is a list of flags
    if ! out=$("$MQ" bench "$mode" --json --topic "$topic" --records "$n" --warmup "$w" \
      --record-size "$size" --producers "$clients" --consumers "$clients" --acks "$ACKS" \
      --partitions "$partitions" --replication-factor "$REPLICATION" --min-insync-replicas "$MIN_ISR" \
      $EXTRA_ARGS 2>"$work/bench.err"); then
      die "mq bench $mode failed: $(cat "$work/bench.err")"
    fi
    line=$(tail -n 1 <<<"$out")
    [[ $line == '{"tool":"mq"'* ]] || die "mq bench $mode printed no result line: $out"
    [[ -z $JSONL ]] || echo "$line" >>"$JSONL"
    rows+=("| $series | $mode | $partitions | $clients | $size | $(field "$line" records) | $(field "$line" records_per_sec) | $(field "$line" mb_per_sec) | $(field "$line" p50) | $(field "$line" p99) | $(field "$line" p999) | $(field "$line" max) |")
  done
  # The core keeps logs in memory: drop each topic once measured.
  "$MQ" topic delete "$topic" >/dev/null 2>&1 || say "could not delete topic $topic (continuing)"
}

for p in $PARTITION_SERIES; do point "$p" "$BASE_CLIENTS" "$BASE_SIZE" partitions; done
for c in $CLIENT_SERIES; do point "$BASE_PARTITIONS" "$c" "$BASE_SIZE" clients; done
for s in $SIZE_SERIES; do point "$BASE_PARTITIONS" "$BASE_CLIENTS" "$s" "record size"; done

echo "mq bench scaling: $BROKERS broker(s), replication factor $REPLICATION, acks=$ACKS, fsync $FSYNC;" \
  "base point $BASE_PARTITIONS partitions, $BASE_CLIENTS producers/consumers, $BASE_SIZE B records;" \
  "$(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| series | mode | partitions | producers/consumers | record B | records | records/s | MB/s | p50 µs | p99 µs | p99.9 µs | max µs |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
