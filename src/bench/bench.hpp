// SPDX-License-Identifier: Apache-2.0
// "ferrymq bench": a load generator that measures an MQTT broker (ours or another) from
// many client connections on one libuv loop in one thread. Scenarios:
//   fanin    N publishers -> 1 subscriber, flat out or at a fixed total rate
//   fanout   1 publisher -> N subscribers
//   latency  N publishers -> 1 subscriber at a fixed rate (20,000 msg/s by default)
//   connect  N connections, `concurrency` of them connecting at a time
//   idle     N idle connections held open; the broker's RSS growth per connection
//   durable  N publishers -> 1 persistent session that is offline, QoS 1: PUBACKs/s of
//            messages the broker must store before acknowledging, and the bytes it wrote
//            (with no subscriber, what the broker stores is what a bridge must forward)
// Every payload carries its publisher's id, a sequence number and a send timestamp, so the
// subscribers count loss and reordering per publisher and measure latency. With the
// broker's PID the run also reads the broker's CPU time, RSS and storage writes from /proc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ferrymq::bench {

// The command-line options of "ferrymq bench". Unset optionals take the scenario's default.
struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 1883;
    std::string scenario = "fanin";  // fanin, fanout, latency, connect, idle, durable
    std::optional<uint32_t> clients; // publishers (fanin, latency, durable), subscribers
                                     // (fanout), connections (connect, idle)
    int qos = 0;                     // 0 or 1, for publishing and subscribing
    uint32_t payload = 64;           // bytes per message, at least 20 (id, sequence, time)
    std::optional<double> duration;  // seconds of traffic, or of holding (idle)
    std::optional<uint64_t> messages; // traffic: PUBLISHes in total over all publishers,
                                      // sent instead of publishing for a duration
    std::string topic;               // empty: a topic of this run's own
    std::optional<double> rate;      // total msg/s over all publishers; 0 = flat out
    int broker_pid = 0;              // 0: no CPU or RSS figures
    bool json = false;               // print one JSON object instead of the human line
    std::string protocol = "3.1.1";  // 3.1.1 or 5
    uint32_t window = 100;           // messages a publisher may be ahead of its slowest
                                     // subscriber (end-to-end flow control)
    uint32_t inflight = 64;          // QoS 1 PUBLISHes a publisher may have unacknowledged
    uint32_t concurrency = 100;      // connections being set up at once
    bool drain = true;               // durable: resume the session afterwards and count that
                                     // every acknowledged message was queued
    bool subscriber = true;          // durable: false = publishers only, so the broker stores
                                     // only what something else wants (a bridge forward rule)
    std::string tls_ca;              // non-empty: connect over TLS, trusting these CAs
    std::string tls_server_name;     // the name the broker's certificate carries (default:
                                     // --host)
};

// Runs one scenario and prints its result (human line on stdout, or with `json` the JSON
// object on stdout and the human line on stderr). Returns the process exit code: 0 when
// measured, 2 when measured but messages were lost or reordered, 1 when the run failed
// (bad options, refused or dropped connections, a timeout).
int run(const Options &options);

} // namespace ferrymq::bench
