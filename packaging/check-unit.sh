#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks the packaged systemd unit offline: `systemd-analyze verify` (the unit's syntax,
# that ExecStart's binary and the Documentation= man pages exist) and `systemd-analyze
# security --offline=yes` (the exposure score, lower is better). The package is unpacked
# into a temporary tree and laid over /usr/sbin and /usr/share/man inside a private mount
# namespace, so nothing is installed on this machine.
#   packaging/check-unit.sh [DEB]     default: build-deb/<this arch>/ferrymq_*.deb
# Prints "systemd-analyze security: N.N" last; exits non-zero when verify complains.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=$(dpkg --print-architecture)
deb=${1:-$(ls "$root"/build-deb/"$arch"/ferrymq_*_"$arch".deb | head -n1)}
tree=$(mktemp -d /tmp/ferrymq-unit-XXXXXX)
trap 'rm -rf "$tree"' EXIT
dpkg-deb -x "$deb" "$tree"
unit="$tree/lib/systemd/system/ferrymq.service"

unshare --mount sh -euc '
    tree=$1 unit=$2
    mount -t overlay overlay -o lowerdir="$tree/usr/sbin:/usr/sbin" /usr/sbin
    mount -t overlay overlay -o lowerdir="$tree/usr/share/man:/usr/share/man" /usr/share/man
    echo "== systemd-analyze verify ferrymq.service"
    systemd-analyze verify "$unit"
    echo "verify: ok"
    echo "== systemd-analyze security --offline=yes ferrymq.service"
    systemd-analyze security --offline=yes --no-pager "$unit" >"$tree/security.txt"
    grep -F "✗" "$tree/security.txt" || true
    score=$(sed -n "s/.*Overall exposure level for ferrymq.service: \([0-9.]*\).*/\1/p" \
        "$tree/security.txt")
    echo "systemd-analyze security: $score"
' sh "$tree" "$unit"
