#!/bin/sh
# Installs cosmount and coslocal from a release build, plus the systemd template and
# examples. Run from the repository after `cargo build --release`:
#
#     sudo packaging/install.sh [--prefix /usr/local] [--no-systemd]
#
# mount(8) support needs no symlink: `mount -t fuse.cosmount` (and fstab type
# fuse.cosmount) runs /sbin/mount.fuse3 from the fuse3 package, which executes
# `cosmount SOURCE MOUNTPOINT -o OPTIONS` through /bin/sh; mount(8) sets PATH to
# /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin for it, so the binary
# must be reachable there. This script checks that mount.fuse3 is present.
set -eu

prefix=/usr/local
systemd=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --no-systemd) systemd=no; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument '$1'" >&2; exit 1 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$root/target}/release

for bin in cosmount coslocal; do
    if [ ! -x "$target/$bin" ]; then
        echo "install.sh: $target/$bin not found; run 'cargo build --release' first" >&2
        exit 1
    fi
done

install -d -m 0755 "$prefix/bin" "$prefix/share/cosmount"
install -m 0755 "$target/cosmount" "$prefix/bin/cosmount"
install -m 0755 "$target/coslocal" "$prefix/bin/coslocal"
install -m 0644 "$here/fstab.example" "$here/passwd-cosfs.example" \
    "$here/cosmount@.service" "$prefix/share/cosmount/"
echo "installed $prefix/bin/cosmount and $prefix/bin/coslocal"

# mount.fuse3 finds the program through PATH; make sure a prefix outside the default
# PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) still works.
case "$prefix/bin" in
    /usr/local/bin|/usr/bin|/bin|/usr/local/sbin|/usr/sbin|/sbin) ;;
    *) ln -sf "$prefix/bin/cosmount" /usr/local/bin/cosmount
       echo "linked /usr/local/bin/cosmount -> $prefix/bin/cosmount (for mount.fuse3)" ;;
esac

if [ ! -x /sbin/mount.fuse3 ] && [ ! -x /usr/sbin/mount.fuse3 ]; then
    echo "warning: mount.fuse3 not found: install the fuse3 package (apt-get install fuse3)" \
         "for 'mount -t fuse.cosmount' and fstab entries" >&2
fi

if [ "$systemd" = yes ] && [ -d /etc/systemd/system ]; then
    sed "s#/usr/local/bin/cosmount#$prefix/bin/cosmount#" "$here/cosmount@.service" \
        > /etc/systemd/system/cosmount@.service
    chmod 0644 /etc/systemd/system/cosmount@.service
    install -d -m 0755 /etc/cosmount
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
    echo "installed /etc/systemd/system/cosmount@.service (configure /etc/cosmount/NAME.env)"
fi

if [ ! -e /etc/passwd-cosfs ]; then
    echo "next: put 'BUCKET-APPID:SecretId:SecretKey' in /etc/passwd-cosfs and chmod 600 it" \
         "(see $prefix/share/cosmount/passwd-cosfs.example)"
fi
