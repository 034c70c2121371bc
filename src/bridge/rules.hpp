// SPDX-License-Identifier: Apache-2.0
// Topic mapping for bridge rules: a rule's filter captures the levels its '+' wildcards
// match ({1}, {2}, ... in order) and what its trailing '#' matches ({#}), and a template
// builds the topic on the other side from them, e.g. "sensors/+/temp" with
// "site42/{1}/temperature" maps "sensors/k1/temp" to "site42/k1/temperature". Pure
// functions, used by the config reader (to check templates) and by bridges.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferrymq::bridge {

// Checks that every placeholder of `topic_template` exists in `filter` ({N} needs at least
// N '+' levels, {#} a trailing '#') and that the template has no wildcard. Empty: valid
// (the topic is kept as it is). Returns an error message, or nothing when valid.
std::optional<std::string> check_template(std::string_view filter, std::string_view topic_template);

// The topic `topic` (which matches `filter`) maps to through `topic_template`. An empty
// template keeps the topic. {#} of a '#' that matched nothing (the parent level) is empty,
// and a '/' before it in the template is dropped, so "a/#" with "b/{#}" maps "a" to "b".
std::string map_topic(std::string_view filter, std::string_view topic_template,
                      std::string_view topic);

// The inverse of map_topic: the topic on the filter's side whose mapping is `mapped`, or
// nothing when `mapped` is not something the template can produce (or the result would not
// match the filter). Used to carry a Response Topic across a bridge through the rule that
// brings the response back: "site42/replies/#" with "replies/{#}" turns the local Response
// Topic "replies/dev1" into "site42/replies/dev1".
std::optional<std::string> unmap_topic(std::string_view filter, std::string_view topic_template,
                                       std::string_view mapped);

} // namespace ferrymq::bridge
