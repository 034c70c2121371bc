// SPDX-License-Identifier: Apache-2.0
#include "broker/acl.hpp"

namespace ferrymq::broker {

namespace {

// Calls `fn(level, last)` for each '/'-separated level of `text`, stopping when it returns
// false; returns whether every call returned true.
template <class Fn> bool for_each_level(std::string_view text, Fn &&fn) {
    size_t pos = 0;
    for (;;) {
        const size_t slash = text.find('/', pos);
        const bool last = slash == std::string_view::npos;
        if (!fn(text.substr(pos, last ? std::string_view::npos : slash - pos), last)) {
            return false;
        }
        if (last) {
            return true;
        }
        pos = slash + 1;
    }
}

// Wildcards at the first level do not reach topics starting with '$' [MQTT-4.7.2-1].
bool dollar_blocked(const std::vector<std::string> &levels, std::string_view text) {
    return !text.empty() && text.front() == '$' && !levels.empty() &&
           (levels.front() == "+" || levels.front() == "#");
}

// Whether `value` may stand in for a placeholder: one whole level, no wildcard.
bool substitutable(std::string_view value) {
    return value.find_first_of("/+#") == std::string_view::npos;
}

} // namespace

bool acl_filter_matches(const std::vector<std::string> &levels, std::string_view topic) {
    if (dollar_blocked(levels, topic)) {
        return false;
    }
    size_t i = 0;
    bool hash = false;
    const bool walked = for_each_level(topic, [&](std::string_view level, bool) {
        if (i == levels.size()) {
            return false;
        }
        if (levels[i] == "#") {
            hash = true;
            return false; // matches the rest
        }
        if (levels[i] != "+" && levels[i] != level) {
            return false;
        }
        ++i;
        return true;
    });
    if (hash) {
        return true;
    }
    // "a/#" also matches "a" [MQTT-4.7.1-2].
    return walked && (i == levels.size() || (i + 1 == levels.size() && levels[i] == "#"));
}

bool acl_filter_covers(const std::vector<std::string> &levels, std::string_view filter) {
    if (dollar_blocked(levels, filter)) {
        return false;
    }
    size_t i = 0;
    bool hash = false;
    const bool walked = for_each_level(filter, [&](std::string_view level, bool) {
        if (i == levels.size()) {
            return false;
        }
        if (levels[i] == "#") {
            hash = true;
            return false;
        }
        if (level == "#") {
            return false; // only '#' covers '#'
        }
        if (levels[i] != "+" && (level == "+" || levels[i] != level)) {
            return false; // a literal level covers only itself
        }
        ++i;
        return true;
    });
    if (hash) {
        return true;
    }
    return walked && (i == levels.size() || (i + 1 == levels.size() && levels[i] == "#"));
}

bool ClientAcl::decide(std::string_view topic, uint8_t access) const {
    for (const Compiled &r : rules_) {
        if ((r.access & access) != 0 && acl_filter_matches(r.levels, topic)) {
            return r.allow;
        }
    }
    return false; // deny by default
}

bool ClientAcl::may_subscribe(std::string_view filter) const {
    for (const Compiled &r : rules_) {
        if ((r.access & kAclSubscribe) != 0 && acl_filter_covers(r.levels, filter)) {
            return r.allow;
        }
    }
    return false;
}

ClientAcl AclRules::for_client(const std::optional<std::string> &username,
                               std::string_view client_id) const {
    ClientAcl acl;
    for (const AclRule &rule : rules_) {
        if (rule.username && (!username || *rule.username != *username)) {
            continue;
        }
        if (rule.client_id && *rule.client_id != client_id) {
            continue;
        }
        ClientAcl::Compiled c;
        c.access = rule.access;
        c.allow = rule.allow;
        bool applies = true;
        for_each_level(rule.topic, [&](std::string_view level, bool) {
            std::string out;
            for (size_t k = 0; k < level.size(); ++k) {
                if (level[k] == '%' && k + 1 < level.size() &&
                    (level[k + 1] == 'u' || level[k + 1] == 'c')) {
                    const bool user = level[k + 1] == 'u';
                    if ((user && !username) ||
                        !substitutable(user ? std::string_view(*username) : client_id)) {
                        applies = false;
                        return false;
                    }
                    out += user ? std::string_view(*username) : client_id;
                    ++k;
                } else {
                    out += level[k];
                }
            }
            c.levels.push_back(std::move(out));
            return true;
        });
        if (applies) {
            acl.rules_.push_back(std::move(c));
        }
    }
    return acl;
}

} // namespace ferrymq::broker
