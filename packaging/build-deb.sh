#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the ferrymq Debian package from this checkout and checks it with lintian.
#   packaging/build-deb.sh              amd64 (the build machine's architecture)
#   packaging/build-deb.sh --arch arm64 cross build on amd64, unit tests under qemu-user
# The .deb, .buildinfo, .changes and lintian.txt land in build-deb/<arch>/. The source is
# copied there first (the files git knows plus new ones it does not ignore), with
# packaging/debian as debian/, so the checkout itself stays clean.
# Packages needed: debhelper lintian fakeroot dpkg-dev build-essential, the build
# dependencies in packaging/debian/control; for arm64 also what packaging/cross/sysroot.sh
# lists. Prints "lintian: N errors, M warnings" and exits non-zero on a lintian error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=$(dpkg --print-architecture)
while (($#)); do
    case $1 in
    --arch) arch=$2; shift 2 ;;
    *) echo "usage: packaging/build-deb.sh [--arch ARCH]" >&2; exit 2 ;;
    esac
done

# The package version must be the one the binary reports.
meson_version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$root/meson.build" | head -n1)
deb_version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
if [ "${deb_version%%-*}" != "$meson_version" ]; then
    echo "packaging/debian/changelog has $deb_version, meson.build $meson_version" >&2
    exit 1
fi

out="$root/build-deb/$arch"
src="$out/ferrymq-$meson_version"
rm -rf "$out"
mkdir -p "$src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$src"
rm -rf "$src/debian"
cp -a "$root/packaging/debian" "$src/debian"

build_args=(-us -uc -b)
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
    # The cross file names the sysroot with the target's libraries and runs the unit tests
    # under qemu; -d because those libraries are not installed as build dependencies.
    cross_file=$("$root/packaging/cross/sysroot.sh" "$arch")
    export DH_MESON_CROSS_FILE=$cross_file
    # The cross file's exe_wrapper runs the target's binaries: tell debhelper so.
    export DEB_BUILD_OPTIONS="crossbuildcanrunhostbinaries ${DEB_BUILD_OPTIONS:-}"
    triplet=$(dpkg-architecture -a "$arch" -q DEB_HOST_GNU_TYPE 2>/dev/null)
    export CC=$triplet-gcc CXX=$triplet-g++
    build_args+=(-a "$arch" -d -Pcross)
fi

echo "== dpkg-buildpackage ${build_args[*]} (log: $out/build.log)"
if ! (cd "$src" && dpkg-buildpackage "${build_args[@]}") >"$out/build.log" 2>&1; then
    tail -n 40 "$out/build.log"
    echo "dpkg-buildpackage failed" >&2
    exit 1
fi
# What the test step ran (under qemu in a cross build), from meson's log.
testlog=$(ls "$src"/obj-*/meson-logs/testlog.json 2>/dev/null | head -n1 || true)
if [ -n "$testlog" ]; then
    grep -o '"command": \[[^]]*\]' "$testlog" || true
    grep -o '\[doctest\] test cases:[^\]*' "$testlog" || true
else
    echo "unit tests: not run (nocheck)"
fi

deb=$(ls "$out"/ferrymq_"$deb_version"_"$arch".deb)
echo "== $deb ($(du -k "$deb" | cut -f1) KiB)"
dpkg-deb --info "$deb" | grep -E 'Installed-Size|Depends' || true

echo "== lintian"
lintian --info --display-info --pedantic "$deb" "$out"/ferrymq_*.changes >"$out/lintian.txt" 2>&1 || true
cat "$out/lintian.txt"
errors=$(grep -c '^E: ' "$out/lintian.txt" || true)
warnings=$(grep -c '^W: ' "$out/lintian.txt" || true)
echo "lintian: $errors errors, $warnings warnings"
[ "$errors" = 0 ]
