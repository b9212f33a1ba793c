#!/usr/bin/env bash
# Builds the Debian package: target/debian/cosmount_<version>_<arch>.deb, holding the
# stripped release binaries (/usr/bin/cosmount, /usr/bin/coslocal), the man pages
# cosmount(8) and coslocal(1), the systemd template unit (/lib/systemd/system), a
# logrotate snippet (/etc/logrotate.d/cosmount) and examples under
# /usr/share/doc/cosmount. Needs cargo and dpkg-deb (Debian's dpkg).
#
#     scripts/build-deb.sh            # builds the release binaries first
#     scripts/build-deb.sh --no-build # packages target/release as it is
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
if [ "${1:-}" != --no-build ]; then
    echo "==> cargo build --release -p cosmount -p coslocal"
    (cd "$root" && cargo build --release -p cosmount -p coslocal)
fi
build=$target/release
for b in cosmount coslocal; do
    [ -x "$build/$b" ] || { echo "build-deb: $build/$b missing" >&2; exit 1; }
done
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }

version=$("$build/cosmount" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$target/debian/stage
out=$target/debian/cosmount_${version}_${arch}.deb
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"

. "$root/packaging/stage.sh"
stage_files "$stage" /usr /lib/systemd/system "$build" > /dev/null
install -d -m 0755 "$stage/etc/logrotate.d"
install -m 0644 "$root/packaging/logrotate.cosmount" "$stage/etc/logrotate.d/cosmount"
install -d -m 0755 "$stage/usr/share/doc/cosmount"
cat > "$stage/usr/share/doc/cosmount/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cosmount
Files: *
License: see the repository this package was built from
COPY

installed_kib=$(du -sk --exclude=DEBIAN "$stage" | awk '{print $1}')
cat > "$stage/DEBIAN/control" <<CONTROL
Package: cosmount
Version: $version
Architecture: $arch
Maintainer: cosmount developers <cosmount@localhost>
Installed-Size: $installed_kib
Depends: fuse3, libc6
Recommends: ca-certificates
Section: utils
Priority: optional
Description: mount a Tencent Cloud COS bucket as a FUSE file system
 cosmount mounts a COS bucket (or a prefix of one) on Linux with cosfs's command line,
 streaming writes as multipart uploads, checking what it reads (CRC-64), and applying
 server-side encryption (SSE-COS, SSE-KMS, SSE-C) to every request. coslocal, a strict
 local COS-compatible server, is included for trying it without a cloud account.
CONTROL
echo /etc/logrotate.d/cosmount > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
POST
cat > "$stage/DEBIAN/postrm" <<'POST'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
POST
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" > /dev/null
echo "$out"
dpkg-deb --contents "$out" | awk '{print $1, $3, $6}'
