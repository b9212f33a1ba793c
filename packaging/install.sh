#!/bin/sh
# Installs cosmount and coslocal from a release build, with man pages, the systemd
# template unit and examples. Run from the repository after `cargo build --release`:
#
#     sudo packaging/install.sh [--prefix DIR] [--destdir DIR]    (or PREFIX=, DESTDIR=)
#     sudo packaging/install.sh --uninstall [--prefix DIR] [--destdir DIR]
#
# Everything goes under DESTDIR/PREFIX (default /usr/local): PREFIX/bin, PREFIX/share/man,
# PREFIX/lib/systemd/system/cosmount@.service (systemd reads /usr/local/lib/systemd/system),
# PREFIX/share/doc/cosmount/examples; nothing is written anywhere else. The list of
# installed files is kept in PREFIX/share/cosmount/manifest for --uninstall.
#
# mount(8) runs the helper with PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:
# /sbin:/bin, so for `mount -t fuse.cosmount` and fstab the binary must be in one of those
# directories (the default prefix is); the fuse3 package provides /sbin/mount.fuse3.
set -eu

prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}
action=install
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --destdir) destdir=$2; shift 2 ;;
        --destdir=*) destdir=${1#--destdir=}; shift ;;
        --uninstall) action=uninstall; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument '$1'" >&2; exit 1 ;;
    esac
done
case "$prefix" in
    /*) ;;
    *) echo "install.sh: --prefix must be an absolute path, not '$prefix'" >&2; exit 1 ;;
esac
manifest="$destdir$prefix/share/cosmount/manifest"

if [ "$action" = uninstall ]; then
    if [ ! -f "$manifest" ]; then
        echo "install.sh: $manifest not found: nothing installed under $destdir$prefix" >&2
        exit 1
    fi
    while IFS= read -r f; do
        rm -f "$destdir$f"
    done < "$manifest"
    rm -f "$manifest"
    for d in "$prefix/share/cosmount" "$prefix/share/doc/cosmount/examples" \
             "$prefix/share/doc/cosmount"; do
        rmdir "$destdir$d" 2>/dev/null || true
    done
    echo "removed cosmount from $destdir$prefix"
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${CARGO_TARGET_DIR:-$root/target}/release
for bin in cosmount coslocal; do
    if [ ! -x "$build/$bin" ]; then
        echo "install.sh: $build/$bin not found; run 'cargo build --release' first" >&2
        exit 1
    fi
done

. "$here/stage.sh"
list=$(stage_files "$destdir" "$prefix" "$prefix/lib/systemd/system" "$build")
install -d -m 0755 "$destdir$prefix/share/cosmount"
printf '%s\n' "$list" "$prefix/share/cosmount/manifest" > "$manifest"
echo "installed under $destdir$prefix:"
printf '  %s\n' $list

case "$prefix/bin" in
    /usr/local/bin|/usr/bin|/bin|/usr/local/sbin|/usr/sbin|/sbin) ;;
    *) echo "note: $prefix/bin is not on mount(8)'s PATH: 'mount -t fuse.cosmount' and fstab" \
            "need cosmount in /usr/local/bin, /usr/bin or /bin (link it there yourself)" ;;
esac
if [ ! -x /sbin/mount.fuse3 ] && [ ! -x /usr/sbin/mount.fuse3 ]; then
    echo "note: mount.fuse3 not found: install the fuse3 package (apt-get install fuse3)" \
         "for 'mount -t fuse.cosmount' and fstab entries"
fi
