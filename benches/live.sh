#!/usr/bin/env bash
# Live capture figures: the highest tcpreplay rate at which `vigil run` loses nothing, per
# capture source, with 1 and 2 workers, with and without ET Open (needs root).
#
#   benches/live.sh [--reference DIR] [--rates "250 500 750 1000 1500 2000 top"]
#                   [--methods "af-packet af-xdp pcap"] [--workers "1 2"] [--rules "none et"]
#
# As the reference's live figures (../shared/reference/README.md): the 200 MB mixed pcap is
# replayed with tcpreplay from one network namespace over a veth pair into Vigil listening in
# another (GRO/LRO off, IPv6 off so only the pcap's frames cross), the sensor restarted per
# rate, one pass per rate. A rate counts as lossless when the sensor processed every frame
# tcpreplay sent and no socket reported a drop. Rates go up until the first loss.
#
#   --reference DIR  replay DIR/mixed-200mb.pcap (the reference's file); default: the
#                    project's own generated 200 MB file (its IP fragments make AF_PACKET with
#                    2 workers count fewer frames than sent: the kernel reassembles them)
#   --config FILE    a vigil.toml for the sensor, e.g. a smaller [capture] ring_bytes to see
#                    how much of a pass the ring alone absorbs
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${VIGIL_BENCH_DIR:-/tmp/vigil-bench}"
RULES_FILE="$ROOT/../shared/corpus/rules/emerging-all.rules"
REFDIR=""
CONFIG=""
RATES="250 500 750 1000 1500 2000 top"
METHODS="af-packet af-xdp pcap"
WORKERS="1 2"
RULESETS="none et"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reference) REFDIR="$2"; shift ;;
        --config) CONFIG="$2"; shift ;;
        --rates) RATES="$2"; shift ;;
        --methods) METHODS="$2"; shift ;;
        --workers) WORKERS="$2"; shift ;;
        --rules) RULESETS="$2"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ "$(id -u)" -ne 0 ]]; then
    echo "live.sh needs root (network namespaces, raw sockets)" >&2
    exit 2
fi
mkdir -p "$DIR"
cd "$ROOT"
cargo build --release --bin vigil -p vigil -q
cargo build --release -p vigil-pcapgen -q
VIGIL="${CARGO_TARGET_DIR:-$ROOT/target}/release/vigil"
GEN="${CARGO_TARGET_DIR:-$ROOT/target}/release/vigil-pcapgen"
if [[ -n "$REFDIR" ]]; then
    PCAP="$REFDIR/mixed-200mb.pcap"
else
    PCAP="$DIR/mixed-200mb.pcap"
    [[ -f "$PCAP" ]] || "$GEN" "$PCAP" --size-mb 200 --seed 1 >/dev/null
fi

TX="vbench-tx-$$"
RX="vbench-rx-$$"
cleanup() {
    pkill -KILL -f "vigil run -i cap0 .*$DIR/live-eve" 2>/dev/null || true
    ip netns del "$TX" 2>/dev/null || true
    ip netns del "$RX" 2>/dev/null || true
}
trap cleanup EXIT

setup_link() {
    local queues="$1"
    cleanup
    for ns in "$TX" "$RX"; do
        ip netns add "$ns"
        ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    ip -n "$TX" link add send0 type veth peer name cap0 netns "$RX"
    for pair in "$TX send0" "$RX cap0"; do
        set -- $pair
        ip -n "$1" link set "$2" up
        ip netns exec "$1" ethtool -K "$2" gro off tso off gso off rxvlan off txvlan off >/dev/null 2>&1 || true
        ip netns exec "$1" ethtool -L "$2" rx "$queues" tx "$queues" >/dev/null 2>&1 || true
    done
}

# Fills the prefilter cache once so every measured start is warm (as the reference's rows).
if [[ " $RULESETS " == *" et "* ]]; then
    "$VIGIL" rules check "$RULES_FILE" -q >/dev/null
    TINY="$DIR/live-warm.pcap"
    head -c 4096 "$PCAP" > "$TINY"
    "$VIGIL" replay "$TINY" -S "$RULES_FILE" -l "$DIR/live-warm" -q >/dev/null 2>&1 || true
fi

# One measured pass: prints "sent captured drops ring_drops achieved_mbps".
measure() {
    local method="$1" workers="$2" rules="$3" rate="$4"
    local eve="$DIR/live-eve" log="$DIR/live.log"
    rm -rf "$eve"
    local args=(run -i cap0 --capture "$method" --workers "$workers" -l "$eve" --metrics-listen "")
    [[ "$rules" == et ]] && args+=(-S "$RULES_FILE")
    [[ -n "$CONFIG" ]] && args+=(--config "$CONFIG")
    ip netns exec "$RX" "$VIGIL" "${args[@]}" >"$log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 600); do
        grep -q "capturing" "$log" 2>/dev/null && break
        sleep 0.1
    done
    local speed=(--topspeed)
    [[ "$rate" != top ]] && speed=(--mbps="$rate")
    local out
    out=$(ip netns exec "$TX" tcpreplay "${speed[@]}" -i send0 "$PCAP" 2>&1)
    sleep 1
    kill -TERM "$pid"
    wait "$pid" || true
    local sent mbps
    sent=$(sed -n 's/.*Successful packets: *\([0-9]*\).*/\1/p' <<<"$out")
    mbps=$(sed -n 's/.*Rated: [0-9.]* Bps, \([0-9.]*\) Mbps.*/\1/p' <<<"$out")
    python3 - "$eve/eve.json" "$sent" "$mbps" <<'PY'
import json, sys
stats = None
for line in open(sys.argv[1]):
    ev = json.loads(line)
    if ev["event_type"] == "stats":
        stats = ev["stats"]
cap = stats.get("capture", {})
print(sys.argv[2], stats["decoder"]["pkts"], cap.get("kernel_drops", 0), sys.argv[3])
PY
}

printf "%-10s %-7s %-5s %-6s %10s %10s %9s %8s %s\n" method workers rules rate sent captured drops lost achieved_mbps
summary=()
for method in $METHODS; do
    for workers in $WORKERS; do
        setup_link "$workers"
        for rules in $RULESETS; do
            best="none"
            for rate in $RATES; do
                read -r sent captured drops mbps < <(measure "$method" "$workers" "$rules" "$rate")
                lost=$(( sent - captured ))
                printf "%-10s %-7s %-5s %-6s %10s %10s %9s %8s %s\n" \
                    "$method" "$workers" "$rules" "$rate" "$sent" "$captured" "$drops" "$lost" "$mbps"
                if [[ "$drops" -eq 0 && "$lost" -le 0 ]]; then
                    best="$rate (${mbps} Mbit/s achieved)"
                else
                    break
                fi
            done
            summary+=("$(printf "%-10s %s worker(s), rules %-4s: highest lossless rate %s" "$method" "$workers" "$rules" "$best")")
        done
    done
done
echo
printf "%s\n" "${summary[@]}"
