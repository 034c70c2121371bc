// SPDX-License-Identifier: Apache-2.0
// The 15 MQTT control packets as plain value types (spec chapter 3). Decoded packets own
// their bytes; the codec fills and reads them, the broker builds and consumes them.
#pragma once

#include "properties.hpp"
#include "reason.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace ferrymq::mqtt {

// Protocol level byte of CONNECT: 3 = MQTT 3.1 ("MQIsdp"), 4 = 3.1.1, 5 = 5.0.
enum class Version : uint8_t { v31 = 3, v311 = 4, v5 = 5 };

// Control packet type, the high nibble of the first byte (spec section 2.1.2).
enum class PacketType : uint8_t {
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
    pingreq = 12,
    pingresp = 13,
    disconnect = 14,
    auth = 15,
};

struct Will {
    std::string topic;   // topic name, no wildcards
    std::string payload; // binary
    uint8_t qos = 0;     // 0..2
    bool retain = false;
    Properties properties; // will properties (5.0 only)
    bool operator==(const Will &) const = default;
};

struct Connect {
    Version version = Version::v5;
    bool clean_start = true; // "clean session" in 3.1/3.1.1
    uint16_t keep_alive = 0; // seconds, 0 = disabled
    std::string client_id;   // may be empty (5.0, or 3.1.1 with clean session)
    std::optional<Will> will;
    std::optional<std::string> username;
    std::optional<std::string> password; // binary
    Properties properties;
    // Encode only: sets the top bit of the protocol level (0x83/0x84), the unofficial way a
    // 3.1/3.1.1 bridge tells a broker not to send its own messages back to it. Never
    // decoded: a CONNECT with that bit is refused like any unknown level.
    bool bridge = false;
    bool operator==(const Connect &) const = default;
};

struct Connack {
    bool session_present = false;
    Reason reason = Reason::success; // 3.1.1: decoded from / encoded as a return code 0..5
    Properties properties;
    bool operator==(const Connack &) const = default;
};

struct Publish {
    bool dup = false;
    uint8_t qos = 0; // 0..2
    bool retain = false;
    std::string topic;      // empty only with a Topic Alias (5.0)
    uint16_t packet_id = 0; // non-zero when qos > 0, absent on the wire for qos 0
    Properties properties;
    std::string payload; // binary
    bool operator==(const Publish &) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one layout (spec 3.4-3.7); the distinct types
// keep them apart in `Packet`.
struct Ack {
    uint16_t packet_id = 0;
    Reason reason = Reason::success;
    Properties properties;
    bool operator==(const Ack &) const = default;
};
struct Puback : Ack {};
struct Pubrec : Ack {};
struct Pubrel : Ack {};
struct Pubcomp : Ack {};

// Retain Handling option of a subscription (spec 3.8.3.1).
enum class RetainHandling : uint8_t { send = 0, send_if_new = 1, dont_send = 2 };

struct Subscription {
    std::string filter; // topic filter, possibly "$share/group/filter"
    uint8_t qos = 0;    // maximum QoS
    bool no_local = false;
    bool retain_as_published = false;
    RetainHandling retain_handling = RetainHandling::send;
    bool operator==(const Subscription &) const = default;
};

struct Subscribe {
    uint16_t packet_id = 0;
    Properties properties;
    std::vector<Subscription> subscriptions; // at least one
    bool operator==(const Subscribe &) const = default;
};

struct Suback {
    uint16_t packet_id = 0;
    Properties properties;
    std::vector<Reason> reasons; // one per subscription; 3.1.1 allows 0,1,2,0x80
    bool operator==(const Suback &) const = default;
};

struct Unsubscribe {
    uint16_t packet_id = 0;
    Properties properties;
    std::vector<std::string> filters; // at least one
    bool operator==(const Unsubscribe &) const = default;
};

struct Unsuback {
    uint16_t packet_id = 0;
    Properties properties;
    std::vector<Reason> reasons; // 5.0 only; empty in 3.1/3.1.1
    bool operator==(const Unsuback &) const = default;
};

struct Pingreq {
    bool operator==(const Pingreq &) const = default;
};
struct Pingresp {
    bool operator==(const Pingresp &) const = default;
};

struct Disconnect {
    Reason reason = Reason::success;
    Properties properties;
    bool operator==(const Disconnect &) const = default;
};

struct Auth {
    Reason reason = Reason::success;
    Properties properties;
    bool operator==(const Auth &) const = default;
};

// Alternatives are in packet-type order, so `index() + 1` is the type number.
using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe,
                            Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

inline PacketType packet_type(const Packet &p) {
    return static_cast<PacketType>(p.index() + 1);
}

std::string_view packet_type_name(PacketType t);

} // namespace ferrymq::mqtt
