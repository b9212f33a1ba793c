#!/usr/bin/env bash
# Measures coslocal read throughput on loopback (one reader, parallel ranged GETs) over
# plain HTTP and HTTPS, and with SSE-C, and prints a table per configuration.
# Usage: scripts/bench-coslocal.sh [SIZE_MIB] [PARALLEL] [RANGE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-1024}"
PAR="${2:-8}"
RANGE="${3:-8}"
cargo build --release -p coslocal --example coslocal_throughput >/dev/null
BIN=target/release/examples/coslocal_throughput
echo "## coslocal throughput ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
"$BIN" --size-mib "$SIZE" --parallel "$PAR" --range-mib "$RANGE" --rounds 3
echo
"$BIN" --size-mib "$SIZE" --parallel "$PAR" --range-mib "$RANGE" --rounds 3 --sse-c
