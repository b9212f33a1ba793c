#!/usr/bin/env bash
# Benchmark of cosmount over coslocal on loopback (HTTPS, release build, --latency-ms 10):
#   1. sequential write of a SIZE file through the mount (dd, fsync) vs the same multipart
#      upload done directly by CosHttpClient (examples/direct_transfer.rs) with the same
#      part size and parallelism; ratio mount/direct (target >= 0.8);
#   2. sequential read of it after a remount and a page-cache drop vs parallel ranged GETs
#      (also after a page-cache drop); write and read rounds alternate mount/direct and are
#      repeated (BENCH_REPEAT, default 3, quick 1); the best round of each side counts;
#   3. `ls -l` of a directory of NFILES objects after a remount: time (target < 10 s) and
#      requests (coslocal /stats, else request log);
#   4. four parallel readers of different files (after a remount and a page-cache drop);
#   5. random reads: RAND_READS 4 KiB preads at random offsets of a RAND_MIB file (after a
#      remount and a page-cache drop): time, GETs and bytes fetched (issue 10's targets:
#      <= 1.2x the file when it fits the cache, <= 128 KiB a read when it does not);
#   6. rsync -a of SMALL_FILES 4 KiB files into the mount, then again after a remount:
#      time and requests per file by operation (target: <= 4 a new file);
#   7. peak RSS of the cosmount daemon over all of it (VmHWM, target: memory_limit + 64 MiB).
# Prints a table and saves it to scripts/results/bench-<timestamp>[-quick].txt.
# Usage: scripts/bench.sh [--quick]      (quick: 64 MiB file, 1000 objects)
# Env: BENCH_SIZE_MIB, BENCH_NFILES, BENCH_REPEAT, BENCH_PART_MIB, BENCH_PARALLEL, BENCH_LATENCY_MS,
# BENCH_MEMORY_MIB (the mount's memory_limit, default 256), BENCH_RAND_MIB, BENCH_RAND_READS,
# BENCH_SMALL_FILES;
# BENCH_KEEP=1 keeps the work dir (request log, daemon log) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
SIZE_MIB=${BENCH_SIZE_MIB:-$([ $QUICK = 1 ] && echo 64 || echo 1024)}
NFILES=${BENCH_NFILES:-$([ $QUICK = 1 ] && echo 1000 || echo 10000)}
PART_MIB=${BENCH_PART_MIB:-8}
REPEAT=${BENCH_REPEAT:-$([ $QUICK = 1 ] && echo 1 || echo 3)}
PARALLEL=${BENCH_PARALLEL:-8}
LATENCY_MS=${BENCH_LATENCY_MS:-10}
MEMORY_MIB=${BENCH_MEMORY_MIB:-256}
RAND_MIB=${BENCH_RAND_MIB:-256}
RAND_READS=${BENCH_RAND_READS:-$([ $QUICK = 1 ] && echo 1000 || echo 5000)}
SMALL_FILES=${BENCH_SMALL_FILES:-$([ $QUICK = 1 ] && echo 200 || echo 1000)}
BUCKET=bench-1250000000

echo "==> building release binaries and the direct-transfer example"
cargo build --release --bins --example direct_transfer --quiet
BIN="$ROOT/target/release"
DIRECT="$BIN/examples/direct_transfer"

WORK="$(mktemp -d /var/tmp/cosmount-bench.XXXXXX)"
MNT="$WORK/mnt"
mkdir -p "$MNT" "$WORK/data"
# The staging directory must be private (cosmount refuses it otherwise).
mkdir -m 700 "$WORK/staging"
COSLOCAL_PID=""
MOUNT_PID=""
cleanup() {
    if grep -qs " $MNT fuse" /proc/mounts; then fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" || true; fi
    [ -n "$MOUNT_PID" ] && kill "$MOUNT_PID" 2>/dev/null || true
    [ -n "$COSLOCAL_PID" ] && kill "$COSLOCAL_PID" 2>/dev/null || true
    if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

umask 077
SID="AKIDbench$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
SKEY="$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
echo "$SID:$SKEY" > "$WORK/credentials"
echo "$BUCKET:$SID:$SKEY" > "$WORK/passwd"
CTL_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')

echo "==> coslocal (latency ${LATENCY_MS} ms)"
"$BIN/coslocal" --data-dir "$WORK/data" --bucket "$BUCKET" --listen 127.0.0.1:0 \
    --tls-self-signed --ca-out "$WORK/ca.pem" --credentials-file "$WORK/credentials" \
    --request-log "$WORK/requests.jsonl" --control-listen "127.0.0.1:$CTL_PORT" \
    --latency-ms "$LATENCY_MS" >"$WORK/coslocal.out" 2>"$WORK/coslocal.log" &
COSLOCAL_PID=$!
for _ in $(seq 1 100); do grep -q '^coslocal ready' "$WORK/coslocal.out" && break; sleep 0.1; done
URL=$(sed -n 's/^coslocal ready .*endpoint=\([^ ]*\).*/\1/p' "$WORK/coslocal.out")
[ -n "$URL" ] || { echo "coslocal did not start"; cat "$WORK/coslocal.log"; exit 1; }

requests() {
    # Total requests served: /stats if it has a total, else the request-log line count.
    local n
    n=$(curl -s "http://127.0.0.1:$CTL_PORT/stats" 2>/dev/null |
        python3 -c 'import json,sys
try:
    d=json.load(sys.stdin)
    t=d.get("requests", d.get("total_requests"))
    print(t if isinstance(t,int) else sum(v for v in (t or {}).values()) if isinstance(t,dict) else "")
except Exception: print("")' 2>/dev/null || true)
    [ -n "$n" ] && echo "$n" || wc -l < "$WORK/requests.jsonl"
}

mount_it() {
    "$BIN/cosmount" "$BUCKET" "$MNT" -f -o "url=$URL,passwd_file=$WORK/passwd,ca_file=$WORK/ca.pem,staging_dir=$WORK/staging,multipart_size=$PART_MIB,parallel_count=$PARALLEL,memory_limit=$MEMORY_MIB" \
        >>"$WORK/cosmount.log" 2>&1 &
    MOUNT_PID=$!
    for _ in $(seq 1 300); do grep -qs " $MNT fuse" /proc/mounts && return 0; sleep 0.1; done
    echo "mount failed"; cat "$WORK/cosmount.log"; exit 1
}
umount_it() {
    fusermount3 -u "$MNT"
    wait "$MOUNT_PID" 2>/dev/null || true
    MOUNT_PID=""
}
# Every transfer starts from the same memory state: page cache dropped and free memory
# compacted. Without it a side's speed depends on what the previous step left behind
# (coslocal's page-cache writes cost up to twice the kernel time on fragmented memory).
drop_caches() {
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    echo 1 > /proc/sys/vm/compact_memory 2>/dev/null || true
}
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$MOUNT_PID/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
mibps() { python3 -c "print(f'{$1 / max($2, 1e-9):.1f}')"; }
direct() { "$DIRECT" --url "$URL" --bucket "$BUCKET" --passwd-file "$WORK/passwd" --ca-file "$WORK/ca.pem" \
    --part-size $((PART_MIB * 1048576)) --parallel "$PARALLEL" "$@"; }
json_field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

PEAK=0
track_peak() { local h; h=$(hwm_kib); [ "${h:-0}" -gt "$PEAK" ] && PEAK=$h; true; }

# Mount and direct transfers alternate, round by round, so both sides see the same
# background load (the machine is shared); each side's best round is reported, every
# round's raw seconds are printed too. Every transfer starts after drop_caches, so
# coslocal reads its data files cold on both sides and writes into the same memory state.
W_MOUNT_ALL=""; W_DIRECT_ALL=""; R_MOUNT_ALL=""; R_DIRECT_ALL=""
for ROUND in $(seq 1 "$REPEAT"); do
    echo "==> round $ROUND/$REPEAT: sequential write ${SIZE_MIB} MiB through the mount"
    drop_caches
    mount_it
    T0=$(now)
    dd if=/dev/zero of="$MNT/big-$ROUND.bin" bs=1M count="$SIZE_MIB" conv=fsync status=none
    T1=$(now)
    track_peak
    W_MOUNT_ALL="$W_MOUNT_ALL $(elapsed "$T0" "$T1")"
    umount_it

    echo "==> round $ROUND/$REPEAT: the same upload directly with CosHttpClient"
    drop_caches
    J=$(direct upload "direct-$ROUND.bin" $((SIZE_MIB * 1048576)))
    W_DIRECT_ALL="$W_DIRECT_ALL $(json_field "$J" seconds)"

    echo "==> round $ROUND/$REPEAT: sequential read through the mount (after remount + drop_caches)"
    drop_caches
    mount_it
    T0=$(now)
    dd if="$MNT/big-$ROUND.bin" of=/dev/null bs=1M status=none
    T1=$(now)
    track_peak
    R_MOUNT_ALL="$R_MOUNT_ALL $(elapsed "$T0" "$T1")"
    umount_it

    echo "==> round $ROUND/$REPEAT: the same download directly (after drop_caches)"
    drop_caches
    J=$(direct download "direct-$ROUND.bin")
    R_DIRECT_ALL="$R_DIRECT_ALL $(json_field "$J" seconds)"
done
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" $1; }
W_MOUNT=$(best "$W_MOUNT_ALL"); W_DIRECT=$(best "$W_DIRECT_ALL")
R_MOUNT=$(best "$R_MOUNT_ALL"); R_DIRECT=$(best "$R_DIRECT_ALL")

echo "==> four parallel readers of different files (after remount + drop_caches)"
drop_caches
mount_it
# Up to four of the files the rounds left (a quick run leaves two).
READS=()
for f in big-1.bin direct-1.bin big-2.bin direct-2.bin big-3.bin direct-3.bin; do
    [ ${#READS[@]} -lt 4 ] && [ -e "$MNT/$f" ] && READS+=("$f")
done
T0=$(now)
PIDS=()
for f in "${READS[@]}"; do
    dd if="$MNT/$f" of=/dev/null bs=1M status=none & PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait "$p"; done
T1=$(now)
track_peak
PAR_N=${#PIDS[@]}
PAR_T=$(elapsed "$T0" "$T1")
umount_it

echo "==> ls -l of ${NFILES} objects"
direct populate "many/f" "$NFILES" >/dev/null
mount_it
BEFORE=$(requests)
LOG_BEFORE=$(wc -l < "$WORK/requests.jsonl")
T0=$(now)
ls -l "$MNT/many" > "$WORK/ls.out"
T1=$(now)
AFTER=$(requests)
# Which operations the listing cost, from the request log.
LS_OPS=$(tail -n +"$((LOG_BEFORE + 1))" "$WORK/requests.jsonl" | python3 -c 'import json,sys,collections
c=collections.Counter(json.loads(l)["op"] for l in sys.stdin if l.strip())
print(", ".join(f"{k} {v}" for k,v in c.most_common()))')
track_peak
LS_T=$(elapsed "$T0" "$T1")
LS_N=$(( $(wc -l < "$WORK/ls.out") - 1 ))
LS_REQ=$((AFTER - BEFORE))
umount_it

# Requests since request-log line $1: "total op1 n1, op2 n2 ..." and GET bytes.
ops_since() {
    tail -n +"$(($1 + 1))" "$WORK/requests.jsonl" | python3 -c 'import json,sys,collections
c=collections.Counter(); b=0
for l in sys.stdin:
    if not l.strip(): continue
    e=json.loads(l); c[e["op"]]+=1
    if e["op"]=="GetObject": b+=e.get("bytes_out") or 0
print(sum(c.values()), b, ", ".join(f"{k} {v}" for k,v in c.most_common()))'
}

echo "==> random reads: ${RAND_READS} x 4 KiB over a ${RAND_MIB} MiB file"
direct upload "random.bin" $((RAND_MIB * 1048576)) >/dev/null
drop_caches
mount_it
LOG_BEFORE=$(wc -l < "$WORK/requests.jsonl")
T0=$(now)
python3 - "$MNT/random.bin" "$RAND_READS" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
r = random.Random(7)
for _ in range(int(sys.argv[2])):
    os.pread(fd, 4096, r.randrange(0, size - 4096) & ~4095)
PY
T1=$(now)
track_peak
RAND_T=$(elapsed "$T0" "$T1")
read -r RAND_REQ RAND_BYTES RAND_OPS <<<"$(ops_since "$LOG_BEFORE")"
umount_it

echo "==> rsync -a of ${SMALL_FILES} small files, then again after a remount"
mkdir -p "$WORK/small"
python3 - "$WORK/small" "$SMALL_FILES" <<'PY'
import os, sys
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], f"f{i:05d}"), "wb") as f:
        f.write(os.urandom(4096))
PY
# One rsync on a fresh mount; sets ${1}_T (seconds), ${1}_REQ and ${1}_OPS.
rsync_round() {
    mount_it
    local log_before t0 t1 req ops
    log_before=$(wc -l < "$WORK/requests.jsonl")
    t0=$(now)
    rsync -a "$WORK/small/" "$MNT/small/"
    t1=$(now)
    read -r req _ ops <<<"$(ops_since "$log_before")"
    track_peak
    umount_it
    printf -v "${1}_T" '%s' "$(elapsed "$t0" "$t1")"
    printf -v "${1}_REQ" '%s' "$req"
    printf -v "${1}_OPS" '%s' "$ops"
}
rsync_round RS1
rsync_round RS2
per_file() { python3 -c "print(f'{$1 / $SMALL_FILES:.1f}')"; }

W_RATIO=$(python3 -c "print(f'{$W_DIRECT / $W_MOUNT:.2f}')")
R_RATIO=$(python3 -c "print(f'{$R_DIRECT / $R_MOUNT:.2f}')")
PEAK_MIB=$((PEAK / 1024))
verdict() { python3 -c "print('ok' if $1 else 'MISSED')"; }

STAMP=$(date -u +%Y%m%d-%H%M%S)
SUFFIX=""
[ $QUICK = 1 ] && SUFFIX="-quick"
OUT="$ROOT/scripts/results/bench-$STAMP$SUFFIX.txt"
mkdir -p "$ROOT/scripts/results"
{
    echo "cosmount benchmark $STAMP UTC  ($(nproc) cores; coslocal HTTPS loopback, latency ${LATENCY_MS} ms;"
    echo "file ${SIZE_MIB} MiB, multipart_size=${PART_MIB} MiB, parallel_count=${PARALLEL}, memory_limit=${MEMORY_MIB} MiB; ${NFILES} objects;"
    echo " transfers: best of ${REPEAT} alternating rounds per side, page cache dropped and memory compacted before each)"
    echo
    printf '%-28s %12s %12s %10s %8s\n' "measure" "mount" "direct" "ratio" "target"
    printf '%-28s %9s MiB/s %7s MiB/s %10s %8s\n' "sequential write" "$(mibps "$SIZE_MIB" "$W_MOUNT")" "$(mibps "$SIZE_MIB" "$W_DIRECT")" "$W_RATIO" "$(verdict "$W_RATIO >= 0.8")"
    printf '%-28s %9s MiB/s %7s MiB/s %10s %8s\n' "sequential read" "$(mibps "$SIZE_MIB" "$R_MOUNT")" "$(mibps "$SIZE_MIB" "$R_DIRECT")" "$R_RATIO" "$(verdict "$R_RATIO >= 0.8")"
    printf '%-28s %10ss %12s %10s %8s\n' "ls -l ($LS_N entries)" "$LS_T" "$LS_REQ req" "" "$(verdict "$LS_T < 10")"
    printf '%-28s %9s MiB/s %12s %10s %8s\n' "$PAR_N parallel readers" "$(mibps "$((SIZE_MIB * PAR_N))" "$PAR_T")" "" "" ""
    printf '%-28s %10ss %12s %10s %8s\n' "random 4 KiB reads ($RAND_READS)" "$RAND_T" "$RAND_REQ req" "" ""
    printf '%-28s %8s MiB %12s %10s %8s\n' "  fetched (file ${RAND_MIB} MiB)" "$((RAND_BYTES / 1048576))" "" "" ""
    printf '%-28s %10ss %12s %10s %8s\n' "rsync -a $SMALL_FILES new files" "$RS1_T" "$RS1_REQ req" "$(per_file "$RS1_REQ")/file" "$(verdict "$RS1_REQ <= 4 * $SMALL_FILES")"
    printf '%-28s %10ss %12s %10s %8s\n' "  again after a remount" "$RS2_T" "$RS2_REQ req" "$(per_file "$RS2_REQ")/file" ""
    printf '%-28s %8s MiB %12s %10s %8s\n' "peak RSS (VmHWM)" "$PEAK_MIB" "limit+64" "" "$(verdict "$PEAK_MIB <= $MEMORY_MIB + 64")"
    echo
    echo "raw seconds per round: write mount=[${W_MOUNT_ALL# }] direct=[${W_DIRECT_ALL# }];"
    echo "                       read mount=[${R_MOUNT_ALL# }] direct=[${R_DIRECT_ALL# }]"
    echo "ls -l requests by operation: $LS_OPS"
    echo "random reads by operation: $RAND_OPS"
    echo "rsync requests by operation: first run $RS1_OPS; second run $RS2_OPS"
} | tee "$OUT"
echo "saved to $OUT"
