#!/usr/bin/env bash
# End-to-end replay throughput of `vigil replay` on large generated pcaps.
#
#   benches/throughput.sh [--quick] [--reference DIR] [--profile] [--runs N] [--scaling N]
#                         [--dir DIR]
#
# Builds release, generates (once, cached) with the project's generator:
#   mixed-200mb.pcap   vigil-pcapgen --size-mb 200 --seed 1
#   mixed-1gb.pcap     five 200 MB parts, seeds 1..5, --base-ts 1715594400+300*(k-1), joined
#                      (global header of parts 2..5 stripped)
#   tiny-10pkt.pcap    the first 10 packets of a --size-mb 0.01 file, for the start-up cost
# then replays each file with 1 and 2 workers, best wall time of N runs (default 3), and prints
# wall s, proc s (= wall - wall of the 10-packet run with the same workers), Gbit/s and Mpps
# (from proc) and peak RSS (/usr/bin/time %M; wall from bash's microsecond clock, as %e only
# has 10 ms resolution).
#
#   --quick          only the 200 MB file
#   --reference DIR  also replay DIR/mixed-200mb.pcap and DIR/mixed-1gb.pcap (made by the
#                    reference IDS's generator) when present, and print the reference IDS's
#                    figures for the same files beside ours
#   --profile        afterwards, `perf record -g` the 1 GB 1-worker replay and print the top 25
#                    symbols (`perf report --no-children`)
#   --runs N         runs per configuration (best wall time is kept)
#   --scaling N      afterwards, N runs each of 1 and 2 workers, alternating, on every 1 GB file,
#                    and their median and best wall times (default 9; 0 skips): on a shared
#                    2-vCPU VM one run swings by ±15 %, more than the difference measured
#   --dir DIR        cache/work dir (default ${VIGIL_BENCH_DIR:-/tmp/vigil-bench})
#
# Honours CARGO_TARGET_DIR. Needs python3 (packet counts from eve.json) and /usr/bin/time.
set -euo pipefail
export LC_ALL=C # "." as the decimal point in $EPOCHREALTIME and printf

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${VIGIL_BENCH_DIR:-/tmp/vigil-bench}"
QUICK=0
PROFILE=0
REFDIR=""
RUNS=3
SCALING=9

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --profile) PROFILE=1 ;;
        --reference) REFDIR="${2:?--reference needs a directory}"; shift ;;
        --runs) RUNS="${2:?--runs needs a number}"; shift ;;
        --scaling) SCALING="${2:?--scaling needs a number}"; shift ;;
        --dir) DIR="${2:?--dir needs a directory}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# Reference IDS figures (Suricata 8.0.6, no rules, -k none, 2 vCPUs), copied from
# /work/shared/reference/README.md ("Figures on mixed-200mb.pcap" / "on mixed-1gb.pcap").
# Key: <file>:<workers>; value: wall_s proc_s gbit_s rss_mb. 1 worker = "1 thread",
# 2 workers = "autofp (2 threads)".
declare -A REF=(
    [mixed-200mb.pcap:1]="0.48 0.37 4.4 65"
    [mixed-200mb.pcap:2]="0.54 0.42 3.9 100"
    [mixed-1gb.pcap:1]="2.04 1.90 4.3 67"
    [mixed-1gb.pcap:2]="2.25 2.12 3.9 228"
)

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VIGIL="$TARGET/release/vigil"
GEN="$TARGET/release/vigil-pcapgen"

echo "== building release (target dir $TARGET)" >&2
(cd "$ROOT" && cargo build --release -p vigil -p vigil-pcapgen) >&2

mkdir -p "$DIR"

# gen OUT SEED BASE_TS: writes a 200 MB part unless already there (atomically, via .tmp).
gen() {
    local out="$1" seed="$2" base_ts="$3"
    if [[ ! -s "$out" ]]; then
        echo "== generating $out (seed $seed, base-ts $base_ts)" >&2
        "$GEN" "$out.tmp" --size-mb 200 --seed "$seed" --base-ts "$base_ts" >&2
        mv "$out.tmp" "$out"
    fi
}

BASE_TS=1715594400
gen "$DIR/mixed-200mb.pcap" 1 "$BASE_TS"

if [[ $QUICK -eq 0 || $PROFILE -eq 1 ]] && [[ ! -s "$DIR/mixed-1gb.pcap" ]]; then
    for k in 2 3 4 5; do
        gen "$DIR/part$k.pcap" "$k" $((BASE_TS + 300 * (k - 1)))
    done
    echo "== joining $DIR/mixed-1gb.pcap" >&2
    {
        cat "$DIR/mixed-200mb.pcap"
        for k in 2 3 4 5; do tail -c +25 "$DIR/part$k.pcap"; done
    } > "$DIR/mixed-1gb.pcap.tmp"
    mv "$DIR/mixed-1gb.pcap.tmp" "$DIR/mixed-1gb.pcap"
    rm -f "$DIR"/part[2-5].pcap
fi

# Start-up cost: a valid pcap of exactly 10 packets (a generated 0.01 MB file cut after its
# tenth record; `head -c` would cut a record in half).
TINY="$DIR/tiny-10pkt.pcap"
if [[ ! -s "$TINY" ]]; then
    "$GEN" "$TINY.full" --size-mb 0.01 --seed 1 >&2
    python3 - "$TINY.full" "$TINY" <<'EOF'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
assert data[:4] == b"\xd4\xc3\xb2\xa1", "expected a little-endian microsecond pcap"
off, n = 24, 0
while n < 10 and off + 16 <= len(data):
    off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    n += 1
assert n == 10, f"generator wrote only {n} packets"
open(dst, "wb").write(data[:off])
EOF
    rm -f "$TINY.full"
fi

EVE="$DIR/eve"
TIMES="$DIR/time.out"

# warm_page_cache FILE: reads FILE through so the timed run finds it all in the page cache.
# These VMs reclaim idle page cache proactively (DAMON `pageout` of pages unused for ~60 s, 128
# MB/s), so between runs a part of a 1 GB file goes back to disk, and the next replay would
# time the disk and its page-cache refill (a tenth of the reader's samples) as much as Vigil.
warm_page_cache() {
    cat "$1" > /dev/null
}

# timed_replay FILE WORKERS: one replay into a fresh $EVE; prints its wall time and leaves
# "%e %M" (peak RSS in KiB) in $TIMES. %e has 10 ms resolution (start-up alone rounds to 0.00),
# so wall is taken from bash's microsecond clock around the same command.
timed_replay() {
    local t0 t1
    rm -rf "$EVE"; mkdir -p "$EVE"
    warm_page_cache "$1"
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %M' -o "$TIMES" \
        "$VIGIL" replay "$1" --workers "$2" --eve-dir "$EVE" --progress never -q
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

# run_best FILE WORKERS: prints "best_wall rss_mb_of_best pkts"
run_best() {
    local file="$1" workers="$2" best="" rss="" pkts="" wall kb
    for _ in $(seq "$RUNS"); do
        wall=$(timed_replay "$file" "$workers")
        read -r _ kb < "$TIMES"
        if [[ -z "$best" ]] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best="$wall"
            rss=$((kb / 1024))
        fi
        if [[ -z "$pkts" ]]; then
            # Packets from the stats event; event counts per type kept for the comparison below.
            pkts="$(python3 - "$EVE/eve.json" "$DIR/counts.${file//\//_}.w$workers" <<'EOF'
import collections, json, sys
pkts = None
counts = collections.Counter()
with open(sys.argv[1]) as f:
    for line in f:
        ev = json.loads(line)
        counts[ev["event_type"]] += 1
        if ev["event_type"] == "stats":
            pkts = ev["stats"]["decoder"]["pkts"]
with open(sys.argv[2], "w") as out:
    out.write(" ".join(f"{k} {counts[k]}" for k in ("flow", "http", "dns", "tls", "ssh", "anomaly")))
print(pkts if pkts is not None else 0)
EOF
)"
        fi
    done
    echo "$best $rss $pkts"
}

FILES=("$DIR/mixed-200mb.pcap")
[[ $QUICK -eq 0 ]] && FILES+=("$DIR/mixed-1gb.pcap")
if [[ -n "$REFDIR" ]]; then
    for f in mixed-200mb.pcap mixed-1gb.pcap; do
        [[ $QUICK -eq 1 && $f == mixed-1gb.pcap ]] && continue
        if [[ -s "$REFDIR/$f" ]]; then
            FILES+=("$REFDIR/$f")
        else
            echo "== reference pcap $REFDIR/$f not found, skipped" >&2
        fi
    done
fi

declare -A STARTUP
for w in 1 2; do
    res="$(run_best "$TINY" "$w")"
    STARTUP[$w]="${res%% *}"
done

printf '\n%-40s %7s %7s %7s %8s %7s %8s' file workers wall_s proc_s Gbit/s Mpps RSS_MB
[[ -n "$REFDIR" ]] && printf ' | %-28s' "reference IDS wall/proc/Gbit/RSS"
printf '\n'
row() { # name workers wall proc gbit mpps rss [ref]
    printf '%-40s %7s %7s %7s %8s %7s %8s' "$@"
}
for w in 1 2; do
    row "tiny-10pkt.pcap (start-up)" "$w" "${STARTUP[$w]}" - - - -
    printf '\n'
done
for file in "${FILES[@]}"; do
    bytes=$(stat -c %s "$file")
    name="$file"
    [[ "$file" == "$DIR/"* ]] && name="${file#"$DIR/"}"
    [[ -n "$REFDIR" && "$file" == "$REFDIR/"* ]] && name="ref:$(basename "$file")"
    for w in 1 2; do
        res="$(run_best "$file" "$w")"
        read -r wall rss pkts <<< "$res"
        res="$(python3 -c "
wall, start, b, p = $wall, ${STARTUP[$w]}, $bytes, $pkts
proc = max(wall - start, 1e-9)
print(f'{proc:.3f} {b * 8 / proc / 1e9:.2f} {p / proc / 1e6:.3f}')")"
        read -r proc gbit mpps <<< "$res"
        row "$name" "$w" "$wall" "$proc" "$gbit" "$mpps" "$rss"
        key="$(basename "$file"):$w"
        if [[ -n "$REFDIR" && "$file" == "$REFDIR/"* && -n "${REF[$key]:-}" ]]; then
            read -r rwall rproc rgbit rrss <<< "${REF[$key]}"
            printf ' | %5s %5s %5s %5s  (ref proc / ours: %s)' "$rwall" "$rproc" "$rgbit" "$rrss" \
                "$(python3 -c "print(f'{$rproc / max($proc, 1e-9):.2f}')")"
        fi
        printf '\n'
    done
done
echo "(pkts per file from eve.json stats.decoder.pkts; best wall of $RUNS runs; RSS of that run)"

# Protocol events: the reference IDS's counts on its mixed-200mb.pcap are the target.
echo
for f in "$DIR"/counts.*; do
    [[ -s "$f" ]] || continue
    name="${f#"$DIR/counts."}"
    printf 'events %-32s %s' "$name" "$(cat "$f")"
    printf '\n'
done
[[ -n "$REFDIR" ]] && echo "(reference IDS on its mixed-200mb.pcap: flow 4365 http 3882 dns 3156 tls 609)"
rm -f "$DIR"/counts.*

# Scaling: 1 and 2 workers alternate, so that drift in the machine's speed hits both alike.
if [[ $SCALING -gt 0 ]]; then
    echo
    for file in "${FILES[@]}"; do
        [[ "$(basename "$file")" == mixed-1gb.pcap ]] || continue
        walls=()
        for _ in $(seq "$SCALING"); do
            for w in 1 2; do
                walls+=("$w $(timed_replay "$file" "$w")")
            done
        done
        printf '%s\n' "${walls[@]}" | python3 -c "
import statistics, sys
w = {1: [], 2: []}
for line in sys.stdin:
    k, v = line.split()
    w[int(k)].append(float(v))
m1, m2 = statistics.median(w[1]), statistics.median(w[2])
print(f'scaling $file ({len(w[1])} alternating runs each): 1 worker median {m1:.3f} s '
      f'(best {min(w[1]):.3f}), 2 workers median {m2:.3f} s (best {min(w[2]):.3f}); '
      f'2 workers take {m2 / m1:.2f} of 1 worker\'s time')"
    done
fi

if [[ $PROFILE -eq 1 ]]; then
    echo >&2
    echo "== perf record -g: mixed-1gb.pcap, 1 worker" >&2
    rm -rf "$EVE"; mkdir -p "$EVE"
    perf record -g -o "$DIR/perf.data" -- \
        "$VIGIL" replay "$DIR/mixed-1gb.pcap" --workers 1 --eve-dir "$EVE" --progress never -q \
        2> "$DIR/perf-record.log"
    echo
    echo "Top 25 symbols (perf report --no-children, self time):"
    perf report -i "$DIR/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | awk 'NR <= 25'
    echo "(perf.data and perf-record.log in $DIR)"
fi
