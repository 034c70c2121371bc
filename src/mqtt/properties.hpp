// SPDX-License-Identifier: Apache-2.0
// Typed MQTT 5.0 properties (spec section 2.2.2.2). One struct holds every property as an
// optional field; which of them a packet may carry is enforced by the codec through
// `property_allowed`, so a decoded packet never holds a property its type forbids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ferrymq::mqtt {

// Property identifiers (spec table 2-4).
enum class PropertyId : uint8_t {
    payload_format_indicator = 0x01,
    message_expiry_interval = 0x02,
    content_type = 0x03,
    response_topic = 0x08,
    correlation_data = 0x09,
    subscription_identifier = 0x0B,
    session_expiry_interval = 0x11,
    assigned_client_identifier = 0x12,
    server_keep_alive = 0x13,
    authentication_method = 0x15,
    authentication_data = 0x16,
    request_problem_information = 0x17,
    will_delay_interval = 0x18,
    request_response_information = 0x19,
    response_information = 0x1A,
    server_reference = 0x1C,
    reason_string = 0x1F,
    receive_maximum = 0x21,
    topic_alias_maximum = 0x22,
    topic_alias = 0x23,
    maximum_qos = 0x24,
    retain_available = 0x25,
    user_property = 0x26,
    maximum_packet_size = 0x27,
    wildcard_subscription_available = 0x28,
    subscription_identifier_available = 0x29,
    shared_subscription_available = 0x2A,
};

// Where a property set sits: a control packet type (1..15) or the will properties of a
// CONNECT, which have their own allowed set.
enum class PropertyContext : uint8_t {
    connect = 1,
    connack = 2,
    publish = 3,
    puback = 4,
    pubrec = 5,
    pubrel = 6,
    pubcomp = 7,
    subscribe = 8,
    suback = 9,
    unsubscribe = 10,
    unsuback = 11,
    disconnect = 14,
    auth = 15,
    will = 16,
};

// Whether property `id` may appear in `ctx` (spec section 2.2.2.2, table 2-4).
bool property_allowed(PropertyContext ctx, PropertyId id);

using UserProperty = std::pair<std::string, std::string>;

// Every MQTT 5.0 property. Strings are UTF-8 (validated), `correlation_data` and
// `authentication_data` are binary. Intervals are in seconds.
struct Properties {
    std::optional<uint8_t> payload_format_indicator; // 0 bytes, 1 UTF-8
    std::optional<uint32_t> message_expiry_interval; // seconds
    std::optional<std::string> content_type;         // MIME type, UTF-8
    std::optional<std::string> response_topic;       // topic name
    std::optional<std::string> correlation_data;     // binary
    std::vector<uint32_t> subscription_identifiers;  // 1..268435455; one in SUBSCRIBE
    std::optional<uint32_t> session_expiry_interval; // seconds, 0xFFFFFFFF = never
    std::optional<std::string> assigned_client_identifier;
    std::optional<uint16_t> server_keep_alive; // seconds
    std::optional<std::string> authentication_method;
    std::optional<std::string> authentication_data;      // binary
    std::optional<uint8_t> request_problem_information;  // 0 or 1
    std::optional<uint32_t> will_delay_interval;         // seconds
    std::optional<uint8_t> request_response_information; // 0 or 1
    std::optional<std::string> response_information;
    std::optional<std::string> server_reference;
    std::optional<std::string> reason_string;
    std::optional<uint16_t> receive_maximum; // 1..65535
    std::optional<uint16_t> topic_alias_maximum;
    std::optional<uint16_t> topic_alias;                      // 1..Topic Alias Maximum
    std::optional<uint8_t> maximum_qos;                       // 0 or 1
    std::optional<uint8_t> retain_available;                  // 0 or 1
    std::vector<UserProperty> user_properties;                // in wire order, duplicates kept
    std::optional<uint32_t> maximum_packet_size;              // bytes, > 0
    std::optional<uint8_t> wildcard_subscription_available;   // 0 or 1
    std::optional<uint8_t> subscription_identifier_available; // 0 or 1
    std::optional<uint8_t> shared_subscription_available;     // 0 or 1

    bool operator==(const Properties &) const = default;

    // True when no property is set (the encoded property block is the single byte 0).
    bool empty() const { return *this == Properties{}; }
};

} // namespace ferrymq::mqtt
