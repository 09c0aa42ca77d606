#!/usr/bin/env bash
# Installs the Debian 12 system packages Vigil builds and tests with. Idempotent: packages
# already present are left alone, and apt is only asked when something is missing.
set -euo pipefail

packages=(
    build-essential pkg-config clang
    # m4: libxdp (AF_XDP capture) builds its BPF program at cargo build time
    m4
    libpcap-dev libhyperscan-dev libelf-dev zlib1g-dev libpcre2-dev
    # tests and benchmarks: peak-RSS measurement, result summaries
    time python3
    # live capture: namespaces and veth pairs, traffic replay, NIC preparation, metrics scraping
    iproute2 tcpreplay ethtool prometheus
    # upstream delivery tests: a private rsyslogd with the GnuTLS stream driver (imtcp gtls),
    # and a nats-server with JetStream
    rsyslog rsyslog-gnutls nats-server
    # active response: firewall blocks in an nftables table Vigil owns
    nftables
)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} system packages present"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
