#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# TLS cost, ferrymq against Debian's Mosquitto in the same run: the TLS handshake rate (full
# and resumed) and QoS 0 throughput over TLS, with plain TCP throughput beside it. Prints a
# markdown table (and writes it to OUTPUT.md when given).
#
#   tests/bench/tls_bench.sh [--duration S] [--repeat R] [OUTPUT.md]
#
# FERRYMQ_BIN: default build/src/ferrymq. MOSQUITTO_BIN: default /usr/sbin/mosquitto.
# --duration S: seconds per measurement (10). --repeat R: everything R times, medians shown.
#
# Method:
# - One EC P-256 certificate (CN=localhost, made here with openssl) for both brokers, each
#   with its defaults otherwise; one broker runs at a time, pinned to core 0 (taskset), the
#   clients on core 1; each measurement gets a freshly started broker.
# - Handshakes: "openssl s_time -new" (full handshakes, one connection at a time, TLS 1.2
#   forced on both so that Mosquitto's TLS 1.3 does not change the work) and "-reuse"
#   (session resumption); rate = connections / wall time, and the broker's CPU time from
#   /proc/PID/stat per full handshake.
# - Throughput: "ferrymq bench --scenario fanin --qos 0" (8 publishers -> 1 subscriber, 64-byte
#   payloads, flat out within a window of 100) over TLS 1.2 (bench's mbedTLS client) and over
#   plain TCP; msg/s and broker CPU-seconds per million messages.
#
# Exit status: 0 when every run completed, 1 otherwise, 2 on bad usage.
set -euo pipefail

duration=10
repeat=1
out=""
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ferrymq="${FERRYMQ_BIN:-$here/../../build/src/ferrymq}"
mosquitto="${MOSQUITTO_BIN:-/usr/sbin/mosquitto}"
python=/usr/bin/python3

while [[ $# -gt 0 ]]; do
    case "$1" in
    --duration) duration="$2"; shift ;;
    --repeat) repeat="$2"; shift ;;
    -h | --help) sed -n '3,24p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) out="$1" ;;
    esac
    shift
done
for tool in "$ferrymq" "$mosquitto" "$python" openssl taskset jq; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

work="$(mktemp -d)"
broker_pid=""
cleanup() {
    [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The certificate both brokers present.
(
    cd "$work"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj "/CN=bench CA" -days 2 -out ca.crt
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key 2>/dev/null
    openssl req -new -key server.key -subj "/CN=localhost" -addext \
        "subjectAltName=DNS:localhost" -out server.csr
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -copy_extensions copy -out server.crt 2>/dev/null
)

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listening() {
    for _ in $(seq 100); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}

cpu_seconds() { # utime + stime of PID $1
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

start_broker() { # $1 = ferrymq | mosquitto; sets broker_pid, tls_port, plain_port
    tls_port="$(free_port)"
    plain_port="$(free_port)"
    if [[ "$1" == ferrymq ]]; then
        rm -rf "$work/data"
        cat >"$work/ferrymq.yaml" <<EOF
listeners:
  - bind: "127.0.0.1:$plain_port"
  - bind: "127.0.0.1:$tls_port"
    tls:
      cert_file: "$work/server.crt"
      key_file: "$work/server.key"
data_dir: "$work/data"
EOF
        taskset -c 0 "$ferrymq" -c "$work/ferrymq.yaml" 2>"$work/broker.log" &
    else
        local user=""
        [[ "$(id -u)" == 0 ]] && user="user root"
        cat >"$work/mosquitto.conf" <<EOF
$user
log_dest stderr
log_type error
listener $plain_port 127.0.0.1
allow_anonymous true
listener $tls_port 127.0.0.1
allow_anonymous true
certfile $work/server.crt
keyfile $work/server.key
EOF
        taskset -c 0 "$mosquitto" -c "$work/mosquitto.conf" 2>"$work/broker.log" &
    fi
    broker_pid=$!
    wait_listening "$tls_port" && wait_listening "$plain_port" || {
        echo "$1 did not start:" >&2
        cat "$work/broker.log" >&2
        return 1
    }
}

stop_broker() {
    kill "$broker_pid"
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
}

handshakes() { # $1 = -new | -reuse; prints "rate cpu_ms_per_handshake"
    local before after start end count
    before="$(cpu_seconds "$broker_pid")"
    start="$(date +%s.%N)"
    count="$(taskset -c 1 openssl s_time -connect "127.0.0.1:$tls_port" -CAfile "$work/ca.crt" \
        -tls1_2 "$1" -time "$duration" 2>/dev/null |
        sed -n 's/^\([0-9]*\) connections in [0-9]* real seconds.*/\1/p' | tail -1)"
    end="$(date +%s.%N)"
    after="$(cpu_seconds "$broker_pid")"
    [[ -n "$count" && "$count" -gt 0 ]] || return 1
    awk -v n="$count" -v s="$start" -v e="$end" -v b="$before" -v a="$after" \
        'BEGIN { printf "%.0f %.2f\n", n / (e - s), (a - b) * 1000 / n }'
}

fanin() { # $1 = port, then extra bench options; prints "msg_per_s cpu_per_million"
    local port="$1"
    shift
    taskset -c 1 "$ferrymq" bench --port "$port" --scenario fanin --qos 0 \
        --duration "$duration" --broker-pid "$broker_pid" --json "$@" 2>/dev/null |
        tail -1 | jq -r '"\(.msgs_per_s) \(.broker_cpu_s_per_million)"'
}

results="$work/results.txt"
for round in $(seq "$repeat"); do
    for broker in ferrymq mosquitto; do
        start_broker "$broker"
        read -r rate cpu < <(handshakes -new)
        echo "$broker full_rate $rate" >>"$results"
        echo "$broker full_cpu_ms $cpu" >>"$results"
        stop_broker
        start_broker "$broker"
        read -r rate _ < <(handshakes -reuse)
        echo "$broker resumed_rate $rate" >>"$results"
        stop_broker
        start_broker "$broker"
        read -r rate cpu < <(fanin "$tls_port" --tls-ca "$work/ca.crt" --tls-server-name localhost)
        echo "$broker tls_msgs $rate" >>"$results"
        echo "$broker tls_cpu $cpu" >>"$results"
        stop_broker
        start_broker "$broker"
        read -r rate cpu < <(fanin "$plain_port")
        echo "$broker plain_msgs $rate" >>"$results"
        echo "$broker plain_cpu $cpu" >>"$results"
        stop_broker
        echo "round $round: $broker done" >&2
    done
done

table="$("$python" - "$results" "$duration" "$repeat" <<'EOF'
import statistics, sys
values = {}
for line in open(sys.argv[1]):
    broker, key, value = line.split()
    values.setdefault((broker, key), []).append(float(value))
def m(broker, key):
    return statistics.median(values[(broker, key)])
rows = [
    ("full TLS 1.2 handshakes/s (openssl s_time -new)", "full_rate", "{:,.0f}", True),
    ("broker CPU per full handshake, ms", "full_cpu_ms", "{:.2f}", False),
    ("resumed handshakes/s (s_time -reuse)", "resumed_rate", "{:,.0f}", True),
    ("QoS 0 fan-in over TLS, msg/s", "tls_msgs", "{:,.0f}", True),
    ("broker CPU-s per million msgs over TLS", "tls_cpu", "{:.2f}", False),
    ("QoS 0 fan-in over plain TCP, msg/s", "plain_msgs", "{:,.0f}", True),
    ("broker CPU-s per million msgs, plain", "plain_cpu", "{:.2f}", False),
]
print(f"TLS benchmark: {sys.argv[2]} s per figure, median of {sys.argv[3]} round(s)\n")
print("| figure | ferrymq | Mosquitto | ferrymq / Mosquitto |")
print("|---|---:|---:|---:|")
for label, key, fmt, higher in rows:
    f, q = m("ferrymq", key), m("mosquitto", key)
    print(f"| {label} | {fmt.format(f)} | {fmt.format(q)} | {f / q:.2f}{'' if higher else ' (lower is better)'} |")
EOF
)"
echo "$table"
[[ -n "$out" ]] && echo "$table" >"$out"
exit 0
