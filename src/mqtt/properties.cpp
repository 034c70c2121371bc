// SPDX-License-Identifier: Apache-2.0
#include "properties.hpp"

#include <array>

namespace ferrymq::mqtt {
namespace {

using Id = PropertyId;

constexpr uint64_t bit(Id id) {
    return uint64_t{1} << static_cast<uint8_t>(id);
}

constexpr uint64_t kUser = bit(Id::user_property);
constexpr uint64_t kReasonString = bit(Id::reason_string) | kUser;
constexpr uint64_t kMessage = bit(Id::payload_format_indicator) | bit(Id::message_expiry_interval) |
                              bit(Id::content_type) | bit(Id::response_topic) |
                              bit(Id::correlation_data) | kUser;

// Allowed property identifiers per context (spec table 2-4), one bit per identifier.
constexpr uint64_t allowed_mask(PropertyContext ctx) {
    switch (ctx) {
    case PropertyContext::connect:
        return bit(Id::session_expiry_interval) | bit(Id::authentication_method) |
               bit(Id::authentication_data) | bit(Id::request_problem_information) |
               bit(Id::request_response_information) | bit(Id::receive_maximum) |
               bit(Id::topic_alias_maximum) | bit(Id::maximum_packet_size) | kUser;
    case PropertyContext::connack:
        return bit(Id::session_expiry_interval) | bit(Id::assigned_client_identifier) |
               bit(Id::server_keep_alive) | bit(Id::authentication_method) |
               bit(Id::authentication_data) | bit(Id::response_information) |
               bit(Id::server_reference) | bit(Id::receive_maximum) | bit(Id::topic_alias_maximum) |
               bit(Id::maximum_qos) | bit(Id::retain_available) | bit(Id::maximum_packet_size) |
               bit(Id::wildcard_subscription_available) |
               bit(Id::subscription_identifier_available) | bit(Id::shared_subscription_available) |
               kReasonString;
    case PropertyContext::publish:
        return kMessage | bit(Id::topic_alias) | bit(Id::subscription_identifier);
    case PropertyContext::will:
        return kMessage | bit(Id::will_delay_interval);
    case PropertyContext::puback:
    case PropertyContext::pubrec:
    case PropertyContext::pubrel:
    case PropertyContext::pubcomp:
    case PropertyContext::suback:
    case PropertyContext::unsuback:
        return kReasonString;
    case PropertyContext::subscribe:
        return bit(Id::subscription_identifier) | kUser;
    case PropertyContext::unsubscribe:
        return kUser;
    case PropertyContext::disconnect:
        return bit(Id::session_expiry_interval) | bit(Id::server_reference) | kReasonString;
    case PropertyContext::auth:
        return bit(Id::authentication_method) | bit(Id::authentication_data) | kReasonString;
    }
    return 0;
}

} // namespace

bool property_allowed(PropertyContext ctx, PropertyId id) {
    const auto n = static_cast<uint8_t>(id);
    return n < 64 && ((allowed_mask(ctx) >> n) & 1U) != 0;
}

} // namespace ferrymq::mqtt
