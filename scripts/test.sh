#!/usr/bin/env bash
# The one command that runs the whole cosmount test suite on a fresh Debian machine, as root:
# system packages (fuse3 for the kernel-level mount tests, a C compiler for ring, python3-venv
# for the SDK interop tests, rsync, restic, borg, git and sqlite3 for the tool tests), pjdfstest
# (cargo install) and the user it switches to, the Python venv, the binaries, every cargo test (unit, in-process,
# and real FUSE mounts over coslocal HTTPS), then the pytest interop suite.
# Exits non-zero if anything failed; keeps going after a failure so one run shows everything.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
START=$(date +%s)
FAILED=()

step() { printf '\n==> %s\n' "$*"; }

# Mount tests must fail, not skip, when FUSE is missing: this suite is the CI.
export CI="${CI:-1}"

step "system packages"
need=()
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
# The backup and data tools tests/mount/backup_tools.rs runs through a mount.
command -v restic >/dev/null 2>&1 || need+=(restic)
command -v borg >/dev/null 2>&1 || need+=(borgbackup)
command -v git >/dev/null 2>&1 || need+=(git)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v curl >/dev/null 2>&1 || need+=(curl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[ -e /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages ${need[*]} and not root: install them first" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}" || {
        echo "apt-get install ${need[*]} failed" >&2
        exit 1
    }
else
    echo "fuse3, a C compiler, python3-venv and the tools the tests drive are already installed"
fi
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
[ -e /dev/fuse ] || echo "WARNING: /dev/fuse is missing: the mount tests will fail" >&2

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "cargo not found: install a Rust toolchain >= 1.80 (rustup) first" >&2
        exit 1
    fi
fi
cargo --version

step "pjdfstest and the users it switches to"
# tests/mount/pjdfstest.rs runs the POSIX suite through a mount; it switches to nobody
# (group nogroup, Debian's) and to tests:tests.
if [ "$(id -u)" -eq 0 ]; then
    getent group tests >/dev/null || groupadd tests
    getent passwd tests >/dev/null || useradd -M -g tests -s /usr/sbin/nologin tests
fi
export PJDFSTEST_BIN="$ROOT/target/tools/bin/pjdfstest"
if [ ! -x "$PJDFSTEST_BIN" ]; then
    cargo install pjdfstest --version 0.2.2 --locked --root "$ROOT/target/tools" --quiet ||
        FAILED+=("cargo install pjdfstest")
fi

step "python venv with the COS SDK (scripts/setup-python.sh)"
if bash scripts/setup-python.sh; then
    export COSMOUNT_PYTHON="$ROOT/.venv/bin/python"
    export PATH="$ROOT/.venv/bin:$PATH"
else
    FAILED+=("setup-python")
fi

step "cargo build --bins"
if ! cargo build --bins; then
    echo "build failed" >&2
    exit 1
fi
export COSLOCAL_BIN="$ROOT/target/debug/coslocal"
export COSMOUNT_BIN="$ROOT/target/debug/cosmount"

step "Debian package (scripts/build-deb.sh: release build, then dpkg-deb)"
# tests/mount/cli.rs installs it with dpkg, mounts with the installed binary and purges it.
bash scripts/build-deb.sh || FAILED+=("build-deb")

step "cargo test (unit, integration, kernel-level mounts)"
cargo test --no-fail-fast 2>&1 | tee target/test-output.txt
[ "${PIPESTATUS[0]}" -eq 0 ] || FAILED+=("cargo test")

step "pytest interop suite"
if [ -x .venv/bin/pytest ] && ls tests/interop/test_*.py >/dev/null 2>&1; then
    .venv/bin/pytest tests/interop -q 2>&1 | tee target/pytest-output.txt
    [ "${PIPESTATUS[0]}" -eq 0 ] || FAILED+=("pytest")
else
    echo "no venv pytest or no tests/interop/test_*.py" >&2
    FAILED+=("pytest (not run)")
fi

# Leftover mounts from crashed tests would break the next run.
grep -E ' fuse(\.cosmount)? ' /proc/mounts | awk '{print $2}' | grep -E '/cosmount-' | while read -r m; do
    echo "stale mount $m: unmounting" >&2
    fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
done

step "summary ($(( $(date +%s) - START ))s)"
# One line per test binary, then every failing test by name.
grep -E '^ +(Running|Doc-tests) |^test result: ' target/test-output.txt | paste - - |
    sed -E 's/^ +(Running|Doc-tests) ([^(\t]+)[^\t]*\ttest result: /  \2: /' || true
grep -E '^test .* \.\.\. FAILED$' target/test-output.txt | sed 's/^/  /' || true
# One closing tally over cargo and pytest.
passed=$(grep -hoE '^test result: .* ([0-9]+) passed' target/test-output.txt | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -hoE '^test result: .* ([0-9]+) failed' target/test-output.txt | grep -oE '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
py_passed=$(grep -hoE '[0-9]+ passed' target/pytest-output.txt 2>/dev/null | tail -1 | awk '{print $1+0}')
py_failed=$(grep -hoE '[0-9]+ failed' target/pytest-output.txt 2>/dev/null | tail -1 | awk '{print $1+0}')
total_passed=$((passed + ${py_passed:-0}))
total_failed=$((failed + ${py_failed:-0}))
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED: ${FAILED[*]}"
    echo "$total_passed passed, $total_failed failed"
    exit 1
fi
echo "ALL PASSED"
echo "$total_passed passed, $total_failed failed"
