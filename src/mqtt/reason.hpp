// SPDX-License-Identifier: Apache-2.0
// MQTT 5.0 reason codes (spec section 2.4) and their names. The codec reports every
// rejection with one of these; the broker maps them to CONNACK/DISCONNECT (5.0) or to a
// 3.1.1 CONNACK return code / closed connection in one place.
#pragma once

#include <cstdint>
#include <string_view>

namespace ferrymq::mqtt {

enum class Reason : uint8_t {
    success = 0x00, // also Normal disconnection and Granted QoS 0
    granted_qos1 = 0x01,
    granted_qos2 = 0x02,
    disconnect_with_will = 0x04,
    no_matching_subscribers = 0x10,
    no_subscription_existed = 0x11,
    continue_authentication = 0x18,
    re_authenticate = 0x19,
    unspecified_error = 0x80,
    malformed_packet = 0x81,
    protocol_error = 0x82,
    implementation_specific_error = 0x83,
    unsupported_protocol_version = 0x84,
    client_identifier_not_valid = 0x85,
    bad_user_name_or_password = 0x86,
    not_authorized = 0x87,
    server_unavailable = 0x88,
    server_busy = 0x89,
    banned = 0x8A,
    server_shutting_down = 0x8B,
    bad_authentication_method = 0x8C,
    keep_alive_timeout = 0x8D,
    session_taken_over = 0x8E,
    topic_filter_invalid = 0x8F,
    topic_name_invalid = 0x90,
    packet_identifier_in_use = 0x91,
    packet_identifier_not_found = 0x92,
    receive_maximum_exceeded = 0x93,
    topic_alias_invalid = 0x94,
    packet_too_large = 0x95,
    message_rate_too_high = 0x96,
    quota_exceeded = 0x97,
    administrative_action = 0x98,
    payload_format_invalid = 0x99,
    retain_not_supported = 0x9A,
    qos_not_supported = 0x9B,
    use_another_server = 0x9C,
    server_moved = 0x9D,
    shared_subscriptions_not_supported = 0x9E,
    connection_rate_exceeded = 0x9F,
    maximum_connect_time = 0xA0,
    subscription_identifiers_not_supported = 0xA1,
    wildcard_subscriptions_not_supported = 0xA2,
};

// The spec's name of a reason code, for logs and test messages ("Malformed Packet").
std::string_view reason_name(Reason r);

// Whether `r` may appear in a packet of the given type (spec tables in 3.2.2.2, 3.4.2.1,
// 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1). `type` is the control packet
// type number (1..15).
bool reason_allowed(uint8_t type, Reason r);

// The MQTT 3.1/3.1.1 CONNACK return code (0..5) that best expresses a 5.0 CONNACK reason.
uint8_t connack_return_code_v3(Reason r);

} // namespace ferrymq::mqtt
