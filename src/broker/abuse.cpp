// SPDX-License-Identifier: Apache-2.0
#include "broker/abuse.hpp"

#include <algorithm>

namespace ferrymq::broker {

namespace {

const char *kind_name(AbuseKind kind) {
    switch (kind) {
    case AbuseKind::auth_failure:
        return "failed authentication";
    case AbuseKind::acl_denial:
        return "ACL denial";
    case AbuseKind::malformed:
        return "malformed packet";
    case AbuseKind::count:
        break;
    }
    return "event";
}

} // namespace

AbuseTracker::Entry &AbuseTracker::entry(std::string_view address, uint64_t now_ms) {
    Entry &e = entries_[std::string(address)];
    if (now_ms - e.window_start_ms >= uint64_t{settings_.window_s} * 1000) {
        e.window_start_ms = now_ms;
        e.failures = 0;
        e.connects = 0;
    }
    e.last_seen_ms = now_ms;
    return e;
}

bool AbuseTracker::banned(std::string_view address, uint64_t now_ms) const {
    auto it = entries_.find(std::string(address));
    return it != entries_.end() && it->second.banned_until_ms > now_ms;
}

bool AbuseTracker::admit(std::string_view address, uint64_t now_ms) {
    if (address.empty() || (settings_.ban_after == 0 && settings_.max_connects == 0)) {
        return true;
    }
    Entry &e = entry(address, now_ms);
    if (e.banned_until_ms > now_ms) {
        ++totals_.refused_banned;
        return false;
    }
    if (settings_.max_connects != 0 && ++e.connects > settings_.max_connects) {
        ++totals_.refused_rate;
        if (e.connects == settings_.max_connects + 1) {
            log_.warn("%.*s: more than %u connections in %u s; refusing until the window ends",
                      int(address.size()), address.data(), settings_.max_connects,
                      settings_.window_s);
        }
        return false;
    }
    return true;
}

void AbuseTracker::note(std::string_view address, AbuseKind kind, uint64_t now_ms) {
    const size_t k = size_t(kind);
    ++totals_.events[k];
    if (address.empty()) {
        return;
    }
    Entry &e = entry(address, now_ms);
    // Rate-limited log: the first event, then at most one line per interval carrying the
    // number of events since the previous line.
    ++e.unlogged[k];
    if (e.last_log_ms[k] == 0 ||
        now_ms - e.last_log_ms[k] >= uint64_t{settings_.log_interval_s} * 1000) {
        log_.info("%.*s: %u %s%s", int(address.size()), address.data(), e.unlogged[k],
                  kind_name(kind), e.unlogged[k] == 1 ? "" : "s");
        e.last_log_ms[k] = now_ms;
        e.unlogged[k] = 0;
    }
    if (kind == AbuseKind::auth_failure && settings_.ban_after != 0 &&
        ++e.failures >= settings_.ban_after && e.banned_until_ms <= now_ms) {
        e.banned_until_ms = now_ms + uint64_t{settings_.ban_s} * 1000;
        ++totals_.bans;
        log_.warn("%.*s banned for %u s after %u failed authentications in %u s",
                  int(address.size()), address.data(), settings_.ban_s, e.failures,
                  settings_.window_s);
    }
}

void AbuseTracker::prune(uint64_t now_ms) {
    const uint64_t keep_ms =
        uint64_t{std::max(settings_.window_s, settings_.log_interval_s)} * 1000;
    for (auto it = entries_.begin(); it != entries_.end();) {
        const Entry &e = it->second;
        if (e.banned_until_ms <= now_ms && now_ms - e.last_seen_ms >= keep_ms) {
            it = entries_.erase(it);
        } else {
            ++it;
        }
    }
}

} // namespace ferrymq::broker
