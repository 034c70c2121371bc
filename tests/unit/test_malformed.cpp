// SPDX-License-Identifier: Apache-2.0
// The malformed-packet corpus (spec 1.5, 2.1, 2.2, chapter 3, 4.7, 4.8.2): every entry is a
// complete frame with exactly one defect, and the reason code the codec must give for it.
// The table is built by small byte builders so that every remaining length is right and the
// defect is the only thing wrong. The integration tests reuse it via malformed_cases.hpp.
#include "malformed_cases.hpp"

#include "mqtt/codec.hpp"
#include "mqtt/properties.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>

#include <unistd.h>

namespace ferrymq::test {

namespace {

using mqtt::PropertyId;
using mqtt::Reason;
using mqtt::Version;
using Bytes = std::vector<uint8_t>;

constexpr Version V3 = Version::v31;
constexpr Version V4 = Version::v311;
constexpr Version V5 = Version::v5;

constexpr Reason kMalformed = Reason::malformed_packet;
constexpr Reason kProtocol = Reason::protocol_error;
constexpr Reason kVersion = Reason::unsupported_protocol_version;
constexpr Reason kClientId = Reason::client_identifier_not_valid;
constexpr Reason kFilter = Reason::topic_filter_invalid;
constexpr Reason kTopic = Reason::topic_name_invalid;
constexpr Reason kAlias = Reason::topic_alias_invalid;
constexpr Reason kTooLarge = Reason::packet_too_large;

// Byte builders. Each returns the wire form of one field.
Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto &p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

Bytes u16(uint16_t v) {
    return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

Bytes u32(uint32_t v) {
    return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
            static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// Minimal variable byte integer, written here rather than with put_vbi so the table does
// not depend on the code under test.
Bytes vbi(uint32_t v) {
    Bytes out;
    do {
        uint8_t b = v % 128;
        v /= 128;
        if (v > 0) {
            b |= 0x80;
        }
        out.push_back(b);
    } while (v > 0);
    return out;
}

Bytes raw(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

// A UTF-8 string or binary data field: two-byte length, then the bytes.
Bytes str(std::string_view s) {
    return cat({u16(static_cast<uint16_t>(s.size())), raw(s)});
}

// A whole frame: first byte, remaining length, body.
Bytes frame(uint8_t first, const Bytes &body) {
    return cat({{first}, vbi(static_cast<uint32_t>(body.size())), body});
}

// A property block: its length, then the properties.
Bytes props(const Bytes &body) {
    return cat({vbi(static_cast<uint32_t>(body.size())), body});
}

uint8_t id(PropertyId p) {
    return static_cast<uint8_t>(p);
}
Bytes p1(PropertyId p, uint8_t v) {
    return {id(p), v};
}
Bytes p2(PropertyId p, uint16_t v) {
    return cat({{id(p)}, u16(v)});
}
Bytes p4(PropertyId p, uint32_t v) {
    return cat({{id(p)}, u32(v)});
}
Bytes ps(PropertyId p, std::string_view s) {
    return cat({{id(p)}, str(s)});
}
Bytes pv(PropertyId p, uint32_t v) {
    return cat({{id(p)}, vbi(v)});
}
Bytes user(std::string_view k, std::string_view v) {
    return cat({{id(PropertyId::user_property)}, str(k), str(v)});
}

// CONNECT frames with a valid variable header around the given flags and payload.
Bytes connect_v4(uint8_t flags, const Bytes &payload, uint8_t first = 0x10) {
    return frame(first, cat({str("MQTT"), {4, flags}, u16(60), payload}));
}
Bytes connect_v5(uint8_t flags, const Bytes &properties, const Bytes &payload,
                 uint8_t first = 0x10) {
    return frame(first, cat({str("MQTT"), {5, flags}, u16(60), props(properties), payload}));
}
Bytes connect_v3(uint8_t flags, const Bytes &payload) {
    return frame(0x10, cat({str("MQIsdp"), {3, flags}, u16(60), payload}));
}
// A 5.0 CONNECT carrying a will with the given will properties.
Bytes connect_v5_will(const Bytes &will_properties, std::string_view will_topic = "w") {
    return connect_v5(0x06, {}, cat({str("c"), props(will_properties), str(will_topic), str("m")}));
}

// QoS 0 PUBLISH frames (first byte 0x30 unless given).
Bytes publish_v4(std::string_view topic, uint8_t first = 0x30) {
    return frame(first, cat({str(topic), raw("x")}));
}
Bytes publish_v5(std::string_view topic, const Bytes &properties = {}, uint8_t first = 0x30) {
    return frame(first, cat({str(topic), props(properties), raw("x")}));
}

// SUBSCRIBE / UNSUBSCRIBE frames with packet id 1 and one entry.
Bytes subscribe_v4(std::string_view filter, uint8_t options = 0x01) {
    return frame(0x82, cat({u16(1), str(filter), {options}}));
}
Bytes subscribe_v5(std::string_view filter, uint8_t options = 0x01, const Bytes &properties = {}) {
    return frame(0x82, cat({u16(1), props(properties), str(filter), {options}}));
}
Bytes unsubscribe_v4(std::string_view filter) {
    return frame(0xA2, cat({u16(1), str(filter)}));
}
Bytes unsubscribe_v5(std::string_view filter, const Bytes &properties = {}) {
    return frame(0xA2, cat({u16(1), props(properties), str(filter)}));
}

// 5.0 packets whose only variable part is a property block.
Bytes connack_v5(const Bytes &properties) {
    return frame(0x20, cat({{0x00, 0x00}, props(properties)}));
}
Bytes puback_v5(const Bytes &properties, uint8_t first = 0x40) {
    return frame(first, cat({u16(1), {0x00}, props(properties)}));
}
Bytes suback_v5(const Bytes &properties) {
    return frame(0x90, cat({u16(1), props(properties), {0x00}}));
}
Bytes unsuback_v5(const Bytes &properties) {
    return frame(0xB0, cat({u16(1), props(properties), {0x00}}));
}
Bytes disconnect_v5(const Bytes &properties, uint8_t reason = 0x00) {
    return frame(0xE0, cat({{reason}, props(properties)}));
}
Bytes auth_v5(const Bytes &properties, uint8_t reason = 0x18) {
    return frame(0xF0, cat({{reason}, props(properties)}));
}

std::vector<MalformedCase> build() {
    std::vector<MalformedCase> t;
    // Names get a version suffix so each is unique; the strings live as long as the table.
    static std::deque<std::string> names;
    auto add = [&](std::string name, Version v, Bytes bytes, Reason r, bool header = false) {
        name += v == V3 ? " (3.1)" : v == V4 ? " (3.1.1)" : " (5.0)";
        names.push_back(std::move(name));
        t.push_back({names.back().c_str(), v, std::move(bytes), r, header});
    };
    auto hdr = [&](std::string name, Version v, Bytes bytes, Reason r) {
        add(std::move(name), v, std::move(bytes), r, true);
    };

    // ---- Fixed header (spec 1.5.5, 2.1) ----
    hdr("[MQTT-1.5.5-1] PUBLISH remaining length in 5 bytes", V4,
        {0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, kMalformed);
    hdr("[MQTT-1.5.5-1] PINGREQ remaining length in 5 bytes", V5,
        {0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, kMalformed);
    hdr("[MQTT-1.5.5-1] continuation bit on 4th remaining length byte", V5,
        {0x30, 0x80, 0x80, 0x80, 0x80}, kMalformed);
    hdr("PUBLISH larger than maximum packet size (remaining length 268435455)", V5,
        {0x30, 0xFF, 0xFF, 0xFF, 0x7F}, kTooLarge);
    hdr("PUBLISH larger than maximum packet size (remaining length 2 MiB)", V4,
        {0x30, 0x80, 0x80, 0x80, 0x01}, kTooLarge);
    hdr("CONNECT larger than maximum packet size (remaining length 2 MiB)", V5,
        {0x10, 0x80, 0x80, 0x80, 0x01}, kTooLarge);

    add("packet type 0 (reserved)", V4, {0x00, 0x00}, kMalformed);
    add("packet type 0 (reserved) with body", V5, {0x00, 0x02, 0x00, 0x01}, kMalformed);
    add("AUTH does not exist before 5.0", V4, {0xF0, 0x00}, kMalformed);
    add("AUTH with reason does not exist before 5.0", V4, {0xF0, 0x02, 0x18, 0x00}, kMalformed);

    // [MQTT-2.1.3-1] Reserved flag bits: 0000 except PUBREL/SUBSCRIBE/UNSUBSCRIBE (0010).
    add("[MQTT-2.1.3-1] CONNECT flags 0001", V4, connect_v4(0x02, str("c"), 0x11), kMalformed);
    add("[MQTT-2.1.3-1] CONNECT flags 1000", V5, connect_v5(0x02, {}, str("c"), 0x18), kMalformed);
    add("[MQTT-2.1.3-1] CONNACK flags 0001", V4, {0x21, 0x02, 0x00, 0x00}, kMalformed);
    add("[MQTT-2.1.3-1] CONNACK flags 1000", V5, {0x28, 0x03, 0x00, 0x00, 0x00}, kMalformed);
    add("[MQTT-2.1.3-1] PUBACK flags 0010", V4, {0x42, 0x02, 0x00, 0x01}, kMalformed);
    add("[MQTT-2.1.3-1] PUBREC flags 0001", V5, {0x51, 0x02, 0x00, 0x01}, kMalformed);
    add("[MQTT-2.1.3-1] PUBREL flags 0000", V4, {0x60, 0x02, 0x00, 0x01}, kMalformed);
    add("[MQTT-2.1.3-1] PUBREL flags 0000", V5, {0x60, 0x02, 0x00, 0x01}, kMalformed);
    add("[MQTT-2.1.3-1] PUBREL flags 0011", V4, {0x63, 0x02, 0x00, 0x01}, kMalformed);
    add("[MQTT-2.1.3-1] PUBCOMP flags 0010", V5, {0x72, 0x02, 0x00, 0x01}, kMalformed);
    add("[MQTT-2.1.3-1] SUBSCRIBE flags 0000", V4, frame(0x80, cat({u16(1), str("a"), {0x00}})),
        kMalformed);
    add("[MQTT-2.1.3-1] SUBSCRIBE flags 0011", V5,
        frame(0x83, cat({u16(1), {0x00}, str("a"), {0x00}})), kMalformed);
    add("[MQTT-2.1.3-1] SUBACK flags 0010", V4, {0x92, 0x03, 0x00, 0x01, 0x00}, kMalformed);
    add("[MQTT-2.1.3-1] UNSUBSCRIBE flags 0000", V4, frame(0xA0, cat({u16(1), str("a")})),
        kMalformed);
    add("[MQTT-2.1.3-1] UNSUBSCRIBE flags 0110", V5, frame(0xA6, cat({u16(1), {0x00}, str("a")})),
        kMalformed);
    add("[MQTT-2.1.3-1] UNSUBACK flags 0001", V5, {0xB1, 0x04, 0x00, 0x01, 0x00, 0x00}, kMalformed);
    add("[MQTT-2.1.3-1] PINGREQ flags 0001", V4, {0xC1, 0x00}, kMalformed);
    add("[MQTT-2.1.3-1] PINGRESP flags 0010", V5, {0xD2, 0x00}, kMalformed);
    add("[MQTT-2.1.3-1] DISCONNECT flags 1000", V4, {0xE8, 0x00}, kMalformed);
    add("[MQTT-2.1.3-1] DISCONNECT flags 0001", V5, {0xE1, 0x00}, kMalformed);
    add("[MQTT-2.1.3-1] AUTH flags 0100", V5, {0xF4, 0x00}, kMalformed);

    // Remaining length disagreeing with the contents: truncated fields, trailing bytes.
    add("PUBACK packet id truncated", V4, {0x40, 0x01, 0x00}, kMalformed);
    add("PUBACK packet id truncated", V5, {0x40, 0x01, 0x00}, kMalformed);
    add("PUBACK trailing byte", V4, {0x40, 0x03, 0x00, 0x01, 0x00}, kMalformed);
    add("PUBACK trailing byte after properties", V5, {0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00},
        kMalformed);
    add("PUBACK property length past the end", V5, {0x40, 0x04, 0x00, 0x01, 0x00, 0x03},
        kMalformed);
    add("CONNACK trailing byte", V4, {0x20, 0x03, 0x00, 0x00, 0x00}, kMalformed);
    add("CONNACK return code missing", V4, {0x20, 0x01, 0x00}, kMalformed);
    add("CONNACK reason code missing", V5, {0x20, 0x01, 0x00}, kMalformed);
    add("UNSUBACK trailing byte", V4, {0xB0, 0x03, 0x00, 0x01, 0x00}, kMalformed);
    add("PUBLISH topic length past the end", V4, {0x30, 0x03, 0x00, 0x05, 0x61}, kMalformed);
    add("PUBLISH QoS 1 packet id missing", V5, frame(0x32, str("a/b")), kMalformed);
    add("PUBLISH property length missing", V5, frame(0x30, str("a/b")), kMalformed);
    add("DISCONNECT property length past the end", V5, {0xE0, 0x02, 0x00, 0x05}, kMalformed);
    add("CONNECT client id missing", V4, frame(0x10, cat({str("MQTT"), {4, 0x02}, u16(60)})),
        kMalformed);
    add("CONNECT client id length past the end", V4,
        frame(0x10, cat({str("MQTT"), {4, 0x02}, u16(60), u16(10), raw("abc")})), kMalformed);
    add("CONNECT property length past the end", V5,
        frame(0x10, cat({str("MQTT"), {5, 0x02}, u16(60), {0x0A}, str("c")})), kMalformed);
    add("CONNECT user name flag without user name", V4, connect_v4(0x82, str("c")), kMalformed);
    add("CONNECT password flag without password", V5,
        connect_v5(0xC2, {}, cat({str("c"), str("u")})), kMalformed);
    add("CONNECT will flag without will topic", V5,
        connect_v5(0x06, {}, cat({str("c"), props({})})), kMalformed);
    add("CONNECT trailing byte after payload", V4, connect_v4(0x02, cat({str("c"), {0x00}})),
        kMalformed);
    add("SUBSCRIBE options byte missing", V4, frame(0x82, cat({u16(1), str("ab")})), kMalformed);
    add("UNSUBSCRIBE trailing half length prefix", V4, frame(0xA2, cat({u16(1), str("a"), {0x00}})),
        kMalformed);

    add("PUBREC trailing byte", V4, {0x50, 0x03, 0x00, 0x01, 0x00}, kMalformed);
    add("PUBCOMP packet id truncated", V4, {0x70, 0x01, 0x01}, kMalformed);
    add("PUBACK property length in 5 bytes", V5,
        {0x40, 0x08, 0x00, 0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x00}, kMalformed);
    add("CONNECT will property length past the end", V5,
        connect_v5(0x06, {}, cat({str("c"), {0x09}, str("w"), str("m")})), kMalformed);
    add("SUBSCRIBE filter length past the end", V5,
        frame(0x82, cat({u16(1), {0x00}, u16(9), raw("ab")})), kMalformed);
    add("PUBLISH Correlation Data length past the property length", V5,
        frame(0x30, cat({str("a"),
                         {0x04, id(PropertyId::correlation_data), 0x00, 0x05, 'q'},
                         raw("xyzw")})),
        kMalformed);

    // Packets without a variable header must have remaining length 0.
    add("PINGREQ remaining length 1", V4, {0xC0, 0x01, 0x00}, kMalformed);
    add("PINGREQ remaining length 2", V5, {0xC0, 0x02, 0x00, 0x00}, kMalformed);
    add("PINGRESP remaining length 1", V4, {0xD0, 0x01, 0x00}, kMalformed);
    add("PINGRESP remaining length 1", V5, {0xD0, 0x01, 0x00}, kMalformed);
    add("DISCONNECT remaining length 1", V4, {0xE0, 0x01, 0x00}, kMalformed);
    add("DISCONNECT remaining length 2", V4, {0xE0, 0x02, 0x00, 0x00}, kMalformed);

    // ---- UTF-8 strings (spec 1.5.4) ----
    add("[MQTT-1.5.4-1] PUBLISH topic bad continuation byte", V4, publish_v4("a\xC3\x28"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic overlong 2-byte '/'", V5, publish_v5("\xC0\xAF"), kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic overlong 3-byte '/'", V4, publish_v4("\xE0\x80\xAF"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic overlong 4-byte U+FFFF", V5, publish_v5("\xF0\x8F\xBF\xBF"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic above U+10FFFF", V5, publish_v5("\xF4\x90\x80\x80"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic lead byte F5", V4, publish_v4("\xF5\x80\x80\x80"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic 5-byte sequence", V4, publish_v4("\xF8\x88\x80\x80\x80"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic surrogate U+D800", V5, publish_v5("a/\xED\xA0\x80"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic surrogate U+DFFF", V4, publish_v4("\xED\xBF\xBF"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic lone continuation byte", V5,
        publish_v5("a\x80"
                   "b"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic truncated sequence at end", V5, publish_v5("ab\xE2\x82"),
        kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH topic byte FF", V4, publish_v4("a\xFF"), kMalformed);
    add("[MQTT-1.5.4-2] PUBLISH topic contains U+0000", V4, publish_v4(std::string_view("a\0b", 3)),
        kMalformed);
    add("[MQTT-1.5.4-2] PUBLISH topic contains U+0000", V5, publish_v5(std::string_view("a\0b", 3)),
        kMalformed);
    add("[MQTT-1.5.4-1] CONNECT client id surrogate", V4, connect_v4(0x02, str("c\xED\xA0\x80")),
        kMalformed);
    add("[MQTT-1.5.4-2] CONNECT client id contains U+0000", V5,
        connect_v5(0x02, {}, str(std::string_view("c\0", 2))), kMalformed);
    add("[MQTT-1.5.4-1] CONNECT client id bad UTF-8", V3, connect_v3(0x02, str("c\xC3")),
        kMalformed);
    add("[MQTT-1.5.4-1] CONNECT user name overlong U+0000", V4,
        connect_v4(0x82, cat({str("c"), str("\xC0\x80")})), kMalformed);
    add("[MQTT-1.5.4-2] CONNECT user name contains U+0000", V5,
        connect_v5(0x82, {}, cat({str("c"), str(std::string_view("u\0", 2))})), kMalformed);
    add("[MQTT-1.5.4-1] CONNECT will topic surrogate", V4,
        connect_v4(0x06, cat({str("c"), str("w\xED\xA0\x80"), str("m")})), kMalformed);
    add("[MQTT-1.5.4-2] CONNECT will topic contains U+0000", V5,
        connect_v5_will({}, std::string_view("w\0", 2)), kMalformed);
    add("[MQTT-1.5.4-2] SUBSCRIBE filter contains U+0000", V4,
        subscribe_v4(std::string_view("a/\0", 3)), kMalformed);
    add("[MQTT-1.5.4-1] SUBSCRIBE filter overlong", V5, subscribe_v5("a/\xC1\xBF"), kMalformed);
    add("[MQTT-1.5.4-1] UNSUBSCRIBE filter surrogate", V4, unsubscribe_v4("\xED\xB0\x80/a"),
        kMalformed);
    add("[MQTT-1.5.4-2] UNSUBSCRIBE filter contains U+0000", V5,
        unsubscribe_v5(std::string_view("a\0", 2)), kMalformed);
    add("[MQTT-1.5.4-1] PUBLISH Content Type bad UTF-8", V5,
        publish_v5("a", ps(PropertyId::content_type, "text\xC3\x28")), kMalformed);
    add("[MQTT-1.5.4-2] PUBLISH Response Topic contains U+0000", V5,
        publish_v5("a", ps(PropertyId::response_topic, std::string_view("r\0", 2))), kMalformed);
    add("[MQTT-1.5.4-1] PUBACK Reason String surrogate", V5,
        puback_v5(ps(PropertyId::reason_string, "\xED\xA0\x80")), kMalformed);
    add("[MQTT-1.5.4-2] CONNECT Authentication Method contains U+0000", V5,
        connect_v5(0x02, ps(PropertyId::authentication_method, std::string_view("M\0", 2)),
                   str("c")),
        kMalformed);
    add("[MQTT-1.5.4-1] CONNACK Assigned Client Identifier above U+10FFFF", V5,
        connack_v5(ps(PropertyId::assigned_client_identifier, "\xF4\x90\x80\x80")), kMalformed);
    add("[MQTT-1.5.4-2] CONNACK Response Information contains U+0000", V5,
        connack_v5(ps(PropertyId::response_information, std::string_view("\0", 1))), kMalformed);
    add("[MQTT-1.5.4-1] DISCONNECT Server Reference overlong", V5,
        disconnect_v5(ps(PropertyId::server_reference, "\xE0\x9F\xBF")), kMalformed);
    add("[MQTT-1.5.4-2] PUBLISH User Property name contains U+0000", V5,
        publish_v5("a", user(std::string_view("k\0", 2), "v")), kMalformed);
    add("[MQTT-1.5.4-1] SUBSCRIBE User Property value bad UTF-8", V5,
        subscribe_v5("a", 0x01, user("k", "v\xC3")), kMalformed);
    add("[MQTT-1.5.4-1] AUTH User Property name surrogate", V5, auth_v5(user("\xED\xBF\xBF", "v")),
        kMalformed);
    add("[MQTT-1.5.4-1] CONNECT will Content Type bad UTF-8", V5,
        connect_v5_will(ps(PropertyId::content_type, "\x80")), kMalformed);
    add("User Property value length past the end of the properties", V5,
        puback_v5(cat({{id(PropertyId::user_property)}, str("k"), u16(5), raw("v")})), kMalformed);

    // ---- PUBLISH (spec 3.3) ----
    add("[MQTT-3.3.1-4] PUBLISH QoS 3", V4, frame(0x36, cat({str("a"), u16(1), raw("x")})),
        kMalformed);
    add("[MQTT-3.3.1-4] PUBLISH QoS 3", V5, frame(0x36, cat({str("a"), u16(1), {0x00}, raw("x")})),
        kMalformed);
    add("[MQTT-3.3.1-2] PUBLISH DUP with QoS 0", V4, publish_v4("a", 0x38), kMalformed);
    add("[MQTT-3.3.1-2] PUBLISH DUP with QoS 0", V5, publish_v5("a", {}, 0x38), kMalformed);
    add("[MQTT-3.3.2-2] PUBLISH topic contains '+'", V4, publish_v4("a/+"), kTopic);
    add("[MQTT-3.3.2-2] PUBLISH topic contains '#'", V4, publish_v4("a/#"), kTopic);
    add("[MQTT-3.3.2-2] PUBLISH topic is '+'", V5, publish_v5("+"), kTopic);
    add("[MQTT-3.3.2-2] PUBLISH topic contains '#' mid-level", V5, publish_v5("a#b"), kTopic);
    add("[MQTT-3.3.2-2] PUBLISH QoS 1 topic contains '+'", V5,
        frame(0x32, cat({str("a+"), u16(1), {0x00}, raw("x")})), kTopic);
    add("PUBLISH empty topic without Topic Alias", V5, publish_v5(""), kProtocol);
    add("PUBLISH QoS 1 empty topic without Topic Alias", V5,
        frame(0x32, cat({str(""), u16(1), {0x00}, raw("x")})), kProtocol);
    add("[MQTT-4.7.3-1] PUBLISH empty topic", V4, publish_v4(""), kTopic);
    add("[MQTT-2.2.1-3] PUBLISH QoS 1 packet id 0", V4, frame(0x32, cat({str("a"), u16(0)})),
        kProtocol);
    add("[MQTT-2.2.1-3] PUBLISH QoS 2 packet id 0", V5,
        frame(0x34, cat({str("a"), u16(0), {0x00}, raw("x")})), kProtocol);
    add("PUBLISH Topic Alias 0", V5, publish_v5("a", p2(PropertyId::topic_alias, 0)), kAlias);

    // ---- Properties (spec 2.2.2) ----
    add("PUBLISH unknown property 0x05", V5, publish_v5("a", {0x05, 0x00}), kMalformed);
    add("CONNECT unknown property 0x7F", V5, connect_v5(0x02, {0x7F, 0x00}, str("c")), kMalformed);
    add("PUBACK unknown property 0x00", V5, puback_v5({0x00}), kMalformed);
    add("SUBSCRIBE unknown property 0x2B", V5, subscribe_v5("a", 0x01, {0x2B, 0x00}), kMalformed);
    add("UNSUBSCRIBE unknown property 0x30", V5, unsubscribe_v5("a", {0x30, 0x00}), kMalformed);
    add("DISCONNECT unknown property 0x10", V5, disconnect_v5({0x10, 0x00}), kMalformed);
    add("CONNECT Topic Alias not allowed", V5,
        connect_v5(0x02, p2(PropertyId::topic_alias, 1), str("c")), kMalformed);
    add("CONNECT Will Delay Interval outside will properties", V5,
        connect_v5(0x02, p4(PropertyId::will_delay_interval, 5), str("c")), kMalformed);
    add("CONNECT Reason String not allowed", V5,
        connect_v5(0x02, ps(PropertyId::reason_string, "r"), str("c")), kMalformed);
    add("CONNECT Maximum QoS not allowed", V5,
        connect_v5(0x02, p1(PropertyId::maximum_qos, 1), str("c")), kMalformed);
    add("CONNECT Payload Format Indicator outside will properties", V5,
        connect_v5(0x02, p1(PropertyId::payload_format_indicator, 1), str("c")), kMalformed);
    add("will properties Topic Alias not allowed", V5,
        connect_v5_will(p2(PropertyId::topic_alias, 1)), kMalformed);
    add("will properties Session Expiry Interval not allowed", V5,
        connect_v5_will(p4(PropertyId::session_expiry_interval, 1)), kMalformed);
    add("PUBLISH Session Expiry Interval not allowed", V5,
        publish_v5("a", p4(PropertyId::session_expiry_interval, 1)), kMalformed);
    add("PUBLISH Reason String not allowed", V5,
        publish_v5("a", ps(PropertyId::reason_string, "r")), kMalformed);
    add("CONNACK Request Problem Information not allowed", V5,
        connack_v5(p1(PropertyId::request_problem_information, 1)), kMalformed);
    add("CONNACK Will Delay Interval not allowed", V5,
        connack_v5(p4(PropertyId::will_delay_interval, 1)), kMalformed);
    add("PUBACK Server Keep Alive not allowed", V5, puback_v5(p2(PropertyId::server_keep_alive, 1)),
        kMalformed);
    add("PUBREL Content Type not allowed", V5, puback_v5(ps(PropertyId::content_type, "t"), 0x62),
        kMalformed);
    add("SUBSCRIBE Content Type not allowed", V5,
        subscribe_v5("a", 0x01, ps(PropertyId::content_type, "t")), kMalformed);
    add("SUBSCRIBE Reason String not allowed", V5,
        subscribe_v5("a", 0x01, ps(PropertyId::reason_string, "r")), kMalformed);
    add("SUBACK Subscription Identifier not allowed", V5,
        suback_v5(pv(PropertyId::subscription_identifier, 1)), kMalformed);
    add("UNSUBSCRIBE Reason String not allowed", V5,
        unsubscribe_v5("a", ps(PropertyId::reason_string, "r")), kMalformed);
    add("UNSUBSCRIBE Subscription Identifier not allowed", V5,
        unsubscribe_v5("a", pv(PropertyId::subscription_identifier, 1)), kMalformed);
    add("UNSUBACK Topic Alias not allowed", V5, unsuback_v5(p2(PropertyId::topic_alias, 1)),
        kMalformed);
    add("DISCONNECT Assigned Client Identifier not allowed", V5,
        disconnect_v5(ps(PropertyId::assigned_client_identifier, "id")), kMalformed);
    add("DISCONNECT Receive Maximum not allowed", V5,
        disconnect_v5(p2(PropertyId::receive_maximum, 10)), kMalformed);
    add("AUTH Session Expiry Interval not allowed", V5,
        auth_v5(p4(PropertyId::session_expiry_interval, 10)), kMalformed);

    add("PUBLISH Message Expiry Interval twice", V5,
        publish_v5("a", cat({p4(PropertyId::message_expiry_interval, 1),
                             p4(PropertyId::message_expiry_interval, 2)})),
        kProtocol);
    add("PUBLISH Topic Alias twice", V5,
        publish_v5("a", cat({p2(PropertyId::topic_alias, 1), p2(PropertyId::topic_alias, 1)})),
        kProtocol);
    add("PUBLISH Content Type twice", V5,
        publish_v5("a",
                   cat({ps(PropertyId::content_type, "a"), ps(PropertyId::content_type, "b")})),
        kProtocol);
    add("CONNECT Session Expiry Interval twice", V5,
        connect_v5(0x02,
                   cat({p4(PropertyId::session_expiry_interval, 1),
                        p4(PropertyId::session_expiry_interval, 1)}),
                   str("c")),
        kProtocol);
    add("CONNECT Receive Maximum twice", V5,
        connect_v5(0x02,
                   cat({p2(PropertyId::receive_maximum, 5), user("k", "v"),
                        p2(PropertyId::receive_maximum, 6)}),
                   str("c")),
        kProtocol);
    add("will properties Will Delay Interval twice", V5,
        connect_v5_will(
            cat({p4(PropertyId::will_delay_interval, 1), p4(PropertyId::will_delay_interval, 2)})),
        kProtocol);
    add("CONNACK Maximum Packet Size twice", V5,
        connack_v5(cat(
            {p4(PropertyId::maximum_packet_size, 100), p4(PropertyId::maximum_packet_size, 100)})),
        kProtocol);
    add("PUBACK Reason String twice", V5,
        puback_v5(cat({ps(PropertyId::reason_string, "a"), ps(PropertyId::reason_string, "b")})),
        kProtocol);
    add("SUBACK Reason String twice", V5,
        suback_v5(cat({ps(PropertyId::reason_string, "a"), ps(PropertyId::reason_string, "b")})),
        kProtocol);
    add("DISCONNECT Session Expiry Interval twice", V5,
        disconnect_v5(cat({p4(PropertyId::session_expiry_interval, 0),
                           p4(PropertyId::session_expiry_interval, 0)})),
        kProtocol);
    add("AUTH Authentication Method twice", V5,
        auth_v5(cat({ps(PropertyId::authentication_method, "m"),
                     ps(PropertyId::authentication_method, "m")})),
        kProtocol);
    add("SUBSCRIBE Subscription Identifier twice", V5,
        subscribe_v5("a", 0x01,
                     cat({pv(PropertyId::subscription_identifier, 1),
                          pv(PropertyId::subscription_identifier, 2)})),
        kProtocol);

    add("PUBLISH property value runs past the property length", V5,
        frame(0x30, cat({str("a"),
                         {0x03, id(PropertyId::message_expiry_interval), 0x00, 0x00},
                         raw("xy")})),
        kMalformed);
    add("CONNACK string property length prefix past the property length", V5,
        frame(0x20, cat({{0x00, 0x00}, {0x02, id(PropertyId::reason_string), 0x00}})), kMalformed);
    add("CONNECT property value past the property length", V5,
        frame(0x10, cat({str("MQTT"),
                         {5, 0x02},
                         u16(60),
                         {0x02, id(PropertyId::receive_maximum), 0x00},
                         str("c")})),
        kMalformed);

    add("PUBLISH Payload Format Indicator 2", V5,
        publish_v5("a", p1(PropertyId::payload_format_indicator, 2)), kProtocol);
    add("will properties Payload Format Indicator 2", V5,
        connect_v5_will(p1(PropertyId::payload_format_indicator, 2)), kProtocol);
    add("CONNECT Request Problem Information 2", V5,
        connect_v5(0x02, p1(PropertyId::request_problem_information, 2), str("c")), kProtocol);
    add("CONNECT Request Response Information 2", V5,
        connect_v5(0x02, p1(PropertyId::request_response_information, 2), str("c")), kProtocol);
    add("CONNACK Maximum QoS 2", V5, connack_v5(p1(PropertyId::maximum_qos, 2)), kProtocol);
    add("CONNACK Retain Available 2", V5, connack_v5(p1(PropertyId::retain_available, 2)),
        kProtocol);
    add("CONNACK Wildcard Subscription Available 2", V5,
        connack_v5(p1(PropertyId::wildcard_subscription_available, 2)), kProtocol);
    add("CONNACK Subscription Identifier Available 2", V5,
        connack_v5(p1(PropertyId::subscription_identifier_available, 2)), kProtocol);
    add("CONNACK Shared Subscription Available 2", V5,
        connack_v5(p1(PropertyId::shared_subscription_available, 2)), kProtocol);
    add("CONNECT Receive Maximum 0", V5,
        connect_v5(0x02, p2(PropertyId::receive_maximum, 0), str("c")), kProtocol);
    add("CONNACK Receive Maximum 0", V5, connack_v5(p2(PropertyId::receive_maximum, 0)), kProtocol);
    add("CONNECT Maximum Packet Size 0", V5,
        connect_v5(0x02, p4(PropertyId::maximum_packet_size, 0), str("c")), kProtocol);
    add("CONNACK Maximum Packet Size 0", V5, connack_v5(p4(PropertyId::maximum_packet_size, 0)),
        kProtocol);
    add("SUBSCRIBE Subscription Identifier 0", V5,
        subscribe_v5("a", 0x01, pv(PropertyId::subscription_identifier, 0)), kProtocol);
    add("PUBLISH Subscription Identifier 0", V5,
        publish_v5("a", pv(PropertyId::subscription_identifier, 0)), kProtocol);
    add("SUBSCRIBE Subscription Identifier VBI in 5 bytes", V5,
        subscribe_v5("a", 0x01,
                     {id(PropertyId::subscription_identifier), 0x80, 0x80, 0x80, 0x80, 0x01}),
        kMalformed);
    add("PUBLISH Subscription Identifier VBI in 5 bytes", V5,
        publish_v5("a", {id(PropertyId::subscription_identifier), 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}),
        kMalformed);

    // ---- CONNECT (spec 3.1) ----
    add("[MQTT-3.1.2-1] CONNECT protocol name MQTX", V4,
        frame(0x10, cat({str("MQTX"), {4, 0x02}, u16(60), str("c")})), kVersion);
    add("[MQTT-3.1.2-1] CONNECT protocol name mqtt", V5,
        frame(0x10, cat({str("mqtt"), {5, 0x02}, u16(60), {0x00}, str("c")})), kVersion);
    add("[MQTT-3.1.2-1] CONNECT protocol name MQIsdp with level 4", V4,
        frame(0x10, cat({str("MQIsdp"), {4, 0x02}, u16(60), str("c")})), kVersion);
    add("[MQTT-3.1.2-1] CONNECT protocol name MQIsdp with level 5", V5,
        frame(0x10, cat({str("MQIsdp"), {5, 0x02}, u16(60), {0x00}, str("c")})), kVersion);
    add("[MQTT-3.1.2-1] CONNECT protocol name MQTT with level 3", V3,
        frame(0x10, cat({str("MQTT"), {3, 0x02}, u16(60), str("c")})), kVersion);
    add("[MQTT-3.1.2-2] CONNECT protocol level 6", V5,
        frame(0x10, cat({str("MQTT"), {6, 0x02}, u16(60), {0x00}, str("c")})), kVersion);
    add("[MQTT-3.1.2-2] CONNECT protocol level 0", V4,
        frame(0x10, cat({str("MQTT"), {0, 0x02}, u16(60), str("c")})), kVersion);
    add("[MQTT-3.1.2-2] CONNECT protocol level 2", V4,
        frame(0x10, cat({str("MQTT"), {2, 0x02}, u16(60), str("c")})), kVersion);
    add("[MQTT-3.1.2-3] CONNECT reserved flag set", V4, connect_v4(0x03, str("c")), kMalformed);
    add("[MQTT-3.1.2-3] CONNECT reserved flag set", V5, connect_v5(0x03, {}, str("c")), kMalformed);
    add("[MQTT-3.1.2-3] CONNECT reserved flag set", V3, connect_v3(0x03, str("c")), kMalformed);
    add("[MQTT-3.1.2-11] CONNECT will QoS 1 without will flag", V4, connect_v4(0x0A, str("c")),
        kMalformed);
    add("[MQTT-3.1.2-11] CONNECT will QoS 2 without will flag", V5, connect_v5(0x12, {}, str("c")),
        kMalformed);
    add("[MQTT-3.1.2-13] CONNECT will retain without will flag", V4, connect_v4(0x22, str("c")),
        kMalformed);
    add("[MQTT-3.1.2-13] CONNECT will retain without will flag", V5, connect_v5(0x22, {}, str("c")),
        kMalformed);
    add("[MQTT-3.1.2-12] CONNECT will QoS 3", V4,
        connect_v4(0x1E, cat({str("c"), str("w"), str("m")})), kMalformed);
    add("[MQTT-3.1.2-12] CONNECT will QoS 3", V5,
        connect_v5(0x1E, {}, cat({str("c"), props({}), str("w"), str("m")})), kMalformed);
    add("[MQTT-3.1.2-22] CONNECT password flag without user name flag", V4,
        connect_v4(0x42, cat({str("c"), str("p")})), kMalformed);
    add("[MQTT-3.1.3-8] CONNECT empty client id with clean session 0", V4,
        connect_v4(0x00, str("")), kClientId);
    add("CONNECT empty client id with clean session 1", V3, connect_v3(0x02, str("")), kClientId);
    add("CONNECT empty client id with clean session 0", V3, connect_v3(0x00, str("")), kClientId);
    add("CONNECT will topic contains '+'", V4,
        connect_v4(0x06, cat({str("c"), str("w/+"), str("m")})), kTopic);
    add("CONNECT will topic contains '#'", V5, connect_v5_will({}, "w/#"), kTopic);
    add("CONNECT will topic empty", V4, connect_v4(0x06, cat({str("c"), str(""), str("m")})),
        kTopic);
    add("CONNECT will topic empty", V5, connect_v5_will({}, ""), kTopic);

    // ---- CONNACK (spec 3.2) ----
    add("[MQTT-3.2.2-1] CONNACK acknowledge flags bit 1 set", V4, {0x20, 0x02, 0x02, 0x00},
        kMalformed);
    add("[MQTT-3.2.2-1] CONNACK acknowledge flags bit 7 set", V4, {0x20, 0x02, 0x80, 0x00},
        kMalformed);
    add("[MQTT-3.2.2-1] CONNACK acknowledge flags bit 7 set", V5, {0x20, 0x03, 0x80, 0x00, 0x00},
        kMalformed);
    add("[MQTT-3.2.2-1] CONNACK acknowledge flags 0xFE", V5, {0x20, 0x03, 0xFE, 0x00, 0x00},
        kMalformed);
    add("CONNACK return code 6", V4, {0x20, 0x02, 0x00, 0x06}, kMalformed);
    add("CONNACK return code 0x80", V4, {0x20, 0x02, 0x00, 0x80}, kMalformed);
    add("CONNACK reason 0x04 not allowed", V5, {0x20, 0x03, 0x00, 0x04, 0x00}, kMalformed);
    add("CONNACK reason 0x8E not allowed", V5, {0x20, 0x03, 0x00, 0x8E, 0x00}, kMalformed);
    add("CONNACK reason 0x01 not allowed", V5, {0x20, 0x03, 0x00, 0x01, 0x00}, kMalformed);

    // ---- PUBACK, PUBREC, PUBREL, PUBCOMP (spec 3.4-3.7) ----
    add("PUBACK reason 0x92 not allowed", V5, {0x40, 0x03, 0x00, 0x01, 0x92}, kMalformed);
    add("PUBACK reason 0x01 not allowed", V5, {0x40, 0x04, 0x00, 0x01, 0x01, 0x00}, kMalformed);
    add("PUBREC reason 0x8F not allowed", V5, {0x50, 0x03, 0x00, 0x01, 0x8F}, kMalformed);
    add("PUBREL reason 0x10 not allowed", V5, {0x62, 0x03, 0x00, 0x01, 0x10}, kMalformed);
    add("PUBREL reason 0x80 not allowed", V5, {0x62, 0x04, 0x00, 0x01, 0x80, 0x00}, kMalformed);
    add("PUBCOMP reason 0x80 not allowed", V5, {0x70, 0x03, 0x00, 0x01, 0x80}, kMalformed);
    add("[MQTT-2.2.1-3] PUBACK packet id 0", V4, {0x40, 0x02, 0x00, 0x00}, kProtocol);
    add("[MQTT-2.2.1-3] PUBACK packet id 0", V5, {0x40, 0x02, 0x00, 0x00}, kProtocol);
    add("[MQTT-2.2.1-3] PUBREC packet id 0", V4, {0x50, 0x02, 0x00, 0x00}, kProtocol);
    add("[MQTT-2.2.1-3] PUBREL packet id 0", V5, {0x62, 0x02, 0x00, 0x00}, kProtocol);
    add("[MQTT-2.2.1-3] PUBCOMP packet id 0", V4, {0x70, 0x02, 0x00, 0x00}, kProtocol);
    add("[MQTT-2.2.1-3] PUBCOMP packet id 0 with reason", V5, {0x70, 0x03, 0x00, 0x00, 0x00},
        kProtocol);

    // ---- DISCONNECT and AUTH reason codes (spec 3.14, 3.15) ----
    add("DISCONNECT reason 0x01 not allowed", V5, disconnect_v5({}, 0x01), kMalformed);
    add("DISCONNECT reason 0x84 not allowed", V5, disconnect_v5({}, 0x84), kMalformed);
    add("DISCONNECT reason 0x19 not allowed", V5, disconnect_v5({}, 0x19), kMalformed);
    add("AUTH reason 0x80 not allowed", V5, auth_v5({}, 0x80), kMalformed);
    add("AUTH reason 0x04 not allowed", V5, auth_v5({}, 0x04), kMalformed);

    // ---- SUBACK, UNSUBACK (spec 3.9, 3.11) ----
    add("SUBACK reason 0x03 not allowed", V5, {0x90, 0x04, 0x00, 0x01, 0x00, 0x03}, kMalformed);
    add("SUBACK reason 0x11 not allowed", V5, {0x90, 0x04, 0x00, 0x01, 0x00, 0x11}, kMalformed);
    add("SUBACK return code 0x03 not allowed", V4, {0x90, 0x03, 0x00, 0x01, 0x03}, kMalformed);
    add("SUBACK return code 0x87 not allowed", V4, {0x90, 0x03, 0x00, 0x01, 0x87}, kMalformed);
    add("[MQTT-2.2.1-3] SUBACK packet id 0", V4, {0x90, 0x03, 0x00, 0x00, 0x00}, kProtocol);
    add("[MQTT-2.2.1-3] SUBACK packet id 0", V5, {0x90, 0x04, 0x00, 0x00, 0x00, 0x00}, kProtocol);
    add("UNSUBACK reason 0x01 not allowed", V5, {0xB0, 0x04, 0x00, 0x01, 0x00, 0x01}, kMalformed);
    add("UNSUBACK reason 0x8E not allowed", V5, {0xB0, 0x04, 0x00, 0x01, 0x00, 0x8E}, kMalformed);
    add("[MQTT-2.2.1-3] UNSUBACK packet id 0", V4, {0xB0, 0x02, 0x00, 0x00}, kProtocol);
    add("[MQTT-2.2.1-3] UNSUBACK packet id 0", V5, {0xB0, 0x04, 0x00, 0x00, 0x00, 0x00}, kProtocol);

    // ---- SUBSCRIBE (spec 3.8, 4.7, 4.8.2) ----
    add("[MQTT-3.8.3-2] SUBSCRIBE without topic filters", V4, {0x82, 0x02, 0x00, 0x01}, kProtocol);
    add("[MQTT-3.8.3-2] SUBSCRIBE without topic filters", V5, {0x82, 0x03, 0x00, 0x01, 0x00},
        kProtocol);
    add("[MQTT-3.8.3-5] SUBSCRIBE options bit 2 set", V4, subscribe_v4("a", 0x04), kMalformed);
    add("[MQTT-3.8.3-5] SUBSCRIBE options bit 7 set", V4, subscribe_v4("a", 0x80), kMalformed);
    add("[MQTT-3.8.3-5] SUBSCRIBE options bit 6 set", V5, subscribe_v5("a", 0x40), kMalformed);
    add("[MQTT-3.8.3-5] SUBSCRIBE options bits 7..6 set", V5, subscribe_v5("a", 0xC0), kMalformed);
    add("SUBSCRIBE options QoS 3", V4, subscribe_v4("a", 0x03), kMalformed);
    add("SUBSCRIBE options QoS 3", V5, subscribe_v5("a", 0x03), kMalformed);
    add("SUBSCRIBE Retain Handling 3", V5, subscribe_v5("a", 0x30), kProtocol);
    add("[MQTT-4.7.1-1] SUBSCRIBE filter a/#/b", V4, subscribe_v4("a/#/b"), kFilter);
    add("[MQTT-4.7.1-1] SUBSCRIBE filter a#", V4, subscribe_v4("a#"), kFilter);
    add("[MQTT-4.7.1-1] SUBSCRIBE filter #/a", V5, subscribe_v5("#/a"), kFilter);
    add("[MQTT-4.7.1-1] SUBSCRIBE filter a/#/", V5, subscribe_v5("a/#/"), kFilter);
    add("[MQTT-4.7.1-2] SUBSCRIBE filter a/b+", V5, subscribe_v5("a/b+"), kFilter);
    add("[MQTT-4.7.1-2] SUBSCRIBE filter +a", V4, subscribe_v4("+a"), kFilter);
    add("[MQTT-4.7.3-1] SUBSCRIBE empty filter", V4, subscribe_v4(""), kFilter);
    add("[MQTT-4.7.3-1] SUBSCRIBE empty filter", V5, subscribe_v5(""), kFilter);
    add("[MQTT-4.7.1-1] SUBSCRIBE second filter a/#/b", V4,
        frame(0x82, cat({u16(1), str("a"), {0x00}, str("a/#/b"), {0x01}})), kFilter);
    add("[MQTT-4.8.2-1] SUBSCRIBE $share/grp without filter", V5, subscribe_v5("$share/grp"),
        kFilter);
    add("[MQTT-4.8.2-1] SUBSCRIBE $share//a empty share name", V5, subscribe_v5("$share//a"),
        kFilter);
    add("[MQTT-4.8.2-2] SUBSCRIBE $share/g+/a", V5, subscribe_v5("$share/g+/a"), kFilter);
    add("[MQTT-4.8.2-2] SUBSCRIBE $share/g#/a", V5, subscribe_v5("$share/g#/a"), kFilter);
    add("[MQTT-4.7.1-1] SUBSCRIBE $share/g/a# invalid filter after group", V5,
        subscribe_v5("$share/g/a#"), kFilter);
    add("[MQTT-3.8.3-4] SUBSCRIBE No Local on a shared subscription", V5,
        subscribe_v5("$share/g/a", 0x05), kProtocol);
    add("[MQTT-2.2.1-3] SUBSCRIBE packet id 0", V4, frame(0x82, cat({u16(0), str("a"), {0x00}})),
        kProtocol);
    add("[MQTT-2.2.1-3] SUBSCRIBE packet id 0", V5,
        frame(0x82, cat({u16(0), {0x00}, str("a"), {0x00}})), kProtocol);

    // ---- UNSUBSCRIBE (spec 3.10) ----
    add("[MQTT-3.10.3-2] UNSUBSCRIBE without topic filters", V4, {0xA2, 0x02, 0x00, 0x01},
        kProtocol);
    add("[MQTT-3.10.3-2] UNSUBSCRIBE without topic filters", V5, {0xA2, 0x03, 0x00, 0x01, 0x00},
        kProtocol);
    add("[MQTT-4.7.1-1] UNSUBSCRIBE filter a/#/b", V4, unsubscribe_v4("a/#/b"), kFilter);
    add("[MQTT-4.7.1-2] UNSUBSCRIBE filter a+", V5, unsubscribe_v5("a+"), kFilter);
    add("[MQTT-4.7.3-1] UNSUBSCRIBE empty filter", V5, unsubscribe_v5(""), kFilter);
    add("[MQTT-4.8.2-2] UNSUBSCRIBE $share/g+/a", V5, unsubscribe_v5("$share/g+/a"), kFilter);
    add("[MQTT-2.2.1-3] UNSUBSCRIBE packet id 0", V4, frame(0xA2, cat({u16(0), str("a")})),
        kProtocol);
    add("[MQTT-2.2.1-3] UNSUBSCRIBE packet id 0", V5, frame(0xA2, cat({u16(0), {0x00}, str("a")})),
        kProtocol);

    return t;
}

std::string to_hex(const std::vector<uint8_t> &bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 0x0F];
    }
    return out;
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out;
}

// Reads the remaining length the way the spec defines it (up to 4 bytes), independently of
// the codec, to check that every whole-frame entry is exactly one complete frame.
bool frame_is_complete(const std::vector<uint8_t> &b) {
    uint32_t value = 0;
    uint32_t mult = 1;
    size_t i = 1;
    for (; i < b.size() && i <= 4; ++i) {
        value += (b[i] & 0x7F) * mult;
        mult *= 128;
        if ((b[i] & 0x80) == 0) {
            return b.size() == i + 1 + value;
        }
    }
    return false;
}

std::string describe(const mqtt::Error &e) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%02X ", static_cast<unsigned>(e.reason));
    return buf + std::string(mqtt::reason_name(e.reason)) + " (" + (e.what ? e.what : "") + ")";
}

std::string describe(Reason r) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%02X ", static_cast<unsigned>(r));
    return buf + std::string(mqtt::reason_name(r));
}

} // namespace

const std::vector<MalformedCase> &malformed_cases() {
    static const std::vector<MalformedCase> cases = build();
    return cases;
}

bool dump_malformed_cases(const std::string &path) {
    std::ofstream out(path, std::ios::trunc);
    if (!out) {
        return false;
    }
    for (const auto &c : malformed_cases()) {
        out << "{\"name\":\"" << json_escape(c.name)
            << "\",\"version\":" << static_cast<int>(c.version) << ",\"hex\":\"" << to_hex(c.bytes)
            << "\",\"reason\":" << static_cast<int>(c.reason)
            << ",\"header_only\":" << (c.header_only ? "true" : "false") << "}\n";
    }
    out.flush();
    return static_cast<bool>(out);
}

TEST_CASE("malformed corpus: table is well formed") {
    const auto &cases = malformed_cases();
    CHECK(cases.size() >= 70);
    std::set<std::string> names;
    for (const auto &c : cases) {
        CHECK_MESSAGE(names.insert(c.name).second, "duplicate name: ", std::string(c.name));
        CHECK_MESSAGE(!c.bytes.empty(), std::string(c.name));
        CHECK_MESSAGE(c.reason != Reason::success, std::string(c.name));
        if (!c.header_only) {
            CHECK_MESSAGE(frame_is_complete(c.bytes),
                          "not one complete frame: ", std::string(c.name), " ", to_hex(c.bytes));
        }
    }
}

TEST_CASE("malformed corpus: decode fails with exactly the expected reason") {
    for (const auto &c : malformed_cases()) {
        if (c.header_only) {
            continue;
        }
        auto r = mqtt::decode(c.bytes, c.version);
        std::string got = r.ok() ? std::string("success (decoded)") : describe(r.error());
        CHECK_MESSAGE((!r.ok() && r.error().reason == c.reason), std::string(c.name),
                      " | version=", static_cast<int>(c.version), " bytes=", to_hex(c.bytes),
                      " | expected ", describe(c.reason), ", got ", got);
    }
}

TEST_CASE("malformed corpus: parse_frame_header refuses header-level cases") {
    for (const auto &c : malformed_cases()) {
        if (!c.header_only) {
            continue;
        }
        auto h = mqtt::parse_frame_header(c.bytes, kMalformedMaxPacketSize);
        std::string got = h.status == mqtt::FrameHeader::Status::error ? describe(h.error)
                          : h.status == mqtt::FrameHeader::Status::ok  ? std::string("ok")
                                                                       : std::string("need_more");
        CHECK_MESSAGE((h.status == mqtt::FrameHeader::Status::error && h.error.reason == c.reason),
                      std::string(c.name), " | bytes=", to_hex(c.bytes), " | expected ",
                      describe(c.reason), ", got ", got);
    }
}

TEST_CASE("malformed corpus: JSON lines dump") {
    // Always check the writer itself on a scratch file.
    auto scratch = std::filesystem::temp_directory_path() /
                   ("ferrymq_malformed_" + std::to_string(::getpid()) + ".jsonl");
    REQUIRE(dump_malformed_cases(scratch.string()));
    std::ifstream in(scratch);
    std::string line;
    size_t lines = 0;
    while (std::getline(in, line)) {
        CHECK(line.front() == '{');
        CHECK(line.back() == '}');
        CHECK(line.find("\"hex\":\"") != std::string::npos);
        ++lines;
    }
    in.close();
    std::filesystem::remove(scratch);
    CHECK(lines == malformed_cases().size());

    // FERRYMQ_DUMP_MALFORMED=path writes the table for the integration tests.
    if (const char *path = std::getenv("FERRYMQ_DUMP_MALFORMED"); path && *path) {
        REQUIRE_MESSAGE(dump_malformed_cases(path), "cannot write ", std::string(path));
        MESSAGE("wrote ", malformed_cases().size(), " malformed cases to ", std::string(path));
    }
}

} // namespace ferrymq::test
