#!/usr/bin/env bash
# Mounts a local COS-compatible bucket with SSE-C on DIR, in one command:
#   scripts/run-demo.sh /mnt/cos          start (or reuse) coslocal and the mount
#   scripts/run-demo.sh --stop /mnt/cos   unmount (pending uploads first), stop coslocal
# Builds the release binaries (cargo's progress shown: the first build takes minutes),
# starts coslocal on loopback (HTTPS with a self-signed CA, generated credentials) unless it
# already runs, generates an SSE-C key file (0600, kept across runs: losing it loses the
# data), then mounts. Re-running is safe: an existing coslocal and an existing mount are
# reused. State (objects, keys, credentials, logs, staging) lives in $COSMOUNT_DEMO_STATE
# (default /var/tmp/cosmount-demo); --stop keeps it, delete the directory to start afresh.
set -euo pipefail
stop=no
if [ "${1:-}" = --stop ]; then
    stop=yes
    shift
fi
if [ $# -ne 1 ]; then
    echo "usage: $0 [--stop] MOUNTPOINT" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
STATE="${COSMOUNT_DEMO_STATE:-/var/tmp/cosmount-demo}"
if [ "$stop" = yes ]; then
    MNT="$(cd "$1" 2>/dev/null && pwd || echo "$1")"
    if grep -qs " $MNT fuse" /proc/mounts; then
        echo "==> unmounting $MNT (uploads what is pending first)"
        fusermount3 -u "$MNT" || umount "$MNT"
    else
        echo "==> $MNT is not mounted"
    fi
    if [ -s "$STATE/coslocal.pid" ] && kill -0 "$(cat "$STATE/coslocal.pid")" 2>/dev/null; then
        echo "==> stopping coslocal (pid $(cat "$STATE/coslocal.pid"))"
        kill "$(cat "$STATE/coslocal.pid")"
    fi
    rm -f "$STATE/coslocal.pid"
    echo "stopped; state kept in $STATE"
    exit 0
fi
MNT="$(mkdir -p "$1" && cd "$1" && pwd)"
BUCKET="${COSMOUNT_DEMO_BUCKET:-demo-1250000000}"
PORT="${COSMOUNT_DEMO_PORT:-0}"
mkdir -p "$STATE/data" "$STATE/staging"
# The staging directory holds decrypted file contents: cosmount refuses one others can read.
chmod 700 "$STATE" "$STATE/staging"
umask 077

need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v cc >/dev/null || need+=(build-essential)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "missing ${need[*]}: install them (as root: apt-get install ${need[*]})" >&2
        exit 1
    fi
fi
command -v cargo >/dev/null || [ ! -x "$HOME/.cargo/bin/cargo" ] || export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "cargo missing: install a Rust toolchain (rustup) first" >&2; exit 1; }

echo "==> building release binaries (cargo build --release; minutes the first time)"
cargo build --release --bins
BIN="$ROOT/target/release"

# Secrets are generated once and never printed.
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
if [ ! -s "$STATE/credentials" ]; then
    echo "AKIDdemo$(rand_hex 8):$(rand_hex 20)" > "$STATE/credentials"
fi
if [ ! -s "$STATE/ssec.key" ]; then
    head -c 32 /dev/urandom | base64 > "$STATE/ssec.key"
fi
chmod 600 "$STATE/credentials" "$STATE/ssec.key"
echo "$BUCKET:$(cat "$STATE/credentials")" > "$STATE/passwd-cosfs"
chmod 600 "$STATE/passwd-cosfs"

coslocal_alive() { [ -s "$STATE/coslocal.pid" ] && kill -0 "$(cat "$STATE/coslocal.pid")" 2>/dev/null; }
endpoint() { sed -n 's/^coslocal ready .*endpoint=\([^ ]*\).*/\1/p' "$STATE/coslocal.out" | tail -1; }

if coslocal_alive && [ -n "$(endpoint)" ]; then
    echo "==> coslocal already running (pid $(cat "$STATE/coslocal.pid"))"
else
    echo "==> starting coslocal"
    : > "$STATE/coslocal.out"
    nohup "$BIN/coslocal" --data-dir "$STATE/data" --bucket "$BUCKET" \
        --listen "127.0.0.1:$PORT" --tls-self-signed --ca-out "$STATE/ca.pem" \
        --credentials-file "$STATE/credentials" --request-log "$STATE/requests.jsonl" \
        >"$STATE/coslocal.out" 2>"$STATE/coslocal.log" </dev/null &
    echo $! > "$STATE/coslocal.pid"
    for _ in $(seq 1 100); do
        [ -n "$(endpoint)" ] && break
        coslocal_alive || { echo "coslocal exited:" >&2; cat "$STATE/coslocal.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$(endpoint)" ] || { echo "coslocal did not become ready" >&2; exit 1; }
fi
URL="$(endpoint)"

if grep -qs " $MNT fuse" /proc/mounts; then
    echo "==> $MNT is already mounted"
else
    echo "==> mounting $BUCKET on $MNT (SSE-C)"
    "$BIN/cosmount" "$BUCKET" "$MNT" -o "url=$URL,passwd_file=$STATE/passwd-cosfs,ca_file=$STATE/ca.pem,use_sse=custom:$STATE/ssec.key,staging_dir=$STATE/staging,logfile=$STATE/cosmount.log"
fi

cat <<INFO

cosmount demo is live.
  bucket      $BUCKET at $URL (coslocal, pid $(cat "$STATE/coslocal.pid"), data in $STATE/data)
  mountpoint  $MNT, every object encrypted with the SSE-C key in $STATE/ssec.key
Try:
  echo hello > $MNT/hello.txt && ls -l $MNT && cat $MNT/hello.txt
  tail -f $STATE/requests.jsonl     # every COS request, with its SSE headers
  cat $STATE/cosmount.log           # the mount's log (quiet while all is well)
Stop:
  $0 --stop $MNT     (state stays in $STATE)
INFO
