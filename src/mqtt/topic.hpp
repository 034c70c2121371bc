// SPDX-License-Identifier: Apache-2.0
// Topic names and topic filters (spec 4.7) and shared subscriptions (spec 4.8.2).
// Pure string functions; UTF-8 well-formedness is checked by the codec, not here.
#pragma once

#include "reason.hpp"

#include <optional>
#include <string_view>

namespace ferrymq::mqtt {

// A topic name may be published to: at least one character, no '+' or '#'
// [MQTT-4.7.3-1], [MQTT-3.3.2-2].
bool valid_topic_name(std::string_view name);

// A topic filter may be subscribed to: at least one character, '#' only alone as the last
// level [MQTT-4.7.1-1], '+' only alone in a level [MQTT-4.7.1-2]. Shared filters are checked
// by `parse_shared_filter`.
bool valid_topic_filter(std::string_view filter);

// "$share/{group}/{filter}" split into its parts.
struct SharedFilter {
    std::string_view group;  // ShareName: non-empty, no '/', '+' or '#'
    std::string_view filter; // the ordinary filter after the group
};

// Outcome of looking at a filter that may be shared.
struct FilterCheck {
    Reason reason = Reason::success;    // success or topic_filter_invalid
    std::optional<SharedFilter> shared; // set for "$share/..." filters
};

// Validates `filter`, splitting a shared subscription into group and filter
// [MQTT-4.8.2-1], [MQTT-4.8.2-2].
FilterCheck check_filter(std::string_view filter);

// Whether topic name `name` matches topic filter `filter` (non-shared). Names starting with
// '$' are not matched by filters starting with a wildcard [MQTT-4.7.2-1].
bool topic_matches(std::string_view filter, std::string_view name);

} // namespace ferrymq::mqtt
