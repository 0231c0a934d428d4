#!/usr/bin/env bash
# Renders mq-sim timelines in headless Chromium and checks they drew something
# (docs/simulator.md, "Timeline"). For each run it writes FILE.html with
# `mq-sim replay --timeline`, takes a 1400x900 screenshot, checks the PNG is not
# blank (python3 stdlib decoder), and checks with --dump-dom that the page's
# script ran ("rendered N events" in #status, N > 0).
#
#   scripts/timeline_check.sh                 # seed 17, and seed 8 with a lying disk (a FAIL)
#   SEEDS="42 8:lying-disk" scripts/timeline_check.sh
#   SEEDS="0#op=621&tp=t0/1" scripts/timeline_check.sh      # a view (the page's #fragment)
#   SCREENSHOT_TO=docs/images/timeline.png scripts/timeline_check.sh   # keep the last screenshot
#
# Environment: MQ_SIM (a built mq-sim binary; default: cargo build --release -p mq-sim
# into $CARGO_TARGET_DIR or target), OUT (output directory, default
# $CARGO_TARGET_DIR/timeline-check), CHROMIUM (the browser binary). Installs Debian's
# `chromium` package when no browser is found (needs root or sudo and apt).
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-"17 8:lying-disk"}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/timeline-check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [[ -z "${MQ_SIM:-}" ]]; then
    cargo build --release -p mq-sim >&2
    MQ_SIM="$TARGET/release/mq-sim"
fi

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [[ -z "$CHROMIUM" ]]; then
    echo "timeline_check: installing Debian's chromium" >&2
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get install -y chromium >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y chromium >&2; }
    CHROMIUM=$(command -v chromium)
fi

browser() {
    # A fresh profile per call; a time budget lets the page's script finish first.
    local profile
    profile=$(mktemp -d)
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
        --user-data-dir="$profile" --virtual-time-budget=10000 --window-size=1400,900 "$@" 2>/dev/null
    rm -rf "$profile"
}

status=0
last_png=""
for spec in $SEEDS; do
    fragment=""
    [[ "$spec" == *"#"* ]] && fragment="#${spec#*#}"
    spec=${spec%%#*}
    seed=${spec%%:*}
    mutation=none
    [[ "$spec" == *:* ]] && mutation=${spec#*:}
    html="$OUT/seed-$seed-$mutation.html"
    png="$OUT/seed-$seed-$mutation.png"
    rm -f "$html" "$png"
    # A FAIL exits 1 or 2: the timeline is what we want from it either way.
    "$MQ_SIM" replay --seed "$seed" --mutation "$mutation" --timeline "$html" >"$OUT/seed-$seed-$mutation.out" || true
    [[ -s "$html" ]] || { echo "FAIL seed $seed ($mutation): no timeline written" >&2; status=1; continue; }
    verdict=$(grep -E '^(PASS|FAIL) ' "$OUT/seed-$seed-$mutation.out" | cut -c1-100 || true)

    browser --screenshot="$png" "file://$html$fragment" >/dev/null || true
    if ! python3 - "$png" <<'PY'
import struct, sys, zlib

path = sys.argv[1]
try:
    data = open(path, "rb").read()
except OSError:
    sys.exit(f"no screenshot at {path}")
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit("the screenshot is not a PNG")
pos, idat, width = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height, depth, color = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
if depth != 8 or color not in (2, 6):
    sys.exit(f"unexpected PNG format (depth {depth}, color type {color})")
bpp = 3 if color == 2 else 4
raw = zlib.decompress(idat)
stride = width * bpp
prev = bytearray(stride)
colors, inked = set(), 0
for y in range(height):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    if f == 1:
        for i in range(bpp, stride):
            line[i] = (line[i] + line[i - bpp]) & 255
    elif f == 2:
        for i in range(stride):
            line[i] = (line[i] + prev[i]) & 255
    elif f == 3:
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
    elif f == 4:
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    for x in range(0, stride, bpp * 2):  # every other pixel is plenty
        px = bytes(line[x:x + 3])
        colors.add(px)
        inked += px != b"\xff\xff\xff"
share = inked / (height * width / 2)
print(f"screenshot {width}x{height}, {len(data)} bytes, {len(colors)} colours, {share:.1%} not white")
if len(colors) < 8 or share < 0.02:
    sys.exit("the screenshot is blank")
PY
    then
        echo "FAIL seed $seed ($mutation): blank or missing screenshot $png" >&2
        status=1
        continue
    fi

    rendered=$(browser --dump-dom "file://$html" | grep -o 'rendered [0-9]* events[^<]*' | head -1 || true)
    count=$(echo "$rendered" | grep -o '[0-9]*' | head -1)
    if [[ -z "$count" || "$count" -eq 0 ]]; then
        echo "FAIL seed $seed ($mutation): the page's script did not draw (status: '${rendered:-none}')" >&2
        status=1
        continue
    fi
    echo "ok seed $seed ($mutation): ${verdict:-?}; $(du -h "$html" | cut -f1) page; ${rendered:0:120}"
    last_png=$png
done

if [[ -n "${SCREENSHOT_TO:-}" && -n "$last_png" ]]; then
    mkdir -p "$(dirname "$SCREENSHOT_TO")"
    cp "$last_png" "$SCREENSHOT_TO"
    echo "screenshot copied to $SCREENSHOT_TO"
fi
exit $status
