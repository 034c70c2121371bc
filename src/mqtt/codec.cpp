// SPDX-License-Identifier: Apache-2.0
// Decoding and encoding of MQTT 3.1, 3.1.1 and 5.0 control packets. Every check cites the
// spec statement it enforces; the reason codes follow the 5.0 specification.
#include "codec.hpp"

#include "topic.hpp"
#include "utf8.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace ferrymq::mqtt {
namespace {

constexpr Error kOk{Reason::success, ""};

constexpr Error malformed(const char *what) {
    return {Reason::malformed_packet, what};
}
constexpr Error protocol(const char *what) {
    return {Reason::protocol_error, what};
}

bool failed(const Error &e) {
    return e.reason != Reason::success;
}

// Propagates a failed step to the caller.
#define FMQ_TRY(expr)                                                                              \
    do {                                                                                           \
        const Error fmq_e = (expr);                                                                \
        if (failed(fmq_e)) {                                                                       \
            return fmq_e;                                                                          \
        }                                                                                          \
    } while (0)

// Sequential reader over the bytes of one packet. Every read checks the bounds.
class Reader {
  public:
    explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

    size_t remaining() const { return bytes_.size() - pos_; }
    bool at_end() const { return pos_ == bytes_.size(); }

    Error u8(uint8_t &v) {
        if (remaining() < 1) {
            return malformed("packet ends inside a field");
        }
        v = bytes_[pos_++];
        return kOk;
    }

    Error u16(uint16_t &v) {
        if (remaining() < 2) {
            return malformed("packet ends inside a two-byte integer");
        }
        v = static_cast<uint16_t>(bytes_[pos_] << 8 | bytes_[pos_ + 1]);
        pos_ += 2;
        return kOk;
    }

    Error u32(uint32_t &v) {
        if (remaining() < 4) {
            return malformed("packet ends inside a four-byte integer");
        }
        v = uint32_t{bytes_[pos_]} << 24 | uint32_t{bytes_[pos_ + 1]} << 16 |
            uint32_t{bytes_[pos_ + 2]} << 8 | uint32_t{bytes_[pos_ + 3]};
        pos_ += 4;
        return kOk;
    }

    // Variable byte integer; non-minimal encodings are accepted, more than 4 bytes are not
    // [MQTT-1.5.5-1].
    Error vbi(uint32_t &v) {
        v = 0;
        for (int i = 0; i < 4; ++i) {
            if (remaining() < 1) {
                return malformed("packet ends inside a variable byte integer");
            }
            const uint8_t b = bytes_[pos_++];
            v |= uint32_t{b & 0x7Fu} << (7 * i);
            if ((b & 0x80) == 0) {
                return kOk;
            }
        }
        return malformed("variable byte integer longer than 4 bytes");
    }

    // Two-byte length followed by that many bytes (binary data, spec 1.5.6).
    Error binary(std::string &out) {
        uint16_t len = 0;
        FMQ_TRY(u16(len));
        if (remaining() < len) {
            return malformed("length prefix runs past the end of the packet");
        }
        out.assign(reinterpret_cast<const char *>(bytes_.data() + pos_), len);
        pos_ += len;
        return kOk;
    }

    // A UTF-8 encoded string (spec 1.5.4).
    Error utf8(std::string &out) {
        FMQ_TRY(binary(out));
        if (!valid_utf8_string(out)) {
            return malformed("string is not well-formed UTF-8 or contains U+0000");
        }
        return kOk;
    }

    // The next `n` bytes as a reader of their own (a property block).
    Error sub(size_t n, Reader &out) {
        if (remaining() < n) {
            return malformed("length runs past the end of the packet");
        }
        out = Reader(bytes_.subspan(pos_, n));
        pos_ += n;
        return kOk;
    }

    // Everything left (the payload of PUBLISH).
    void rest(std::string &out) {
        out.assign(reinterpret_cast<const char *>(bytes_.data() + pos_), remaining());
        pos_ = bytes_.size();
    }

  private:
    std::span<const uint8_t> bytes_;
    size_t pos_ = 0;
};

Error expect_end(const Reader &r) {
    return r.at_end() ? kOk : malformed("bytes left over after the last field");
}

Error check_bool_property(uint8_t v, const char *what) {
    return v <= 1 ? kOk : protocol(what);
}

// Reads one property of identifier `id` into `p`; `id` is already known to be allowed.
Error read_property(Reader &r, PropertyId id, Properties &p) {
    using Id = PropertyId;
    switch (id) {
    case Id::payload_format_indicator: {
        uint8_t v = 0;
        FMQ_TRY(r.u8(v));
        p.payload_format_indicator = v;
        return check_bool_property(v, "Payload Format Indicator is neither 0 nor 1");
    }
    case Id::message_expiry_interval:
        return r.u32(p.message_expiry_interval.emplace());
    case Id::content_type:
        return r.utf8(p.content_type.emplace());
    case Id::response_topic: {
        FMQ_TRY(r.utf8(p.response_topic.emplace()));
        // A Response Topic is a topic name [MQTT-3.3.2-14].
        return valid_topic_name(*p.response_topic)
                   ? kOk
                   : Error{Reason::protocol_error, "Response Topic is not a valid topic name"};
    }
    case Id::correlation_data:
        return r.binary(p.correlation_data.emplace());
    case Id::subscription_identifier: {
        uint32_t v = 0;
        FMQ_TRY(r.vbi(v));
        if (v == 0) {
            return protocol("Subscription Identifier is 0");
        }
        p.subscription_identifiers.push_back(v);
        return kOk;
    }
    case Id::session_expiry_interval:
        return r.u32(p.session_expiry_interval.emplace());
    case Id::assigned_client_identifier:
        return r.utf8(p.assigned_client_identifier.emplace());
    case Id::server_keep_alive:
        return r.u16(p.server_keep_alive.emplace());
    case Id::authentication_method:
        return r.utf8(p.authentication_method.emplace());
    case Id::authentication_data:
        return r.binary(p.authentication_data.emplace());
    case Id::request_problem_information: {
        FMQ_TRY(r.u8(p.request_problem_information.emplace()));
        return check_bool_property(*p.request_problem_information,
                                   "Request Problem Information is neither 0 nor 1");
    }
    case Id::will_delay_interval:
        return r.u32(p.will_delay_interval.emplace());
    case Id::request_response_information: {
        FMQ_TRY(r.u8(p.request_response_information.emplace()));
        return check_bool_property(*p.request_response_information,
                                   "Request Response Information is neither 0 nor 1");
    }
    case Id::response_information:
        return r.utf8(p.response_information.emplace());
    case Id::server_reference:
        return r.utf8(p.server_reference.emplace());
    case Id::reason_string:
        return r.utf8(p.reason_string.emplace());
    case Id::receive_maximum: {
        FMQ_TRY(r.u16(p.receive_maximum.emplace()));
        return *p.receive_maximum != 0 ? kOk : protocol("Receive Maximum is 0");
    }
    case Id::topic_alias_maximum:
        return r.u16(p.topic_alias_maximum.emplace());
    case Id::topic_alias: {
        FMQ_TRY(r.u16(p.topic_alias.emplace()));
        return *p.topic_alias != 0 ? kOk : Error{Reason::topic_alias_invalid, "Topic Alias is 0"};
    }
    case Id::maximum_qos: {
        FMQ_TRY(r.u8(p.maximum_qos.emplace()));
        return check_bool_property(*p.maximum_qos, "Maximum QoS is neither 0 nor 1");
    }
    case Id::retain_available: {
        FMQ_TRY(r.u8(p.retain_available.emplace()));
        return check_bool_property(*p.retain_available, "Retain Available is neither 0 nor 1");
    }
    case Id::user_property: {
        auto &kv = p.user_properties.emplace_back();
        FMQ_TRY(r.utf8(kv.first));
        return r.utf8(kv.second);
    }
    case Id::maximum_packet_size: {
        FMQ_TRY(r.u32(p.maximum_packet_size.emplace()));
        return *p.maximum_packet_size != 0 ? kOk : protocol("Maximum Packet Size is 0");
    }
    case Id::wildcard_subscription_available: {
        FMQ_TRY(r.u8(p.wildcard_subscription_available.emplace()));
        return check_bool_property(*p.wildcard_subscription_available,
                                   "Wildcard Subscription Available is neither 0 nor 1");
    }
    case Id::subscription_identifier_available: {
        FMQ_TRY(r.u8(p.subscription_identifier_available.emplace()));
        return check_bool_property(*p.subscription_identifier_available,
                                   "Subscription Identifier Available is neither 0 nor 1");
    }
    case Id::shared_subscription_available: {
        FMQ_TRY(r.u8(p.shared_subscription_available.emplace()));
        return check_bool_property(*p.shared_subscription_available,
                                   "Shared Subscription Available is neither 0 nor 1");
    }
    }
    return malformed("unknown property identifier");
}

// Reads a property block (length, then properties) allowed in `ctx` (spec 2.2.2).
Error read_properties(Reader &r, PropertyContext ctx, Properties &p) {
    uint32_t len = 0;
    FMQ_TRY(r.vbi(len));
    Reader pr({});
    FMQ_TRY(r.sub(len, pr));
    uint64_t seen = 0;
    while (!pr.at_end()) {
        uint32_t raw = 0;
        FMQ_TRY(pr.vbi(raw));
        if (raw > 0xFF) {
            return malformed("unknown property identifier");
        }
        const auto id = static_cast<PropertyId>(raw);
        if (!property_allowed(ctx, id)) {
            return malformed("property not allowed in this packet");
        }
        const bool repeatable =
            id == PropertyId::user_property ||
            (id == PropertyId::subscription_identifier && ctx == PropertyContext::publish);
        const uint64_t bit = uint64_t{1} << raw;
        if (!repeatable && (seen & bit) != 0) {
            return protocol("property included more than once");
        }
        seen |= bit;
        FMQ_TRY(read_property(pr, id, p));
    }
    return kOk;
}

Error read_packet_id(Reader &r, uint16_t &id) {
    FMQ_TRY(r.u16(id));
    // [MQTT-2.2.1-3]: packets that carry a Packet Identifier need a non-zero one.
    return id != 0 ? kOk : protocol("Packet Identifier is 0");
}

// --- decoders, one per packet type --------------------------------------------------------

Error decode_connect(Reader &r, Connect &c) {
    std::string name;
    FMQ_TRY(r.binary(name));
    uint8_t level = 0;
    FMQ_TRY(r.u8(level));
    if (name == "MQTT" && (level == 4 || level == 5)) {
        c.version = static_cast<Version>(level);
    } else if (name == "MQIsdp" && level == 3) {
        c.version = Version::v31;
    } else {
        return {Reason::unsupported_protocol_version,
                "unsupported protocol name or level [MQTT-3.1.2-2]"};
    }
    const bool v5 = c.version == Version::v5;
    uint8_t flags = 0;
    FMQ_TRY(r.u8(flags));
    if (flags & 0x01) {
        return malformed("reserved CONNECT flag is set [MQTT-3.1.2-3]");
    }
    c.clean_start = (flags & 0x02) != 0;
    const bool will = (flags & 0x04) != 0;
    const auto will_qos = static_cast<uint8_t>((flags >> 3) & 0x03);
    const bool will_retain = (flags & 0x20) != 0;
    const bool has_password = (flags & 0x40) != 0;
    const bool has_username = (flags & 0x80) != 0;
    if (!will && (will_qos != 0 || will_retain)) {
        return malformed("Will QoS or Will Retain set without the Will flag [MQTT-3.1.2-11]");
    }
    if (will_qos == 3) {
        return malformed("Will QoS is 3 [MQTT-3.1.2-12]");
    }
    if (!v5 && has_password && !has_username) {
        return malformed("Password flag without User Name flag [MQTT-3.1.2-22]");
    }
    FMQ_TRY(r.u16(c.keep_alive));
    if (v5) {
        FMQ_TRY(read_properties(r, PropertyContext::connect, c.properties));
    }
    FMQ_TRY(r.utf8(c.client_id));
    if (c.client_id.empty() &&
        (c.version == Version::v31 || (c.version == Version::v311 && !c.clean_start))) {
        return {Reason::client_identifier_not_valid,
                "empty Client Identifier needs Clean Session [MQTT-3.1.3-8]"};
    }
    if (will) {
        Will &w = c.will.emplace();
        w.qos = will_qos;
        w.retain = will_retain;
        if (v5) {
            FMQ_TRY(read_properties(r, PropertyContext::will, w.properties));
        }
        FMQ_TRY(r.utf8(w.topic));
        if (!valid_topic_name(w.topic)) {
            return {Reason::topic_name_invalid, "Will Topic is not a valid topic name"};
        }
        FMQ_TRY(r.binary(w.payload));
    }
    if (has_username) {
        FMQ_TRY(r.utf8(c.username.emplace()));
    }
    if (has_password) {
        FMQ_TRY(r.binary(c.password.emplace()));
    }
    return expect_end(r);
}

Reason connack_reason_from_v3(uint8_t code) {
    switch (code) {
    case 0:
        return Reason::success;
    case 1:
        return Reason::unsupported_protocol_version;
    case 2:
        return Reason::client_identifier_not_valid;
    case 3:
        return Reason::server_unavailable;
    case 4:
        return Reason::bad_user_name_or_password;
    default:
        return Reason::not_authorized;
    }
}

Error decode_connack(Reader &r, Version v, Connack &c) {
    uint8_t flags = 0;
    FMQ_TRY(r.u8(flags));
    if (flags & 0xFE) {
        return malformed("reserved CONNACK flags are set [MQTT-3.2.2-1]");
    }
    c.session_present = (flags & 0x01) != 0;
    uint8_t code = 0;
    FMQ_TRY(r.u8(code));
    if (v != Version::v5) {
        if (code > 5) {
            return malformed("CONNACK return code above 5");
        }
        c.reason = connack_reason_from_v3(code);
    } else {
        c.reason = static_cast<Reason>(code);
        if (!reason_allowed(2, c.reason)) {
            return malformed("reason code not valid in CONNACK");
        }
        FMQ_TRY(read_properties(r, PropertyContext::connack, c.properties));
    }
    if (c.session_present && c.reason != Reason::success) {
        return protocol("Session Present set on a refused connection [MQTT-3.2.2-6]");
    }
    return expect_end(r);
}

Error decode_publish(Reader &r, uint8_t flags, Version v, Publish &p) {
    p.retain = (flags & 0x01) != 0;
    p.qos = static_cast<uint8_t>((flags >> 1) & 0x03);
    p.dup = (flags & 0x08) != 0;
    if (p.qos == 3) {
        return malformed("PUBLISH QoS is 3 [MQTT-3.3.1-4]");
    }
    if (p.dup && p.qos == 0) {
        return malformed("DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]");
    }
    FMQ_TRY(r.utf8(p.topic));
    if (p.qos > 0) {
        FMQ_TRY(read_packet_id(r, p.packet_id));
    }
    if (v == Version::v5) {
        FMQ_TRY(read_properties(r, PropertyContext::publish, p.properties));
    }
    if (p.topic.empty()) {
        if (v != Version::v5) {
            return {Reason::topic_name_invalid, "empty Topic Name [MQTT-4.7.3-1]"};
        }
        if (!p.properties.topic_alias) {
            return protocol("empty Topic Name without a Topic Alias");
        }
    } else if (!valid_topic_name(p.topic)) {
        return {Reason::topic_name_invalid, "wildcard in Topic Name [MQTT-3.3.2-2]"};
    }
    r.rest(p.payload);
    return kOk;
}

// PUBACK, PUBREC, PUBREL, PUBCOMP (spec 3.4-3.7).
Error decode_ack(Reader &r, uint8_t type, Version v, Ack &a) {
    FMQ_TRY(read_packet_id(r, a.packet_id));
    if (v == Version::v5 && !r.at_end()) {
        uint8_t code = 0;
        FMQ_TRY(r.u8(code));
        a.reason = static_cast<Reason>(code);
        if (!reason_allowed(type, a.reason)) {
            return malformed("reason code not valid for this acknowledgement");
        }
        if (!r.at_end()) {
            FMQ_TRY(read_properties(r, static_cast<PropertyContext>(type), a.properties));
        }
    }
    return expect_end(r);
}

Error check_subscription_filter(const std::string &filter, bool no_local) {
    const FilterCheck check = check_filter(filter);
    if (check.reason != Reason::success) {
        return {check.reason, "invalid Topic Filter [MQTT-4.7.1-1]"};
    }
    if (check.shared && no_local) {
        return protocol("No Local on a shared subscription [MQTT-3.8.3-4]");
    }
    return kOk;
}

Error decode_subscribe(Reader &r, Version v, Subscribe &s) {
    FMQ_TRY(read_packet_id(r, s.packet_id));
    if (v == Version::v5) {
        FMQ_TRY(read_properties(r, PropertyContext::subscribe, s.properties));
    }
    while (!r.at_end()) {
        Subscription &sub = s.subscriptions.emplace_back();
        FMQ_TRY(r.utf8(sub.filter));
        uint8_t options = 0;
        FMQ_TRY(r.u8(options));
        if (options & (v == Version::v5 ? 0xC0 : 0xFC)) {
            return malformed("reserved subscription option bits are set [MQTT-3.8.3-5]");
        }
        sub.qos = options & 0x03;
        if (sub.qos == 3) {
            return malformed("subscription QoS is 3");
        }
        if (v == Version::v5) {
            sub.no_local = (options & 0x04) != 0;
            sub.retain_as_published = (options & 0x08) != 0;
            const auto rh = static_cast<uint8_t>((options >> 4) & 0x03);
            if (rh == 3) {
                return protocol("Retain Handling is 3");
            }
            sub.retain_handling = static_cast<RetainHandling>(rh);
        }
        FMQ_TRY(check_subscription_filter(sub.filter, sub.no_local));
    }
    if (s.subscriptions.empty()) {
        return protocol("SUBSCRIBE without a Topic Filter [MQTT-3.8.3-2]");
    }
    return kOk;
}

Error decode_suback(Reader &r, Version v, Suback &s) {
    FMQ_TRY(read_packet_id(r, s.packet_id));
    if (v == Version::v5) {
        FMQ_TRY(read_properties(r, PropertyContext::suback, s.properties));
    }
    while (!r.at_end()) {
        uint8_t code = 0;
        FMQ_TRY(r.u8(code));
        const auto reason = static_cast<Reason>(code);
        const bool ok = v == Version::v5 ? reason_allowed(9, reason) : (code <= 2 || code == 0x80);
        if (!ok) {
            return malformed("reason code not valid in SUBACK");
        }
        s.reasons.push_back(reason);
    }
    if (s.reasons.empty()) {
        return protocol("SUBACK without a reason code");
    }
    return kOk;
}

Error decode_unsubscribe(Reader &r, Version v, Unsubscribe &u) {
    FMQ_TRY(read_packet_id(r, u.packet_id));
    if (v == Version::v5) {
        FMQ_TRY(read_properties(r, PropertyContext::unsubscribe, u.properties));
    }
    while (!r.at_end()) {
        std::string &filter = u.filters.emplace_back();
        FMQ_TRY(r.utf8(filter));
        FMQ_TRY(check_subscription_filter(filter, false));
    }
    if (u.filters.empty()) {
        return protocol("UNSUBSCRIBE without a Topic Filter [MQTT-3.10.3-2]");
    }
    return kOk;
}

Error decode_unsuback(Reader &r, Version v, Unsuback &u) {
    FMQ_TRY(read_packet_id(r, u.packet_id));
    if (v != Version::v5) {
        return expect_end(r);
    }
    FMQ_TRY(read_properties(r, PropertyContext::unsuback, u.properties));
    while (!r.at_end()) {
        uint8_t code = 0;
        FMQ_TRY(r.u8(code));
        const auto reason = static_cast<Reason>(code);
        if (!reason_allowed(11, reason)) {
            return malformed("reason code not valid in UNSUBACK");
        }
        u.reasons.push_back(reason);
    }
    if (u.reasons.empty()) {
        return protocol("UNSUBACK without a reason code");
    }
    return kOk;
}

// DISCONNECT and AUTH (5.0): an optional reason code, then optional properties.
template <class P> Error decode_reason_only(Reader &r, uint8_t type, P &p) {
    if (r.at_end()) {
        return kOk; // remaining length 0 means reason 0x00 and no properties
    }
    uint8_t code = 0;
    FMQ_TRY(r.u8(code));
    p.reason = static_cast<Reason>(code);
    if (!reason_allowed(type, p.reason)) {
        return malformed("reason code not valid in this packet");
    }
    if (!r.at_end()) {
        FMQ_TRY(read_properties(r, static_cast<PropertyContext>(type), p.properties));
    }
    return expect_end(r);
}

// Decodes a packet of type T in place inside the result, so the (large) packet struct is
// never moved or copied after decoding.
template <class T, class Fn> Result<Packet> decode_into(Fn &&fn) {
    Result<Packet> result{std::in_place, std::in_place_type<T>};
    const Error e = fn(std::get<T>(result.value()));
    if (failed(e)) {
        result.fail(e);
    }
    return result;
}

// Required fixed-header flags per packet type [MQTT-2.1.3-1]; PUBLISH is checked apart.
uint8_t required_flags(uint8_t type) {
    return (type == 6 || type == 8 || type == 10) ? 0x02 : 0x00;
}

// --- encoding helpers ---------------------------------------------------------------------

void put_u8(std::vector<uint8_t> &out, uint8_t v) {
    out.push_back(v);
}

void put_u16(std::vector<uint8_t> &out, uint16_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
}

void put_u32(std::vector<uint8_t> &out, uint32_t v) {
    out.push_back(static_cast<uint8_t>(v >> 24));
    out.push_back(static_cast<uint8_t>(v >> 16));
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
}

// Appends raw bytes with one memcpy (inserting from char iterators into a uint8_t vector
// would convert byte by byte).
void put_raw(std::vector<uint8_t> &out, std::string_view s) {
    const size_t at = out.size();
    out.resize(at + s.size());
    if (!s.empty()) {
        std::memcpy(out.data() + at, s.data(), s.size());
    }
}

void put_bytes(std::vector<uint8_t> &out, std::string_view s) {
    put_u16(out, static_cast<uint16_t>(s.size()));
    put_raw(out, s);
}

// Per-subscriber additions to a property block when a shared message is sent.
struct PropertyExtras {
    std::span<const uint32_t> subscription_ids;
    std::optional<uint32_t> message_expiry; // replaces Message Expiry Interval
    std::optional<uint16_t> topic_alias;    // replaces Topic Alias
};

// Size of the property block's contents (without its own length prefix).
size_t properties_size(const Properties &p, const PropertyExtras &extra = {}) {
    size_t n = 0;
    // Each set property costs its one-byte identifier plus its value.
    auto fixed = [&n](const auto &v, size_t value_size) {
        if (v) {
            n += 1 + value_size;
        }
    };
    auto str = [&n](const std::optional<std::string> &s) {
        if (s) {
            n += 3 + s->size();
        }
    };
    fixed(p.payload_format_indicator, 1);
    fixed(extra.message_expiry ? extra.message_expiry : p.message_expiry_interval, 4);
    str(p.content_type);
    str(p.response_topic);
    str(p.correlation_data);
    for (uint32_t id : p.subscription_identifiers) {
        n += 1 + vbi_size(id);
    }
    for (uint32_t id : extra.subscription_ids) {
        n += 1 + vbi_size(id);
    }
    fixed(p.session_expiry_interval, 4);
    str(p.assigned_client_identifier);
    fixed(p.server_keep_alive, 2);
    str(p.authentication_method);
    str(p.authentication_data);
    fixed(p.request_problem_information, 1);
    fixed(p.will_delay_interval, 4);
    fixed(p.request_response_information, 1);
    str(p.response_information);
    str(p.server_reference);
    str(p.reason_string);
    fixed(p.receive_maximum, 2);
    fixed(p.topic_alias_maximum, 2);
    fixed(extra.topic_alias ? extra.topic_alias : p.topic_alias, 2);
    fixed(p.maximum_qos, 1);
    fixed(p.retain_available, 1);
    for (const auto &kv : p.user_properties) {
        n += 5 + kv.first.size() + kv.second.size();
    }
    fixed(p.maximum_packet_size, 4);
    fixed(p.wildcard_subscription_available, 1);
    fixed(p.subscription_identifier_available, 1);
    fixed(p.shared_subscription_available, 1);
    return n;
}

// Writes a property block: its length, then every set property in identifier order.
void put_properties(std::vector<uint8_t> &out, const Properties &p,
                    const PropertyExtras &extra = {}) {
    using Id = PropertyId;
    put_vbi(out, static_cast<uint32_t>(properties_size(p, extra)));
    auto id = [&](Id i) { out.push_back(static_cast<uint8_t>(i)); };
    auto byte = [&](Id i, const std::optional<uint8_t> &v) {
        if (v) {
            id(i);
            put_u8(out, *v);
        }
    };
    auto two = [&](Id i, const std::optional<uint16_t> &v) {
        if (v) {
            id(i);
            put_u16(out, *v);
        }
    };
    auto four = [&](Id i, const std::optional<uint32_t> &v) {
        if (v) {
            id(i);
            put_u32(out, *v);
        }
    };
    auto str = [&](Id i, const std::optional<std::string> &v) {
        if (v) {
            id(i);
            put_bytes(out, *v);
        }
    };
    byte(Id::payload_format_indicator, p.payload_format_indicator);
    four(Id::message_expiry_interval,
         extra.message_expiry ? extra.message_expiry : p.message_expiry_interval);
    str(Id::content_type, p.content_type);
    str(Id::response_topic, p.response_topic);
    str(Id::correlation_data, p.correlation_data);
    for (uint32_t v : p.subscription_identifiers) {
        id(Id::subscription_identifier);
        put_vbi(out, v);
    }
    for (uint32_t v : extra.subscription_ids) {
        id(Id::subscription_identifier);
        put_vbi(out, v);
    }
    four(Id::session_expiry_interval, p.session_expiry_interval);
    str(Id::assigned_client_identifier, p.assigned_client_identifier);
    two(Id::server_keep_alive, p.server_keep_alive);
    str(Id::authentication_method, p.authentication_method);
    str(Id::authentication_data, p.authentication_data);
    byte(Id::request_problem_information, p.request_problem_information);
    four(Id::will_delay_interval, p.will_delay_interval);
    byte(Id::request_response_information, p.request_response_information);
    str(Id::response_information, p.response_information);
    str(Id::server_reference, p.server_reference);
    str(Id::reason_string, p.reason_string);
    two(Id::receive_maximum, p.receive_maximum);
    two(Id::topic_alias_maximum, p.topic_alias_maximum);
    two(Id::topic_alias, extra.topic_alias ? extra.topic_alias : p.topic_alias);
    byte(Id::maximum_qos, p.maximum_qos);
    byte(Id::retain_available, p.retain_available);
    for (const auto &kv : p.user_properties) {
        id(Id::user_property);
        put_bytes(out, kv.first);
        put_bytes(out, kv.second);
    }
    four(Id::maximum_packet_size, p.maximum_packet_size);
    byte(Id::wildcard_subscription_available, p.wildcard_subscription_available);
    byte(Id::subscription_identifier_available, p.subscription_identifier_available);
    byte(Id::shared_subscription_available, p.shared_subscription_available);
}

// Writes the fixed header's first byte and reserves room for the longest remaining length;
// `finish_frame` then writes the real length and closes the gap, so encoders need no
// separate size pass.
size_t begin_frame(std::vector<uint8_t> &out, uint8_t first_byte) {
    out.push_back(first_byte);
    const size_t at = out.size();
    out.resize(at + 4);
    return at;
}

void finish_frame(std::vector<uint8_t> &out, size_t at) {
    const size_t body = out.size() - at - 4;
    uint8_t len[4];
    size_t n = 0;
    auto v = static_cast<uint32_t>(body);
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        if (v) {
            b |= 0x80;
        }
        len[n++] = b;
    } while (v);
    std::memcpy(out.data() + at, len, n);
    if (n < 4) {
        out.erase(out.begin() + static_cast<std::ptrdiff_t>(at + n),
                  out.begin() + static_cast<std::ptrdiff_t>(at + 4));
    }
}

void encode_connect(const Connect &c, std::vector<uint8_t> &out) {
    const bool v5 = c.version == Version::v5;
    const size_t at = begin_frame(out, 0x10);
    put_bytes(out, c.version == Version::v31 ? "MQIsdp" : "MQTT");
    put_u8(out, static_cast<uint8_t>(static_cast<uint8_t>(c.version) |
                                     (c.bridge && c.version != Version::v5 ? 0x80 : 0)));
    uint8_t flags = c.clean_start ? 0x02 : 0x00;
    if (c.will) {
        flags |= static_cast<uint8_t>(0x04 | (c.will->qos << 3) | (c.will->retain ? 0x20 : 0));
    }
    if (c.password) {
        flags |= 0x40;
    }
    if (c.username) {
        flags |= 0x80;
    }
    put_u8(out, flags);
    put_u16(out, c.keep_alive);
    if (v5) {
        put_properties(out, c.properties);
    }
    put_bytes(out, c.client_id);
    if (c.will) {
        if (v5) {
            put_properties(out, c.will->properties);
        }
        put_bytes(out, c.will->topic);
        put_bytes(out, c.will->payload);
    }
    if (c.username) {
        put_bytes(out, *c.username);
    }
    if (c.password) {
        put_bytes(out, *c.password);
    }
    finish_frame(out, at);
}

void encode_publish_ref(const PublishRef &p, Version v, std::vector<uint8_t> &out,
                        bool include_payload = true) {
    // PUBLISH carries the payload: compute the exact size so the payload is copied once.
    static const Properties kNone;
    const Properties &props = p.properties ? *p.properties : kNone;
    const PropertyExtras extra{p.subscription_ids, p.message_expiry, p.topic_alias};
    const bool v5 = v == Version::v5;
    size_t remaining = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
    if (v5) {
        const size_t n = properties_size(props, extra);
        remaining += vbi_size(static_cast<uint32_t>(n)) + n;
    }
    // Grow geometrically: an exact reserve per packet would copy a long output buffer on
    // every append.
    const size_t need = out.size() + 5 + remaining - (include_payload ? 0 : p.payload.size());
    if (out.capacity() < need) {
        out.reserve(std::max(need, out.capacity() * 2));
    }
    put_u8(out,
           static_cast<uint8_t>(0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 1 : 0)));
    put_vbi(out, static_cast<uint32_t>(remaining));
    put_bytes(out, p.topic);
    if (p.qos > 0) {
        put_u16(out, p.packet_id);
    }
    if (v5) {
        put_properties(out, props, extra);
    }
    if (include_payload) {
        put_raw(out, p.payload);
    }
}

void encode_publish(const Publish &p, Version v, std::vector<uint8_t> &out) {
    PublishRef ref;
    ref.topic = p.topic;
    ref.payload = p.payload;
    ref.properties = &p.properties;
    ref.qos = p.qos;
    ref.retain = p.retain;
    ref.dup = p.dup;
    ref.packet_id = p.packet_id;
    encode_publish_ref(ref, v, out);
}

// Acknowledgements, DISCONNECT and AUTH drop trailing fields that hold their defaults
// (spec 3.4.2.1: reason 0x00 without properties may be omitted).
void put_reason_and_properties(std::vector<uint8_t> &out, Reason reason, const Properties &p) {
    const bool no_props = p.empty();
    if (reason == Reason::success && no_props) {
        return;
    }
    put_u8(out, static_cast<uint8_t>(reason));
    if (!no_props) {
        put_properties(out, p);
    }
}

void encode_ack(const Ack &a, uint8_t first_byte, Version v, std::vector<uint8_t> &out) {
    const size_t at = begin_frame(out, first_byte);
    put_u16(out, a.packet_id);
    if (v == Version::v5) {
        put_reason_and_properties(out, a.reason, a.properties);
    }
    finish_frame(out, at);
}

struct EncodeVisitor {
    Version v;
    std::vector<uint8_t> &out;
    bool v5() const { return v == Version::v5; }

    void operator()(const Connect &c) { encode_connect(c, out); }
    void operator()(const Connack &c) {
        const size_t at = begin_frame(out, 0x20);
        put_u8(out, c.session_present ? 1 : 0);
        if (v5()) {
            put_u8(out, static_cast<uint8_t>(c.reason));
            put_properties(out, c.properties);
        } else {
            put_u8(out, connack_return_code_v3(c.reason));
        }
        finish_frame(out, at);
    }
    void operator()(const Publish &p) { encode_publish(p, v, out); }
    void operator()(const Puback &a) { encode_ack(a, 0x40, v, out); }
    void operator()(const Pubrec &a) { encode_ack(a, 0x50, v, out); }
    void operator()(const Pubrel &a) { encode_ack(a, 0x62, v, out); }
    void operator()(const Pubcomp &a) { encode_ack(a, 0x70, v, out); }
    void operator()(const Subscribe &s) {
        const size_t at = begin_frame(out, 0x82);
        put_u16(out, s.packet_id);
        if (v5()) {
            put_properties(out, s.properties);
        }
        for (const Subscription &sub : s.subscriptions) {
            put_bytes(out, sub.filter);
            uint8_t options = sub.qos;
            if (v5()) {
                options |= static_cast<uint8_t>((sub.no_local ? 0x04 : 0) |
                                                (sub.retain_as_published ? 0x08 : 0) |
                                                (static_cast<uint8_t>(sub.retain_handling) << 4));
            }
            put_u8(out, options);
        }
        finish_frame(out, at);
    }
    void operator()(const Suback &s) {
        const size_t at = begin_frame(out, 0x90);
        put_u16(out, s.packet_id);
        if (v5()) {
            put_properties(out, s.properties);
        }
        for (Reason r : s.reasons) {
            put_u8(out, static_cast<uint8_t>(r));
        }
        finish_frame(out, at);
    }
    void operator()(const Unsubscribe &u) {
        const size_t at = begin_frame(out, 0xA2);
        put_u16(out, u.packet_id);
        if (v5()) {
            put_properties(out, u.properties);
        }
        for (const std::string &f : u.filters) {
            put_bytes(out, f);
        }
        finish_frame(out, at);
    }
    void operator()(const Unsuback &u) {
        const size_t at = begin_frame(out, 0xB0);
        put_u16(out, u.packet_id);
        if (v5()) {
            put_properties(out, u.properties);
            for (Reason r : u.reasons) {
                put_u8(out, static_cast<uint8_t>(r));
            }
        }
        finish_frame(out, at);
    }
    void operator()(const Pingreq &) {
        out.push_back(0xC0);
        out.push_back(0x00);
    }
    void operator()(const Pingresp &) {
        out.push_back(0xD0);
        out.push_back(0x00);
    }
    void operator()(const Disconnect &d) {
        const size_t at = begin_frame(out, 0xE0);
        if (v5()) {
            put_reason_and_properties(out, d.reason, d.properties);
        }
        finish_frame(out, at);
    }
    void operator()(const Auth &a) {
        const size_t at = begin_frame(out, 0xF0);
        put_reason_and_properties(out, a.reason, a.properties);
        finish_frame(out, at);
    }
};

} // namespace

size_t vbi_size(uint32_t value) {
    return value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4;
}

void put_vbi(std::vector<uint8_t> &out, uint32_t value) {
    do {
        uint8_t b = value & 0x7F;
        value >>= 7;
        if (value) {
            b |= 0x80;
        }
        out.push_back(b);
    } while (value);
}

FrameHeader parse_frame_header(std::span<const uint8_t> bytes, uint32_t max_packet_size) {
    FrameHeader h;
    if (bytes.empty()) {
        return h;
    }
    h.first_byte = bytes[0];
    uint32_t value = 0;
    for (size_t i = 0; i < 4; ++i) {
        if (bytes.size() < i + 2) {
            return h; // need more bytes
        }
        const uint8_t b = bytes[i + 1];
        value |= uint32_t{b & 0x7Fu} << (7 * i);
        if ((b & 0x80) == 0) {
            h.remaining_length = value;
            h.header_length = static_cast<uint8_t>(i + 2);
            if (h.total_length() > max_packet_size) {
                h.status = FrameHeader::Status::error;
                h.error = {Reason::packet_too_large, "packet exceeds the maximum packet size"};
                return h;
            }
            h.status = FrameHeader::Status::ok;
            return h;
        }
    }
    h.status = FrameHeader::Status::error;
    h.error = malformed("remaining length longer than 4 bytes [MQTT-1.5.5-1]");
    return h;
}

Result<Packet> decode(std::span<const uint8_t> frame, Version version) {
    const FrameHeader h = parse_frame_header(frame, UINT32_MAX);
    if (h.status == FrameHeader::Status::error) {
        return h.error;
    }
    if (h.status == FrameHeader::Status::need_more || h.total_length() != frame.size()) {
        return malformed("remaining length does not match the packet");
    }
    const uint8_t type = h.first_byte >> 4;
    const uint8_t flags = h.first_byte & 0x0F;
    if (type == 0 || (type == 15 && version != Version::v5)) {
        return malformed("reserved packet type");
    }
    if (type != 3 && flags != required_flags(type)) {
        return malformed("invalid fixed header flags [MQTT-2.1.3-1]");
    }
    Reader r(frame.subspan(h.header_length));
    const bool v5 = version == Version::v5;
    switch (static_cast<PacketType>(type)) {
    case PacketType::connect:
        return decode_into<Connect>([&](Connect &c) { return decode_connect(r, c); });
    case PacketType::connack:
        return decode_into<Connack>([&](Connack &c) { return decode_connack(r, version, c); });
    case PacketType::publish:
        return decode_into<Publish>(
            [&](Publish &p) { return decode_publish(r, flags, version, p); });
    case PacketType::puback:
        return decode_into<Puback>([&](Ack &a) { return decode_ack(r, type, version, a); });
    case PacketType::pubrec:
        return decode_into<Pubrec>([&](Ack &a) { return decode_ack(r, type, version, a); });
    case PacketType::pubrel:
        return decode_into<Pubrel>([&](Ack &a) { return decode_ack(r, type, version, a); });
    case PacketType::pubcomp:
        return decode_into<Pubcomp>([&](Ack &a) { return decode_ack(r, type, version, a); });
    case PacketType::subscribe:
        return decode_into<Subscribe>(
            [&](Subscribe &s) { return decode_subscribe(r, version, s); });
    case PacketType::suback:
        return decode_into<Suback>([&](Suback &s) { return decode_suback(r, version, s); });
    case PacketType::unsubscribe:
        return decode_into<Unsubscribe>(
            [&](Unsubscribe &u) { return decode_unsubscribe(r, version, u); });
    case PacketType::unsuback:
        return decode_into<Unsuback>([&](Unsuback &u) { return decode_unsuback(r, version, u); });
    case PacketType::pingreq:
        return decode_into<Pingreq>([&](Pingreq &) { return expect_end(r); });
    case PacketType::pingresp:
        return decode_into<Pingresp>([&](Pingresp &) { return expect_end(r); });
    case PacketType::disconnect:
        return decode_into<Disconnect>(
            [&](Disconnect &d) { return v5 ? decode_reason_only(r, type, d) : expect_end(r); });
    case PacketType::auth:
        return decode_into<Auth>([&](Auth &a) { return decode_reason_only(r, type, a); });
    }
    return malformed("reserved packet type");
}

void encode(const Packet &packet, Version version, std::vector<uint8_t> &out) {
    std::visit(EncodeVisitor{version, out}, packet);
}

void encode_publish(const PublishRef &ref, Version version, std::vector<uint8_t> &out,
                    bool include_payload) {
    encode_publish_ref(ref, version, out, include_payload);
}

std::optional<Version> peek_connect_version(std::span<const uint8_t> frame) {
    const FrameHeader h = parse_frame_header(frame, UINT32_MAX);
    if (h.status != FrameHeader::Status::ok || h.type() != PacketType::connect) {
        return std::nullopt;
    }
    Reader r(frame.subspan(h.header_length));
    std::string name;
    uint8_t level = 0;
    if (failed(r.binary(name)) || failed(r.u8(level)) || level < 3 || level > 5) {
        return std::nullopt;
    }
    return static_cast<Version>(level);
}

std::vector<uint8_t> encode(const Packet &packet, Version version) {
    std::vector<uint8_t> out;
    encode(packet, version, out);
    return out;
}

std::string_view packet_type_name(PacketType t) {
    static constexpr std::string_view kNames[] = {
        "RESERVED", "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
        "PUBREL",   "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ",  "PINGRESP", "DISCONNECT", "AUTH"};
    const auto i = static_cast<size_t>(t);
    return i < 16 ? kNames[i] : "UNKNOWN";
}

} // namespace ferrymq::mqtt
