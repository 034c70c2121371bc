#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the arm64 ferrymq from the package under qemu-user on an amd64 machine: the smoke
# tests (tests/integration/test_61_smoke.py: start, a publish/subscribe round trip, a bridge
# round trip through a local Mosquitto, a graceful stop) and the service tests
# (test_62_service.py: sd_notify, watchdog, SIGHUP, journal lines).
#   packaging/cross/smoke-test.sh [DEB]     default: build-deb/arm64/ferrymq_*_arm64.deb
# Needs packaging/build-deb.sh --arch arm64 first (it builds the sysroot qemu loads the
# libraries from), plus python3-pytest, python3-paho-mqtt and mosquitto.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
deb=${1:-$(ls "$root"/build-deb/arm64/ferrymq_*_arm64.deb | head -n1)}
sysroot="$root/build-deb/sysroot-arm64"
work="$root/build-deb/smoke-arm64"
rm -rf "$work"
mkdir -p "$work/root"
dpkg-deb -x "$deb" "$work/root"
binary="$work/root/usr/sbin/ferrymq"
file "$binary" | grep -q 'ARM aarch64' || { echo "$binary is not an arm64 binary" >&2; exit 1; }

# The tests start FERRYMQ_BIN like the broker itself; exec keeps the PID the broker's, and
# qemu-user hands signals on to the emulated process.
cat >"$work/ferrymq" <<WRAPPER
#!/bin/sh
exec qemu-aarch64-static -L "$sysroot" "$binary" "\$@"
WRAPPER
chmod +x "$work/ferrymq"
"$work/ferrymq" --version

cd "$root/tests/integration"
# Emulation makes start-up and every exchange slower: allow more time per wait.
FERRYMQ_BIN="$work/ferrymq" FERRYMQ_TEST_TIMEOUT=30 /usr/bin/python3 -m pytest -q \
    -p no:cacheprovider test_61_smoke.py test_62_service.py \
    --junitxml="$work/smoke.xml" -o junit_suite_name=smoke-arm64
