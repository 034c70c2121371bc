#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every "ferrymq bench" scenario against ferrymq and against Debian's Mosquitto and
# writes a markdown table with both figures and ferrymq's advantage per metric.
#
#   tests/bench/compare_mosquitto.sh [--quick] [--repeat N] [--ferrymq PATH]
#                                    [--mosquitto PATH] [--mosquitto-conf LINE]... OUTPUT.md
#
# --quick: 2 s per run, 100 fan-out subscribers, 1,000 connections (about a minute; the full
#   mode takes about 4 minutes).
# --repeat N: run everything N times; the table shows each figure's median.
# --mosquitto-conf: an extra mosquitto.conf line, such as "set_tcp_nodelay true".
#
# Method:
# - One broker runs at a time, and each scenario gets a freshly started broker, so neither
#   the other broker nor an earlier scenario's leftovers (allocator free lists, sessions)
#   skew a figure. Scenarios alternate ferrymq, Mosquitto, ferrymq, ... to spread drift.
# - The broker is pinned to core 0 and the load generator to core 1 (taskset).
# - Both brokers run with their defaults (max 20 QoS 1 messages in flight per client, 1000
#   queued); Mosquitto logs errors and warnings only, as ferrymq logs no per-client lines
#   at its default level.
# - "Flat out" publishers keep at most --window (100) messages ahead of their slowest
#   subscriber, so the figure is a throughput without queue-overflow drops. Fixed-rate runs
#   give broker CPU-seconds per million delivered messages (from /proc/PID/stat), the
#   figure that compares brokers when the generator, not the broker, is the limit.
# - Idle RSS is read 0.5 s after each start; the table shows the first start's.
#
# Exit status: 0 when every run completed, 1 when a run failed or a broker crashed.
set -euo pipefail

quick=0
repeat=1
out=""
mosquitto_extra=()
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ferrymq="$here/../../build/src/ferrymq"
mosquitto=/usr/sbin/mosquitto
python=/usr/bin/python3

while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) quick=1 ;;
    --repeat) repeat="$2"; shift ;;
    --ferrymq) ferrymq="$2"; shift ;;
    --mosquitto) mosquitto="$2"; shift ;;
    --mosquitto-conf) mosquitto_extra+=("$2"); shift ;;
    -h | --help) sed -n '3,30p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) out="$1" ;;
    esac
    shift
done
if ! [[ "$repeat" =~ ^[1-9][0-9]*$ ]]; then
    echo "--repeat needs a positive number" >&2
    exit 2
fi
if [[ -z "$out" ]]; then
    echo "usage: $0 [--quick] [--ferrymq PATH] [--mosquitto PATH] OUTPUT.md" >&2
    exit 2
fi
for tool in "$ferrymq" "$mosquitto" "$python" taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "missing $tool" >&2
        exit 2
    fi
done
ferrymq="$(realpath "$ferrymq")"

# 10,000 connections need 10,000 descriptors in the broker and in the generator; both
# inherit this shell's soft limit.
ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d /tmp/ferrymq-compare.XXXXXX)"
results="$work/results.jsonl"
starts="$work/starts.jsonl"
: >"$results"
: >"$starts"
broker_pid=""
broker_port=""
broker_end="" # how the last broker ended: stopped:STATUS, killed or crashed:STATUS
failures=0

stop_broker() {
    # Stops the running broker by its PID: TERM, then KILL after 5 s. Sets broker_end.
    # Not to be called in a subshell: only this shell can wait for its child.
    local pid="$broker_pid" status=0
    broker_pid=""
    broker_end=""
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            broker_end="killed (did not stop within 5 s of SIGTERM)"
            return 0
        fi
        wait "$pid" 2>/dev/null || status=$?
        broker_end="stopped:$status"
    else
        # Gone before we asked: it crashed (or exited) during the scenario.
        wait "$pid" 2>/dev/null || status=$?
        broker_end="crashed:$status"
    fi
}

cleanup() {
    stop_broker
    if [[ $failures -eq 0 ]]; then
        rm -rf "$work"
    else
        echo "logs kept in $work" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listening() {
    # Waits up to 10 s until something listens on 127.0.0.1:$1.
    for _ in $(seq 100); do
        if ss -Hltn "sport = :$1" | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

start_broker() {
    # Starts broker $1 pinned to core 0; sets broker_pid and broker_port; logs to $2.
    local name="$1" log="$2"
    if [[ "$name" == ferrymq ]]; then
        rm -rf "$work/ferrymq-data"
        taskset -c 0 "$ferrymq" --listen 127.0.0.1:0 --data-dir "$work/ferrymq-data" \
            2>"$log" &
        broker_pid=$!
        broker_port=""
        for _ in $(seq 100); do
            broker_port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)"
            [[ -n "$broker_port" ]] && break
            sleep 0.1
        done
    else
        broker_port="$(free_port)"
        printf 'listener %s 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type error\nlog_type warning\n' \
            "$broker_port" >"$work/mosquitto.conf"
        for line in "${mosquitto_extra[@]}"; do
            echo "$line" >>"$work/mosquitto.conf"
        done
        taskset -c 0 "$mosquitto" -c "$work/mosquitto.conf" 2>"$log" &
        broker_pid=$!
    fi
    if [[ -z "$broker_port" ]] || ! wait_listening "$broker_port"; then
        echo "$name did not start; log:" >&2
        tail -20 "$log" >&2
        return 1
    fi
    # Idle RSS right after start, before any client connected.
    sleep 0.5
    # VmRSS counts the shared libraries' pages too; RssAnon is the broker's own memory.
    local rss anon
    rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$broker_pid/status")"
    anon="$(awk '/^RssAnon:/ {print $2}' "/proc/$broker_pid/status")"
    printf '{"broker": "%s", "rss_kb": %s, "anon_kb": %s}\n' "$name" "${rss:-null}" \
        "${anon:-null}" >>"$starts"
}

# label, then the bench options of the scenario.
if [[ $quick -eq 1 ]]; then
    d=2; fanout_subs=100; fanout_rate=200; conns=1000; hold=2
else
    d=10; fanout_subs=1000; fanout_rate=20; conns=10000; hold=5
fi
scenarios=(
    "fanin_q0_flat|--scenario fanin --qos 0 --duration $d"
    "fanin_q0_20k|--scenario fanin --qos 0 --rate 20000 --duration $d"
    "fanin_q0_50k|--scenario fanin --qos 0 --rate 50000 --duration $d"
    "fanin_q1_flat|--scenario fanin --qos 1 --duration $d"
    "fanin_q1_10k|--scenario fanin --qos 1 --rate 10000 --duration $d"
    "fanout_q0_flat|--scenario fanout --qos 0 --clients $fanout_subs --duration $d"
    "fanout_q0_rate|--scenario fanout --qos 0 --clients $fanout_subs --rate $fanout_rate --duration $d"
    "fanout_q1_rate|--scenario fanout --qos 1 --clients $fanout_subs --rate $fanout_rate --duration $d"
    "latency_q0_20k|--scenario latency --qos 0 --rate 20000 --duration $d"
    "connect|--scenario connect --clients $conns --concurrency 100"
    "idle|--scenario idle --clients $conns --duration $hold"
)

run_one() {
    # Runs scenario $2 (options $3) against broker $1 and appends its JSON to $results.
    local name="$1" label="$2" options="$3" n="$4"
    local log="$work/$name-$n-$label.log" json="$work/$name-$n-$label.json" rc=0 ended
    if ! start_broker "$name" "$log"; then
        printf '{"broker": "%s", "label": "%s", "rc": 1, "ended": "not started", "error": "broker did not start"}\n' \
            "$name" "$label" >>"$results"
        failures=$((failures + 1))
        stop_broker
        return
    fi
    # shellcheck disable=SC2086 # $options is a list of words
    timeout 300 taskset -c 1 "$ferrymq" bench --port "$broker_port" --broker-pid "$broker_pid" \
        --json $options >"$json" 2>"$work/$name-$n-$label.stderr" || rc=$?
    stop_broker
    ended="$broker_end"
    printf '%-10s %-15s %s\n' "$name" "$label" "$(tail -1 "$work/$name-$n-$label.stderr")"
    if [[ "$ended" != stopped:0 ]]; then
        echo "  $name ended $ended after $label; log tail:"
        tail -5 "$log" | sed 's/^/    /'
    fi
    if [[ $rc -eq 1 || $rc -gt 2 || "$ended" == crashed* ]]; then
        failures=$((failures + 1))
    fi
    "$python" - "$json" "$name" "$label" "$rc" "$ended" >>"$results" <<'EOF'
import json, sys
path, broker, label, rc, ended = sys.argv[1:]
try:
    with open(path) as f:
        record = json.loads(f.read().strip().splitlines()[-1])
except (OSError, ValueError, IndexError):
    record = {"error": "no JSON from bench"}
record.update(broker=broker, label=label, rc=int(rc), ended=ended)
print(json.dumps(record))
EOF
}

echo "ferrymq:   $ferrymq ($("$ferrymq" --version))"
echo "mosquitto: $mosquitto ($("$mosquitto" -h 2>&1 | head -1))"
echo "mode:      $([[ $quick -eq 1 ]] && echo quick || echo full), work dir $work"
n=0
for round in $(seq "$repeat"); do
    for entry in "${scenarios[@]}"; do
        label="${entry%%|*}"
        options="${entry#*|}"
        n=$((n + 1))
        for name in ferrymq mosquitto; do
            run_one "$name" "$label" "$options" "$n"
        done
    done
done

mode="$([[ $quick -eq 1 ]] && echo "--quick" || echo "full")"
"$python" - "$results" "$starts" "$out" "$mode" "$fanout_subs" "$fanout_rate" "$conns" <<'EOF'
import json, statistics, sys

results_path, starts_path, out_path, mode, fanout_subs, fanout_rate, conns = sys.argv[1:]
runs = {}  # (broker, label) -> every run of it, in order
for line in open(results_path):
    r = json.loads(line)
    runs.setdefault((r["broker"], r["label"]), []).append(r)
first_rss, first_anon = {}, {}
for line in open(starts_path):
    s = json.loads(line)
    first_rss.setdefault(s["broker"], s["rss_kb"])
    first_anon.setdefault(s["broker"], s["anon_kb"])

def get(broker, label, key):
    # The median over the completed runs; a failed run has no figure.
    values = [r.get(key) for r in runs.get((broker, label), [])
              if r.get("rc") != 1 and not r.get("error") and r.get(key) is not None]
    return statistics.median(values) if values else None

def fmt(value, digits):
    if value is None:
        return "n/a"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"

# (title, label, key, higher_is_better, digits, target advantage or None, note)
rows = [
    ("QoS 0 fan-in 8→1, flat out (msg/s)", "fanin_q0_flat", "msgs_per_s", True, 0, 2.0),
    ("QoS 0 fan-in 8→1 @ 20k msg/s: broker CPU-s per M msgs", "fanin_q0_20k", "broker_cpu_s_per_million", False, 2, 4.0),
    ("QoS 0 fan-in 8→1 @ 50k msg/s: broker CPU-s per M msgs", "fanin_q0_50k", "broker_cpu_s_per_million", False, 2, 4.0),
    ("QoS 0 fan-in 8→1 @ 50k msg/s: broker user CPU-s per M", "fanin_q0_50k", "broker_user_s_per_million", False, 2, None),
    ("QoS 1 fan-in 8→1, flat out (msg/s)", "fanin_q1_flat", "msgs_per_s", True, 0, 2.0),
    ("QoS 1 fan-in 8→1 @ 10k msg/s: broker CPU-s per M msgs", "fanin_q1_10k", "broker_cpu_s_per_million", False, 2, 3.0),
    (f"QoS 0 fan-out 1→{fanout_subs}, flat out (deliveries/s)", "fanout_q0_flat", "msgs_per_s", True, 0, 2.0),
    (f"QoS 0 fan-out 1→{fanout_subs} @ {fanout_rate} msg/s: broker CPU-s per M deliveries", "fanout_q0_rate", "broker_cpu_s_per_million", False, 2, 4.0),
    (f"QoS 1 fan-out 1→{fanout_subs} @ {fanout_rate} msg/s: broker CPU-s per M deliveries", "fanout_q1_rate", "broker_cpu_s_per_million", False, 2, 3.0),
    ("Latency p50 @ 20k msg/s, QoS 0 (µs)", "latency_q0_20k", "latency_p50_us", False, 0, None),
    ("Latency p99 @ 20k msg/s, QoS 0 (µs)", "latency_q0_20k", "latency_p99_us", False, 0, 1.0),
    (f"Connect rate, {conns} connections (conn/s)", "connect", "connect_per_s", True, 0, None),
    (f"RSS per idle connection, {conns} connections (bytes)", "idle", "rss_per_connection_bytes", False, 0, 1.0),
]

lines = []
lines.append(f"| Metric | ferrymq | Mosquitto 2.0.11 | ferrymq advantage | Target | Met |")
lines.append("|---|---:|---:|---:|---:|:---:|")
for title, label, key, higher, digits, target in rows:
    f, m = get("ferrymq", label, key), get("mosquitto", label, key)
    adv = None
    if f is not None and m is not None and f > 0 and m > 0:
        adv = f / m if higher else m / f
    met = "" if target is None or adv is None else ("yes" if adv >= target else "**no**")
    lines.append(f"| {title} | {fmt(f, digits)} | {fmt(m, digits)} | "
                 f"{'n/a' if adv is None else f'{adv:.2f}×'} | "
                 f"{'' if target is None else f'≥ {target:g}×'} | {met} |")
f_rss, m_rss = first_rss.get("ferrymq"), first_rss.get("mosquitto")
met = "" if f_rss is None else ("yes" if f_rss <= 2.5 * 1024 else "**no**")
lines.append(f"| Idle RSS right after start (kB) | {fmt(f_rss, 0)} | {fmt(m_rss, 0)} | "
             f"{'n/a' if not (f_rss and m_rss) else f'{m_rss / f_rss:.2f}×'} | ≤ 2,560 kB | {met} |")
f_anon, m_anon = first_anon.get("ferrymq"), first_anon.get("mosquitto")
lines.append(f"| Idle RssAnon right after start (kB; VmRSS without shared-library pages) | "
             f"{fmt(f_anon, 0)} | {fmt(m_anon, 0)} | "
             f"{'n/a' if not (f_anon and m_anon) else f'{m_anon / f_anon:.2f}×'} | | |")
def totals(broker, key):
    return sum(int(r.get(key) or 0) for (b, _), rs in runs.items() if b == broker for r in rs)
for key, title in (("lost", "Messages lost, all scenarios"), ("reordered", "Messages reordered, all scenarios")):
    f, m = totals("ferrymq", key), totals("mosquitto", key)
    lines.append(f"| {title} | {f:,} | {m:,} | | 0 | {'yes' if f == 0 else '**no**'} |")

lines.append("")
lines.append("Advantage: how many times better ferrymq is (its rate ÷ Mosquitto's, or Mosquitto's "
             "CPU, latency or memory ÷ ferrymq's)"
             + (". Figures are medians of the runs below." if len(next(iter(runs.values()))) > 1
                else ".") + " Per run:")
lines.append("")
lines.append("| Run | Broker | Delivered | Lost | Reordered | msg/s | Broker CPU | Generator CPU | p50 µs | p99 µs | Result |")
lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for (broker, label), r in ((key, r) for key, rs in runs.items() for r in rs):
    interval = r.get("interval_s") or 0
    def util(key):
        v = r.get(key)
        return "n/a" if v is None or interval <= 0 else f"{100 * v / interval:.0f}%"
    result = "ok" if r.get("rc") == 0 else ("loss/reorder" if r.get("rc") == 2 else "FAILED")
    if r.get("error"):
        result += f": {r['error']}"
    if r.get("ended", "stopped:0") != "stopped:0":
        result += f" (broker {r.get('ended')})"
    lines.append(f"| {label} | {broker} | {fmt(r.get('delivered'), 0)} | {fmt(r.get('lost'), 0)} | "
                 f"{fmt(r.get('reordered'), 0)} | {fmt(r.get('msgs_per_s') or r.get('connect_per_s'), 0)} | "
                 f"{util('broker_cpu_s')} | {util('load_cpu_s')} | "
                 f"{fmt(r.get('latency_p50_us'), 0)} | {fmt(r.get('latency_p99_us'), 0)} | {result} |")

table = "\n".join(lines) + "\n"
with open(out_path, "w") as f:
    f.write(table)
print()
print(table)
EOF

echo "table written to $out"
[[ $failures -eq 0 ]]
