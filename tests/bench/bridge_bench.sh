#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures a bridge's store-and-forward path (issue #6): QoS 1 ingest into the durable bridge
# queue while the upstream is down, the drain of that backlog to Mosquitto once it is up
# (against what the same Mosquitto accepts from a direct publisher in the same run), the
# upstream bytes per message with and without topic aliases, and the disk bytes written per
# queued message. Prints a markdown table (and writes it to OUTPUT.md when given).
#
#   tests/bench/bridge_bench.sh [--messages N] [--small N] [--repeat R] [OUTPUT.md]
#
# FERRYMQ_BIN: the ferrymq binary to measure; the script builds nothing. Default:
#   build-bench/src/ferrymq. MOSQUITTO_BIN: default /usr/sbin/mosquitto.
# TMPDIR: where the database goes (bytes written are the kernel's count, none on tmpfs).
# --messages N: the backlog of the main run (1,000,000).
# --small N: the backlog of each upstream-bytes run (100,000, at most N).
# --repeat R: everything R times; the table shows each figure's median.
#
# Method, per round:
# - Main run. A fresh ferrymq (core 0, durability crash, data directory in a fresh temp
#   dir) with a bridge "cloud" (MQTT 5.0, topic aliases on, window 100, backoff 3 s, no
#   jitter) to a free loopback port where nothing listens yet; forward rule bench/# ->
#   site42/gateway/{#}, QoS 1.
# - Ingest: "ferrymq bench --scenario durable --no-subscriber --qos 1 --messages N --topic
#   bench/sensor/temperature" (core 1): 4 publishers, 64-byte payloads, 64 unacknowledged
#   each. No local session subscribes, so the bridge queue is the only place a message is
#   stored; a PUBACK comes after the commit, so msg/s counts PUBACKs. Disk bytes are the
#   broker's /proc/PID/io write_bytes over the ingest, divided by N.
# - Drain: right after the bridge logs its next failed attempt (so the next one is 3 s
#   away), Mosquitto starts on the bridge's port (core 1; persistence false,
#   max_queued_messages 0) and mosquitto_sub (no core pinned) subscribes to site42/# at
#   QoS 0, printing a timestamp per message. The drain rate is (messages - 1) / (last
#   timestamp - first timestamp) at that subscriber, so the backoff wait is not counted.
# - Direct: a second mosquitto_sub like the first, then "ferrymq bench --scenario durable
#   --no-subscriber --clients 1 --inflight 100 --qos 1 --protocol 5 --messages N --topic
#   site42/gateway/sensor/temperature" (core 0, where ferrymq ran) publishes straight into
#   the same Mosquitto: one connection, QoS 1, 100 in flight capped by Mosquitto's Receive
#   Maximum (20 by default), like the bridge; its rate is measured at the subscriber the
#   same way.
# - ferrymq's stop line gives the bridge's sent count and bytes up.
# - Upstream-bytes runs: the same with the small backlog, for a 5.0 uplink without and with
#   topic aliases and a 3.1.1 uplink; bytes per message = bytes up / sent.
#
# Exit status: 0 when every run completed with every message delivered, 1 when a run
# failed, 2 on bad usage.
set -euo pipefail

messages=1000000
small=100000
repeat=1
out=""
topic=bench/sensor/temperature
remote_topic=site42/gateway/sensor/temperature # what the forward rule makes of $topic
payload=64
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python=/usr/bin/python3
mosquitto="${MOSQUITTO_BIN:-/usr/sbin/mosquitto}"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --messages) messages="$2"; shift ;;
    --small) small="$2"; shift ;;
    --repeat) repeat="$2"; shift ;;
    -h | --help) sed -n '3,43p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) out="$1" ;;
    esac
    shift
done
for value in "$messages" "$small" "$repeat"; do
    if ! [[ "$value" =~ ^[1-9][0-9]*$ ]]; then
        echo "--messages, --small and --repeat need a positive whole number" >&2
        exit 2
    fi
done
((small <= messages)) || small=$messages
ferrymq="${FERRYMQ_BIN:-$root/build-bench/src/ferrymq}"
for tool in "$ferrymq" "$mosquitto" mosquitto_sub "$python" taskset ss; do
    if ! command -v "$tool" >/dev/null; then
        echo "missing $tool" >&2
        exit 2
    fi
done
ferrymq="$(realpath "$ferrymq")"

work="$(mktemp -d "${TMPDIR:-/tmp}/ferrymq-bridge-bench.XXXXXX")"
if [[ "$(stat -f -c %T "$work")" == tmpfs ]]; then
    echo "warning: $work is on tmpfs: bytes written read 0; set TMPDIR to a disk" >&2
fi
results="$work/results.jsonl"
: >"$results"
ferrymq_pid=""
mosquitto_pid=""
sub_pid=""
sub_cpu=0   # the last subscriber's CPU time in clock ticks, sampled by wait_sub
stopped=""  # how the process stop_pid stopped ended
failures=0

stop_pid() {
    # Stops process $1 (our child) by its PID: TERM, then KILL after 10 s. Sets stopped to
    # how it ended: stopped:STATUS, killed or crashed:STATUS (it had gone before). Not to be
    # called in a subshell: only this shell can wait for its children.
    local pid="$1" status=0
    stopped=""
    [[ -n "$pid" ]] || return 0
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || status=$?
        stopped="crashed:$status"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        stopped=killed
        return 0
    fi
    wait "$pid" 2>/dev/null || status=$?
    stopped="stopped:$status"
}

cleanup() {
    # Not in a subshell: only this shell can wait for its children.
    local pid
    for pid in "$sub_pid" "$ferrymq_pid" "$mosquitto_pid"; do
        stop_pid "$pid"
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
    # Waits up to $1 tenths of a second until the command after it succeeds.
    local tenths="$1"
    shift
    for _ in $(seq "$tenths"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

listening() { ss -Hltn "sport = :$1" | grep -q .; }
backoffs() { grep -c -- '-> backoff' "$1" || true; }
more_backoffs() { (($(backoffs "$1") > $2)); }
write_bytes() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true; }

start_ferrymq() {
    # Starts ferrymq (core 0) with a bridge to port $2 speaking protocol $3 with topic
    # aliases $4, in directory $1; sets ferrymq_pid and ferrymq_port.
    local dir="$1" upstream="$2" protocol="$3" aliases="$4"
    cat >"$dir/ferrymq.yaml" <<EOF
storage:
  durability: crash
bridges:
  - name: cloud
    addresses: ["127.0.0.1:$upstream"]
    protocol: "$protocol"
    backoff: {min: 3000, max: 3000, jitter: 0}
    topic_aliases: $aliases
    window: 100
    queue: {max_messages: 2000000, max_bytes: 1073741824}
    forward:
      - local: "bench/#"
        remote: "site42/gateway/{#}"
        qos: 1
EOF
    # Debug logging adds a line per uplink state change, not per message: the drain needs
    # the "-> backoff" lines to know when the bridge will try again.
    taskset -c 0 "$ferrymq" -c "$dir/ferrymq.yaml" --listen 127.0.0.1:0 \
        --data-dir "$dir/data" --log-level debug 2>"$dir/ferrymq.log" &
    ferrymq_pid=$!
    ferrymq_port=""
    for _ in $(seq 100); do
        ferrymq_port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/ferrymq.log" | head -1)"
        [[ -n "$ferrymq_port" ]] && return 0
        kill -0 "$ferrymq_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "ferrymq did not start; log:" >&2
    tail -20 "$dir/ferrymq.log" >&2
    return 1
}

start_mosquitto() {
    # Starts Mosquitto (core 1) on port $2, logging subscriptions to $1/mosquitto.log.
    local dir="$1" port="$2"
    {
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port"
        printf 'max_queued_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n'
        printf 'log_type subscribe\n'
        [[ $EUID -ne 0 ]] || printf 'user root\n'
    } >"$dir/mosquitto.conf"
    taskset -c 1 "$mosquitto" -c "$dir/mosquitto.conf" 2>>"$dir/mosquitto.log" &
    mosquitto_pid=$!
    if ! wait_for 100 listening "$port"; then
        echo "mosquitto did not start; log:" >&2
        tail -20 "$dir/mosquitto.log" >&2
        return 1
    fi
}

start_sub() {
    # Starts a QoS 0 mosquitto_sub on Mosquitto's port $2 that prints one timestamp per
    # message to $1 and exits after $3 messages; returns once Mosquitto logged its SUBSCRIBE.
    local file="$1" port="$2" count="$3" dir id
    dir="$(dirname "$file")"
    id="bridge-bench-$(basename "$file" .out)"
    mosquitto_sub -h 127.0.0.1 -p "$port" -i "$id" -t 'site42/#' -q 0 -F '%U' -C "$count" \
        >"$file" &
    sub_pid=$!
    sub_cpu=0
    wait_for 100 grep -q "$id 0 site42/#" "$dir/mosquitto.log"
}

wait_sub() {
    # Waits until the subscriber received its count and exited; fails when no message arrived
    # for 30 s. Samples its CPU time (clock ticks) on the way, for the table's utilisation.
    local quiet=0 last=-1 lines ticks
    while kill -0 "$sub_pid" 2>/dev/null; do
        ticks="$(cpu_ticks "$sub_pid")"
        sub_cpu="${ticks:-$sub_cpu}"
        lines="$(wc -l <"$1")"
        if [[ "$lines" == "$last" ]]; then
            quiet=$((quiet + 1))
            if ((quiet >= 300)); then
                stop_pid "$sub_pid"
                sub_pid=""
                return 1
            fi
        else
            quiet=0
            last="$lines"
        fi
        sleep 0.1
    done
    local status=0
    wait "$sub_pid" || status=$?
    sub_pid=""
    return "$status"
}

run_one() {
    # One bridge run: ingest $2 messages with the uplink down, then drain them into a fresh
    # Mosquitto; with $5 = direct also the direct publisher. Appends a JSON record.
    local label="$1" n="$2" protocol="$3" aliases="$4" direct="$5" round="$6"
    local dir="$work/$round-$label" rc=0 upstream ended before drain drain_start="" drain_end=""
    mkdir -p "$dir"
    : >"$dir/mosquitto.log"
    upstream="$(free_port)"
    # Dirty pages of the previous run would be written back during this one.
    sync
    if ! start_ferrymq "$dir" "$upstream" "$protocol" "$aliases"; then
        record "$dir" "$label" "$n" "$protocol" "$aliases" "ferrymq did not start" "" "" ""
        return
    fi
    wait_for 100 grep -q -- '-> backoff' "$dir/ferrymq.log" || true
    timeout $((n / 1000 + 300)) taskset -c 1 "$ferrymq" bench --port "$ferrymq_port" \
        --broker-pid "$ferrymq_pid" --scenario durable --no-subscriber --qos 1 \
        --messages "$n" --topic "$topic" --payload "$payload" --json \
        >"$dir/ingest.json" 2>"$dir/ingest.stderr" || rc=$?
    printf '%-14s ingest: %s\n' "$label" "$(tail -1 "$dir/ingest.stderr")"
    if [[ $rc -ne 0 ]]; then
        stop_pid "$ferrymq_pid"
        ended="$stopped"
        ferrymq_pid=""
        record "$dir" "$label" "$n" "$protocol" "$aliases" "ingest failed ($rc)" "$ended" "" ""
        return
    fi
    # Start Mosquitto just after a failed attempt, so that the subscriber is in place well
    # before the bridge's next attempt 3 s later (a QoS 0 subscriber that comes late misses
    # messages).
    before="$(backoffs "$dir/ferrymq.log")"
    wait_for 100 more_backoffs "$dir/ferrymq.log" "$before" || true
    drain="$dir/drain.out"
    if ! start_mosquitto "$dir" "$upstream" || ! start_sub "$drain" "$upstream" "$n"; then
        stop_pid "$ferrymq_pid"
        ended="$stopped"
        ferrymq_pid=""
        record "$dir" "$label" "$n" "$protocol" "$aliases" "mosquitto or its subscriber did not start" "$ended" "" ""
        stop_pid "$mosquitto_pid"
        mosquitto_pid=""
        return
    fi
    drain_start="$(write_bytes "$ferrymq_pid" || true)"
    local error=""
    if ! wait_sub "$drain"; then
        error="the drain stalled: $(wc -l <"$drain") of $n messages arrived"
    fi
    drain_end="$(write_bytes "$ferrymq_pid" || true)"
    local drain_cpu="$sub_cpu"
    # A QoS 0 copy can reach the subscriber before Mosquitto's PUBACK reaches the bridge:
    # give the last acknowledgements time to arrive before the stop line counts them.
    sleep 1
    stop_pid "$ferrymq_pid"
    ended="$stopped"
    ferrymq_pid=""
    printf '%-14s drain:  %s messages arrived\n' "$label" "$(wc -l <"$drain")"
    local direct_cpu=""
    if [[ -z "$error" && "$direct" == direct ]]; then
        start_sub "$dir/direct.out" "$upstream" "$n" || error="the direct subscriber did not start"
        if [[ -z "$error" ]]; then
            rc=0
            # In the background, so that wait_sub samples the subscriber's CPU meanwhile.
            timeout $((n / 1000 + 300)) taskset -c 0 "$ferrymq" bench --port "$upstream" \
                --scenario durable --no-subscriber --clients 1 --inflight 100 --qos 1 \
                --protocol 5 --messages "$n" --topic "$remote_topic" --payload "$payload" \
                --json >"$dir/direct.json" 2>"$dir/direct.stderr" &
            local publisher=$!
            wait_sub "$dir/direct.out" || error="direct: $(wc -l <"$dir/direct.out") of $n arrived"
            wait "$publisher" || rc=$?
            printf '%-14s direct: %s\n' "$label" "$(tail -1 "$dir/direct.stderr")"
            [[ $rc -eq 0 ]] || error="${error:-direct publisher failed ($rc)}"
            direct_cpu="$sub_cpu"
        fi
    fi
    stop_pid "$mosquitto_pid"
    mosquitto_pid=""
    record "$dir" "$label" "$n" "$protocol" "$aliases" "$error" "$ended" \
        "${drain_start:+$((drain_end - drain_start))}" "$drain_cpu/$direct_cpu"
    rm -rf "$dir/data" "$dir"/*.out
}

record() {
    # Appends run $2's JSON record (from the files in $1) to $results; counts a failure.
    local dir="$1" label="$2" n="$3" protocol="$4" aliases="$5" error="$6" ended="$7"
    local drain_write="$8" sub_cpu="$9"
    if ! "$python" - "$dir" "$label" "$n" "$protocol" "$aliases" "$error" "$ended" \
        "$drain_write" "$sub_cpu" "$(getconf CLK_TCK)" >>"$results" <<'EOF'; then
import json, os, re, sys
(dir, label, n, protocol, aliases, error, ended, drain_write, sub_cpu, hz) = sys.argv[1:]
n = int(n)
r = {"label": label, "messages": n, "protocol": protocol, "aliases": aliases == "true",
     "ended": ended, "error": error or None}

def bench(name):
    try:
        with open(os.path.join(dir, name + ".json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None

def arrivals(name):
    # (messages, seconds from the first to the last) at a subscriber.
    try:
        with open(os.path.join(dir, name + ".out")) as f:
            stamps = [float(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return None
    return (len(stamps), stamps[-1] - stamps[0]) if len(stamps) > 1 else None

ingest = bench("ingest")
if ingest:
    r.update(ingest_msgs_per_s=ingest.get("msgs_per_s"), ingest_acked=ingest.get("acked"),
             ingest_write_per_msg=ingest.get("write_bytes_per_msg"),
             ingest_cpu_per_million=ingest.get("broker_cpu_s_per_million"))
cpu = [int(t) if t else None for t in (sub_cpu.split("/") + ["", ""])[:2]]
for name, ticks in (("drain", cpu[0]), ("direct", cpu[1])):
    got = arrivals(name)
    if got:
        count, seconds = got
        r[name + "_arrived"] = count
        r[name + "_msgs_per_s"] = (count - 1) / seconds if seconds > 0 else None
        if ticks is not None and seconds > 0:
            r[name + "_sub_cpu"] = ticks / int(hz) / seconds
direct = bench("direct")
if direct:
    r["direct_puback_per_s"] = direct.get("msgs_per_s")
if drain_write and r.get("drain_arrived"):
    r["drain_write_per_msg"] = int(drain_write) / r["drain_arrived"]
with open(os.path.join(dir, "ferrymq.log")) as f:
    for line in f:
        m = re.search(r"bridge cloud: (\d+) sent, (\d+) acknowledged upstream.*?(\d+) alias hits.*?"
                      r"(\d+) bytes up, (\d+) bytes down, (\d+) connections", line)
        if m:
            r.update(sent=int(m[1]), acknowledged=int(m[2]), alias_hits=int(m[3]),
                     bytes_up=int(m[4]), bytes_down=int(m[5]), connections=int(m[6]))
        m = re.search(r"store: (\d+) commits \((\d+) failed\), (\d+) rows written, longest "
                      r"commit ([\d.]+) ms", line)
        if m:
            r.update(commits=int(m[1]), longest_commit_ms=float(m[4]))
if r.get("sent"):
    r["bytes_up_per_msg"] = r["bytes_up"] / r["sent"]
if not r["error"]:
    if ended != "stopped:0":
        r["error"] = f"ferrymq ended {ended}"
    elif r.get("ingest_acked") != n or r.get("drain_arrived") != n:
        r["error"] = "not every message was acknowledged and delivered"
    elif r.get("acknowledged") != n:
        r["error"] = "the bridge's stop line says otherwise"
print(json.dumps(r))
sys.exit(1 if r["error"] else 0)
EOF
        failures=$((failures + 1))
        echo "  $label failed: $(tail -1 "$results")"
    fi
}

echo "ferrymq:   $ferrymq ($("$ferrymq" --version))"
echo "mosquitto: $mosquitto ($("$mosquitto" -h 2>&1 | head -1))"
echo "data in:   $work ($(stat -f -c %T "$work")); $messages messages, $small per bytes run"
for round in $(seq "$repeat"); do
    run_one main "$messages" 5 true direct "$round"
    run_one v5_no_alias "$small" 5 false "" "$round"
    run_one v5_alias "$small" 5 true "" "$round"
    run_one v311 "$small" 3.1.1 false "" "$round"
done

"$python" - "$results" "$out" "$repeat" "$messages" "$small" "$topic" "$payload" <<'EOF'
import json, statistics, sys

results_path, out_path, repeat, messages, small, topic, payload = sys.argv[1:]
runs = {}
for line in open(results_path):
    r = json.loads(line)
    runs.setdefault(r["label"], []).append(r)

def median(label, key):
    values = [r[key] for r in runs.get(label, []) if not r.get("error") and r.get(key) is not None]
    return statistics.median(values) if values else None

def fmt(value, digits=0, suffix=""):
    return "n/a" if value is None else f"{value:,.{digits}f}{suffix}"

def met(ok):
    return "" if ok is None else ("yes" if ok else "**no**")

# The message's own size: the QoS 1 PUBLISH the local publisher sent (MQTT 3.1.1): fixed
# header (2), topic length (2), topic, packet id (2), payload.
own = 2 + 2 + len(topic) + 2 + int(payload)
n, m = int(messages), int(small)
ingest = median("main", "ingest_msgs_per_s")
written = median("main", "ingest_write_per_msg")
drain = median("main", "drain_msgs_per_s")
direct = median("main", "direct_msgs_per_s")
ratios = [r["drain_msgs_per_s"] / r["direct_msgs_per_s"] for r in runs.get("main", [])
          if not r.get("error") and r.get("drain_msgs_per_s") and r.get("direct_msgs_per_s")]
ratio = statistics.median(ratios) if ratios else None
lines = [
    "| Metric | Value | Aim | Met |",
    "|---|---:|---:|:---:|",
    f"| QoS 1 ingest into the bridge queue, {n:,} messages, 4 publishers (msg/s) "
    f"| {fmt(ingest)} | ≥ 100,000 | {met(None if ingest is None else ingest >= 100000)} |",
    f"| Disk bytes written per queued message (the message: a {own}-byte PUBLISH) "
    f"| {fmt(written)} B ({fmt(None if written is None else written / own, 1)}×) "
    f"| ≤ {2 * own} B (2×) | {met(None if written is None else written <= 2 * own)} |",
    f"| Drain of the {n:,}-message backlog to Mosquitto (msg/s at its subscriber) "
    f"| {fmt(drain)} | | |",
    f"| Direct publisher into the same Mosquitto, {n:,} messages (msg/s at its subscriber) "
    f"| {fmt(direct)} | | |",
    f"| Drain ÷ direct publisher | {fmt(None if ratio is None else 100 * ratio, 0, ' %')} "
    f"| ≥ 80 % | {met(None if ratio is None else ratio >= 0.8)} |",
    f"| Disk bytes written per drained message | {fmt(median('main', 'drain_write_per_msg'))} B "
    f"| | |",
    f"| Direct publisher's own rate (PUBACKs/s) | {fmt(median('main', 'direct_puback_per_s'))} "
    f"| | |",
    f"| Subscriber CPU during the drain / the direct run "
    f"| {fmt(None if median('main', 'drain_sub_cpu') is None else 100 * median('main', 'drain_sub_cpu'), 0, ' %')}"
    f" / {fmt(None if median('main', 'direct_sub_cpu') is None else 100 * median('main', 'direct_sub_cpu'), 0, ' %')} | | |",
    "",
    f"| Uplink ({m:,}-message backlog) | bytes up per message | alias hits | drain (msg/s) "
    "| ingest (msg/s) | disk bytes per queued message |",
    "|---|---:|---:|---:|---:|---:|",
]
for label, title in (("v5_no_alias", "MQTT 5.0, topic_aliases: false"),
                     ("v5_alias", "MQTT 5.0, topic_aliases: true"),
                     ("v311", "MQTT 3.1.1")):
    lines.append(f"| {title} | {fmt(median(label, 'bytes_up_per_msg'), 1)} "
                 f"| {fmt(median(label, 'alias_hits'))} | {fmt(median(label, 'drain_msgs_per_s'))} "
                 f"| {fmt(median(label, 'ingest_msgs_per_s'))} "
                 f"| {fmt(median(label, 'ingest_write_per_msg'))} |")
if int(repeat) > 1:
    lines += ["", f"Medians of {repeat} runs (the ratio: the median of each run's ratio). Per run:",
              "", "| Run | ingest (msg/s) | drain (msg/s) | direct (msg/s) | drain ÷ direct "
              "| bytes up per message | result |", "|---|---:|---:|---:|---:|---:|---|"]
    for label, rs in runs.items():
        for r in rs:
            d, x = r.get("drain_msgs_per_s"), r.get("direct_msgs_per_s")
            lines.append(f"| {label} | {fmt(r.get('ingest_msgs_per_s'))} | {fmt(d)} | {fmt(x)} "
                         f"| {fmt(100 * d / x if d and x else None, 0, ' %')} "
                         f"| {fmt(r.get('bytes_up_per_msg'), 1)} | {r.get('error') or 'ok'} |")
failed = [f"{r['label']}: {r['error']}" for rs in runs.values() for r in rs if r.get("error")]
if failed:
    lines += ["", "Failed runs: " + "; ".join(failed)]
table = "\n".join(lines) + "\n"
if out_path:
    with open(out_path, "w") as f:
        f.write(table)
print()
print(table)
EOF

[[ $failures -eq 0 ]]
