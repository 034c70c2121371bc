// SPDX-License-Identifier: Apache-2.0
#include "topic.hpp"

namespace ferrymq::mqtt {
namespace {

// A plain loop: string_view::find_first_of calls memchr once per character.
bool has_wildcard(std::string_view s) {
    for (const char c : s) {
        if (c == '+' || c == '#') {
            return true;
        }
    }
    return false;
}

} // namespace

bool valid_topic_name(std::string_view name) {
    return !name.empty() && !has_wildcard(name);
}

bool valid_topic_filter(std::string_view filter) {
    if (filter.empty()) {
        return false;
    }
    const size_t n = filter.size();
    for (size_t i = 0; i < n; ++i) {
        const char c = filter[i];
        if (c != '+' && c != '#') {
            continue;
        }
        // A wildcard must fill its level alone: preceded by '/' or the start, followed by
        // '/' or the end; '#' must additionally be the last character.
        if (i > 0 && filter[i - 1] != '/') {
            return false;
        }
        if (c == '#' && i != n - 1) {
            return false;
        }
        if (c == '+' && i + 1 < n && filter[i + 1] != '/') {
            return false;
        }
    }
    return true;
}

FilterCheck check_filter(std::string_view filter) {
    constexpr std::string_view kSharePrefix = "$share/";
    if (filter.substr(0, kSharePrefix.size()) != kSharePrefix) {
        return {valid_topic_filter(filter) ? Reason::success : Reason::topic_filter_invalid, {}};
    }
    const std::string_view rest = filter.substr(kSharePrefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos) {
        return {Reason::topic_filter_invalid, {}}; // no filter after the group [MQTT-4.8.2-1]
    }
    const SharedFilter shared{rest.substr(0, slash), rest.substr(slash + 1)};
    if (shared.group.empty() || has_wildcard(shared.group) || !valid_topic_filter(shared.filter)) {
        return {Reason::topic_filter_invalid, {}}; // [MQTT-4.8.2-2]
    }
    return {Reason::success, shared};
}

bool topic_matches(std::string_view filter, std::string_view name) {
    // Wildcards at the first level do not match names beginning with '$' [MQTT-4.7.2-1].
    if (!name.empty() && name[0] == '$' && !filter.empty() &&
        (filter[0] == '+' || filter[0] == '#')) {
        return false;
    }
    size_t f = 0;
    size_t t = 0;
    const size_t fn = filter.size();
    const size_t tn = name.size();
    while (f < fn) {
        if (filter[f] == '#') {
            return true; // matches this level and everything below, including the parent
        }
        if (filter[f] == '+') {
            while (t < tn && name[t] != '/') {
                ++t;
            }
            ++f;
        } else {
            while (f < fn && filter[f] != '/') {
                if (t >= tn || name[t] != filter[f]) {
                    return false;
                }
                ++f;
                ++t;
            }
            if (t < tn && name[t] != '/') {
                return false;
            }
        }
        // Both sides are at a level separator or at their end.
        if (f == fn) {
            return t == tn;
        }
        ++f; // skip '/' in the filter
        if (t == tn) {
            // The name ended; only "/#" remaining in the filter matches the parent level.
            return filter.substr(f) == "#";
        }
        ++t; // skip '/' in the name
    }
    // Both sides end with an empty level after a separator (or both are empty).
    return t == tn;
}

} // namespace ferrymq::mqtt
