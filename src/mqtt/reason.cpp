// SPDX-License-Identifier: Apache-2.0
#include "reason.hpp"

#include <algorithm>
#include <array>
#include <initializer_list>

namespace ferrymq::mqtt {

std::string_view reason_name(Reason r) {
    switch (r) {
    case Reason::success:
        return "Success";
    case Reason::granted_qos1:
        return "Granted QoS 1";
    case Reason::granted_qos2:
        return "Granted QoS 2";
    case Reason::disconnect_with_will:
        return "Disconnect with Will Message";
    case Reason::no_matching_subscribers:
        return "No matching subscribers";
    case Reason::no_subscription_existed:
        return "No subscription existed";
    case Reason::continue_authentication:
        return "Continue authentication";
    case Reason::re_authenticate:
        return "Re-authenticate";
    case Reason::unspecified_error:
        return "Unspecified error";
    case Reason::malformed_packet:
        return "Malformed Packet";
    case Reason::protocol_error:
        return "Protocol Error";
    case Reason::implementation_specific_error:
        return "Implementation specific error";
    case Reason::unsupported_protocol_version:
        return "Unsupported Protocol Version";
    case Reason::client_identifier_not_valid:
        return "Client Identifier not valid";
    case Reason::bad_user_name_or_password:
        return "Bad User Name or Password";
    case Reason::not_authorized:
        return "Not authorized";
    case Reason::server_unavailable:
        return "Server unavailable";
    case Reason::server_busy:
        return "Server busy";
    case Reason::banned:
        return "Banned";
    case Reason::server_shutting_down:
        return "Server shutting down";
    case Reason::bad_authentication_method:
        return "Bad authentication method";
    case Reason::keep_alive_timeout:
        return "Keep Alive timeout";
    case Reason::session_taken_over:
        return "Session taken over";
    case Reason::topic_filter_invalid:
        return "Topic Filter invalid";
    case Reason::topic_name_invalid:
        return "Topic Name invalid";
    case Reason::packet_identifier_in_use:
        return "Packet Identifier in use";
    case Reason::packet_identifier_not_found:
        return "Packet Identifier not found";
    case Reason::receive_maximum_exceeded:
        return "Receive Maximum exceeded";
    case Reason::topic_alias_invalid:
        return "Topic Alias invalid";
    case Reason::packet_too_large:
        return "Packet too large";
    case Reason::message_rate_too_high:
        return "Message rate too high";
    case Reason::quota_exceeded:
        return "Quota exceeded";
    case Reason::administrative_action:
        return "Administrative action";
    case Reason::payload_format_invalid:
        return "Payload format invalid";
    case Reason::retain_not_supported:
        return "Retain not supported";
    case Reason::qos_not_supported:
        return "QoS not supported";
    case Reason::use_another_server:
        return "Use another server";
    case Reason::server_moved:
        return "Server moved";
    case Reason::shared_subscriptions_not_supported:
        return "Shared Subscriptions not supported";
    case Reason::connection_rate_exceeded:
        return "Connection rate exceeded";
    case Reason::maximum_connect_time:
        return "Maximum connect time";
    case Reason::subscription_identifiers_not_supported:
        return "Subscription Identifiers not supported";
    case Reason::wildcard_subscriptions_not_supported:
        return "Wildcard Subscriptions not supported";
    }
    return "Unknown reason code";
}

namespace {

// One 256-bit set of allowed reason codes per packet type, built once at compile time.
struct ReasonSet {
    std::array<uint64_t, 4> bits{};
    constexpr ReasonSet(std::initializer_list<uint8_t> codes) {
        for (uint8_t c : codes) {
            bits[c / 64] |= uint64_t{1} << (c % 64);
        }
    }
    constexpr bool has(uint8_t c) const { return (bits[c / 64] >> (c % 64)) & 1U; }
};

constexpr ReasonSet kConnack{0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
                             0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
constexpr ReasonSet kPubackPubrec{0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
constexpr ReasonSet kPubrelPubcomp{0x00, 0x92};
constexpr ReasonSet kSuback{0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
constexpr ReasonSet kUnsuback{0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
constexpr ReasonSet kDisconnect{0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
constexpr ReasonSet kAuth{0x00, 0x18, 0x19};

} // namespace

bool reason_allowed(uint8_t type, Reason r) {
    const auto c = static_cast<uint8_t>(r);
    switch (type) {
    case 2:
        return kConnack.has(c);
    case 4:
    case 5:
        return kPubackPubrec.has(c);
    case 6:
    case 7:
        return kPubrelPubcomp.has(c);
    case 9:
        return kSuback.has(c);
    case 11:
        return kUnsuback.has(c);
    case 14:
        return kDisconnect.has(c);
    case 15:
        return kAuth.has(c);
    default:
        return false;
    }
}

uint8_t connack_return_code_v3(Reason r) {
    switch (r) {
    case Reason::success:
        return 0;
    case Reason::unsupported_protocol_version:
        return 1;
    case Reason::client_identifier_not_valid:
        return 2;
    case Reason::bad_user_name_or_password:
    case Reason::bad_authentication_method:
        return 4;
    case Reason::not_authorized:
    case Reason::banned:
        return 5;
    default:
        return 3; // Server unavailable
    }
}

} // namespace ferrymq::mqtt
