#!/usr/bin/env bash
# First run on a fresh machine: installs the system packages, builds Vigil, and replays the
# bundled sample with the bundled rules, printing the run summary and writing out/eve.json.
set -euo pipefail
cd "$(dirname "$0")/.."

./appliance/install-deps.sh
cargo build --release --bin vigil
mkdir -p out
rm -f out/eve.json
./target/release/vigil replay samples/sample.pcap --rules samples/sample.rules --eve-dir out
python3 - out/eve.json <<'PY' 2>/dev/null || true
import collections, json, sys
counts = collections.Counter(json.loads(l)["event_type"] for l in open(sys.argv[1]))
print("events in %s: %s" % (sys.argv[1], ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
PY
