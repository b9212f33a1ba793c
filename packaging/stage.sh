# Shell functions shared by install.sh and scripts/build-deb.sh: where each installed
# file goes, in one place. Source it, then call
#
#     stage_files DESTDIR PREFIX UNITDIR BINDIR_OF_THE_BUILD
#
# which installs under DESTDIR (may be empty): PREFIX/bin/{cosmount,coslocal} (stripped),
# PREFIX/share/man/man8/cosmount.8.gz and man1/coslocal.1.gz (generated from the
# programs' --help), UNITDIR/cosmount@.service, and PREFIX/share/doc/cosmount/examples/.
# It prints every file it installed, one path per line (without DESTDIR): the manifest
# that uninstalling removes.

packaging_dir=$(cd "$(dirname "${BASH_SOURCE:-$0}")" && pwd)

# A man page: the header, the program's --help as unfilled text, the footer.
make_man() { # head tail program version out
    sed -e "s/@VERSION@/$4/" -e "s/@DATE@/$(date -u +%Y-%m-%d)/" "$1"
    "$3" --help | sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"
    cat "$2"
}

stage_files() {
    dest=$1 prefix=$2 unitdir=$3 build=$4
    version=$("$build/cosmount" --version | awk '{print $2}')
    install -d -m 0755 "$dest$prefix/bin" "$dest$prefix/share/man/man8" \
        "$dest$prefix/share/man/man1" "$dest$unitdir" "$dest$prefix/share/doc/cosmount/examples"
    for b in cosmount coslocal; do
        install -m 0755 "$build/$b" "$dest$prefix/bin/$b"
        strip --strip-unneeded "$dest$prefix/bin/$b" 2>/dev/null || true
        echo "$prefix/bin/$b"
    done
    make_man "$packaging_dir/man/cosmount.8.head" "$packaging_dir/man/cosmount.8.tail" \
        "$build/cosmount" "$version" | gzip -9n > "$dest$prefix/share/man/man8/cosmount.8.gz"
    echo "$prefix/share/man/man8/cosmount.8.gz"
    make_man "$packaging_dir/man/coslocal.1.head" "$packaging_dir/man/coslocal.1.tail" \
        "$build/coslocal" "$version" | gzip -9n > "$dest$prefix/share/man/man1/coslocal.1.gz"
    echo "$prefix/share/man/man1/coslocal.1.gz"
    sed "s#/usr/local/bin/cosmount#$prefix/bin/cosmount#" "$packaging_dir/cosmount@.service" \
        > "$dest$unitdir/cosmount@.service"
    chmod 0644 "$dest$unitdir/cosmount@.service"
    echo "$unitdir/cosmount@.service"
    for f in fstab.example passwd-cosfs.example mnt-cos.mount logrotate.cosmount README.md; do
        install -m 0644 "$packaging_dir/$f" "$dest$prefix/share/doc/cosmount/examples/$f"
        echo "$prefix/share/doc/cosmount/examples/$f"
    done
}
