#!/usr/bin/env bash
# Runs Vigil's whole test suite (release build: the end-to-end tests replay real pcaps).
# Tests that need root or network namespaces skip with a message when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./appliance/install-deps.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo's own last line is often an empty doc-test run).
awk '/^test result:/ { p += $4; f += $6; s += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
