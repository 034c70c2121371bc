// SPDX-License-Identifier: Apache-2.0
#include "shared_subscriptions.hpp"

#include <algorithm>

namespace ferrymq::broker {
namespace {

// FNV-1a: a fixed hash, so hash_client and hash_topic map a given publisher or topic to
// the same member in every run (std::hash may differ between builds).
uint64_t fnv1a(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : s) {
        h ^= static_cast<uint8_t>(c);
        h *= 0x100000001b3ull;
    }
    return h;
}

// The splitmix64 finaliser: spreads the combined hashes of key and member over all bits.
uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

bool online(const Session &s) {
    return s.link_id != 0;
}

} // namespace

SharedSubscriptions::SharedSubscriptions(ShareStrategy strategy, uint64_t seed)
    : strategy_(strategy), rng_(seed) {}

std::string SharedSubscriptions::key(std::string_view group, std::string_view filter) {
    std::string k;
    k.reserve(group.size() + 1 + filter.size());
    k.append(group).append("/").append(filter);
    return k;
}

std::string_view SharedSubscriptions::key_of(uint32_t group_id) const {
    auto it = by_id_.find(group_id);
    return it == by_id_.end() ? std::string_view() : std::string_view(it->second->key);
}

uint32_t SharedSubscriptions::id_of(const std::string &key) const {
    auto it = by_key_.find(key);
    return it == by_key_.end() ? 0 : it->second->id;
}

bool SharedSubscriptions::add(std::string_view group, std::string_view filter, Session *session,
                              const SubscriptionOptions &options) {
    std::string k = key(group, filter);
    auto &slot = by_key_[k];
    if (!slot) {
        slot = std::make_unique<Group>();
        slot->key = std::move(k);
        // Ids are never 0 (Delivery's "not shared") and not reused while a group lives.
        do {
            ++last_id_;
        } while (last_id_ == 0 || by_id_.count(last_id_) != 0);
        slot->id = last_id_;
        slot->filter = std::string(filter);
        by_id_.emplace(slot->id, slot.get());
        by_filter_[slot->filter].push_back(slot.get());
    }
    Group &g = *slot;
    for (Member &m : g.members) {
        if (m.session == session) {
            m.options = options;
            return true;
        }
    }
    g.members.push_back(Member{session, options, fnv1a(session->client_id())});
    return false;
}

bool SharedSubscriptions::remove(std::string_view group, std::string_view filter,
                                 Session *session) {
    auto it = by_key_.find(key(group, filter));
    if (it == by_key_.end()) {
        return false;
    }
    Group &g = *it->second;
    auto member = std::find_if(g.members.begin(), g.members.end(),
                               [session](const Member &m) { return m.session == session; });
    if (member == g.members.end()) {
        return false;
    }
    // Keep the rotation where it was for the members that stay.
    const auto index = static_cast<size_t>(member - g.members.begin());
    if (index < g.next) {
        --g.next;
    }
    if (g.sticky == session) {
        g.sticky = nullptr;
    }
    g.members.erase(member);
    if (g.members.empty()) {
        auto groups = by_filter_.find(g.filter);
        std::erase(groups->second, &g);
        if (groups->second.empty()) {
            by_filter_.erase(groups);
        }
        by_id_.erase(g.id);
        by_key_.erase(it);
    }
    return true;
}

size_t SharedSubscriptions::member_count(std::string_view group, std::string_view filter) const {
    auto it = by_key_.find(key(group, filter));
    return it == by_key_.end() ? 0 : it->second->members.size();
}

SharedChoice SharedSubscriptions::choose_other(uint32_t group_id, const Message &message,
                                               const Session *leaving, bool online_only) {
    auto it = by_id_.find(group_id);
    if (it == by_id_.end()) {
        return {};
    }
    return choose(*it->second, message, leaving, online_only);
}

SharedChoice SharedSubscriptions::choose(Group &g, const Message &message, const Session *exclude,
                                         bool online_only) {
    // Candidates are member indexes in join order: the online members, else (unless
    // `online_only`) every member, so an all-offline group still queues the message.
    candidates_.clear();
    for (size_t i = 0; i < g.members.size(); ++i) {
        const Session *s = g.members[i].session;
        if (s != exclude && online(*s)) {
            candidates_.push_back(i);
        }
    }
    if (candidates_.empty() && !online_only) {
        for (size_t i = 0; i < g.members.size(); ++i) {
            if (g.members[i].session != exclude) {
                candidates_.push_back(i);
            }
        }
    }
    if (candidates_.empty()) {
        return {};
    }
    auto pick_random = [this]() {
        std::uniform_int_distribution<size_t> dist(0, candidates_.size() - 1);
        return candidates_[dist(rng_)];
    };
    size_t chosen = candidates_.front();
    switch (strategy_) {
    case ShareStrategy::round_robin: {
        // The first candidate at or after the cursor, wrapping to the first one.
        auto at = std::lower_bound(candidates_.begin(), candidates_.end(), g.next);
        chosen = at == candidates_.end() ? candidates_.front() : *at;
        g.next = chosen + 1;
        break;
    }
    case ShareStrategy::random:
        chosen = pick_random();
        break;
    case ShareStrategy::sticky: {
        auto current = std::find_if(candidates_.begin(), candidates_.end(),
                                    [&](size_t i) { return g.members[i].session == g.sticky; });
        chosen = current != candidates_.end() ? *current : pick_random();
        g.sticky = g.members[chosen].session;
        break;
    }
    case ShareStrategy::hash_client:
    case ShareStrategy::hash_topic: {
        // Rendezvous hashing: the candidate with the highest score for this key wins, so
        // a member joining or leaving moves only the keys it wins or won.
        const uint64_t k = fnv1a(strategy_ == ShareStrategy::hash_client
                                     ? std::string_view(message.origin_client_id)
                                     : std::string_view(message.topic));
        uint64_t best = 0;
        for (size_t i : candidates_) {
            const uint64_t score = mix(k ^ g.members[i].id_hash);
            if (i == candidates_.front() || score > best) {
                best = score;
                chosen = i;
            }
        }
        break;
    }
    }
    Member &m = g.members[chosen];
    return SharedChoice{m.session, &m.options, g.id};
}

bool SharedSubscriptions::any_persistent_match(std::string_view topic) const {
    for (const auto &[filter, groups] : by_filter_) {
        if (!mqtt::topic_matches(filter, topic)) {
            continue;
        }
        for (const Group *g : groups) {
            for (const Member &m : g->members) {
                if (m.session->persisted && m.options.qos > 0) {
                    return true;
                }
            }
        }
    }
    return false;
}

} // namespace ferrymq::broker
