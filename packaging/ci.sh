#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The package checks of CI, each recorded as a test case in JUnit XML for
# tests/summarize.py (scripts/dev test runs this when FERRYMQ_PACKAGES is set):
#   packaging/ci.sh RESULTS_DIR amd64 [arm64]
# amd64: the package built with dpkg-buildpackage (nocheck: scripts/dev test has run the
# unit tests already), lintian without errors, systemd-analyze verify and security.
# arm64: the cross-built package with its unit tests run under qemu-user, lintian, and the
# smoke and service tests against the packaged arm64 binary under qemu
# (packaging/cross/smoke-test.sh). Writes RESULTS_DIR/package-ARCH.xml per architecture
# (and smoke-arm64.xml); the exit status is 0 even when a check failed, the summary counts it.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
results=$1
shift
mkdir -p "$results"
export DEBIAN_FRONTEND=noninteractive

packages=(debhelper dpkg-dev fakeroot lintian build-essential adduser file)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# step SUITE NAME COMMAND...: runs COMMAND with its output in the log, records the case.
cases=""
step() {
    local suite=$1 name=$2
    shift 2
    local log="$root/build-deb/ci-$suite-${name// /-}.log"
    mkdir -p "$root/build-deb"
    local start=$SECONDS status=0
    echo "== $suite: $name"
    "$@" >"$log" 2>&1 || status=$?
    tail -n 5 "$log"
    local seconds=$((SECONDS - start))
    local body=""
    if [ "$status" != 0 ]; then
        echo "   FAILED ($status) after ${seconds}s; log: $log"
        body="<failure message=\"exit status $status; see $log\"/>"
    else
        echo "   ok (${seconds}s)"
    fi
    cases+="<testcase classname=\"$suite\" name=\"$name\" time=\"$seconds\">$body</testcase>"
    return "$status"
}

write_suite() {
    local suite=$1
    printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="%s">%s</testsuite>\n' \
        "$suite" "$cases" >"$results/$suite.xml"
    cases=""
}

for arch in "$@"; do
    case $arch in
    amd64)
        if DEB_BUILD_OPTIONS=nocheck step package-amd64 "dpkg-buildpackage and lintian" \
            "$root/packaging/build-deb.sh"; then
            step package-amd64 "systemd-analyze verify and security" "$root/packaging/check-unit.sh"
            grep -h "^lintian:\|^systemd-analyze security:" "$root"/build-deb/ci-package-amd64-*.log
        fi
        write_suite package-amd64
        ;;
    arm64)
        if step package-arm64 "cross dpkg-buildpackage, unit tests under qemu, lintian" \
            "$root/packaging/build-deb.sh" --arch arm64; then
            grep -h "^lintian:\|^\[doctest\] test cases" "$root"/build-deb/ci-package-arm64-*.log
            step package-arm64 "smoke tests under qemu" "$root/packaging/cross/smoke-test.sh"
            cp "$root/build-deb/smoke-arm64/smoke.xml" "$results/smoke-arm64.xml" 2>/dev/null
        fi
        write_suite package-arm64
        ;;
    *) echo "packaging/ci.sh: unknown architecture $arch" >&2 ;;
    esac
done
exit 0
