#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures what persistence costs: QoS 1 messages per second into an offline persistent
# session, commits per second, the longest commit and loop stall, and the bytes ferrymq
# writes to storage per message, for each durability and flush interval. Prints a
# markdown table (and writes it to OUTPUT.md when given).
#
#   tests/bench/store_bench.sh [--duration S] [--repeat N] [--protocol 3.1.1|5] [OUTPUT.md]
#
# FERRYMQ_BIN: the ferrymq binary to measure; the script builds nothing. Default:
#   build-bench/src/ferrymq, else build/src/ferrymq (a release build gives the real figures).
# TMPDIR: where the databases go. Put it on the device you care about (an SD card): the
#   bytes written are the kernel's count for the broker process, and tmpfs counts none.
# --duration S: seconds of publishing per run (10).
# --repeat N: run every configuration N times; the table shows each figure's median.
#
# Method, per configuration and run:
# - A fresh ferrymq with a fresh data directory, queue limits raised so that nothing is
#   dropped (10,000,000 messages, 1 GiB per session and in total), listening on a free
#   loopback port; pinned to core 0, the load generator to core 1 (taskset), as in
#   compare_mosquitto.sh.
# - "ferrymq bench --scenario durable --qos 1 --no-drain": one subscriber makes a persistent
#   session, subscribes at QoS 1 and disconnects; then 4 publishers publish 64-byte QoS 1
#   messages, each with at most 64 unacknowledged. Every message is stored before its
#   PUBACK, so msg/s is PUBACKs per second. Bytes written are /proc/PID/io write_bytes of
#   the broker over the measured interval (WAL frames, checkpoints into the database file).
# - SIGTERM; the broker's stop line gives commits, the longest commit and the longest loop
#   turn (over the broker's life, which is the run plus a few set-up commits). The size of
#   the database files is the database column; then a broker started again on them logs
#   how many queued messages it read back: every acknowledged message must be there (the
#   "stored" column).
#
# Exit status: 0 when every run completed with every acknowledged message stored, 1 when
# a run failed, 2 on bad usage.
set -euo pipefail

duration=10
repeat=1
protocol=3.1.1
out=""
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python=/usr/bin/python3

while [[ $# -gt 0 ]]; do
    case "$1" in
    --duration) duration="$2"; shift ;;
    --repeat) repeat="$2"; shift ;;
    --protocol) protocol="$2"; shift ;;
    -h | --help) sed -n '3,32p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) out="$1" ;;
    esac
    shift
done
if ! [[ "$repeat" =~ ^[1-9][0-9]*$ && "$duration" =~ ^[1-9][0-9]*$ ]]; then
    echo "--repeat and --duration need a positive whole number" >&2
    exit 2
fi
ferrymq="${FERRYMQ_BIN:-}"
if [[ -z "$ferrymq" ]]; then
    ferrymq="$root/build-bench/src/ferrymq"
    [[ -x "$ferrymq" ]] || ferrymq="$root/build/src/ferrymq"
fi
for tool in "$ferrymq" "$python" taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "missing $tool" >&2
        exit 2
    fi
done
ferrymq="$(realpath "$ferrymq")"

work="$(mktemp -d "${TMPDIR:-/tmp}/ferrymq-store-bench.XXXXXX")"
if [[ "$(stat -f -c %T "$work")" == tmpfs ]]; then
    echo "warning: $work is on tmpfs, where nothing reaches a device: bytes written read 0;" \
        "set TMPDIR to a directory on a disk" >&2
fi
results="$work/results.jsonl"
: >"$results"
broker_pid=""
broker_end="" # how the last broker ended: stopped:STATUS, killed or crashed:STATUS
failures=0

stop_broker() {
    # Stops the running broker by its PID: TERM, then KILL after 10 s. Sets broker_end.
    # Not to be called in a subshell: only this shell can wait for its child.
    local pid="$broker_pid" status=0
    broker_pid=""
    broker_end=""
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            broker_end="killed (did not stop within 10 s of SIGTERM)"
            return 0
        fi
        wait "$pid" 2>/dev/null || status=$?
        broker_end="stopped:$status"
    else
        wait "$pid" 2>/dev/null || status=$?
        broker_end="crashed:$status"
    fi
}

cleanup() {
    stop_broker
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_broker() {
    # Starts ferrymq with config $1 and data directory $2, pinned to core 0, logging to $3;
    # sets broker_pid and broker_port.
    local config="$1" data="$2" log="$3"
    taskset -c 0 "$ferrymq" -c "$config" --listen 127.0.0.1:0 --data-dir "$data" 2>"$log" &
    broker_pid=$!
    broker_port=""
    for _ in $(seq 100); do
        broker_port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)"
        [[ -n "$broker_port" ]] && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "ferrymq did not start; log:" >&2
    tail -20 "$log" >&2
    return 1
}

# label|durability|flush_interval ms|total msg/s (0 = flat out)
configurations=(
    "crash_0_flat|crash|0|0"
    "crash_50_flat|crash|50|0"
    "power_0_flat|power|0|0"
    "power_50_flat|power|50|0"
    "crash_0_1k|crash|0|1000"
    "crash_50_1k|crash|50|1000"
    "power_0_1k|power|0|1000"
    "power_50_1k|power|50|1000"
)

run_one() {
    local label="$1" durability="$2" flush="$3" rate="$4" n="$5"
    local dir="$work/$n-$label" rc=0
    mkdir -p "$dir"
    cat >"$dir/ferrymq.yaml" <<EOF
limits:
  max_queued_messages: 10000000
  max_queued_bytes: 1073741824
  max_pending_bytes: 1073741824
storage:
  durability: $durability
  flush_interval: $flush
EOF
    # Dirty pages of the previous run would be written back during this one.
    sync
    if ! start_broker "$dir/ferrymq.yaml" "$dir/data" "$dir/broker.log"; then
        stop_broker
        failures=$((failures + 1))
        printf '{"label": "%s", "rc": 1, "error": "broker did not start"}\n' "$label" >>"$results"
        return
    fi
    timeout $((duration + 120)) taskset -c 1 "$ferrymq" bench --port "$broker_port" \
        --broker-pid "$broker_pid" --scenario durable --qos 1 --no-drain --json \
        --protocol "$protocol" --duration "$duration" --rate "$rate" \
        >"$dir/bench.json" 2>"$dir/bench.stderr" || rc=$?
    stop_broker
    printf '%-14s %s\n' "$label" "$(tail -1 "$dir/bench.stderr")"
    if [[ "$broker_end" != stopped:0 ]]; then
        echo "  ferrymq ended $broker_end; log tail:"
        tail -5 "$dir/broker.log" | sed 's/^/    /'
    fi
    local ended="$broker_end" db_bytes
    db_bytes="$(cat "$dir/data/ferrymq.db"* 2>/dev/null | wc -c)"
    # A broker started again on the database says how many queued messages it read back.
    start_broker "$dir/ferrymq.yaml" "$dir/data" "$dir/restart.log" || true
    stop_broker
    if ! "$python" - "$dir" "$label" "$durability" "$flush" "$rate" "$rc" "$ended" "$db_bytes" \
        >>"$results" <<'EOF'; then
import json, os, re, sys
dir, label, durability, flush, rate, rc, ended, db_bytes = sys.argv[1:]
record = {"label": label, "durability": durability, "flush_ms": int(flush),
          "rate": float(rate), "rc": int(rc), "ended": ended}
try:
    with open(os.path.join(dir, "bench.json")) as f:
        record.update(json.loads(f.read().strip().splitlines()[-1]))
except (OSError, ValueError, IndexError):
    record["error"] = "no JSON from bench"
record.update(label=label, rc=int(rc))
stop = None
with open(os.path.join(dir, "broker.log")) as f:
    for line in f:
        m = re.search(r"store: (\d+) commits \((\d+) failed\), (\d+) rows written, longest "
                      r"commit ([\d.]+) ms, longest loop turn ([\d.]+) ms", line)
        stop = m or stop
if stop:
    record.update(commits=int(stop[1]), failed_commits=int(stop[2]), rows=int(stop[3]),
                  longest_commit_ms=float(stop[4]), longest_turn_ms=float(stop[5]))
else:
    record["error"] = record.get("error") or "no store line in the broker log"
record["db_bytes"] = int(db_bytes)
try:
    with open(os.path.join(dir, "restart.log")) as f:
        for line in f:
            m = re.search(r"restored \d+ retained messages, \d+ sessions, (\d+) queued messages",
                          line)
            if m:
                record["stored"] = int(m[1])
except OSError:
    pass
ok = (record["rc"] == 0 and not record.get("error") and ended == "stopped:0"
      and record.get("stored") == record.get("acked"))
print(json.dumps(record))
sys.exit(0 if ok else 1)
EOF
        failures=$((failures + 1))
    fi
    rm -rf "$dir/data"
}

echo "ferrymq:  $ferrymq ($("$ferrymq" --version))"
echo "data in:  $work ($(stat -f -c %T "$work")), MQTT $protocol, $duration s per run"
n=0
for _ in $(seq "$repeat"); do
    for entry in "${configurations[@]}"; do
        IFS='|' read -r label durability flush rate <<<"$entry"
        n=$((n + 1))
        run_one "$label" "$durability" "$flush" "$rate" "$n"
    done
done

"$python" - "$results" "$out" "$repeat" <<'EOF'
import json, statistics, sys

results_path, out_path, repeat = sys.argv[1:]
runs = {}  # label -> every record, in order
for line in open(results_path):
    r = json.loads(line)
    runs.setdefault(r["label"], []).append(r)

def median(rs, key):
    # The median over the completed runs; a failed run has no figure.
    values = [r[key] for r in rs if r.get("rc") == 0 and not r.get("error")
              and r.get(key) is not None]
    return statistics.median(values) if values else None

def fmt(value, digits=0):
    return "n/a" if value is None else f"{value:,.{digits}f}"

lines = ["| durability | flush_interval | offered | msg/s | commits/s | msgs per commit "
         "| longest commit | longest loop turn | bytes written per msg | database (per msg) "
         "| acked msgs all stored |",
         "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
for label, rs in runs.items():
    first = rs[0]
    for r in rs:
        interval = r.get("interval_s") or 0
        r["commits_per_s"] = r["commits"] / interval if interval and "commits" in r else None
        r["per_commit"] = r["acked"] / r["commits"] if r.get("commits") else None
        r["db_mb"] = r["db_bytes"] / 1e6 if "db_bytes" in r else None
        r["db_per_msg"] = r["db_bytes"] / r["stored"] if r.get("stored") else None
    offered = "flat out" if not first.get("rate") else f"{first['rate']:,.0f} msg/s"
    complete = sum(1 for r in rs if r.get("stored") is not None and r.get("stored") == r.get("acked"))
    stored = f"{'yes' if complete == len(rs) else '**no**'} ({complete} of {len(rs)} runs)"
    lines.append(
        f"| {first.get('durability')} | {first.get('flush_ms')} ms | {offered} "
        f"| {fmt(median(rs, 'msgs_per_s'))} | {fmt(median(rs, 'commits_per_s'))} "
        f"| {fmt(median(rs, 'per_commit'), 1)} | {fmt(median(rs, 'longest_commit_ms'), 1)} ms "
        f"| {fmt(median(rs, 'longest_turn_ms'), 1)} ms "
        f"| {fmt(median(rs, 'write_bytes_per_msg'))} B "
        f"| {fmt(median(rs, 'db_mb'), 1)} MB ({fmt(median(rs, 'db_per_msg'))} B) | {stored} |")
if int(repeat) > 1:
    lines += ["", f"Medians of {repeat} runs."]
failed = [f"{r['label']}: {r.get('error') or 'exit ' + str(r.get('rc'))}"
          for rs in runs.values() for r in rs if r.get("rc") != 0 or r.get("error")]
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
