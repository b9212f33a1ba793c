#!/usr/bin/env bash
# Soak of the durability model (tests/support/model.rs): random schedules of create, write, pwrite,
# append, truncate, read, fsync, close, rename and unlink, with several handles per file,
# run while requests fail, each checked against a model of what was acknowledged.
#   1. in process: CosFs over the in-memory store behind FaultyClient (25 % of requests
#      fail after what retries would absorb: refusals, lost answers, cut bodies);
#   2. through the kernel: a FUSE mount over coslocal failing 10 % of requests with every
#      fault kind (503 SlowDown, 500, reset before acting, answer cut after acting),
#      2 ms latency, seeded.
# Prints one table per part and saves them to scripts/results/soak-<timestamp>.txt. Columns:
# ops; faults injected (coslocal's / FaultyClient's counters); transient faults absorbed
# (operations the client's retries saved, from the daemon's statistics line; one operation
# may absorb several faults; in process there are no retries); errors surfaced to the
# program; silent mismatches (must be 0); non-sticky errors (must be 0); file writes that
# succeeded (a file opened for writing, written, and closed without any error).
# Exits non-zero on any violation; the failing seeds are named (keep them as regressions
# in tests/fs/durability_model.rs / tests/mount/durability_model.rs).
#
# Usage: scripts/soak.sh [SEEDS] [OPS_PER_SEED] [MINUTES]
#   defaults: 20 seeds x 150 ops through the kernel within 30 minutes; 10x the seeds in
#   process. Needs root, /dev/fuse and fusermount3 (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-20}
OPS=${2:-150}
MINUTES=${3:-30}
FIRST=${SOAK_FIRST_SEED:-100}
mkdir -p scripts/results
OUT="scripts/results/soak-$(date +%Y%m%d-%H%M%S).txt"
export CI=1

{
    echo "# cosmount durability soak, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
    echo "# scripts/soak.sh $SEEDS $OPS $MINUTES (first seed $FIRST)"
    echo
    echo "## in process: $((SEEDS * 10)) seeds x $((OPS * 2)) ops, 25 % of requests fail"
} | tee "$OUT"
status=0
COSMOUNT_MODEL_SEEDS=$((SEEDS * 10)) COSMOUNT_MODEL_OPS=$((OPS * 2)) COSMOUNT_MODEL_FIRST_SEED=$((FIRST * 10)) \
    cargo test --release --quiet --test fs soak_in_process -- --ignored --nocapture \
    2>&1 | grep -E '^\||^seed |failing seeds' | tee -a "$OUT" || status=1
{
    echo
    echo "## through the kernel: $SEEDS seeds x $OPS ops, 10 % of requests fail, within $MINUTES min"
} | tee -a "$OUT"
COSMOUNT_MODEL_SEEDS=$SEEDS COSMOUNT_MODEL_OPS=$OPS COSMOUNT_MODEL_FIRST_SEED=$FIRST \
    COSMOUNT_MODEL_SECONDS=$((MINUTES * 60)) COSMOUNT_TEST_TIMEOUT=$((MINUTES * 60 + 600)) \
    cargo test --quiet --test mount soak_through_the_kernel -- --ignored --nocapture \
    2>&1 | grep -E '^\||^seed |time budget|panicked|violations|succeeded' | tee -a "$OUT" || status=1
# The grep above keeps the tables; the test's own exit status decides.
if grep -qE 'SILENT MISMATCH|NON-STICKY|failing seeds|panicked' "$OUT"; then status=1; fi
echo
echo "saved $OUT"
exit $status
