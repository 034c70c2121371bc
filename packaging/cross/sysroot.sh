#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Prepares a cross build of ferrymq for ARCH (arm64) on an amd64 Debian 12 machine and
# prints the path of the meson cross file to use (meson setup --cross-file, or
# DH_MESON_CROSS_FILE for the package build).
#   packaging/cross/sysroot.sh [arm64]
# - Installs the cross toolchain and qemu-user, and the target's runtime libraries, which
#   are Multi-Arch: same and install beside the amd64 ones (dpkg-shlibdeps needs them to
#   compute the package's dependencies).
# - Unpacks the target's -dev and runtime packages into build-deb/sysroot-ARCH with
#   `apt-get download` and `dpkg -x`. Nothing -dev is installed for ARCH: libyaml-cpp-dev
#   is not Multi-Arch: same, and installing its arm64 build would remove the amd64 one.
# - Writes build-deb/ARCH.ini: the sysroot constant followed by packaging/cross/ARCH.ini.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
arch=${1:-arm64}
case $arch in
arm64) triplet=aarch64-linux-gnu ;;
*) echo "sysroot.sh: only arm64 is supported (armhf: see packaging/README.md)" >&2; exit 2 ;;
esac

# Everything the build links against and the tests load, for the target.
dev_packages=(libyaml-cpp-dev libuv1-dev libsqlite3-dev libmbedtls-dev)
runtime_packages=(libyaml-cpp0.7 libuv1 libsqlite3-0 libmbedtls14 libmbedx509-1 libmbedcrypto7
    libstdc++6 libgcc-s1 libc6)

sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive

{
    if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        "${sudo[@]}" dpkg --add-architecture "$arch"
        "${sudo[@]}" apt-get update -qq
    fi
    wanted=(crossbuild-essential-"$arch" qemu-user-static debhelper fakeroot)
    for p in "${runtime_packages[@]}"; do
        wanted+=("$p:$arch")
    done
    missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}"
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi

    sysroot="$root/build-deb/sysroot-$arch"
    # The package versions of the target libraries: the sysroot is rebuilt when they change.
    wanted_list=$(for p in "${dev_packages[@]}" "${runtime_packages[@]}"; do
        apt-cache policy "$p:$arch" | sed -n "s/^  Candidate: /$p /p"
    done)
    if [ ! -f "$sysroot/.packages" ] || [ "$(cat "$sysroot/.packages")" != "$wanted_list" ]; then
        echo "unpacking the $arch sysroot into $sysroot"
        rm -rf "$sysroot"
        mkdir -p "$sysroot/debs"
        (cd "$sysroot/debs" && apt-get download -qq \
            $(printf '%s:'"$arch"' ' "${dev_packages[@]}" "${runtime_packages[@]}"))
        for deb in "$sysroot"/debs/*.deb; do
            dpkg -x "$deb" "$sysroot"
        done
        rm -rf "$sysroot/debs"
        echo "$wanted_list" >"$sysroot/.packages"
    fi

    cross_file="$root/build-deb/$arch.ini"
    {
        echo "[constants]"
        echo "sysroot = '$sysroot'"
        echo
        cat "$root/packaging/cross/$arch.ini"
    } >"$cross_file"
    # The tests run through the exe_wrapper: check it works before a build relies on it.
    if ! qemu-"${triplet%%-*}"-static -L "$sysroot" "$sysroot/usr/bin/ldd" --help >/dev/null 2>&1 &&
        ! qemu-"${triplet%%-*}"-static -L "$sysroot" "$sysroot/lib/$triplet/libc.so.6" >/dev/null; then
        echo "sysroot.sh: qemu-${triplet%%-*}-static cannot run $arch code from $sysroot" >&2
        exit 1
    fi
} >&2
echo "$cross_file"
