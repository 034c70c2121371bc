#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the ferrymq package into a Debian 12 tree and runs it under a real systemd, booted
# as PID 1 of its own PID, mount and network namespaces (a plain chroot cannot run the
# unit's sandboxing; systemd-nspawn is not available on these machines). Checks that the
# hardened Type=notify unit starts, reports its status, serves a publish/subscribe round
# trip on 127.0.0.1:1883 (inside its own network namespace), logs with journal priorities,
# survives a reload, is restarted by the watchdog when its loop is stuck, and stops cleanly.
#   packaging/systemd-test.sh [DEB]    default: build-deb/<this arch>/ferrymq_*.deb
# Needs root, debootstrap and the network to fetch the tree once (build-deb/systemd-root,
# reused; installing the package again over it is an upgrade). Prints "N passed, M failed".
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=$(dpkg --print-architecture)
deb=${1:-$(ls "$root"/build-deb/"$arch"/ferrymq_*_"$arch".deb | head -n1)}
tree="$root/build-deb/systemd-root"
work=$(mktemp -d /tmp/ferrymq-systemd-XXXXXX)
pid1=""

cleanup() {
    if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
        kill -KILL "$pid1" 2>/dev/null # PID 1 of the namespace: everything in it goes too
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$tree/lib/systemd/systemd" ]; then
    # The mirror this machine's apt uses.
    mirror=$(sed -n 's/^URIs: //p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list)
    echo "== debootstrap bookworm into $tree"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser,procps,mosquitto-clients,libuv1,libsqlite3-0,libyaml-cpp0.7,libmbedtls14 \
        bookworm "$tree" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -n 20 "$work/debootstrap.log"; exit 1; }
fi

echo "== dpkg -i $(basename "$deb") in the tree"
cp "$deb" "$tree/root/ferrymq.deb"
chroot "$tree" dpkg -i /root/ferrymq.deb >"$work/dpkg.log" 2>&1 ||
    { cat "$work/dpkg.log"; exit 1; }
# This run's journal only.
rm -rf "$tree/var/log/journal/"*
# A watchdog of 3 s instead of 30, so the test of a stuck loop is quick.
mkdir -p "$tree/etc/systemd/system/ferrymq.service.d"
printf '[Service]\nWatchdogSec=3s\n' >"$tree/etc/systemd/system/ferrymq.service.d/test.conf"

cat >"$work/boot.sh" <<'BOOT'
#!/bin/sh
set -e
root=$1
ip link set lo up
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs -o mode=755 tmpfs "$root/dev"
for d in null zero full random urandom tty ptmx; do
    touch "$root/dev/$d"
    mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
cd "$root"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
export container=ferrymq-test
exec /lib/systemd/systemd --system </dev/null
BOOT
chmod +x "$work/boot.sh"
unshare --pid --fork --mount --net --propagation private "$work/boot.sh" "$tree" \
    >"$work/console.log" 2>&1 &
unshare_pid=$!
for _ in $(seq 100); do
    pid1=$(pgrep -P "$unshare_pid" -x systemd || true)
    [ -n "$pid1" ] && break
    sleep 0.1
done
[ -n "$pid1" ] || { cat "$work/console.log"; echo "systemd did not start" >&2; exit 1; }
inside() { nsenter -t "$pid1" -m -p -n "$@"; }
for _ in $(seq 150); do
    state=$(inside systemctl is-system-running 2>/dev/null || true)
    case $state in running | degraded) break ;; esac
    sleep 0.2
done
echo "== systemd is $state"

passed=0
failed=0
check() {
    local name=$1
    shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "ok    $name"
    else
        failed=$((failed + 1))
        echo "FAIL  $name"
        echo "$out" | sed 's/^/      /' | tail -n 15
    fi
}
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
prop() { inside systemctl show -P "$1" ferrymq; }

check "enabled and active after boot (READY=1)" \
    wait_for 20 sh -c '[ "$(nsenter -t '"$pid1"' -m -p -n systemctl is-active ferrymq)" = active ]'
check "STATUS= shown by systemctl status" \
    sh -c "nsenter -t $pid1 -m -p -n systemctl status ferrymq --no-pager | grep -F 'Status: \"1 listener, 0 clients\"'"
check "runs as ferrymq, /var/lib/ferrymq 0750 with its database" sh -c "
    [ \"\$(nsenter -t $pid1 -m -p -n stat -c %U:%a /var/lib/ferrymq)\" = ferrymq:750 ] &&
    [ \"\$(nsenter -t $pid1 -m -p -n stat -c %U /var/lib/ferrymq/ferrymq.db)\" = ferrymq ] &&
    [ \"\$(nsenter -t $pid1 -m -p -n ps -o user= -p \$(nsenter -t $pid1 -m -p -n systemctl show -P MainPID ferrymq))\" = ferrymq ]"
check "publish/subscribe round trip on 127.0.0.1:1883" sh -c "
    nsenter -t $pid1 -m -p -n mosquitto_sub -h 127.0.0.1 -t smoke/# -C 1 -W 10 >$work/sub.out &
    sleep 1
    nsenter -t $pid1 -m -p -n mosquitto_pub -h 127.0.0.1 -t smoke/hello -m 'through systemd' -q 1
    wait \$!
    grep -qx 'through systemd' $work/sub.out"
check "journal: priorities from <N> prefixes, no timestamps of its own" sh -c "
    nsenter -t $pid1 -m -p -n journalctl -u ferrymq -o json --no-pager |
        /usr/bin/python3 -c '
import json, re, sys
lines = [json.loads(l) for l in sys.stdin if l.strip()]
own = [l for l in lines if l.get(\"SYSLOG_IDENTIFIER\") == \"ferrymq\"]
assert any(l[\"MESSAGE\"].startswith(\"listening on 127.0.0.1:1883\") and l[\"PRIORITY\"] == \"6\" for l in own), own
assert not any(re.match(r\"\\d{4}-\\d\\d-\\d\\dT\", l[\"MESSAGE\"]) or l[\"MESSAGE\"].startswith(\"<\") for l in own), own
'"
main_before=$(prop MainPID)
check "systemctl reload: SIGHUP, same process, still active" sh -c "
    nsenter -t $pid1 -m -p -n systemctl reload ferrymq &&
    sleep 1 &&
    nsenter -t $pid1 -m -p -n journalctl -u ferrymq --no-pager | grep -q 'received SIGHUP' &&
    [ \"\$(nsenter -t $pid1 -m -p -n systemctl show -P MainPID ferrymq)\" = $main_before ] &&
    [ \"\$(nsenter -t $pid1 -m -p -n systemctl is-active ferrymq)\" = active ]"
restarts=$(prop NRestarts)
check "a stuck loop (SIGSTOP) misses the watchdog and is restarted" bash -c "
    [ \"${main_before:-0}\" -gt 1 ] || { echo 'no main process'; exit 1; }
    nsenter -t $pid1 -m -p -n kill -STOP $main_before
    deadline=\$((SECONDS + 20))
    until [ \"\$(nsenter -t $pid1 -m -p -n systemctl show -P NRestarts ferrymq)\" -gt $restarts ] &&
          [ \"\$(nsenter -t $pid1 -m -p -n systemctl is-active ferrymq)\" = active ]; do
        [ \$SECONDS -lt \$deadline ] || exit 1
        sleep 0.5
    done
    nsenter -t $pid1 -m -p -n journalctl -u ferrymq --no-pager | grep -qi 'watchdog timeout'"
check "systemctl stop: STOPPING=1, exit status 0" sh -c "
    nsenter -t $pid1 -m -p -n systemctl stop ferrymq &&
    [ \"\$(nsenter -t $pid1 -m -p -n systemctl show -P Result ferrymq)\" = success ] &&
    [ \"\$(nsenter -t $pid1 -m -p -n systemctl show -P ExecMainStatus ferrymq)\" = 0 ]"
inside journalctl -u ferrymq --no-pager >"$root/build-deb/systemd-test-journal.txt" 2>&1 || true
echo "journal: build-deb/systemd-test-journal.txt"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
