// SPDX-License-Identifier: Apache-2.0
// Codec tests without a socket: every packet type round-trips through encode/decode in
// MQTT 3.1.1 and 5.0 (CONNECT also in 3.1) with every field and every property its type may
// carry (spec table 2-4), a few packets are checked byte for byte, and the fixed-header
// parser and variable byte integers are checked at their boundaries. Rejections live in
// test_malformed.cpp.
#include "mqtt/codec.hpp"
#include "mqtt/properties.hpp"
#include "mqtt/reason.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace ferrymq::mqtt;

namespace {

using Bytes = std::vector<uint8_t>;
using Status = FrameHeader::Status;

constexpr uint32_t kNoLimit = 0xFFFF'FFFF;

std::string hex(const Bytes &bytes) {
    std::string out;
    char buf[4];
    for (uint8_t b : bytes) {
        std::snprintf(buf, sizeof buf, "%02X ", b);
        out += buf;
    }
    return out;
}

std::string describe(Reason r) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02X ", static_cast<unsigned>(r));
    return buf + std::string(reason_name(r));
}

std::string describe(const Error &e) {
    return describe(e.reason) + " (" + (e.what ? e.what : "") + ")";
}

Bytes raw(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto &p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

void check_bytes(const Bytes &got, const Bytes &expected) {
    CHECK_MESSAGE(got == expected, "got      ", hex(got), "\nexpected ", hex(expected));
}

// encode -> parse_frame_header -> decode -> compare -> re-encode, for one packet.
void check_round_trip(const Packet &packet, Version version) {
    Bytes wire = encode(packet, version);
    INFO("packet ", packet_type_name(packet_type(packet)), ", version ", static_cast<int>(version),
         ", wire ", hex(wire));
    REQUIRE(wire.size() >= 2);
    CHECK((wire[0] >> 4) == static_cast<int>(packet.index() + 1));

    auto header = parse_frame_header(wire, kNoLimit);
    REQUIRE(header.status == Status::ok);
    CHECK(header.total_length() == wire.size());

    auto decoded = decode(wire, version);
    REQUIRE_MESSAGE(decoded.ok(), "decode failed: ", describe(decoded.error()));
    CHECK(decoded.value() == packet);
    check_bytes(encode(decoded.value(), version), wire);
}

// Decodes `wire` and requires a packet of type T.
template <class T> T decode_as(const Bytes &wire, Version version) {
    INFO("wire ", hex(wire), ", version ", static_cast<int>(version));
    auto decoded = decode(wire, version);
    REQUIRE_MESSAGE(decoded.ok(), "decode failed: ", describe(decoded.error()));
    REQUIRE(std::holds_alternative<T>(decoded.value()));
    return std::get<T>(decoded.value());
}

// Checks that `packet` encodes to exactly `wire` and that `wire` decodes to `packet`.
template <class T> void check_wire(const T &packet, Version version, const Bytes &wire) {
    check_bytes(encode(Packet{packet}, version), wire);
    CHECK(decode_as<T>(wire, version) == packet);
}

template <class T> T make_ack(uint16_t packet_id, Reason reason, Properties properties = {}) {
    T ack;
    ack.packet_id = packet_id;
    ack.reason = reason;
    ack.properties = std::move(properties);
    return ack;
}

Reason reason(uint8_t code) {
    return static_cast<Reason>(code);
}

// ---- Spec table 2-4, written out independently of property_allowed ----

constexpr PropertyId kAllProperties[] = {
    PropertyId::payload_format_indicator,
    PropertyId::message_expiry_interval,
    PropertyId::content_type,
    PropertyId::response_topic,
    PropertyId::correlation_data,
    PropertyId::subscription_identifier,
    PropertyId::session_expiry_interval,
    PropertyId::assigned_client_identifier,
    PropertyId::server_keep_alive,
    PropertyId::authentication_method,
    PropertyId::authentication_data,
    PropertyId::request_problem_information,
    PropertyId::will_delay_interval,
    PropertyId::request_response_information,
    PropertyId::response_information,
    PropertyId::server_reference,
    PropertyId::reason_string,
    PropertyId::receive_maximum,
    PropertyId::topic_alias_maximum,
    PropertyId::topic_alias,
    PropertyId::maximum_qos,
    PropertyId::retain_available,
    PropertyId::user_property,
    PropertyId::maximum_packet_size,
    PropertyId::wildcard_subscription_available,
    PropertyId::subscription_identifier_available,
    PropertyId::shared_subscription_available,
};

constexpr PropertyContext kAllContexts[] = {
    PropertyContext::connect,     PropertyContext::connack,   PropertyContext::publish,
    PropertyContext::puback,      PropertyContext::pubrec,    PropertyContext::pubrel,
    PropertyContext::pubcomp,     PropertyContext::subscribe, PropertyContext::suback,
    PropertyContext::unsubscribe, PropertyContext::unsuback,  PropertyContext::disconnect,
    PropertyContext::auth,        PropertyContext::will,
};

bool spec_allowed(PropertyContext ctx, PropertyId id) {
    using C = PropertyContext;
    using P = PropertyId;
    auto in = [ctx](std::initializer_list<C> cs) {
        for (C c : cs) {
            if (c == ctx) {
                return true;
            }
        }
        return false;
    };
    switch (id) {
    case P::payload_format_indicator:
    case P::message_expiry_interval:
    case P::content_type:
    case P::response_topic:
    case P::correlation_data:
        return in({C::publish, C::will});
    case P::subscription_identifier:
        return in({C::publish, C::subscribe});
    case P::session_expiry_interval:
        return in({C::connect, C::connack, C::disconnect});
    case P::assigned_client_identifier:
    case P::server_keep_alive:
    case P::response_information:
    case P::maximum_qos:
    case P::retain_available:
    case P::wildcard_subscription_available:
    case P::subscription_identifier_available:
    case P::shared_subscription_available:
        return in({C::connack});
    case P::authentication_method:
    case P::authentication_data:
        return in({C::connect, C::connack, C::auth});
    case P::request_problem_information:
    case P::request_response_information:
        return in({C::connect});
    case P::will_delay_interval:
        return in({C::will});
    case P::server_reference:
        return in({C::connack, C::disconnect});
    case P::reason_string:
        return in({C::connack, C::puback, C::pubrec, C::pubrel, C::pubcomp, C::suback, C::unsuback,
                   C::disconnect, C::auth});
    case P::receive_maximum:
    case P::topic_alias_maximum:
    case P::maximum_packet_size:
        return in({C::connect, C::connack});
    case P::topic_alias:
        return in({C::publish});
    case P::user_property:
        return true;
    }
    return false;
}

// The property ids set in `p`.
std::set<PropertyId> present(const Properties &p) {
    std::set<PropertyId> s;
    auto add = [&s](bool set, PropertyId id) {
        if (set) {
            s.insert(id);
        }
    };
    add(p.payload_format_indicator.has_value(), PropertyId::payload_format_indicator);
    add(p.message_expiry_interval.has_value(), PropertyId::message_expiry_interval);
    add(p.content_type.has_value(), PropertyId::content_type);
    add(p.response_topic.has_value(), PropertyId::response_topic);
    add(p.correlation_data.has_value(), PropertyId::correlation_data);
    add(!p.subscription_identifiers.empty(), PropertyId::subscription_identifier);
    add(p.session_expiry_interval.has_value(), PropertyId::session_expiry_interval);
    add(p.assigned_client_identifier.has_value(), PropertyId::assigned_client_identifier);
    add(p.server_keep_alive.has_value(), PropertyId::server_keep_alive);
    add(p.authentication_method.has_value(), PropertyId::authentication_method);
    add(p.authentication_data.has_value(), PropertyId::authentication_data);
    add(p.request_problem_information.has_value(), PropertyId::request_problem_information);
    add(p.will_delay_interval.has_value(), PropertyId::will_delay_interval);
    add(p.request_response_information.has_value(), PropertyId::request_response_information);
    add(p.response_information.has_value(), PropertyId::response_information);
    add(p.server_reference.has_value(), PropertyId::server_reference);
    add(p.reason_string.has_value(), PropertyId::reason_string);
    add(p.receive_maximum.has_value(), PropertyId::receive_maximum);
    add(p.topic_alias_maximum.has_value(), PropertyId::topic_alias_maximum);
    add(p.topic_alias.has_value(), PropertyId::topic_alias);
    add(p.maximum_qos.has_value(), PropertyId::maximum_qos);
    add(p.retain_available.has_value(), PropertyId::retain_available);
    add(!p.user_properties.empty(), PropertyId::user_property);
    add(p.maximum_packet_size.has_value(), PropertyId::maximum_packet_size);
    add(p.wildcard_subscription_available.has_value(), PropertyId::wildcard_subscription_available);
    add(p.subscription_identifier_available.has_value(),
        PropertyId::subscription_identifier_available);
    add(p.shared_subscription_available.has_value(), PropertyId::shared_subscription_available);
    return s;
}

// Requires that `p` carries exactly the properties table 2-4 allows in `ctx`: every one.
void check_every_property(PropertyContext ctx, const Properties &p) {
    auto got = present(p);
    for (PropertyId id : kAllProperties) {
        CHECK_MESSAGE(got.count(id) == (spec_allowed(ctx, id) ? 1u : 0u), "test data: property 0x",
                      static_cast<int>(id), " in context ", static_cast<int>(ctx));
    }
}

// ---- Full property sets, one per context ----

std::vector<UserProperty> some_user_properties() {
    // Order and duplicates matter [MQTT-3.3.2-18].
    return {{"k", "v1"}, {"region", "eu-west"}, {"k", "v2"}, {"k", "v1"}, {"", ""}};
}

Properties connect_properties() {
    Properties p;
    p.session_expiry_interval = 0xFFFF'FFFF;
    p.authentication_method = "SCRAM-SHA-256";
    p.authentication_data = std::string("\x00\x01\xFE\xFF", 4);
    p.request_problem_information = 0;
    p.request_response_information = 1;
    p.receive_maximum = 100;
    p.topic_alias_maximum = 10;
    p.maximum_packet_size = 1'048'576;
    p.user_properties = some_user_properties();
    return p;
}

Properties will_properties() {
    Properties p;
    p.payload_format_indicator = 1;
    p.message_expiry_interval = 120;
    p.content_type = "text/plain; charset=utf-8";
    p.response_topic = "clients/c1/response";
    p.correlation_data = std::string("\x00\xFF corr", 7);
    p.will_delay_interval = 30;
    p.user_properties = {{"will", "yes"}, {"will", "again"}};
    return p;
}

Properties connack_properties() {
    Properties p;
    p.session_expiry_interval = 3600;
    p.assigned_client_identifier = "auto-4f2a";
    p.server_keep_alive = 120;
    p.authentication_method = "SCRAM-SHA-256";
    p.authentication_data = std::string("\x00server-final", 13);
    p.response_information = "responses/";
    p.server_reference = "other.example:1883";
    p.reason_string = "welcome";
    p.receive_maximum = 65535;
    p.topic_alias_maximum = 65535;
    p.maximum_qos = 1;
    p.retain_available = 0;
    p.user_properties = some_user_properties();
    p.maximum_packet_size = 268'435'460;
    p.wildcard_subscription_available = 1;
    p.subscription_identifier_available = 0;
    p.shared_subscription_available = 1;
    return p;
}

Properties publish_properties() {
    Properties p;
    p.payload_format_indicator = 0;
    p.message_expiry_interval = 0xFFFF'FFFF;
    p.content_type = "application/json";
    p.response_topic = "reply/to/me";
    p.correlation_data = std::string("\x01\x00\x02", 3);
    p.subscription_identifiers = {1, 268'435'455, 16'384};
    p.topic_alias = 7;
    p.user_properties = some_user_properties();
    return p;
}

Properties reason_properties() {
    Properties p;
    p.reason_string = "because";
    p.user_properties = some_user_properties();
    return p;
}

Properties subscribe_properties() {
    Properties p;
    p.subscription_identifiers = {268'435'455};
    p.user_properties = some_user_properties();
    return p;
}

Properties unsubscribe_properties() {
    Properties p;
    p.user_properties = some_user_properties();
    return p;
}

Properties disconnect_properties() {
    Properties p;
    p.session_expiry_interval = 0;
    p.reason_string = "bye";
    p.server_reference = "other.example";
    p.user_properties = some_user_properties();
    return p;
}

Properties auth_properties() {
    Properties p;
    p.authentication_method = "SCRAM-SHA-256";
    p.authentication_data = std::string("\x00\x01\x02", 3);
    p.reason_string = "continue";
    p.user_properties = some_user_properties();
    return p;
}

// Reason codes each 5.0 packet type may carry (spec 3.2.2.2, 3.4.2.1 ... 3.15.2.1).
const std::vector<uint8_t> kConnackReasons = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                              0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                              0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
const std::vector<uint8_t> kPubackReasons = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
const std::vector<uint8_t> kPubrelReasons = {0x00, 0x92};
const std::vector<uint8_t> kSubackReasons = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                             0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
const std::vector<uint8_t> kUnsubackReasons = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
const std::vector<uint8_t> kDisconnectReasons = {
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
    0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
const std::vector<uint8_t> kAuthReasons = {0x00, 0x18, 0x19};

// ---- Full packets ----

Connect full_connect(Version v) {
    Connect c;
    c.version = v;
    c.clean_start = false;
    c.keep_alive = 65535;
    c.client_id = "client-\xF0\x9F\x98\x80";
    Will w;
    w.topic = "clients/c1/status";
    w.payload = std::string("offline\0\xFF", 9);
    w.qos = 2;
    w.retain = true;
    if (v == Version::v5) {
        w.properties = will_properties();
    }
    c.will = w;
    c.username = "user";
    c.password = std::string("\0pw\xFF", 4);
    if (v == Version::v5) {
        c.properties = connect_properties();
    }
    return c;
}

Publish full_publish(Version v, uint8_t qos) {
    Publish p;
    p.dup = qos > 0;
    p.qos = qos;
    p.retain = true;
    p.topic = "sport/tennis/player1";
    p.packet_id = qos > 0 ? 0xBEEF : 0;
    if (v == Version::v5) {
        p.properties = publish_properties();
    }
    p.payload = std::string("\x00\x01payload\xFF", 10);
    return p;
}

} // namespace

// ==== Spec table 2-4 ====

TEST_CASE("property_allowed follows spec table 2-4") {
    for (PropertyContext ctx : kAllContexts) {
        for (PropertyId id : kAllProperties) {
            CHECK_MESSAGE(property_allowed(ctx, id) == spec_allowed(ctx, id), "property 0x",
                          static_cast<int>(id), " in context ", static_cast<int>(ctx));
        }
    }
}

TEST_CASE("the round-trip property sets carry every property their packet may carry") {
    check_every_property(PropertyContext::connect, connect_properties());
    check_every_property(PropertyContext::will, will_properties());
    check_every_property(PropertyContext::connack, connack_properties());
    check_every_property(PropertyContext::publish, publish_properties());
    for (auto ctx :
         {PropertyContext::puback, PropertyContext::pubrec, PropertyContext::pubrel,
          PropertyContext::pubcomp, PropertyContext::suback, PropertyContext::unsuback}) {
        check_every_property(ctx, reason_properties());
    }
    check_every_property(PropertyContext::subscribe, subscribe_properties());
    check_every_property(PropertyContext::unsubscribe, unsubscribe_properties());
    check_every_property(PropertyContext::disconnect, disconnect_properties());
    check_every_property(PropertyContext::auth, auth_properties());
}

// ==== Round trips: CONNECT ====

TEST_CASE("[MQTT-3.1.2-1] CONNECT round trip 5.0 with every property and will property") {
    check_round_trip(full_connect(Version::v5), Version::v5);
}

TEST_CASE("CONNECT round trip 5.0 variants") {
    SUBCASE("minimal, empty client id") {
        Connect c;
        c.version = Version::v5;
        check_round_trip(c, Version::v5);
    }
    SUBCASE("[MQTT-3.1.3-6] empty client id without clean start is the server's decision") {
        Connect c;
        c.version = Version::v5;
        c.clean_start = false;
        check_round_trip(c, Version::v5);
    }
    SUBCASE("password without user name is allowed in 5.0") {
        Connect c;
        c.version = Version::v5;
        c.client_id = "c";
        c.password = "secret";
        check_round_trip(c, Version::v5);
    }
    SUBCASE("will QoS 0/1, no will properties, empty will payload") {
        for (uint8_t qos : {0, 1}) {
            Connect c;
            c.version = Version::v5;
            c.client_id = "c";
            c.will = Will{"w", "", qos, false, {}};
            check_round_trip(c, Version::v5);
        }
    }
    SUBCASE("user name with empty password, empty user name") {
        Connect c;
        c.version = Version::v5;
        c.client_id = "c";
        c.username = "";
        c.password = "";
        check_round_trip(c, Version::v5);
    }
}

TEST_CASE("CONNECT round trip 3.1.1") {
    check_round_trip(full_connect(Version::v311), Version::v311);
    SUBCASE("[MQTT-3.1.3-7] empty client id with clean session") {
        Connect c;
        c.version = Version::v311;
        c.clean_start = true;
        check_round_trip(c, Version::v311);
    }
    SUBCASE("will without user name or password") {
        Connect c;
        c.version = Version::v311;
        c.client_id = "c";
        c.will = Will{"w/x", "bye", 1, false, {}};
        check_round_trip(c, Version::v311);
    }
    SUBCASE("user name without password") {
        Connect c;
        c.version = Version::v311;
        c.client_id = "c";
        c.username = "u";
        check_round_trip(c, Version::v311);
    }
}

TEST_CASE("CONNECT round trip 3.1 (MQIsdp)") {
    auto c = full_connect(Version::v31);
    c.client_id = "client-31"; // 3.1 limits client ids to 23 bytes
    check_round_trip(c, Version::v31);
    Bytes wire = encode(Packet{c}, Version::v31);
    REQUIRE(wire.size() > 11);
    check_bytes(Bytes(wire.begin() + 2, wire.begin() + 11),
                cat({{0x00, 0x06}, raw("MQIsdp"), {0x03}}));
}

// ==== Round trips: CONNACK ====

TEST_CASE("CONNACK round trip 5.0 with every property") {
    Connack c;
    c.session_present = true;
    c.reason = Reason::success;
    c.properties = connack_properties();
    check_round_trip(c, Version::v5);
}

TEST_CASE("CONNACK round trip 5.0, every CONNACK reason code") {
    for (uint8_t code : kConnackReasons) {
        CAPTURE(static_cast<int>(code));
        Connack c;
        c.reason = reason(code);
        c.properties.reason_string = "r";
        check_round_trip(c, Version::v5);
    }
}

TEST_CASE("CONNACK round trip 3.1.1, every return code") {
    Connack ok;
    ok.session_present = true;
    check_round_trip(ok, Version::v311);
    for (Reason r :
         {Reason::unsupported_protocol_version, Reason::client_identifier_not_valid,
          Reason::server_unavailable, Reason::bad_user_name_or_password, Reason::not_authorized}) {
        CAPTURE(describe(r));
        Connack c;
        c.reason = r;
        check_round_trip(c, Version::v311);
    }
}

// ==== Round trips: PUBLISH ====

TEST_CASE("PUBLISH round trip 5.0 with every property, QoS 0/1/2") {
    for (uint8_t qos : {0, 1, 2}) {
        CAPTURE(static_cast<int>(qos));
        check_round_trip(full_publish(Version::v5, qos), Version::v5);
    }
}

TEST_CASE("PUBLISH round trip 3.1.1, QoS 0/1/2") {
    for (uint8_t qos : {0, 1, 2}) {
        CAPTURE(static_cast<int>(qos));
        check_round_trip(full_publish(Version::v311, qos), Version::v311);
    }
}

TEST_CASE("PUBLISH round trip variants") {
    SUBCASE("5.0 empty topic with a Topic Alias") {
        Publish p;
        p.qos = 1;
        p.packet_id = 1;
        p.properties.topic_alias = 65535;
        p.payload = "x";
        check_round_trip(p, Version::v5);
    }
    SUBCASE("empty payload, no properties") {
        Publish p;
        p.topic = "a";
        check_round_trip(p, Version::v5);
        check_round_trip(p, Version::v311);
    }
    SUBCASE("payload needing a 3-byte remaining length") {
        Publish p;
        p.topic = "big";
        p.payload.assign(200'000, 'z');
        check_round_trip(p, Version::v311);
        check_round_trip(p, Version::v5);
    }
    SUBCASE("payload needing a 4-byte remaining length") {
        Publish p;
        p.qos = 2;
        p.packet_id = 9;
        p.topic = "bigger";
        p.payload.assign(2'100'000, '\x5A');
        check_round_trip(p, Version::v5);
    }
    SUBCASE("topic of 65535 bytes") {
        Publish p;
        p.topic.assign(65535, 't');
        check_round_trip(p, Version::v311);
    }
}

// ==== Round trips: PUBACK, PUBREC, PUBREL, PUBCOMP ====

TEST_CASE("PUBACK/PUBREC/PUBREL/PUBCOMP round trip 5.0, every reason code, every property") {
    for (uint8_t code : kPubackReasons) {
        CAPTURE(static_cast<int>(code));
        check_round_trip(make_ack<Puback>(1, reason(code), reason_properties()), Version::v5);
        check_round_trip(make_ack<Puback>(2, reason(code)), Version::v5);
        check_round_trip(make_ack<Pubrec>(65535, reason(code), reason_properties()), Version::v5);
        check_round_trip(make_ack<Pubrec>(3, reason(code)), Version::v5);
    }
    for (uint8_t code : kPubrelReasons) {
        CAPTURE(static_cast<int>(code));
        check_round_trip(make_ack<Pubrel>(1, reason(code), reason_properties()), Version::v5);
        check_round_trip(make_ack<Pubrel>(2, reason(code)), Version::v5);
        check_round_trip(make_ack<Pubcomp>(65535, reason(code), reason_properties()), Version::v5);
        check_round_trip(make_ack<Pubcomp>(3, reason(code)), Version::v5);
    }
}

TEST_CASE("PUBACK/PUBREC/PUBREL/PUBCOMP round trip 3.1.1") {
    for (uint16_t id : {1, 256, 65535}) {
        check_round_trip(make_ack<Puback>(id, Reason::success), Version::v311);
        check_round_trip(make_ack<Pubrec>(id, Reason::success), Version::v311);
        check_round_trip(make_ack<Pubrel>(id, Reason::success), Version::v311);
        check_round_trip(make_ack<Pubcomp>(id, Reason::success), Version::v311);
    }
}

// ==== Round trips: SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK ====

TEST_CASE("SUBSCRIBE round trip 5.0, every option and property") {
    Subscribe s;
    s.packet_id = 42;
    s.properties = subscribe_properties();
    s.subscriptions = {
        {"a/b", 0, false, false, RetainHandling::send},
        {"a/+/c", 1, true, false, RetainHandling::send},
        {"#", 2, false, true, RetainHandling::send},
        {"x/#", 1, false, false, RetainHandling::send_if_new},
        {"y", 2, true, true, RetainHandling::dont_send},
        {"$share/group/a/#", 1, false, true, RetainHandling::send_if_new},
        {"caf\xC3\xA9/\xF0\x9F\x98\x80/+", 0, true, false, RetainHandling::dont_send},
    };
    check_round_trip(s, Version::v5);
}

TEST_CASE("SUBSCRIBE round trip 3.1.1") {
    Subscribe s;
    s.packet_id = 65535;
    s.subscriptions = {{"a/b", 0}, {"a/+/c", 1}, {"#", 2}, {"+", 0}};
    check_round_trip(s, Version::v311);
}

TEST_CASE("SUBACK round trip 5.0, every SUBACK reason code, every property") {
    Suback s;
    s.packet_id = 42;
    s.properties = reason_properties();
    for (uint8_t code : kSubackReasons) {
        s.reasons.push_back(reason(code));
    }
    check_round_trip(s, Version::v5);
}

TEST_CASE("SUBACK round trip 3.1.1") {
    Suback s;
    s.packet_id = 7;
    s.reasons = {Reason::success, Reason::granted_qos1, Reason::granted_qos2,
                 Reason::unspecified_error};
    check_round_trip(s, Version::v311);
}

TEST_CASE("UNSUBSCRIBE round trip 5.0 with every property") {
    Unsubscribe u;
    u.packet_id = 42;
    u.properties = unsubscribe_properties();
    u.filters = {"a/b", "#", "$share/g/x", "+/+", "caf\xC3\xA9"};
    check_round_trip(u, Version::v5);
}

TEST_CASE("UNSUBSCRIBE round trip 3.1.1") {
    Unsubscribe u;
    u.packet_id = 1;
    u.filters = {"a/b", "#", "+/x"};
    check_round_trip(u, Version::v311);
}

TEST_CASE("UNSUBACK round trip 5.0, every UNSUBACK reason code, every property") {
    Unsuback u;
    u.packet_id = 42;
    u.properties = reason_properties();
    for (uint8_t code : kUnsubackReasons) {
        u.reasons.push_back(reason(code));
    }
    check_round_trip(u, Version::v5);
}

TEST_CASE("UNSUBACK round trip 3.1.1 (no reason codes)") {
    Unsuback u;
    u.packet_id = 513;
    check_round_trip(u, Version::v311);
}

// ==== Round trips: PINGREQ, PINGRESP, DISCONNECT, AUTH ====

TEST_CASE("PINGREQ and PINGRESP round trip 3.1.1 and 5.0") {
    for (Version v : {Version::v311, Version::v5}) {
        check_round_trip(Pingreq{}, v);
        check_round_trip(Pingresp{}, v);
    }
}

TEST_CASE("DISCONNECT round trip 5.0, every reason code, every property") {
    for (uint8_t code : kDisconnectReasons) {
        CAPTURE(static_cast<int>(code));
        Disconnect d;
        d.reason = reason(code);
        check_round_trip(d, Version::v5);
        d.properties = disconnect_properties();
        check_round_trip(d, Version::v5);
    }
}

TEST_CASE("DISCONNECT round trip 3.1.1") {
    check_round_trip(Disconnect{}, Version::v311);
}

TEST_CASE("AUTH round trip 5.0, every reason code, every property") {
    for (uint8_t code : kAuthReasons) {
        CAPTURE(static_cast<int>(code));
        Auth a;
        a.reason = reason(code);
        check_round_trip(a, Version::v5);
        a.properties = auth_properties();
        check_round_trip(a, Version::v5);
    }
}

TEST_CASE("AUTH is a 5.0 packet: not decodable in 3.1.1") {
    auto r = decode(Bytes{0xF0, 0x00}, Version::v311);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason == Reason::malformed_packet);
}

// ==== Exact bytes ====

TEST_CASE("[MQTT-3.1.2-1] CONNECT 3.1.1 exact bytes") {
    SUBCASE("minimal") {
        Connect c;
        c.version = Version::v311;
        c.keep_alive = 60;
        c.client_id = "abc";
        check_wire(c, Version::v311,
                   cat({{0x10, 0x0F, 0x00, 0x04},
                        raw("MQTT"),
                        {0x04, 0x02, 0x00, 0x3C},
                        {0x00, 0x03},
                        raw("abc")}));
    }
    SUBCASE("will, user name and password (flags 0xEE)") {
        Connect c;
        c.version = Version::v311;
        c.keep_alive = 60;
        c.client_id = "abc";
        c.will = Will{"w", "x", 1, true, {}};
        c.username = "u";
        c.password = "p";
        check_wire(c, Version::v311,
                   cat({{0x10, 0x1B, 0x00, 0x04},
                        raw("MQTT"),
                        {0x04, 0xEE, 0x00, 0x3C},
                        {0x00, 0x03},
                        raw("abc"),
                        {0x00, 0x01},
                        raw("w"),
                        {0x00, 0x01},
                        raw("x"),
                        {0x00, 0x01},
                        raw("u"),
                        {0x00, 0x01},
                        raw("p")}));
    }
    SUBCASE("decode reads the protocol level itself, whatever the version argument") {
        Bytes wire = cat({{0x10, 0x0F, 0x00, 0x04},
                          raw("MQTT"),
                          {0x04, 0x02, 0x00, 0x3C},
                          {0x00, 0x03},
                          raw("abc")});
        auto c = decode_as<Connect>(wire, Version::v5);
        CHECK(c.version == Version::v311);
        CHECK(c.client_id == "abc");
    }
}

TEST_CASE("CONNECT 3.1 and 5.0 exact bytes") {
    SUBCASE("3.1") {
        Connect c;
        c.version = Version::v31;
        c.keep_alive = 60;
        c.client_id = "abc";
        check_wire(c, Version::v31,
                   cat({{0x10, 0x11, 0x00, 0x06},
                        raw("MQIsdp"),
                        {0x03, 0x02, 0x00, 0x3C},
                        {0x00, 0x03},
                        raw("abc")}));
    }
    SUBCASE("5.0 without properties") {
        Connect c;
        c.version = Version::v5;
        c.keep_alive = 60;
        c.client_id = "abc";
        check_wire(c, Version::v5,
                   cat({{0x10, 0x10, 0x00, 0x04},
                        raw("MQTT"),
                        {0x05, 0x02, 0x00, 0x3C, 0x00},
                        {0x00, 0x03},
                        raw("abc")}));
    }
    SUBCASE("5.0 with Session Expiry Interval") {
        Connect c;
        c.version = Version::v5;
        c.keep_alive = 60;
        c.client_id = "abc";
        c.properties.session_expiry_interval = 10;
        check_wire(c, Version::v5,
                   cat({{0x10, 0x15, 0x00, 0x04},
                        raw("MQTT"),
                        {0x05, 0x02, 0x00, 0x3C},
                        {0x05, 0x11, 0x00, 0x00, 0x00, 0x0A},
                        {0x00, 0x03},
                        raw("abc")}));
    }
}

TEST_CASE("CONNACK exact bytes") {
    Connack present;
    present.session_present = true;
    check_wire(present, Version::v311, {0x20, 0x02, 0x01, 0x00});
    Connack refused;
    refused.reason = Reason::not_authorized;
    check_wire(refused, Version::v311, {0x20, 0x02, 0x00, 0x05});
    check_wire(Connack{}, Version::v5, {0x20, 0x03, 0x00, 0x00, 0x00});
    check_wire(refused, Version::v5, {0x20, 0x03, 0x00, 0x87, 0x00});
}

TEST_CASE("PUBLISH exact bytes") {
    SUBCASE("3.1.1 QoS 1") {
        Publish p;
        p.qos = 1;
        p.topic = "a/b";
        p.packet_id = 10;
        p.payload = "hi";
        check_wire(p, Version::v311, {0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'});
    }
    SUBCASE("3.1.1 QoS 0 retained, empty payload") {
        Publish p;
        p.retain = true;
        p.topic = "t";
        check_wire(p, Version::v311, {0x31, 0x03, 0x00, 0x01, 't'});
    }
    SUBCASE("5.0 QoS 2 DUP") {
        Publish p;
        p.dup = true;
        p.qos = 2;
        p.topic = "a/b";
        p.packet_id = 10;
        p.payload = "hi";
        check_wire(p, Version::v5,
                   {0x3C, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 0x00, 'h', 'i'});
    }
    SUBCASE("5.0 QoS 1 with Message Expiry Interval") {
        Publish p;
        p.qos = 1;
        p.topic = "a/b";
        p.packet_id = 10;
        p.properties.message_expiry_interval = 60;
        p.payload = "hi";
        check_wire(p, Version::v5,
                   {0x32, 0x0F, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 0x05, 0x02, 0x00, 0x00, 0x00,
                    0x3C, 'h', 'i'});
    }
}

TEST_CASE("PINGREQ, PINGRESP and DISCONNECT exact bytes") {
    for (Version v : {Version::v311, Version::v5}) {
        check_wire(Pingreq{}, v, {0xC0, 0x00});
        check_wire(Pingresp{}, v, {0xD0, 0x00});
        check_wire(Disconnect{}, v, {0xE0, 0x00});
    }
}

TEST_CASE("PUBACK/PUBREC/PUBREL/PUBCOMP exact bytes, 5.0 short form") {
    // 5.0: reason 0 and no properties may be omitted, remaining length 2 (spec 3.4.2.1).
    check_wire(make_ack<Puback>(1, Reason::success), Version::v5, {0x40, 0x02, 0x00, 0x01});
    check_wire(make_ack<Pubrec>(1, Reason::success), Version::v5, {0x50, 0x02, 0x00, 0x01});
    check_wire(make_ack<Pubrel>(1, Reason::success), Version::v5, {0x62, 0x02, 0x00, 0x01});
    check_wire(make_ack<Pubcomp>(1, Reason::success), Version::v5, {0x70, 0x02, 0x00, 0x01});
    // A reason but no properties: the property length is omitted (remaining length 3).
    check_wire(make_ack<Puback>(1, Reason::no_matching_subscribers), Version::v5,
               {0x40, 0x03, 0x00, 0x01, 0x10});
    check_wire(make_ack<Pubrel>(0x1234, Reason::packet_identifier_not_found), Version::v5,
               {0x62, 0x03, 0x12, 0x34, 0x92});
    // 3.1.1 has only the packet id.
    check_wire(make_ack<Pubrel>(7, Reason::success), Version::v311, {0x62, 0x02, 0x00, 0x07});
    check_wire(make_ack<Puback>(0x0102, Reason::success), Version::v311, {0x40, 0x02, 0x01, 0x02});
}

TEST_CASE("5.0 acknowledgements: longer forms of the same packet decode the same") {
    auto expected = make_ack<Puback>(1, Reason::success);
    CHECK(decode_as<Puback>({0x40, 0x03, 0x00, 0x01, 0x00}, Version::v5) == expected);
    CHECK(decode_as<Puback>({0x40, 0x04, 0x00, 0x01, 0x00, 0x00}, Version::v5) == expected);
    CHECK(decode_as<Pubcomp>({0x70, 0x04, 0x00, 0x01, 0x00, 0x00}, Version::v5) ==
          make_ack<Pubcomp>(1, Reason::success));
    CHECK(decode_as<Disconnect>({0xE0, 0x01, 0x00}, Version::v5) == Disconnect{});
    CHECK(decode_as<Disconnect>({0xE0, 0x02, 0x00, 0x00}, Version::v5) == Disconnect{});
    Disconnect with_will;
    with_will.reason = Reason::disconnect_with_will;
    CHECK(decode_as<Disconnect>({0xE0, 0x02, 0x04, 0x00}, Version::v5) == with_will);
    CHECK(decode_as<Auth>({0xF0, 0x00}, Version::v5) == Auth{});
    CHECK(decode_as<Auth>({0xF0, 0x02, 0x00, 0x00}, Version::v5) == Auth{});
}

TEST_CASE("DISCONNECT and AUTH exact bytes, 5.0 minimal encodings") {
    Disconnect with_will;
    with_will.reason = Reason::disconnect_with_will;
    check_wire(with_will, Version::v5, {0xE0, 0x01, 0x04});
    // spec 3.15.2.1: AUTH with reason 0 and no properties has remaining length 0.
    check_wire(Auth{}, Version::v5, {0xF0, 0x00});
    Auth cont;
    cont.reason = Reason::continue_authentication;
    cont.properties.authentication_method = "m";
    check_wire(cont, Version::v5, {0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, 'm'});
}

TEST_CASE("SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK exact bytes") {
    SUBCASE("3.1.1 SUBSCRIBE") {
        Subscribe s;
        s.packet_id = 1;
        s.subscriptions = {{"a/#", 1}};
        check_wire(s, Version::v311, {0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', '#', 0x01});
    }
    SUBCASE("[MQTT-3.8.3-1] 5.0 SUBSCRIBE options byte") {
        Subscribe s;
        s.packet_id = 1;
        s.subscriptions = {{"a", 1, true, true, RetainHandling::dont_send}};
        check_wire(s, Version::v5, {0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x2D});
    }
    SUBCASE("5.0 SUBSCRIBE with a Subscription Identifier") {
        Subscribe s;
        s.packet_id = 1;
        s.properties.subscription_identifiers = {5};
        s.subscriptions = {{"a/#", 1}};
        check_wire(s, Version::v5,
                   {0x82, 0x0B, 0x00, 0x01, 0x02, 0x0B, 0x05, 0x00, 0x03, 'a', '/', '#', 0x01});
    }
    SUBCASE("SUBACK") {
        Suback s;
        s.packet_id = 1;
        s.reasons = {Reason::granted_qos1, Reason::unspecified_error};
        check_wire(s, Version::v311, {0x90, 0x04, 0x00, 0x01, 0x01, 0x80});
        s.reasons = {Reason::success};
        check_wire(s, Version::v5, {0x90, 0x04, 0x00, 0x01, 0x00, 0x00});
    }
    SUBCASE("UNSUBSCRIBE") {
        Unsubscribe u;
        u.packet_id = 2;
        u.filters = {"a"};
        check_wire(u, Version::v311, {0xA2, 0x05, 0x00, 0x02, 0x00, 0x01, 'a'});
        check_wire(u, Version::v5, {0xA2, 0x06, 0x00, 0x02, 0x00, 0x00, 0x01, 'a'});
    }
    SUBCASE("UNSUBACK") {
        Unsuback u;
        u.packet_id = 2;
        check_wire(u, Version::v311, {0xB0, 0x02, 0x00, 0x02});
        u.reasons = {Reason::success};
        check_wire(u, Version::v5, {0xB0, 0x04, 0x00, 0x02, 0x00, 0x00});
    }
}

TEST_CASE("encode appends to the output buffer") {
    Bytes out{0xAA};
    encode(Pingreq{}, Version::v5, out);
    encode(make_ack<Puback>(1, Reason::success), Version::v311, out);
    check_bytes(out, {0xAA, 0xC0, 0x00, 0x40, 0x02, 0x00, 0x01});
}

// ==== Properties: order, duplicates, multiple Subscription Identifiers ====

TEST_CASE("[MQTT-3.3.2-18] User Property order and duplicates are preserved") {
    SUBCASE("exact bytes, in the order given") {
        Puback p = make_ack<Puback>(1, Reason::success);
        p.properties.user_properties = {{"b", "2"}, {"a", "1"}, {"b", "2"}};
        check_wire(p, Version::v5, {0x40, 0x19, 0x00, 0x01, 0x00, 0x15,      //
                                    0x26, 0x00, 0x01, 'b',  0x00, 0x01, '2', //
                                    0x26, 0x00, 0x01, 'a',  0x00, 0x01, '1', //
                                    0x26, 0x00, 0x01, 'b',  0x00, 0x01, '2'});
    }
    SUBCASE("interleaved with other properties on the wire") {
        // PUBLISH topic "t", properties: user(k,1), Content Type "c", user(k,0), user(a,"").
        Bytes wire = {0x30, 0x1C, 0x00, 0x01, 't',  0x18,      //
                      0x26, 0x00, 0x01, 'k',  0x00, 0x01, '1', //
                      0x03, 0x00, 0x01, 'c',                   //
                      0x26, 0x00, 0x01, 'k',  0x00, 0x01, '0', //
                      0x26, 0x00, 0x01, 'a',  0x00, 0x00};
        auto p = decode_as<Publish>(wire, Version::v5);
        CHECK(p.properties.content_type == std::optional<std::string>("c"));
        REQUIRE(p.properties.user_properties.size() == 3);
        CHECK(p.properties.user_properties[0] == UserProperty{"k", "1"});
        CHECK(p.properties.user_properties[1] == UserProperty{"k", "0"});
        CHECK(p.properties.user_properties[2] == UserProperty{"a", ""});
    }
    SUBCASE("round trip of many pairs, same name repeated") {
        Publish p;
        p.topic = "t";
        for (int i = 0; i < 50; ++i) {
            p.properties.user_properties.push_back({i % 3 ? "same" : "other", std::to_string(i)});
        }
        check_round_trip(p, Version::v5);
    }
}

TEST_CASE("[MQTT-3.3.4-4] PUBLISH with several Subscription Identifiers") {
    Bytes wire = {0x30, 0x0F, 0x00, 0x01, 'a',  0x0A, 0x0B, 0x01, 0x0B,
                  0x80, 0x01, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F, 'x'};
    auto p = decode_as<Publish>(wire, Version::v5);
    CHECK(p.properties.subscription_identifiers == std::vector<uint32_t>{1, 128, 268'435'455});
    CHECK(p.topic == "a");
    CHECK(p.payload == "x");
    check_bytes(encode(Packet{p}, Version::v5), wire);
}

// ==== UTF-8 strings accepted ====

TEST_CASE("[MQTT-1.5.4-3] UTF-8 edge cases are accepted and kept byte for byte") {
    const std::string cases[] = {
        "\x7F",             // U+007F
        "\xC2\x80",         // U+0080
        "\xDF\xBF",         // U+07FF
        "\xE0\xA0\x80",     // U+0800
        "\xED\x9F\xBF",     // U+D7FF, just below the surrogates
        "\xEE\x80\x80",     // U+E000, just above them
        "\xEF\xBF\xBF",     // U+FFFF (a non-character, still allowed)
        "\xEF\xBB\xBFx",    // U+FEFF at the start must not be stripped [MQTT-1.5.4-3]
        "\xF0\x90\x80\x80", // U+10000
        "\xF0\x9F\x98\x80", // U+1F600
        "\xF4\x8F\xBF\xBF", // U+10FFFF
    };
    for (const auto &s : cases) {
        INFO("string ", hex(raw(s)));
        Publish p;
        p.topic = "t/" + s;
        p.properties.content_type = s;
        p.properties.user_properties = {{s, s}};
        check_round_trip(p, Version::v5);

        Connect c;
        c.version = Version::v311;
        c.client_id = s;
        c.will = Will{s, "m", 0, false, {}};
        c.username = s;
        check_round_trip(c, Version::v311);

        Subscribe sub;
        sub.packet_id = 1;
        sub.subscriptions = {{s + "/#", 1}};
        check_round_trip(sub, Version::v311);
    }
    SUBCASE("hand-written PUBLISH topic with U+FFFF, U+1F600 and U+10FFFF") {
        Bytes wire =
            cat({{0x30, 0x0F, 0x00, 0x0D}, raw("\xEF\xBF\xBF/\xF0\x9F\x98\x80/\xF4\x8F\xBF\xBF")});
        auto p = decode_as<Publish>(wire, Version::v311);
        CHECK(p.topic == "\xEF\xBF\xBF/\xF0\x9F\x98\x80/\xF4\x8F\xBF\xBF");
    }
}

// ==== Variable byte integers (spec 1.5.5) ====

TEST_CASE("[MQTT-1.5.5-1] variable byte integer boundaries use the fewest bytes") {
    struct Row {
        uint32_t value;
        Bytes wire;
    };
    const Row rows[] = {
        {0, {0x00}},
        {127, {0x7F}},
        {128, {0x80, 0x01}},
        {16'383, {0xFF, 0x7F}},
        {16'384, {0x80, 0x80, 0x01}},
        {2'097'151, {0xFF, 0xFF, 0x7F}},
        {2'097'152, {0x80, 0x80, 0x80, 0x01}},
        {268'435'455, {0xFF, 0xFF, 0xFF, 0x7F}},
    };
    CHECK(kMaxRemainingLength == 268'435'455u);
    for (const auto &row : rows) {
        CAPTURE(row.value);
        CHECK(vbi_size(row.value) == row.wire.size());
        Bytes out{0xAA};
        put_vbi(out, row.value);
        check_bytes(out, cat({{0xAA}, row.wire}));

        // The same integer as a remaining length, read back by the frame parser.
        Bytes header = cat({{0x30}, row.wire});
        auto h = parse_frame_header(header, kNoLimit);
        REQUIRE(h.status == Status::ok);
        CHECK(h.remaining_length == row.value);
        CHECK(size_t{h.header_length} == 1 + row.wire.size());
        CHECK(h.total_length() == 1 + row.wire.size() + row.value);
    }
}

TEST_CASE("non-minimal remaining length is accepted on input") {
    // [MQTT-1.5.5-1] binds the sender; a receiver may accept 0 written in 2..4 bytes.
    CHECK(decode_as<Pingreq>({0xC0, 0x80, 0x00}, Version::v311) == Pingreq{});
    CHECK(decode_as<Pingresp>({0xD0, 0x80, 0x80, 0x80, 0x00}, Version::v5) == Pingresp{});
    CHECK(decode_as<Puback>({0x40, 0x82, 0x00, 0x00, 0x01}, Version::v311) ==
          make_ack<Puback>(1, Reason::success));

    auto h = parse_frame_header(Bytes{0xC0, 0x80, 0x00}, kNoLimit);
    REQUIRE(h.status == Status::ok);
    CHECK(h.remaining_length == 0);
    CHECK(h.header_length == 3);
    h = parse_frame_header(Bytes{0xC0, 0x80, 0x80, 0x80, 0x00}, kNoLimit);
    REQUIRE(h.status == Status::ok);
    CHECK(h.remaining_length == 0);
    CHECK(h.header_length == 5);
}

// ==== parse_frame_header ====

TEST_CASE("parse_frame_header: need_more on a partial fixed header") {
    const Bytes partial[] = {
        {}, {0x30}, {0x30, 0x80}, {0x30, 0xFF, 0xFF}, {0x30, 0x80, 0x80, 0x80},
    };
    for (const auto &b : partial) {
        INFO("bytes ", hex(b));
        CHECK(parse_frame_header(b, kNoLimit).status == Status::need_more);
    }
}

TEST_CASE("parse_frame_header: ok without the body") {
    auto h = parse_frame_header(Bytes{0x32, 0x0A}, kNoLimit);
    REQUIRE(h.status == Status::ok);
    CHECK(h.first_byte == 0x32);
    CHECK(h.type() == PacketType::publish);
    CHECK(h.remaining_length == 10);
    CHECK(h.header_length == 2);
    CHECK(h.total_length() == 12);

    h = parse_frame_header(Bytes{0x82, 0x80, 0x01, 0x00}, kNoLimit);
    REQUIRE(h.status == Status::ok);
    CHECK(h.type() == PacketType::subscribe);
    CHECK(h.remaining_length == 128);
    CHECK(h.header_length == 3);
}

TEST_CASE("parse_frame_header: reads only the first of several frames") {
    auto h = parse_frame_header(Bytes{0xC0, 0x00, 0xD0, 0x00}, kNoLimit);
    REQUIRE(h.status == Status::ok);
    CHECK(h.type() == PacketType::pingreq);
    CHECK(h.remaining_length == 0);
    CHECK(h.header_length == 2);
}

TEST_CASE("parse_frame_header: maximum packet size counts the whole packet") {
    // Remaining length 127 + 2 header bytes = 129 bytes in all.
    const Bytes header = {0x30, 0x7F};
    CHECK(parse_frame_header(header, 130).status == Status::ok);
    CHECK(parse_frame_header(header, 129).status == Status::ok);
    auto h = parse_frame_header(header, 128);
    REQUIRE(h.status == Status::error);
    CHECK(h.error.reason == Reason::packet_too_large);
}

TEST_CASE("parse_frame_header: 0x95 before the body is present") {
    // Remaining length 2,097,152 announced, nothing of the body present.
    auto h = parse_frame_header(Bytes{0x30, 0x80, 0x80, 0x80, 0x01}, 1'048'576);
    REQUIRE(h.status == Status::error);
    CHECK(h.error.reason == Reason::packet_too_large);
    // Also with a 2-byte remaining length and a small limit.
    h = parse_frame_header(Bytes{0x30, 0x80, 0x02}, 200);
    REQUIRE(h.status == Status::error);
    CHECK(h.error.reason == Reason::packet_too_large);
}

TEST_CASE("[MQTT-1.5.5-1] parse_frame_header: a 5-byte remaining length is malformed") {
    for (const Bytes &b :
         {Bytes{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, Bytes{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
          Bytes{0x30, 0x80, 0x80, 0x80, 0x80}}) {
        INFO("bytes ", hex(b));
        auto h = parse_frame_header(b, kNoLimit);
        REQUIRE(h.status == Status::error);
        CHECK(h.error.reason == Reason::malformed_packet);
    }
}

// ==== Reason helpers ====

TEST_CASE("reason names and 3.1.1 CONNACK return codes") {
    CHECK(reason_name(Reason::malformed_packet) == "Malformed Packet");
    CHECK(connack_return_code_v3(Reason::success) == 0);
    CHECK(connack_return_code_v3(Reason::unsupported_protocol_version) == 1);
    CHECK(connack_return_code_v3(Reason::client_identifier_not_valid) == 2);
    CHECK(connack_return_code_v3(Reason::server_unavailable) == 3);
    CHECK(connack_return_code_v3(Reason::bad_user_name_or_password) == 4);
    CHECK(connack_return_code_v3(Reason::not_authorized) == 5);
}

TEST_CASE("codec: a bridge CONNECT sets the top bit of the 3.1/3.1.1 protocol level") {
    using namespace ferrymq::mqtt;
    Connect c;
    c.version = Version::v311;
    c.client_id = "bridge";
    c.bridge = true;
    const std::vector<uint8_t> bytes = encode(Packet(c), Version::v311);
    // Fixed header (2) + protocol name (2 + 4) + level.
    REQUIRE(bytes.size() > 8);
    CHECK(bytes[8] == 0x84);
    c.version = Version::v31;
    CHECK(encode(Packet(c), Version::v31)[10] == 0x83); // "MQIsdp" is two bytes longer
    // ferrymq itself does not accept it [MQTT-3.1.2-2].
    CHECK_FALSE(decode(bytes, Version::v311).ok());
    c.version = Version::v5; // no such thing in 5.0: No Local does the job
    CHECK(encode(Packet(c), Version::v5)[8] == 5);
}
