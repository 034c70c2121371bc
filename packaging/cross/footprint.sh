#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Footprint of a ferrymq package: the stripped binary, the installed size, the broker's
# RSS idle and with 1,000 idle MQTT connections (`ferrymq bench --scenario idle`, run by
# the native build). An arm64 package runs under qemu-user: its RSS is that of the qemu
# process (the emulator's own code and translation cache included), indicative only.
#   packaging/cross/footprint.sh [DEB]    default: build-deb/arm64/ferrymq_*_arm64.deb
# Needs the native build (build/src/ferrymq, for the bench) and, for arm64, the sysroot of
# packaging/build-deb.sh --arch arm64.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
deb=${1:-$(ls "$root"/build-deb/arm64/ferrymq_*_arm64.deb | head -n1)}
bench="$root/build/src/ferrymq"
work=$(mktemp -d /tmp/ferrymq-footprint-XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

dpkg-deb -x "$deb" "$work/root"
binary="$work/root/usr/sbin/ferrymq"
arch=$(dpkg-deb -f "$deb" Architecture)
echo "package:        $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
echo "binary:         $(stat -c %s "$binary") bytes stripped ($(file -b "$binary" | cut -d, -f1,2))"
echo "installed size: $(dpkg-deb -f "$deb" Installed-Size) KiB (Installed-Size)"

run=("$binary")
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
    run=(qemu-aarch64-static -L "$root/build-deb/sysroot-$arch" "$binary")
fi
"${run[@]}" --listen 127.0.0.1:0 --data-dir "$work/data" 2>"$work/log" &
pid=$!
for _ in $(seq 300); do
    grep -q "listening on" "$work/log" && break
    sleep 0.1
done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/log")
[ -n "$port" ] || { cat "$work/log"; echo "the broker did not start" >&2; exit 1; }
sleep 2 # settle: the store's first commit, the first tick
echo "idle RSS:       $(awk '/^VmRSS/ {print $2}' /proc/$pid/status) kB$(
    [ ${#run[@]} -gt 1 ] && echo " (qemu-user process: indicative only)")"
"$bench" bench --scenario idle --clients 1000 --duration 5 --port "$port" --broker-pid "$pid"
echo "RSS after they closed: $(awk '/^VmRSS/ {print $2}' /proc/$pid/status) kB"
