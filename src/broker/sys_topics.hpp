// SPDX-License-Identifier: Apache-2.0
// The $SYS topics the broker publishes about itself: a pure function from counters and
// state to (topic, value) pairs, so the list is tested without a socket. The Broker owns
// the publishing (every sys_interval seconds, retained, only values that changed).
#pragma once

#include "broker.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferrymq::broker {

// A snapshot of what the $SYS topics report, taken by the Broker at publish time.
struct SysState {
    std::string_view version;            // ferrymq release, e.g. "0.1.0"
    uint64_t uptime_s = 0;               // seconds since the broker started
    std::array<uint64_t, 3> connected{}; // connected clients by SysVersion index
    uint64_t sessions = 0;               // sessions, connected or not
    uint64_t retained = 0;               // retained messages, $SYS ones included
    const StoreStatus *store = nullptr;  // null when no store is attached
};

// Index of a protocol version in SysState::connected.
enum class SysVersion : uint8_t { v31 = 0, v311 = 1, v5 = 2 };

// Every $SYS topic with its decimal (or, for the version, textual) value, in a fixed order.
// Reason codes appear only once sent at least once.
std::vector<std::pair<std::string, std::string>> sys_topics(const BrokerStats &stats,
                                                            const SysState &state);

} // namespace ferrymq::broker
