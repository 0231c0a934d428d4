#!/usr/bin/env bash
# bench/compare.sh: mq against NATS JetStream and Redis Streams on this machine, in one
# run (issue #10). docs/benchmarks.md ("Comparison with NATS JetStream and Redis
# Streams") says what each workload is and how the durability settings map.
#
#   bash bench/compare.sh
#
# Installs nats-server, redis-server and jq from Debian's packages when missing, builds
# the load generator (bench/loadgen) and the mq binary, starts every server itself on
# loopback ports with data in a temporary directory, runs produce, consume and e2e
# against each, prints one table of mq / peer ratios and writes the last results into
# docs/benchmarks.md between the compare markers. Exits non-zero if any run failed
# (the peers still run when the mq side fails, and the table says n/a).
#
# Settings (environment):
#   COMPARE_RECORDS=50000       timed records per run
#   COMPARE_RECORD_SIZE=100     bytes per record
#   COMPARE_PRODUCERS=1         producer tasks/connections
#   COMPARE_CONSUMERS=1         consumer tasks/connections
#   COMPARE_INFLIGHT=256        per producer: publish acks outstanding (NATS), XADDs per pipeline (Redis), mq bench --max-inflight
#   COMPARE_BATCH=256           peers: records per pull (NATS) / XREADGROUP COUNT (Redis)
#   COMPARE_WARMUP=0            untimed records first (produce, e2e: sent; consume: received)
#   COMPARE_MODES="produce consume e2e"
#   COMPARE_ONLY="nats nats3 redis mq"   which sides to run (mq = every mq configuration)
#   COMPARE_NATS_INTERVAL_MS=120000      mq fsync interval matched to NATS's default sync (2 minutes)
#   COMPARE_REDIS_INTERVAL_MS=1000       mq fsync interval matched to Redis appendfsync everysec
#   COMPARE_DATA_DIR=/var/tmp   where the temporary data directories go (use a real disk, not tmpfs)
#   COMPARE_BASE_PORT=24100     first of the loopback ports used
#   COMPARE_WRITE_DOCS=auto     auto: write docs/benchmarks.md when every run succeeded; 1: always; 0: never
#   COMPARE_KEEP=0              1 keeps the data directories and server logs
#   COMPARE_MQ_ARGS=            extra arguments for every `mq bench` run
#   MQ_BIN                      use this mq binary instead of building one
#   LOADGEN_BIN                 use this mq-loadgen binary instead of building one
#   CARGO_TARGET_DIR            honoured by both builds
# SC2317: cleanup, loadgen and mq_bench are called through trap and `record "$@"`.
# SC2016: backquotes in printf formats are Markdown, not command substitution.
# shellcheck disable=SC2317,SC2016
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Both builds run in other directories: make a relative target directory absolute.
if [[ -n ${CARGO_TARGET_DIR:-} && $CARGO_TARGET_DIR != /* ]]; then
  export CARGO_TARGET_DIR=$PWD/$CARGO_TARGET_DIR
fi
RECORDS=${COMPARE_RECORDS:-50000}
RECORD_SIZE=${COMPARE_RECORD_SIZE:-100}
PRODUCERS=${COMPARE_PRODUCERS:-1}
CONSUMERS=${COMPARE_CONSUMERS:-1}
INFLIGHT=${COMPARE_INFLIGHT:-256}
BATCH=${COMPARE_BATCH:-256}
WARMUP=${COMPARE_WARMUP:-0}
MODES=${COMPARE_MODES:-produce consume e2e}
ONLY=${COMPARE_ONLY:-nats nats3 redis mq}
NATS_INTERVAL_MS=${COMPARE_NATS_INTERVAL_MS:-120000}
REDIS_INTERVAL_MS=${COMPARE_REDIS_INTERVAL_MS:-1000}
DATA_PARENT=${COMPARE_DATA_DIR:-/var/tmp}
BASE_PORT=${COMPARE_BASE_PORT:-24100}
WRITE_DOCS=${COMPARE_WRITE_DOCS:-auto}
KEEP=${COMPARE_KEEP:-0}
read -r -a MQ_EXTRA <<<"${COMPARE_MQ_ARGS:-}"
RUN_TIMEOUT_SECS=${COMPARE_RUN_TIMEOUT_SECS:-600}
# nats-server to run; replaced by Debian trixie's 2.10 package (unpacked under
# NATS_CACHE, never installed) when bookworm's 2.9 cannot fsync every write.
NATS_BIN=${COMPARE_NATS_BIN:-nats-server}
NATS_FROM_TRIXIE=${COMPARE_NATS_FROM_TRIXIE:-1}
NATS_CACHE=${COMPARE_NATS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mq-compare}

log() { printf 'compare: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}
wants() { [[ " $ONLY " == *" $1 "* ]]; }

# --- installs -------------------------------------------------------------------------

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

install_missing() {
  local missing=() cmd pkg
  for pair in nats-server:nats-server redis-server:redis-server jq:jq; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "missing ${missing[*]} and no apt-get here: install them by hand"
  log "installing ${missing[*]} from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # The Debian package may start a system redis on 6379; this script uses its own ports.
}

# --- temporary state and cleanup -----------------------------------------------------------

PIDS=()
mkdir -p "$DATA_PARENT"
WORK=$(mktemp -d "$DATA_PARENT/mq-compare.XXXXXX")
RESULTS=$WORK/results
mkdir -p "$RESULTS"

stop_servers() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

cleanup() {
  stop_servers
  if [[ $KEEP == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port, seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_free "$1" || return 0
    sleep 0.1
  done
  return 1
}

wait_line() { # file, pattern, seconds, pid: until the line appears or the process ends
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

need_free() {
  local p
  for p in "$@"; do
    port_free "$p" || die "port $p is in use on 127.0.0.1; set COMPARE_BASE_PORT to a free range"
  done
}

# --- builds ------------------------------------------------------------------------

target_of() { # the cargo target directory of a build in $1
  printf '%s\n' "${CARGO_TARGET_DIR:-$1/target}"
}

# --- servers -------------------------------------------------------------------------

NATS_PORT=$BASE_PORT
NATS3_PORTS=($((BASE_PORT + 11)) $((BASE_PORT + 12)) $((BASE_PORT + 13)))
NATS3_ROUTES=($((BASE_PORT + 21)) $((BASE_PORT + 22)) $((BASE_PORT + 23)))
REDIS_PORT=$((BASE_PORT + 30))
MQ_PORT=$((BASE_PORT + 40))
MQ3_PORTS=($((BASE_PORT + 51)) $((BASE_PORT + 52)) $((BASE_PORT + 53)))

# nats_conf NAME CLIENT_PORT DIR SYNC [ROUTE_PORT]: SYNC "always" or "default"
nats_conf() {
  local name=$1 port=$2 dir=$3 sync=$4 route=${5:-} r
  mkdir -p "$dir"
  {
    printf 'server_name: %s\nlisten: 127.0.0.1:%s\n' "$name" "$port"
    printf 'jetstream {\n  store_dir: "%s"\n' "$dir/js"
    [[ $sync == always ]] && printf '  sync_interval: always\n'
    printf '}\n'
    if [[ -n $route ]]; then
      printf 'cluster {\n  name: mqbench\n  listen: 127.0.0.1:%s\n  routes: [\n' "$route"
      for r in "${NATS3_ROUTES[@]}"; do printf '    nats-route://127.0.0.1:%s\n' "$r"; done
      printf '  ]\n}\n'
    fi
  } >"$dir/nats.conf"
  printf '%s\n' "$dir/nats.conf"
}

# Whether this nats-server can fsync every write (`sync_interval: always`, from 2.10 on).
NATS_SYNC_ALWAYS=no
nats_probe_sync_always() {
  local conf
  conf=$(nats_conf probe "$NATS_PORT" "$WORK/nats-probe" always)
  if "$NATS_BIN" -t -c "$conf" >"$WORK/nats-probe/check.log" 2>&1; then
    NATS_SYNC_ALWAYS=yes
  else
    NATS_SYNC_ALWAYS=no
    NATS_SYNC_WHY=$(tr -d '\n' <"$WORK/nats-probe/check.log")
  fi
}

# Debian bookworm's nats-server (2.9) refuses `sync_interval: always`; Debian
# trixie's package (2.10) has it. Fetch that package with a private apt
# configuration (the system's sources and installed packages stay as they are),
# unpack its static binary into NATS_CACHE and use it for every NATS row, so the
# rows with and without sync on every write run the same server.
nats_from_trixie() {
  local apt=$NATS_CACHE/apt deb
  if [[ ! -x $NATS_CACHE/x/usr/sbin/nats-server ]]; then
    command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || return 1
    log "fetching nats-server from Debian trixie (2.10: sync_interval always) into $NATS_CACHE"
    mkdir -p "$apt/lists/partial" "$NATS_CACHE/deb"
    printf 'deb http://deb.debian.org/debian trixie main\n' >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
    mkdir -p "$apt/cache/archives/partial"
    apt-get "${opts[@]}" update -qq >"$apt/update.log" 2>&1 || return 1
    (cd "$NATS_CACHE/deb" && apt-get "${opts[@]}" download nats-server/trixie) >"$apt/download.log" 2>&1 || return 1
    local debs=("$NATS_CACHE"/deb/nats-server_*.deb)
    deb=${debs[0]}
    [[ -f $deb ]] || return 1
    dpkg-deb -x "$deb" "$NATS_CACHE/x" || return 1
  fi
  NATS_BIN=$NATS_CACHE/x/usr/sbin/nats-server
  "$NATS_BIN" --version >/dev/null 2>&1
}

start_nats() { # SYNC
  local dir=$WORK/nats-1-$1 conf
  need_free "$NATS_PORT"
  conf=$(nats_conf n1 "$NATS_PORT" "$dir" "$1")
  "$NATS_BIN" -c "$conf" >"$dir/server.log" 2>&1 &
  PIDS+=($!)
  wait_port "$NATS_PORT" 20 || die "nats-server did not start: $(tail -3 "$dir/server.log")"
}

start_nats3() { # SYNC
  local i dir conf
  need_free "${NATS3_PORTS[@]}" "${NATS3_ROUTES[@]}"
  for i in 0 1 2; do
    dir=$WORK/nats-3-$1-n$((i + 1))
    conf=$(nats_conf "n$((i + 1))" "${NATS3_PORTS[$i]}" "$dir" "$1" "${NATS3_ROUTES[$i]}")
    "$NATS_BIN" -c "$conf" >"$dir/server.log" 2>&1 &
    PIDS+=($!)
  done
  for i in 0 1 2; do
    wait_port "${NATS3_PORTS[$i]}" 20 || die "nats-server n$((i + 1)) did not start"
  done
}

start_redis() { # always|everysec
  local dir=$WORK/redis-$1
  mkdir -p "$dir"
  need_free "$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" \
    --appendonly yes --appendfsync "$1" --save '' --daemonize no \
    --logfile "$dir/server.log" &
  PIDS+=($!)
  wait_port "$REDIS_PORT" 20 || die "redis-server did not start: $(tail -3 "$dir/server.log")"
}

# mq_conf ID DIR FSYNC LISTEN [PEERS...]: FSYNC "always" or an interval in ms
mq_conf() {
  local id=$1 dir=$2 fsync=$3 listen=$4 i
  shift 4
  mkdir -p "$dir"
  {
    printf 'id = %s\nlisten = "%s"\ndata_dir = "%s"\n' "$id" "$listen" "$dir/data"
    if [[ $fsync != always ]]; then
      printf 'fsync = "interval"\nfsync_interval_ms = %s\n' "$fsync"
    fi
    if [[ $# -gt 0 ]]; then
      printf '\n[peers]\n'
      i=1
      for p in "$@"; do
        printf '%s = "127.0.0.1:%s"\n' "$i" "$p"
        i=$((i + 1))
      done
    fi
  } >"$dir/broker.toml"
  printf '%s\n' "$dir/broker.toml"
}

start_mq() { # FSYNC
  local dir=$WORK/mq-1-$1 conf
  need_free "$MQ_PORT"
  conf=$(mq_conf 1 "$dir" "$1" "127.0.0.1:$MQ_PORT")
  "$MQ_BIN" broker --config "$conf" >"$dir/broker.out" 2>"$dir/broker.log" &
  PIDS+=($!)
  if ! wait_line "$dir/broker.out" "ready on" 60 "$!"; then
    log "mq broker (fsync $1) did not become ready: $(tail -3 "$dir/broker.log")"
    return 1
  fi
}

start_mq3() { # FSYNC
  local i dir conf
  need_free "${MQ3_PORTS[@]}"
  local pids=()
  for i in 1 2 3; do
    dir=$WORK/mq-3-$1-b$i
    conf=$(mq_conf "$i" "$dir" "$1" "127.0.0.1:${MQ3_PORTS[$((i - 1))]}" "${MQ3_PORTS[@]}")
    "$MQ_BIN" broker --config "$conf" >"$dir/broker.out" 2>"$dir/broker.log" &
    PIDS+=($!)
    pids+=($!)
  done
  for i in 1 2 3; do
    dir=$WORK/mq-3-$1-b$i
    if ! wait_line "$dir/broker.out" "ready on" 90 "${pids[$((i - 1))]}"; then
      log "mq broker $i of 3 (fsync $1) did not become ready: $(tail -3 "$dir/broker.log")"
      return 1
    fi
  done
}

# --- runs ----------------------------------------------------------------------------

FAILED=()

# record KEY CMD...: runs a workload, keeps its JSON line as $RESULTS/KEY.json
record() {
  local key=$1 out line
  shift
  log "run $key"
  if out=$("$@" 2>"$RESULTS/$key.err") && line=$(grep '^{' <<<"$out" | tail -1) &&
    jq -e .records_per_sec <<<"$line" >/dev/null 2>&1; then
    printf '%s\n' "$line" >"$RESULTS/$key.json"
    log "  $(jq -r '"\(.records_per_sec) rec/s, p99 \(.latency_us.p99) us"' <<<"$line")"
  else
    FAILED+=("$key")
    log "  FAILED: $(tail -3 "$RESULTS/$key.err" | tr '\n' ' ')"
    return 1
  fi
}

loadgen() { # PEER MODE [extra args]
  "$LOADGEN" "$1" "$2" --records "$RECORDS" --record-size "$RECORD_SIZE" \
    --producers "$PRODUCERS" --consumers "$CONSUMERS" --warmup "$WARMUP" \
    --inflight "$INFLIGHT" --batch "$BATCH" --timeout-secs "$RUN_TIMEOUT_SECS" "${@:3}"
}

run_peer() { # PREFIX PEER [extra args]: every mode against a started server
  local prefix=$1 peer=$2 mode
  shift 2
  for mode in $MODES; do
    case $mode in
    produce | consume) record "$prefix-$mode" loadgen "$peer" "$mode" --name bench "$@" || true ;;
    e2e) record "$prefix-e2e" loadgen "$peer" e2e --name bench-e2e "$@" || true ;;
    esac
  done
}

# Like the peers: the same window of sends in flight per producer, a warm-up, and
# consumers in a consumer group that ack every record.
mq_bench() { # MODE BOOTSTRAP TOPIC ACKS RF
  local args=(bench "$1" --bootstrap "$2" --topic "$3" --record-size "$RECORD_SIZE" --records "$RECORDS" --warmup "$WARMUP")
  local produce=(--producers "$PRODUCERS" --max-inflight "$INFLIGHT" --acks "$4" --partitions 1 --replication-factor "$5")
  case $1 in
  produce) args+=("${produce[@]}") ;;
  consume) args+=(--consumers "$CONSUMERS" --group bench) ;;
  e2e) args+=("${produce[@]}" --consumers "$CONSUMERS" --group bench-e2e) ;;
  esac
  timeout "$RUN_TIMEOUT_SECS" "$MQ_BIN" "${args[@]}" "${MQ_EXTRA[@]}" --json
}

run_mq() { # PREFIX BOOTSTRAP ACKS RF
  local mode
  for mode in $MODES; do
    case $mode in
    produce | consume) record "$1-$mode" mq_bench "$mode" "$2" bench "$3" "$4" || true ;;
    e2e)
      # mq bench e2e creates a missing topic, but on a fresh cluster its consumers can
      # join the group before every broker knows the topic (UnknownTopic); creating it
      # first (the command returns once the partition has a leader) avoids that race.
      "$MQ_BIN" topic create bench-e2e --partitions 1 --replication-factor "$4" \
        --bootstrap "$2" >/dev/null 2>&1 || true
      record "$1-e2e" mq_bench e2e "$2" bench-e2e "$3" "$4" || true
      ;;
    esac
  done
}

mq_single() { # FSYNC
  local prefix=mq1-$1
  if [[ $MQ_OK != yes ]]; then return 0; fi
  if start_mq "$1"; then
    run_mq "$prefix" "127.0.0.1:$MQ_PORT" 1 1
  else
    FAILED+=("$prefix (broker start)")
  fi
  stop_servers
}

mq_cluster() { # FSYNC
  local prefix=mq3-$1 bootstrap
  if [[ $MQ_OK != yes ]]; then return 0; fi
  bootstrap="1=127.0.0.1:${MQ3_PORTS[0]},2=127.0.0.1:${MQ3_PORTS[1]},3=127.0.0.1:${MQ3_PORTS[2]}"
  if start_mq3 "$1"; then
    run_mq "$prefix" "$bootstrap" all 3
  else
    FAILED+=("$prefix (broker start)")
  fi
  stop_servers
}

# --- the table and the docs ------------------------------------------------------------

# value KEY FIELD: a field of a result, or empty
value() {
  [[ -f $RESULTS/$1.json ]] || return 0
  jq -r "$2" "$RESULTS/$1.json"
}

TABLE=$WORK/table.txt
table_row() { # PEER SETUP DURABILITY MODE MQKEY PEERKEY [PEERNOTE]
  local mq_rate peer_rate ratio mq_p99 peer_p99
  mq_rate=$(value "$5" .records_per_sec)
  peer_rate=$(value "$6" .records_per_sec)
  mq_p99=$(value "$5" .latency_us.p99)
  peer_p99=$(value "$6" .latency_us.p99)
  if [[ -n $mq_rate && -n $peer_rate ]]; then
    ratio=$(jq -rn --argjson a "$mq_rate" --argjson b "$peer_rate" 'if $b > 0 then ($a / $b * 100 | round / 100) else "n/a" end')
  else
    ratio=n/a
  fi
  # Consume latencies measure different waits in each tool; only produce and e2e p99s compare.
  if [[ $4 == consume ]]; then mq_p99=- peer_p99=-; fi
  [[ -n $peer_rate ]] || peer_rate=${7:-n/a}
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" \
    "${mq_rate:-n/a}" "$peer_rate" "$ratio" "${mq_p99:-n/a}" "${peer_p99:-n/a}" >>"$TABLE"
}

build_table() {
  local mode nats_always_note=
  [[ $NATS_SYNC_ALWAYS == yes ]] || nats_always_note="unsupported"
  {
    printf '| peer | setup | durability | mode | mq rec/s | peer rec/s | mq/peer | mq p99 µs | peer p99 µs |\n'
    printf '|---|---|---|---|---:|---:|---:|---:|---:|\n'
  } >"$TABLE"
  for mode in $MODES; do
    table_row "NATS JetStream" "1 server, R1 / mq 1 broker, acks=1" "fsync every write" "$mode" "mq1-always-$mode" "nats1-always-$mode" "$nats_always_note"
    table_row "NATS JetStream" "1 server, R1 / mq 1 broker, acks=1" "NATS default sync (2 min) / mq interval ${NATS_INTERVAL_MS} ms" "$mode" "mq1-$NATS_INTERVAL_MS-$mode" "nats1-default-$mode"
    table_row "NATS JetStream" "3 servers, R3 / mq 3 brokers, RF=3, acks=all" "fsync every write" "$mode" "mq3-always-$mode" "nats3-always-$mode" "$nats_always_note"
    table_row "NATS JetStream" "3 servers, R3 / mq 3 brokers, RF=3, acks=all" "NATS default sync (2 min) / mq interval ${NATS_INTERVAL_MS} ms" "$mode" "mq3-$NATS_INTERVAL_MS-$mode" "nats3-default-$mode"
    table_row "Redis Streams" "1 server / mq 1 broker, acks=1" "appendfsync always / mq fsync every write" "$mode" "mq1-always-$mode" "redis-always-$mode"
    table_row "Redis Streams" "1 server / mq 1 broker, acks=1" "appendfsync everysec / mq interval ${REDIS_INTERVAL_MS} ms" "$mode" "mq1-$REDIS_INTERVAL_MS-$mode" "redis-everysec-$mode"
  done
}

machine_description() {
  local fs commit
  fs=$(findmnt -no SOURCE,FSTYPE,OPTIONS --target "$WORK" 2>/dev/null || df -PT "$WORK" | tail -1)
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
  fi
  printf -- '- date: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf -- '- commit: %s\n' "$commit"
  printf -- '- CPU: %s, %s cores\n' "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)"
  printf -- '- memory: %s\n' "$(free -h | awk '/^Mem:/ {print $2}')"
  printf -- '- kernel: %s\n' "$(uname -sr)"
  printf -- '- data directories: %s (%s)\n' "$WORK" "$fs"
  printf -- '- nats-server: %s; redis-server: %s; rustc: %s\n' \
    "$("$NATS_BIN" --version 2>&1) ($NATS_BIN)" "$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
    "$(rustc --version 2>/dev/null || echo unknown)"
  printf -- '- script time so far: %s s (builds included)\n' "$SECONDS"
  printf -- '- load: %s (other processes share the machine unless it was quiet)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf -- '- settings: %s records of %s bytes, %s producer(s), %s consumer(s), peers: %s acks in flight / XADDs per pipeline, pull batch %s, warm-up %s\n' \
    "$RECORDS" "$RECORD_SIZE" "$PRODUCERS" "$CONSUMERS" "$INFLIGHT" "$BATCH" "$WARMUP"
}

write_docs() {
  local doc=$ROOT/docs/benchmarks.md section=$WORK/section.md
  {
    printf '<!-- compare:begin -->\n'
    printf '### Last run of `bash bench/compare.sh`\n\n'
    printf 'Written by the script; rerun it to replace this part.\n\n'
    machine_description
    printf '\n'
    if [[ $NATS_SYNC_ALWAYS != yes ]]; then
      printf '%s\n\n' "$NATS_SYNC_NOTE"
    fi
    if [[ ${#FAILED[@]} -gt 0 ]]; then
      printf 'Runs that failed: %s.\n\n' "${FAILED[*]}"
    fi
    cat "$TABLE"
    printf '\nThe JSON lines (`mq-loadgen` for the peers, `mq bench --json` for mq), one per run:\n\n```text\n'
    for f in "$RESULTS"/*.json; do
      [[ -e $f ]] || continue
      printf '%s %s\n' "$(basename "$f" .json)" "$(cat "$f")"
    done
    printf '```\n<!-- compare:end -->\n'
  } >"$section"
  if grep -q '<!-- compare:begin -->' "$doc" && grep -q '<!-- compare:end -->' "$doc"; then
    awk -v section="$section" '
      /<!-- compare:begin -->/ { while ((getline line < section) > 0) print line; skip = 1; next }
      /<!-- compare:end -->/ { skip = 0; next }
      !skip { print }
    ' "$doc" >"$doc.tmp"
  else
    { cat "$doc"; printf '\n'; cat "$section"; } >"$doc.tmp"
  fi
  mv "$doc.tmp" "$doc"
  log "wrote the results into docs/benchmarks.md"
}

# --- main ----------------------------------------------------------------------------

install_missing
command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (README.md, Set up)"

if [[ -n ${LOADGEN_BIN:-} ]]; then
  LOADGEN=$LOADGEN_BIN
else
  log "building the load generator (bench/loadgen, release)"
  (cd "$ROOT/bench/loadgen" && cargo build --release --quiet) || die "the load generator did not build"
  LOADGEN=$(target_of "$ROOT/bench/loadgen")/release/mq-loadgen
fi

MQ_OK=yes
MQ_WHY=
if wants mq; then
  if [[ -z ${MQ_BIN:-} ]]; then
    log "building mq (cargo build --release -p mq-net --bin mq)"
    if (cd "$ROOT" && cargo build --release --quiet -p mq-net --bin mq); then
      MQ_BIN=$(target_of "$ROOT")/release/mq
    else
      MQ_OK=no MQ_WHY="the mq binary did not build"
    fi
  fi
  if [[ $MQ_OK == yes ]] && ! "$MQ_BIN" bench --help >/dev/null 2>&1; then
    MQ_OK=no MQ_WHY="$MQ_BIN has no working 'bench' subcommand ('mq bench' not there yet?)"
  fi
else
  MQ_OK=no MQ_WHY="skipped (COMPARE_ONLY=$ONLY)"
fi
[[ $MQ_OK == yes ]] || log "mq side: $MQ_WHY; the peers still run"

nats_probe_sync_always
if [[ $NATS_SYNC_ALWAYS != yes && $NATS_FROM_TRIXIE == 1 ]] && { wants nats || wants nats3; }; then
  log "$("$NATS_BIN" --version 2>&1) cannot fsync every write (${NATS_SYNC_WHY:-}); trying Debian trixie's package"
  if nats_from_trixie; then
    nats_probe_sync_always
  else
    log "could not fetch nats-server from Debian trixie (see $NATS_CACHE/apt/*.log); staying with $NATS_BIN"
    NATS_BIN=${COMPARE_NATS_BIN:-nats-server}
  fi
fi
NATS_SYNC_NOTE=
if [[ $NATS_SYNC_ALWAYS != yes ]]; then
  NATS_SYNC_NOTE="nats-server $("$NATS_BIN" --version 2>&1 | sed 's/^nats-server: //') cannot fsync every write: it refuses \`sync_interval: always\` (${NATS_SYNC_WHY:-}), an option of nats-server 2.10 and later. Its JetStream file store syncs on its own periodic timer, so the NATS rows compare only mq's interval fsync with that default; the \"fsync every write\" NATS rows are not measured (n/a)."
  log "$NATS_SYNC_NOTE"
fi

syncs=(default)
[[ $NATS_SYNC_ALWAYS == yes ]] && syncs+=(always)
if wants nats; then
  for s in "${syncs[@]}"; do
    start_nats "$s"
    run_peer "nats1-$s" nats --url "nats://127.0.0.1:$NATS_PORT" --replicas 1
    stop_servers
  done
fi
if wants nats3; then
  for s in "${syncs[@]}"; do
    start_nats3 "$s"
    run_peer "nats3-$s" nats --url "nats://127.0.0.1:${NATS3_PORTS[0]}" --replicas 3
    stop_servers
  done
fi
if wants redis; then
  for s in always everysec; do
    start_redis "$s"
    run_peer "redis-$s" redis --url "redis://127.0.0.1:$REDIS_PORT/"
    stop_servers
  done
fi
if wants mq; then
  mq_single always
  mq_single "$NATS_INTERVAL_MS"
  if [[ $REDIS_INTERVAL_MS != "$NATS_INTERVAL_MS" ]]; then mq_single "$REDIS_INTERVAL_MS"; fi
  mq_cluster always
  mq_cluster "$NATS_INTERVAL_MS"
fi

build_table
printf '\n'
machine_description
printf '\n'
cat "$TABLE"
printf '\n'
status=0
if [[ $MQ_OK != yes ]]; then
  printf 'mq side not measured: %s. Ratios are n/a.\n' "$MQ_WHY"
  status=1
fi
if [[ ${#FAILED[@]} -gt 0 ]]; then
  printf 'failed runs: %s (stderr was in %s)\n' "${FAILED[*]}" "$RESULTS"
  KEEP=1
  status=1
fi
[[ $NATS_SYNC_ALWAYS == yes ]] || printf '%s\n' "$NATS_SYNC_NOTE"

case $WRITE_DOCS in
1) write_docs ;;
auto) if [[ $status == 0 ]]; then write_docs; else log "docs/benchmarks.md left as it was (a run failed; COMPARE_WRITE_DOCS=1 writes anyway)"; fi ;;
*) ;;
esac
exit "$status"
