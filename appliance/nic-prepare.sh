#!/usr/bin/env bash
# Prepares a capture interface for Vigil: link up, promiscuous mode, the offloads that change
# what a packet socket sees turned off, the largest RX ring, and optionally the queue count.
# Idempotent: each setting is read first and only changed when it differs; a second run
# reports "0 changed". Features the driver lacks or fixes are "not supported", not errors.
#
#   nic-prepare.sh IFACE [--queues N] [--dry-run]
#
# Exit status: 0 done, 1 missing interface or a setting the kernel refused (every other
# setting is still applied), 2 bad usage.
set -euo pipefail

usage() {
    echo "usage: nic-prepare.sh IFACE [--queues N] [--dry-run]"
}

iface=""
queues=""
dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        --queues)
            [ $# -ge 2 ] || { usage >&2; exit 2; }
            queues=$2
            shift 2
            ;;
        --queues=*)
            queues=${1#--queues=}
            shift
            ;;
        --dry-run)
            dry_run=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            echo "nic-prepare: unknown option $1" >&2
            usage >&2
            exit 2
            ;;
        *)
            [ -z "$iface" ] || { usage >&2; exit 2; }
            iface=$1
            shift
            ;;
    esac
done
[ -n "$iface" ] || { usage >&2; exit 2; }
if [ -n "$queues" ] && ! [[ "$queues" =~ ^[1-9][0-9]*$ ]]; then
    echo "nic-prepare: --queues needs a positive number, not '$queues'" >&2
    exit 2
fi

for tool in ip ethtool; do
    command -v "$tool" >/dev/null || {
        echo "nic-prepare: $tool not found (appliance/install-deps.sh installs it)" >&2
        exit 1
    }
done
if ! ip link show dev "$iface" >/dev/null 2>&1; then
    echo "nic-prepare: interface '$iface' does not exist" >&2
    exit 1
fi

changed=0
already=0
unsupported=0
failed=0

say() { echo "$iface: $*"; }
is_changed() {
    changed=$((changed + 1))
    say "$1"
}
is_already() {
    already=$((already + 1))
    say "$1"
}
is_unsupported() {
    unsupported=$((unsupported + 1))
    say "$1"
}
is_failed() {
    failed=$((failed + 1))
    say "$1" >&2
}

# Runs a change, or in a dry run only says it would.
apply() {
    if [ "$dry_run" -eq 1 ]; then
        return 0
    fi
    "$@"
}
would() {
    if [ "$dry_run" -eq 1 ]; then echo "would change"; else echo "changed"; fi
}

link_flags() {
    ip -o link show dev "$iface" | sed -n 's/^[^<]*<\([^>]*\)>.*/,\1,/p'
}

# Link up and promiscuous mode: a SPAN/TAP port carries traffic for other MAC addresses,
# which the NIC drops before any socket sees it unless promiscuous.
set_flag() {
    local name=$1 flag=$2 err
    if [[ "$(link_flags)" == *",$flag,"* ]]; then
        is_already "$name: on (already)"
    elif err=$(apply ip link set dev "$iface" "${@:3}" 2>&1) && { [ "$dry_run" -eq 1 ] || [[ "$(link_flags)" == *",$flag,"* ]]; }; then
        is_changed "$name: on ($(would), was off)"
    else
        is_failed "$name: FAILED (ip link set ${*:3}): ${err:-still off}"
    fi
}
set_flag "link up" UP up
set_flag "promiscuous" PROMISC promisc on

# "on", "off", "on [fixed]", "off [requested on]" ...; empty when the kernel lacks the feature.
feature_state() {
    ethtool -k "$iface" 2>/dev/null | awk -v f="$1:" '$1 == f { $1 = ""; sub(/^ /, ""); print; exit }'
}

feature_off() {
    local feature=$1 state err
    state=$(feature_state "$feature")
    case "$state" in
        "")
            is_unsupported "$feature: not supported"
            ;;
        off*)
            is_already "$feature: off (already)"
            ;;
        *"[fixed]"*)
            is_unsupported "$feature: not supported (fixed $state by the driver)"
            ;;
        *)
            if [ "$dry_run" -eq 1 ]; then
                is_changed "$feature: off (would change, is $state)"
            elif err=$(ethtool -K "$iface" "$feature" off 2>&1 >/dev/null) &&
                [[ "$(feature_state "$feature")" == off* ]]; then
                is_changed "$feature: off (changed, was $state)"
            else
                is_failed "$feature: FAILED to turn off (is $(feature_state "$feature")): ${err:-no error}"
            fi
            ;;
    esac
}

# GRO (software, and rx-gro-hw in hardware) and LRO merge received TCP segments into one
# super-packet before packet sockets see it: Vigil would decode frames larger than the MTU
# that never crossed the wire, and lose the per-segment view (retransmissions, overlaps,
# flags, dsize) that reassembly and the rules depend on. LRO also rewrites headers.
feature_off generic-receive-offload
feature_off large-receive-offload
feature_off rx-gro-hw
# TSO/GSO: frames this host sends on the interface (a shared port, a veth in tests) reach
# packet sockets before segmentation, up to 64 KiB; off so what is captured is what is sent.
feature_off tcp-segmentation-offload
feature_off generic-segmentation-offload
# VLAN stripping moves the 802.1Q (and 802.1ad outer) tag out of the frame into metadata,
# which AF_XDP does not deliver at all; Vigil keys flows and vlan.id rules on the tag.
feature_off rx-vlan-offload
feature_off rx-vlan-stag-hw-parse

# Prints "MAX CURRENT" of the first line named $2 in `ethtool $1` output (a -g or -l table);
# "n/a" and missing values print as 0.
table_pair() {
    awk -v key="$2:" '
        /^Pre-set maximums:/ { s = "max"; next }
        /^Current hardware settings:/ { s = "cur"; next }
        $1 == key && s != "" && !(s in v) { v[s] = ($2 ~ /^[0-9]+$/) ? $2 : 0 }
        END { printf "%d %d\n", v["max"], v["cur"] }' <<<"$1"
}

# The largest RX ring absorbs bursts while the capture threads are busy.
if ring=$(ethtool -g "$iface" 2>/dev/null); then
    read -r ring_max ring_cur < <(table_pair "$ring" RX)
    if [ "$ring_max" -eq 0 ]; then
        is_unsupported "rx ring: not supported"
    elif [ "$ring_cur" -eq "$ring_max" ]; then
        is_already "rx ring: $ring_max, the maximum (already)"
    elif err=$(apply ethtool -G "$iface" rx "$ring_max" 2>&1); then
        is_changed "rx ring: $ring_max, the maximum ($(would), was $ring_cur)"
    else
        is_failed "rx ring: FAILED to set $ring_max: $err"
    fi
else
    is_unsupported "rx ring: not supported"
fi

# Queues (RSS): one capture thread per queue; combined channels where the NIC has them, else
# RX channels. Left as they are unless --queues is given.
kind=""
if channels=$(ethtool -l "$iface" 2>/dev/null); then
    read -r q_max q_cur < <(table_pair "$channels" Combined)
    kind=combined
    if [ "$q_max" -eq 0 ]; then
        read -r q_max q_cur < <(table_pair "$channels" RX)
        kind=rx
    fi
    [ "$q_max" -gt 0 ] || kind=""
fi
if [ -z "$queues" ]; then
    if [ -n "$kind" ]; then
        say "queues: left as is ($kind $q_cur of at most $q_max)"
    else
        say "queues: left as is (not reported by the driver)"
    fi
elif [ -z "$kind" ]; then
    is_failed "queues: FAILED to set $queues: the driver does not report its channels"
elif [ "$queues" -gt "$q_max" ]; then
    is_failed "queues: FAILED to set $queues: at most $q_max $kind channels"
elif [ "$q_cur" -eq "$queues" ]; then
    is_already "queues: $kind $queues (already)"
elif err=$(apply ethtool -L "$iface" "$kind" "$queues" 2>&1); then
    is_changed "queues: $kind $queues ($(would), was $q_cur)"
else
    is_failed "queues: FAILED to set $kind $queues: $err"
fi

summary="$changed changed, $already already set, $unsupported not supported, $failed failed"
if [ "$dry_run" -eq 1 ]; then
    summary="$changed to change (dry run), $already already set, $unsupported not supported, $failed failed"
fi
echo "nic-prepare: $iface: $summary"
[ "$failed" -eq 0 ]
