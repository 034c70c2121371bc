// SPDX-License-Identifier: Apache-2.0
// Abuse counters per source address: failed authentications, ACL denials and malformed
// packets, each counted and logged at most once per interval per address (with the number
// of events left out), plus an optional temporary ban after too many failed
// authentications and an optional limit on new connections per address. Owned by the
// Broker; addresses come from Link::peer() (internal links have none and are never
// counted). Memory: one small entry per address seen recently; idle entries are pruned.
#pragma once

#include "util/log.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ferrymq::broker {

struct AbuseSettings {
    uint32_t ban_after = 0;       // failed authentications within `window_s` that ban, 0 = never
    uint32_t window_s = 60;       // seconds over which failures and connections are counted
    uint32_t ban_s = 300;         // seconds a banned address is refused
    uint32_t max_connects = 0;    // new connections per address per window, 0 = no limit
    uint32_t log_interval_s = 10; // at most one log line per address and kind per interval
};

enum class AbuseKind : uint8_t { auth_failure, acl_denial, malformed, count };

struct AbuseTotals {
    uint64_t events[size_t(AbuseKind::count)]{}; // by kind, every address together
    uint64_t bans = 0;                           // addresses banned
    uint64_t refused_banned = 0;                 // connections refused from a banned address
    uint64_t refused_rate = 0;                   // connections refused over max_connects
};

class AbuseTracker {
  public:
    AbuseTracker(const AbuseSettings &settings, util::Log &log) : settings_(settings), log_(log) {}

    // A new connection from `address`: false when it must be closed at once (banned, or
    // over the connection rate).
    bool admit(std::string_view address, uint64_t now_ms);
    // Records one event; an authentication failure may ban the address.
    void note(std::string_view address, AbuseKind kind, uint64_t now_ms);
    // Drops entries with nothing left to remember; called from the broker's tick.
    void prune(uint64_t now_ms);
    const AbuseTotals &totals() const { return totals_; }
    // A reload: the new limits apply from the next event on; counts and bans stay.
    void set_settings(const AbuseSettings &settings) { settings_ = settings; }
    bool banned(std::string_view address, uint64_t now_ms) const;

  private:
    struct Entry {
        uint64_t window_start_ms = 0;
        uint32_t failures = 0; // auth failures in the current window
        uint32_t connects = 0; // connections in the current window
        uint64_t banned_until_ms = 0;
        uint64_t last_log_ms[size_t(AbuseKind::count)]{};
        uint32_t unlogged[size_t(AbuseKind::count)]{}; // events since the last log line
        uint64_t last_seen_ms = 0;
    };
    Entry &entry(std::string_view address, uint64_t now_ms);

    AbuseSettings settings_;
    util::Log &log_;
    AbuseTotals totals_;
    std::unordered_map<std::string, Entry> entries_;
};

} // namespace ferrymq::broker
