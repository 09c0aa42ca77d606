#!/usr/bin/env bash
# Runs Vigil's whole test suite (release build: the end-to-end tests replay real pcaps).
# Tests that need root or network namespaces skip with a message when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./appliance/install-deps.sh
cargo test --release --workspace "$@"
