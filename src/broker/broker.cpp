// SPDX-License-Identifier: Apache-2.0
#include "broker.hpp"

#include "sys_topics.hpp"

#include "mqtt/topic.hpp"
#include "mqtt/utf8.hpp"

#include <algorithm>
#include <cinttypes>
#include <random>

namespace ferrymq::broker {

using mqtt::Reason;
using mqtt::Version;

namespace {

constexpr uint32_t kNeverExpires = 0xFFFFFFFF;

// The Reason String of every failed authentication: why it failed goes to the log only, so
// a client cannot tell an unknown user from a wrong password.
constexpr std::string_view kAuthenticationFailed = "authentication failed";

bool expired(const Message &m, uint64_t now_ms) {
    return m.expiry_ms != 0 && now_ms >= m.expiry_ms;
}

// Message properties a subscriber receives: everything but the per-hop ones.
mqtt::Properties message_properties(mqtt::Properties &&p) {
    p.topic_alias.reset();
    p.subscription_identifiers.clear();
    return std::move(p);
}

// What one shared subscription member gets: a delivery of its own, never merged with the
// member's other subscriptions, because every Shared Subscription is independent (4.8.2).
Delivery shared_delivery(const MessagePtr &m, const SubscriptionOptions &o, uint32_t group_id) {
    Delivery d{.message = m,
               .qos = std::min(m->qos, o.qos),
               .retain = o.retain_as_published && m->retain,
               .shared_group = group_id,
               .subscription_ids = {}};
    if (o.identifier != 0) {
        d.subscription_ids.push_back(o.identifier);
    }
    return d;
}

// Builds the shared message for a client PUBLISH, a will or a $SYS value: per-hop
// properties removed, expiry turned into a deadline on the loop clock.
MessagePtr make_message(std::string &&topic, std::string &&payload, uint8_t qos, bool retain,
                        mqtt::Properties &&properties, const std::string &origin, uint64_t now_ms) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(topic);
    m->payload = std::move(payload);
    m->qos = qos;
    m->retain = retain;
    m->properties = message_properties(std::move(properties));
    if (auto interval = m->properties.message_expiry_interval) {
        m->expiry_ms = now_ms + uint64_t{*interval} * 1000;
    }
    m->origin_client_id = origin;
    m->created_ms = static_cast<int64_t>(now_ms);
    return m;
}

} // namespace

// Applies a listener's rules for User Properties (allowed names, count, total bytes) to
// a 5.0 PUBLISH, stripping what breaks them when the listener says so.
UserPropertyVerdict apply_user_property_policy(const ListenerPolicy &p,
                                               std::vector<mqtt::UserProperty> &props) {
    if (props.empty()) {
        return UserPropertyVerdict::ok;
    }
    bool stripped = false;
    if (!p.allowed_user_property_keys.empty()) {
        const auto &allowed = p.allowed_user_property_keys;
        auto refused = [&allowed](const mqtt::UserProperty &kv) {
            return std::find(allowed.begin(), allowed.end(), kv.first) == allowed.end();
        };
        if (std::any_of(props.begin(), props.end(), refused)) {
            if (!p.strip_user_properties) {
                return UserPropertyVerdict::key_not_allowed;
            }
            props.erase(std::remove_if(props.begin(), props.end(), refused), props.end());
            stripped = true;
        }
    }
    auto bytes = [&props] {
        size_t n = 0;
        for (const auto &[k, v] : props) {
            n += k.size() + v.size();
        }
        return n;
    };
    const bool too_many = p.max_user_properties != 0 && props.size() > p.max_user_properties;
    const bool too_big = p.max_user_property_bytes != 0 && bytes() > p.max_user_property_bytes;
    if (too_many || too_big) {
        if (!p.strip_user_properties) {
            return UserPropertyVerdict::too_large;
        }
        // Keep the first properties that fit, in order.
        while (!props.empty() &&
               ((p.max_user_properties != 0 && props.size() > p.max_user_properties) ||
                (p.max_user_property_bytes != 0 && bytes() > p.max_user_property_bytes))) {
            props.pop_back();
        }
        stripped = true;
    }
    return stripped ? UserPropertyVerdict::stripped : UserPropertyVerdict::ok;
}

Broker::Broker(const BrokerSettings &settings, util::Log &log)
    : settings_(settings), log_(log), abuse_(settings.abuse, log),
      shared_(settings.shared_strategy,
              settings.random_seed != 0 ? settings.random_seed : std::random_device{}()) {}

Broker::~Broker() = default;

void Broker::on_open(Link &link) {
    Client &c = clients_[link.id()];
    c.link = &link;
}

bool Broker::connected(const Link &link) const {
    auto it = clients_.find(link.id());
    return it != clients_.end() && it->second.session != nullptr;
}

Broker::Client *Broker::client_of(const Session &session) {
    if (session.link_id == 0) {
        return nullptr;
    }
    auto it = clients_.find(session.link_id);
    return it == clients_.end() ? nullptr : &it->second;
}

// Reason Strings and User Properties are diagnostics, so they give way: a client that set
// Request Problem Information to 0 gets them only on CONNACK and DISCONNECT [MQTT-3.1.2-29]
// (PUBLISH goes through transmit()), and none may push a packet past the client's Maximum
// Packet Size [MQTT-3.2.2-19], [MQTT-3.4.2-2], [MQTT-3.9.2-1], [MQTT-3.14.2-3] and the like.
// 3.1/3.1.1 packets have no properties.
void Broker::send(Client &c, mqtt::Packet &&packet, std::string_view why) {
    mqtt::Properties *p = nullptr;
    if (c.version == Version::v5) {
        p = std::visit(
            [](auto &x) -> mqtt::Properties * {
                if constexpr (requires { x.properties; }) {
                    return &x.properties;
                } else {
                    return nullptr; // PINGRESP
                }
            },
            packet);
    }
    if (p != nullptr) {
        const mqtt::PacketType type = mqtt::packet_type(packet);
        const bool always = type == mqtt::PacketType::connack ||
                            type == mqtt::PacketType::disconnect ||
                            type == mqtt::PacketType::publish;
        if (!always && !c.problem_information) {
            p->reason_string.reset();
            p->user_properties.clear();
        } else if (!why.empty()) {
            p->reason_string = std::string(why);
        }
        // Measured only when something could be dropped: these are refusals, not the
        // message path.
        if ((p->reason_string || !p->user_properties.empty()) && c.max_packet_size != UINT32_MAX &&
            mqtt::encode(packet, Version::v5).size() > c.max_packet_size) {
            p->reason_string.reset();
            p->user_properties.clear();
        }
    }
    c.link->send(packet);
}

void Broker::fail(Client &c, Reason reason, std::string_view what) {
    ++stats_.protocol_errors;
    log_.info("closing connection %" PRIu64 " (%s): %.*s (0x%02X %s)", c.link->id(),
              c.session ? c.session->client_id().c_str() : "-", int(what.size()), what.data(),
              unsigned(reason), std::string(mqtt::reason_name(reason)).c_str());
    if (c.session && c.version == Version::v5) {
        mqtt::Disconnect d;
        d.reason = reason;
        count_reason(reason);
        send(c, std::move(d), what);
    }
    c.closing = true;
    c.link->close();
}

void Broker::refuse(Client &c, Reason reason, std::string_view what, mqtt::Properties properties) {
    log_.info("refusing connection %" PRIu64 ": %.*s (0x%02X %s)", c.link->id(), int(what.size()),
              what.data(), unsigned(reason), std::string(mqtt::reason_name(reason)).c_str());
    mqtt::Connack ack;
    ack.reason = reason;
    ack.properties = std::move(properties);
    count_reason(reason);          // by its 5.0 value, whatever the client's version
    send(c, std::move(ack), what); // 3.1/3.1.1: encoded as the nearest return code
    c.closing = true;
    c.link->close();
}

void Broker::on_packet(Link &link, mqtt::Packet &&packet, uint64_t now_ms) {
    now_ms_ = now_ms;
    auto it = clients_.find(link.id());
    if (it == clients_.end() || it->second.closing) {
        return;
    }
    Client &c = it->second;
    if (c.session == nullptr) {
        if (c.auth) {
            // During the exchange only AUTH may come [MQTT-4.12.0-6].
            if (auto *a = std::get_if<mqtt::Auth>(&packet)) {
                handle_auth(c, *a, now_ms);
            } else {
                fail(c, Reason::protocol_error, "packet other than AUTH during authentication");
            }
        } else if (auto *connect = std::get_if<mqtt::Connect>(&packet)) {
            handle_connect(c, std::move(*connect), now_ms);
        } else {
            fail(c, Reason::protocol_error, "first packet is not CONNECT [MQTT-3.1.0-1]");
        }
        return;
    }
    switch (mqtt::packet_type(packet)) {
    case mqtt::PacketType::connect:
        fail(c, Reason::protocol_error, "second CONNECT [MQTT-3.1.0-2]");
        break;
    case mqtt::PacketType::publish:
        handle_publish(c, std::move(std::get<mqtt::Publish>(packet)), now_ms);
        break;
    case mqtt::PacketType::puback:
        handle_puback(c, std::get<mqtt::Puback>(packet).packet_id);
        break;
    case mqtt::PacketType::pubrec:
        handle_pubrec(c, std::get<mqtt::Pubrec>(packet));
        break;
    case mqtt::PacketType::pubrel:
        handle_pubrel(c, std::get<mqtt::Pubrel>(packet).packet_id);
        break;
    case mqtt::PacketType::pubcomp:
        handle_pubcomp(c, std::get<mqtt::Pubcomp>(packet).packet_id);
        break;
    case mqtt::PacketType::subscribe:
        handle_subscribe(c, std::move(std::get<mqtt::Subscribe>(packet)), now_ms);
        break;
    case mqtt::PacketType::unsubscribe:
        handle_unsubscribe(c, std::get<mqtt::Unsubscribe>(packet));
        break;
    case mqtt::PacketType::pingreq:
        send(c, mqtt::Pingresp{});
        break;
    case mqtt::PacketType::disconnect:
        handle_disconnect(c, std::get<mqtt::Disconnect>(packet), now_ms);
        break;
    case mqtt::PacketType::auth:
        handle_auth(c, std::get<mqtt::Auth>(packet), now_ms);
        break;
    default:
        // CONNACK, SUBACK, UNSUBACK, PINGRESP are server-to-client only.
        fail(c, Reason::protocol_error, "packet type a client may not send");
        break;
    }
}

void Broker::reconfigure(BrokerSettings settings) {
    settings.authenticators = std::move(settings_.authenticators);
    settings.random_seed = settings_.random_seed;
    settings.version = std::move(settings_.version);
    settings_ = std::move(settings);
    abuse_.set_settings(settings_.abuse);
    // Connected clients follow the new rules from their next packet on.
    for (auto &[id, c] : clients_) {
        if (c.session == nullptr || c.link->internal()) {
            continue;
        }
        c.acl = settings_.acl.empty() ? nullptr
                                      : std::make_unique<ClientAcl>(settings_.acl.for_client(
                                            c.username, c.session->client_id()));
    }
}

void Broker::on_transport_refused(Link &link, bool credentials, uint64_t now_ms) {
    if (credentials) {
        ++stats_.auth_failures;
    } else {
        ++stats_.protocol_errors;
    }
    abuse_.note(link.peer(), credentials ? AbuseKind::auth_failure : AbuseKind::malformed, now_ms);
}

void Broker::on_decode_error(Link &link, const mqtt::Error &error, std::span<const uint8_t> frame,
                             uint64_t now_ms) {
    auto it = clients_.find(link.id());
    if (it == clients_.end() || it->second.closing) {
        return;
    }
    abuse_.note(link.peer(), AbuseKind::malformed, now_ms);
    Client &c = it->second;
    if (c.session == nullptr) {
        // A refused CONNECT is answered in the client's own version where the spec names a
        // reason: 0x84 [MQTT-3.1.2-2] and 0x85 [MQTT-3.1.3-9].
        const std::optional<Version> v = mqtt::peek_connect_version(frame);
        const bool answer = error.reason == Reason::unsupported_protocol_version ||
                            error.reason == Reason::client_identifier_not_valid;
        ++stats_.protocol_errors;
        if (answer) {
            // 0x84 is answered in the 3.1.1 form every client version can read.
            const bool v5 =
                v == Version::v5 && error.reason != Reason::unsupported_protocol_version;
            c.link->set_version(v5 ? Version::v5 : Version::v311);
            return refuse(c, error.reason, error.what);
        }
        log_.info("refusing connection %" PRIu64 ": %s (0x%02X)", link.id(), error.what,
                  unsigned(error.reason));
        c.closing = true;
        c.link->close();
        return;
    }
    fail(c, error.reason, error.what);
}

void Broker::on_keep_alive_timeout(Link &link, uint64_t now_ms) {
    now_ms_ = now_ms;
    auto it = clients_.find(link.id());
    if (it == clients_.end() || it->second.closing) {
        return;
    }
    fail(it->second, Reason::keep_alive_timeout, "keep-alive expired");
}

void Broker::handle_connect(Client &c, mqtt::Connect &&connect, uint64_t now_ms) {
    const bool v5 = connect.version == Version::v5;
    c.version = connect.version;
    c.link->set_version(connect.version);
    const mqtt::Properties &props = connect.properties;
    if (props.request_problem_information) {
        c.problem_information = *props.request_problem_information != 0;
    }
    if (props.receive_maximum) {
        c.client_receive_maximum = *props.receive_maximum;
    }
    if (props.maximum_packet_size) {
        c.max_packet_size = *props.maximum_packet_size;
        c.link->set_max_outgoing_packet(*props.maximum_packet_size);
    }
    if (v5) {
        // No aliases to a client that sent no Topic Alias Maximum [MQTT-3.1.2-27], none above
        // the one it sent [MQTT-3.1.2-26].
        c.outbound_alias_max =
            std::min(props.topic_alias_maximum.value_or(0), settings_.outbound_topic_aliases);
    }
    if (!settings_.server_reference.empty() && !c.link->internal()) {
        // Redirection (spec 4.11): this broker sends clients to another one, e.g. while
        // the gateway is under maintenance. 3.1/3.1.1 clients get "server unavailable".
        mqtt::Properties p;
        if (v5) {
            p.server_reference = settings_.server_reference;
        }
        return refuse(c, settings_.server_moved ? Reason::server_moved : Reason::use_another_server,
                      "redirected to another server", std::move(p));
    }
    mqtt::Connack ack;
    if (connect.will && connect.will->qos > settings_.max_qos) {
        if (v5) {
            // [MQTT-3.2.2-12]: a Will QoS above Maximum QoS is refused.
            return refuse(c, Reason::qos_not_supported, "Will QoS above the maximum");
        }
        connect.will->qos = settings_.max_qos;
    }
    if (v5 && props.authentication_method) {
        // Enhanced authentication (spec 4.12): CONNACK waits for the exchange.
        AuthenticatorPtr exchange = settings_.authenticators.create(*props.authentication_method);
        if (!exchange) {
            return refuse(c, Reason::bad_authentication_method,
                          "authentication method not supported");
        }
        c.auth = std::make_unique<AuthExchange>();
        c.auth->method = *props.authentication_method;
        c.auth->username = connect.username;
        c.auth->exchange = std::move(exchange);
        const std::string data = props.authentication_data.value_or("");
        c.auth->pending = std::make_unique<mqtt::Connect>(std::move(connect));
        const mqtt::Connect &pending = *c.auth->pending;
        return advance_auth(c, c.auth->exchange->start(pending.client_id, pending.username, data),
                            now_ms);
    }
    if (c.link->policy().identity_as_username && !c.link->internal()) {
        // The TLS client certificate authenticated the client: it names the user, whatever
        // CONNECT says, and there is no password to check.
        const std::string_view identity = c.link->certificate_identity();
        if (identity.empty()) {
            return refuse(c, Reason::not_authorized,
                          "this listener takes the username from a client certificate");
        }
        connect.username = std::string(identity);
        connect.password.reset();
        c.username = connect.username;
    } else if (settings_.check_password && !c.link->internal()) {
        // A password file is configured: a username must come with its password
        // [MQTT-3.1.4-2] (the server may refuse a CONNECT that fails authentication), and
        // the reason never says whether the user exists.
        if (connect.username) {
            if (!connect.password ||
                !settings_.check_password(*connect.username, *connect.password)) {
                ++stats_.auth_failures;
                abuse_.note(c.link->peer(), AbuseKind::auth_failure, now_ms);
                log_.info("connection %" PRIu64 ": wrong password or unknown user '%s'",
                          c.link->id(), connect.username->c_str());
                return refuse(c, Reason::bad_user_name_or_password, kAuthenticationFailed);
            }
            c.username = connect.username;
        } else if (!c.link->policy().allow_anonymous) {
            return refuse(c, Reason::not_authorized,
                          "anonymous clients are not allowed on this listener");
        }
    } else if (!c.link->policy().allow_anonymous) {
        // Without a password file a listener that refuses anonymous clients can check no
        // credentials, so it refuses everyone (except through enhanced authentication,
        // above): no username is "not authorized", a username is "bad user name or
        // password" (3.1.1 return codes 5 and 4).
        if (connect.username) {
            return refuse(c, Reason::bad_user_name_or_password,
                          "no password file to check the username against");
        }
        return refuse(c, Reason::not_authorized,
                      "anonymous clients are not allowed on this listener");
    }
    accept_connect(c, std::move(connect), std::move(ack), now_ms);
}

void Broker::accept_connect(Client &c, mqtt::Connect &&connect, mqtt::Connack &&ack,
                            uint64_t now_ms) {
    const bool v5 = connect.version == Version::v5;
    const mqtt::Properties &props = connect.properties;
    std::string client_id = std::move(connect.client_id);
    if (client_id.starts_with("$bridge/") && !c.link->internal()) {
        // Those sessions hold bridge queues: no network client may take them over.
        return refuse(c, Reason::client_identifier_not_valid,
                      "client ids starting with $bridge/ are reserved for bridges");
    }
    if (client_id.empty()) {
        // [MQTT-3.1.3-6]: the server assigns a unique id; 5.0 clients are told it.
        std::random_device rd;
        char buf[48];
        std::snprintf(buf, sizeof buf, "ferrymq-%08x%08x-%" PRIu64, rd(), rd(), ++assigned_ids_);
        client_id = buf;
        if (v5) {
            ack.properties.assigned_client_identifier = client_id;
        }
    }

    if (!settings_.acl.empty() && !c.link->internal()) {
        // Compiled once per connection: every later check only walks the client's rules.
        c.acl = std::make_unique<ClientAcl>(settings_.acl.for_client(c.username, client_id));
        if (connect.will && !c.acl->may_publish(connect.will->topic)) {
            // The will would be a PUBLISH the client may not make (3.1.1 return code 5).
            ++stats_.acl_denied_publish;
            abuse_.note(c.link->peer(), AbuseKind::acl_denial, now_ms);
            return refuse(c, Reason::not_authorized, "not authorized to publish the will topic");
        }
    }

    uint32_t expiry = 0;
    if (v5) {
        expiry = props.session_expiry_interval.value_or(0);
        if (expiry > settings_.max_session_expiry) {
            expiry = settings_.max_session_expiry;
            ack.properties.session_expiry_interval = expiry;
        }
    } else {
        expiry = connect.clean_start ? 0 : kNeverExpires;
    }

    // Take over a connected session [MQTT-3.1.4-3]: the old connection is closed and ends
    // as an abnormal disconnect (its will follows the usual rules, its session ends if it
    // had no expiry).
    if (auto it = sessions_.find(client_id); it != sessions_.end()) {
        if (Client *old = client_of(*it->second); old != nullptr && old != &c) {
            log_.info("client %s taken over by connection %" PRIu64, client_id.c_str(),
                      c.link->id());
            if (old->version == Version::v5) {
                mqtt::Disconnect d;
                d.reason = Reason::session_taken_over;
                count_reason(d.reason);
                send(*old, std::move(d), "another connection took over this client identifier");
            }
            old->closing = true;
            old->link->close();
            detach(*old, now_ms);
        }
    }
    Session *session = nullptr;
    if (auto it = sessions_.find(client_id); it != sessions_.end()) {
        session = it->second.get();
        const bool expired_session = session->link_id == 0 && session->expires_at_ms != 0 &&
                                     now_ms >= session->expires_at_ms;
        if (expired_session || connect.clean_start) {
            // An expired session is gone even if the next tick has not removed it yet
            // (e.g. one whose expiry passed while the broker was stopped).
            destroy_session(session); // publishes a will still pending [MQTT-3.1.3-9]
            session = nullptr;
        } else if (session->will_at_ms != 0) {
            // Reconnected within the Will Delay Interval: the will is not sent.
            session->will.reset();
            session->will_at_ms = 0;
        }
    }
    const bool session_present = session != nullptr;
    if (session == nullptr) {
        auto owned = std::make_unique<Session>(client_id);
        session = owned.get();
        sessions_.emplace(session->client_id(), std::move(owned));
    }
    session->link_id = c.link->id();
    session->version = connect.version;
    session->expiry_interval = expiry;
    session->expires_at_ms = 0;
    session->will = connect.will ? std::make_unique<mqtt::Will>(std::move(*connect.will)) : nullptr;
    c.session = session;
    session->window = c.link->inflight_window();
    session->queue_max_messages = c.link->queue_max_messages();
    session->queue_max_bytes = c.link->queue_max_bytes();
    session->queue_max_age_s = c.link->queue_max_age();
    session->refuse_when_full = c.link->queue_refuses_when_full();
    any_refusing_queue_ = any_refusing_queue_ || session->refuse_when_full;
    sync_persisted(*session);
    ++connected_[version_index(c.version)];

    // A configured Server Keep Alive replaces a 5.0 client's own, and the client must use it
    // [MQTT-3.2.2-21]; without one the client's value holds [MQTT-3.2.2-22]. 3.1/3.1.1 have
    // no way to tell the client, so theirs always holds.
    uint16_t keep_alive = connect.keep_alive;
    if (v5 && settings_.server_keep_alive != 0 && keep_alive != settings_.server_keep_alive) {
        keep_alive = settings_.server_keep_alive;
        ack.properties.server_keep_alive = keep_alive;
    }
    c.link->set_keep_alive(keep_alive);
    ack.session_present = session_present;
    if (v5) {
        mqtt::Properties &p = ack.properties;
        p.receive_maximum = settings_.receive_maximum;
        p.topic_alias_maximum = settings_.topic_alias_maximum;
        if (settings_.max_packet_size < mqtt::kMaxRemainingLength + 5) {
            p.maximum_packet_size = settings_.max_packet_size; // absent means no limit
        }
        if (settings_.max_qos < 2) {
            p.maximum_qos = settings_.max_qos;
        }
        p.retain_available = 1;
        // Request Response Information = 1 asks for a reply-topic namespace [MQTT-3.1.2-28];
        // the broker may answer none.
        if (props.request_response_information.value_or(0) == 1 &&
            !settings_.response_information.empty()) {
            std::string info = settings_.response_information;
            constexpr std::string_view kPlaceholder = "{client_id}";
            for (size_t at = info.find(kPlaceholder); at != std::string::npos;
                 at = info.find(kPlaceholder, at + client_id.size())) {
                info.replace(at, kPlaceholder.size(), client_id);
            }
            p.response_information = std::move(info);
        }
        p.wildcard_subscription_available = 1;
        p.subscription_identifier_available = 1;
        p.shared_subscription_available = settings_.shared_subscriptions ? 1 : 0;
    }
    send(c, std::move(ack));
    log_.debug("client %s connected on %" PRIu64 " (MQTT %s, session %s)", client_id.c_str(),
               c.link->id(),
               connect.version == Version::v5     ? "5.0"
               : connect.version == Version::v311 ? "3.1.1"
                                                  : "3.1",
               session_present ? "resumed" : "new");

    if (session_present) {
        // Resend what was in flight, in order, with DUP set [MQTT-4.4.0-1].
        for (uint16_t id : session->inflight.ids_in_order()) {
            Inflight *m = session->inflight.find(id);
            if (m->released) {
                send(c, mqtt::Pubrel{{id, Reason::success, {}}});
            } else if (!transmit(*session, c, m->delivery, id, true, now_ms)) {
                // Expired, or too large for this connection's Maximum Packet Size: it can
                // never be delivered, so it gives up its slot.
                forget_stored(m->delivery);
                session->inflight.erase(id);
            }
        }
        pump(*session, now_ms);
    }
}

// AUTH during CONNECT (continue) or later (re-authentication), spec 4.12.
void Broker::handle_auth(Client &c, const mqtt::Auth &packet, uint64_t now_ms) {
    if (!c.auth) {
        // No authentication method was negotiated in CONNECT [MQTT-4.12.0-1].
        return fail(c, Reason::protocol_error, "AUTH without an authentication method");
    }
    AuthExchange &a = *c.auth;
    // The method never changes within a connection [MQTT-4.12.0-5].
    if (packet.properties.authentication_method != a.method) {
        return fail(c, Reason::protocol_error, "AUTH with another authentication method");
    }
    const std::string_view data = packet.properties.authentication_data
                                      ? std::string_view(*packet.properties.authentication_data)
                                      : std::string_view();
    if (packet.reason == Reason::re_authenticate && c.session != nullptr && !a.exchange) {
        // Re-authentication (spec 4.12.1) is a new exchange of the same method. The registry
        // does not change while the broker runs, so the method is still offered.
        a.exchange = settings_.authenticators.create(a.method);
        if (!a.exchange) {
            return fail(c, Reason::not_authorized, "authentication method no longer offered");
        }
        return advance_auth(c, a.exchange->start(c.session->client_id(), a.username, data), now_ms);
    }
    if (packet.reason != Reason::continue_authentication || !a.exchange) {
        return fail(c, Reason::protocol_error, "unexpected AUTH");
    }
    advance_auth(c, a.exchange->next(data), now_ms);
}

// Acts on what the authentication method answered: another AUTH round, CONNACK (or AUTH
// 0x00 when re-authenticating), or the refusal. Called from handle_connect() and
// handle_auth() with the exchange in c.auth.
void Broker::advance_auth(Client &c, AuthStep &&step, uint64_t now_ms) {
    AuthExchange &a = *c.auth;
    const bool connecting = c.session == nullptr;
    if (step.outcome == AuthStep::Outcome::continue_authentication) {
        mqtt::Auth challenge;
        challenge.reason = Reason::continue_authentication;
        challenge.properties.authentication_method = a.method;
        if (!step.data.empty()) {
            challenge.properties.authentication_data = std::move(step.data);
        }
        return send(c, std::move(challenge));
    }
    const std::string identity = a.exchange->identity();
    a.exchange.reset(); // the exchange is over, whatever its outcome
    if (step.outcome != AuthStep::Outcome::success) {
        log_.info("connection %" PRIu64 ": %sauthentication with %s failed: %s", c.link->id(),
                  connecting ? "" : "re-", a.method.c_str(), step.log_message.c_str());
        if (connecting) {
            ++stats_.auth_failures;
            abuse_.note(c.link->peer(), AbuseKind::auth_failure, now_ms);
            // Only a refusal may end the exchange; a method that says otherwise gets the
            // default 0x86.
            const bool refusal =
                static_cast<uint8_t>(step.reason) >= 0x80 &&
                mqtt::reason_allowed(uint8_t(mqtt::PacketType::connack), step.reason);
            return refuse(c, refusal ? step.reason : Reason::bad_user_name_or_password,
                          kAuthenticationFailed);
        }
        const bool allowed =
            static_cast<uint8_t>(step.reason) >= 0x80 &&
            mqtt::reason_allowed(uint8_t(mqtt::PacketType::disconnect), step.reason);
        return fail(c, allowed ? step.reason : Reason::not_authorized, kAuthenticationFailed);
    }
    log_.debug("connection %" PRIu64 " authenticated%s%s (%s)", c.link->id(),
               identity.empty() ? "" : " as ", identity.c_str(), a.method.c_str());
    if (connecting) {
        mqtt::Connack ack;
        ack.properties.authentication_method = a.method;
        if (!step.data.empty()) {
            ack.properties.authentication_data = std::move(step.data);
        }
        std::unique_ptr<mqtt::Connect> connect = std::move(a.pending);
        // The method vouches for the identity it authenticated; a method that names none
        // accepted the CONNECT's user name.
        c.username = identity.empty() ? connect->username : std::optional<std::string>(identity);
        return accept_connect(c, std::move(*connect), std::move(ack), now_ms);
    }
    mqtt::Auth done;
    done.reason = Reason::success;
    done.properties.authentication_method = a.method;
    if (!step.data.empty()) {
        done.properties.authentication_data = std::move(step.data);
    }
    send(c, std::move(done));
}

// Refuses a QoS 1/2 PUBLISH with `reason` in its acknowledgement; the message is neither
// routed nor retained, and a QoS 2 flow ends there.
void Broker::refuse_publish(Client &c, uint8_t qos, uint16_t packet_id, Reason reason,
                            std::string_view why) {
    if (qos != 0) {
        count_reason(reason);
    }
    ack_publish(c, qos, packet_id, reason, false, why);
}

void Broker::drop_publish(Client &c, const mqtt::Publish &publish, std::string_view why) {
    if (c.version == Version::v5) {
        return refuse_publish(c, publish.qos, publish.packet_id, Reason::not_authorized, why);
    }
    if (publish.qos == 2) {
        c.session->inbound_qos2.insert(publish.packet_id); // its PUBREL is answered as usual
    }
    ack_publish(c, publish.qos, publish.packet_id, Reason::success, false);
}

void Broker::ack_publish(Client &c, uint8_t qos, uint16_t packet_id, Reason reason, bool durable,
                         std::string_view why) {
    if (qos == 0) {
        return;
    }
    if (durable || c.deferred_acks != 0) {
        // Durable means acknowledged after commit: the store commits at the end of this
        // loop turn (or flush interval) and on_committed() sends the ack.
        ++c.deferred_acks;
        ++stats_.deferred_acks;
        deferred_acks_.push_back(
            DeferredAck{c.link->id(), qos, packet_id, reason, std::string(why)});
        return;
    }
    if (qos == 1) {
        send(c, mqtt::Puback{{packet_id, reason, {}}}, why);
    } else {
        send(c, mqtt::Pubrec{{packet_id, reason, {}}}, why);
    }
}

void Broker::on_committed() {
    if (deferred_acks_.empty()) {
        return;
    }
    std::vector<DeferredAck> acks;
    acks.swap(deferred_acks_);
    for (const DeferredAck &a : acks) {
        auto it = clients_.find(a.link_id);
        if (it == clients_.end()) {
            continue; // the publisher left: it resends on its next connection
        }
        Client &c = it->second;
        --c.deferred_acks;
        if (c.closing) {
            continue;
        }
        if (a.qos == 1) {
            send(c, mqtt::Puback{{a.packet_id, a.reason, {}}}, a.why);
        } else {
            send(c, mqtt::Pubrec{{a.packet_id, a.reason, {}}}, a.why);
        }
    }
    acks.clear();
    if (deferred_acks_.empty()) {
        deferred_acks_.swap(acks); // keep the capacity
    }
}

bool Broker::blocked_by_full_queue(const std::string &topic, const std::string &origin,
                                   uint8_t qos) {
    bool blocked = false;
    tree_.match(topic, [&](Session *s, const SubscriptionOptions &o) {
        if (!s->refuse_when_full || std::min(qos, o.qos) == 0 ||
            (o.no_local && s->client_id() == origin)) {
            return;
        }
        const uint32_t max_messages =
            s->queue_max_messages != 0 ? s->queue_max_messages : settings_.max_queued_messages;
        const uint64_t max_bytes =
            s->queue_max_bytes != 0 ? s->queue_max_bytes : settings_.max_queued_bytes;
        blocked = blocked || s->queue.size() >= max_messages || s->queued_bytes >= max_bytes;
    });
    return blocked;
}

bool Broker::reaches_persistent_session(const std::string &topic, const std::string &origin,
                                        uint8_t qos) {
    bool found = false;
    tree_.match(topic, [&](Session *s, const SubscriptionOptions &o) {
        if (s->persisted && std::min(qos, o.qos) > 0 && !(o.no_local && s->client_id() == origin)) {
            found = true;
        }
    });
    return found || shared_.any_persistent_match(topic);
}

void Broker::sync_persisted(Session &s) {
    if (store_ == nullptr) {
        return;
    }
    const bool wanted = s.expiry_interval != 0;
    if (wanted && s.persisted) {
        store_->session_save(s);
        return;
    }
    if (wanted) {
        // It became persistent (a new session, or a resumed one that asked for an expiry):
        // everything it holds goes to the store.
        s.persisted = true;
        store_->session_save(s);
        for (const auto &[filter, options] : s.subscriptions) {
            store_->subscription_save(s.client_id(), filter, options);
        }
        for (uint16_t id : s.inflight.ids_in_order()) {
            Inflight *m = s.inflight.find(id);
            m->delivery.store_id = store_->message_add(s.client_id(), m->delivery,
                                                       shared_.key_of(m->delivery.shared_group));
            store_->message_sent(m->delivery.store_id, id, m->released);
        }
        for (Delivery &d : s.queue) {
            if (d.qos > 0) {
                d.store_id = store_->message_add(s.client_id(), d, shared_.key_of(d.shared_group));
            }
        }
        for (uint16_t id : s.inbound_qos2.ids()) {
            store_->qos2_add(s.client_id(), id);
        }
        return;
    }
    if (s.persisted) {
        s.persisted = false;
        store_->session_delete(s.client_id());
        for (uint16_t id : s.inflight.ids_in_order()) {
            s.inflight.find(id)->delivery.store_id = 0;
        }
        for (Delivery &d : s.queue) {
            d.store_id = 0;
        }
    }
}

void Broker::forget_stored(Delivery &d) {
    if (d.store_id != 0 && store_ != nullptr) {
        store_->message_delete(d.store_id);
    }
    d.store_id = 0;
}

void Broker::handle_publish(Client &c, mqtt::Publish &&publish, uint64_t now_ms) {
    Session &s = *c.session;
    ++stats_.messages_received;
    if (c.version == Version::v5) {
        if (auto alias = publish.properties.topic_alias) {
            if (*alias > settings_.topic_alias_maximum) {
                return fail(c, Reason::topic_alias_invalid, "Topic Alias above the maximum");
            }
            if (publish.topic.empty()) {
                const std::string *topic =
                    c.inbound_aliases ? c.inbound_aliases->find(*alias) : nullptr;
                if (topic == nullptr) {
                    return fail(c, Reason::protocol_error, "unknown Topic Alias");
                }
                publish.topic = *topic;
            } else {
                if (!c.inbound_aliases) {
                    c.inbound_aliases = std::make_unique<TopicAliases>();
                }
                c.inbound_aliases->set(*alias, publish.topic);
            }
        }
        if (!publish.properties.subscription_identifiers.empty()) {
            return fail(c, Reason::protocol_error, "Subscription Identifier from a client");
        }
    }
    if (publish.qos > settings_.max_qos) {
        return fail(c, Reason::qos_not_supported, "QoS above the maximum");
    }
    if (publish.topic.starts_with("$SYS/")) {
        // Only the broker publishes $SYS topics. Like Mosquitto the message is dropped; a
        // 5.0 QoS 1/2 sender is told so with 0x87, a 3.1/3.1.1 one has no way to hear it.
        ++stats_.dropped_sys_publish;
        log_.debug("dropped a PUBLISH on %s from %s: $SYS topics are the broker's",
                   publish.topic.c_str(), s.client_id().c_str());
        return drop_publish(c, publish, "$SYS topics are published by the broker only");
    }
    if (c.acl && !c.acl->may_publish(publish.topic)) {
        // Not routed, not retained. 5.0: PUBACK/PUBREC 0x87 (a QoS 0 message is dropped);
        // 3.1.1 has no way to say so, and the server acknowledges as usual [MQTT-3.3.5-2].
        ++stats_.acl_denied_publish;
        abuse_.note(c.link->peer(), AbuseKind::acl_denial, now_ms);
        log_.debug("ACL: %s may not publish on %s", s.client_id().c_str(), publish.topic.c_str());
        return drop_publish(c, publish, "not authorized to publish on this topic");
    }
    const uint8_t qos = publish.qos;
    const uint16_t packet_id = publish.packet_id;
    if (qos == 2 && s.inbound_qos2.contains(packet_id)) {
        // A resent QoS 2 PUBLISH that was already routed: acknowledge only [MQTT-4.3.3-10].
        ack_publish(c, qos, packet_id, Reason::success, false);
        return;
    }
    if (c.version == Version::v5) {
        // QoS 1 is acknowledged at once, so only QoS 2 awaiting PUBREL counts against the
        // Receive Maximum we sent in CONNACK [MQTT-3.3.4-7].
        if (qos == 2 && s.inbound_qos2.size() >= settings_.receive_maximum) {
            return fail(c, Reason::receive_maximum_exceeded,
                        "more QoS 2 PUBLISHes awaiting PUBREL than Receive Maximum");
        }
        // The server may check that a payload is what its Payload Format Indicator says
        // (spec 3.3.2.3.2); a refused message is not routed or retained.
        if (settings_.validate_utf8_payloads && publish.properties.payload_format_indicator == 1 &&
            !mqtt::well_formed_utf8(publish.payload)) {
            ++stats_.invalid_utf8_payloads;
            if (qos == 0) {
                return fail(c, Reason::payload_format_invalid,
                            "payload marked UTF-8 is not well-formed UTF-8");
            }
            log_.debug("refused a PUBLISH on %s from %s: payload marked UTF-8 is not UTF-8",
                       publish.topic.c_str(), s.client_id().c_str());
            return refuse_publish(c, qos, packet_id, Reason::payload_format_invalid,
                                  "payload marked UTF-8 is not well-formed UTF-8");
        }
        switch (apply_user_property_policy(c.link->policy(), publish.properties.user_properties)) {
        case UserPropertyVerdict::ok:
            break;
        case UserPropertyVerdict::stripped:
            ++stats_.user_property_drops;
            break;
        case UserPropertyVerdict::too_large:
            ++stats_.user_property_drops;
            return fail(c, Reason::packet_too_large, "user properties above the listener's limit");
        case UserPropertyVerdict::key_not_allowed:
            ++stats_.user_property_drops;
            if (qos == 0) {
                return; // nothing to answer a QoS 0 message with: dropped, counted
            }
            return refuse_publish(c, qos, packet_id, Reason::payload_format_invalid,
                                  "a User Property name is not allowed on this listener");
        }
    }

    if (qos != 0 && store_ != nullptr && settings_.store_full_refuses && store_->full() &&
        reaches_persistent_session(publish.topic, s.client_id(), qos)) {
        // The store is full: the message cannot be kept for the sessions that wait for it.
        // The publisher keeps it and may retry; nothing was routed.
        ++stats_.refused_store_full;
        if (c.version == Version::v5) {
            return refuse_publish(c, qos, packet_id, Reason::quota_exceeded,
                                  "the message store is full");
        }
        return fail(c, Reason::quota_exceeded, "message store full");
    }
    if (qos != 0 && any_refusing_queue_ &&
        blocked_by_full_queue(publish.topic, s.client_id(), qos)) {
        ++stats_.refused_queue_full;
        if (c.version == Version::v5) {
            return refuse_publish(c, qos, packet_id, Reason::quota_exceeded,
                                  "a bridge queue this message is bound for is full");
        }
        return fail(c, Reason::quota_exceeded, "a bridge queue is full");
    }
    const uint64_t changes_before = store_ != nullptr ? store_->changes() : 0;
    const size_t receivers = publish_message(
        make_message(std::move(publish.topic), std::move(publish.payload), qos, publish.retain,
                     std::move(publish.properties), s.client_id(), now_ms),
        now_ms);
    const Reason reason = receivers == 0 && c.version == Version::v5
                              ? Reason::no_matching_subscribers
                              : Reason::success;
    if (qos != 0 && reason != Reason::success) {
        count_reason(reason);
    }
    if (qos == 2) {
        s.inbound_qos2.insert(packet_id);
        if (s.persisted) {
            store_->qos2_add(s.client_id(), packet_id);
        }
    }
    ack_publish(c, qos, packet_id, reason,
                store_ != nullptr && store_->changes() != changes_before);
}

// The one way a message enters the broker: the retained store follows its retain flag (an
// empty payload deletes [MQTT-3.3.1-6]), then it is routed. Returns the receivers.
size_t Broker::publish_message(const MessagePtr &message, uint64_t now_ms) {
    if (message->retain) {
        // $SYS values are made afresh by every broker run: never stored.
        const bool durable = store_ != nullptr && !message->topic.starts_with("$SYS/");
        if (message->payload.empty()) {
            if (retained_.erase(message->topic) != 0 && durable) {
                store_->retained_clear(message->topic);
            }
        } else {
            retained_[message->topic] = message;
            if (durable) {
                store_->retained_set(message);
            }
        }
    }
    return route(message, now_ms);
}

size_t Broker::route(const MessagePtr &message, uint64_t now_ms) {
    // Overlapping subscriptions of one session are merged into one delivery at the highest
    // QoS, carrying every matching Subscription Identifier [MQTT-3.3.4-3..5].
    ++match_epoch_;
    matches_.clear();
    tree_.match(message->topic, [&](Session *s, const SubscriptionOptions &o) {
        if (o.no_local && s->client_id() == message->origin_client_id) {
            return; // [MQTT-3.8.3-3]
        }
        const uint8_t qos = std::min(message->qos, o.qos);
        const bool retain = o.retain_as_published && message->retain;
        if (s->match_epoch != match_epoch_) {
            s->match_epoch = match_epoch_;
            s->match_slot = matches_.size();
            Delivery d{.message = message,
                       .qos = qos,
                       .retain = retain,
                       .shared_group = 0,
                       .subscription_ids = {}};
            if (o.identifier != 0) {
                d.subscription_ids.push_back(o.identifier);
            }
            matches_.emplace_back(s, std::move(d));
            return;
        }
        Delivery &d = matches_[s->match_slot].second;
        d.qos = std::max(d.qos, qos);
        d.retain = d.retain || retain;
        if (o.identifier != 0) {
            d.subscription_ids.push_back(o.identifier);
        }
    });
    // Each shared subscription group whose filter matches adds one delivery to one member.
    shared_.match(*message, [&](const SharedChoice &choice) {
        matches_.emplace_back(choice.session,
                              shared_delivery(message, *choice.options, choice.group_id));
        ++stats_.shared_deliveries;
    });
    // Deliveries can re-enter route() (a will published on a dropped client), so work on
    // a private copy of the scratch list.
    std::vector<std::pair<Session *, Delivery>> batch;
    batch.swap(matches_);
    for (auto &[s, d] : batch) {
        deliver(*s, std::move(d), now_ms);
    }
    const size_t n = batch.size();
    batch.clear();
    if (matches_.empty()) {
        matches_.swap(batch); // keep the capacity for the next publish
    }
    return n;
}

uint16_t Broker::send_window(const Client &c) const {
    const uint16_t window =
        c.session != nullptr && c.session->window != 0 ? c.session->window : settings_.max_inflight;
    return std::min<uint16_t>(window, c.client_receive_maximum);
}

void Broker::deliver(Session &s, Delivery &&d, uint64_t now_ms) {
    if (s.persisted && d.qos > 0) {
        if (store_->full() && !settings_.store_full_refuses) {
            // Make room: the oldest stored message this session has not been sent yet.
            auto oldest = std::find_if(s.queue.begin(), s.queue.end(),
                                       [](const Delivery &q) { return q.store_id != 0; });
            if (oldest != s.queue.end()) {
                forget_stored(*oldest);
                s.queued_bytes -= oldest->message->payload.size();
                queued_bytes_total_ -= oldest->message->payload.size();
                s.queue.erase(oldest);
                ++stats_.dropped_store_full;
            }
        }
        d.store_id = store_->message_add(s.client_id(), d, shared_.key_of(d.shared_group));
    }
    Client *c = client_of(s);
    if (c == nullptr) {
        if (d.qos == 0) {
            ++stats_.dropped_qos0_offline; // QoS 0 is not queued for absent clients
            return;
        }
        enqueue(s, std::move(d));
        return;
    }
    // Keep order: while anything waits in the queue, new messages wait behind it.
    const bool slow = c->link->pending_bytes() > settings_.high_water_bytes;
    if (!s.queue.empty() || slow || (d.qos > 0 && s.inflight.size() >= send_window(*c))) {
        enqueue(s, std::move(d));
        return;
    }
    if (d.qos == 0) {
        transmit(s, *c, d, 0, false, now_ms);
        return;
    }
    const uint16_t id = s.next_packet_id();
    if (transmit(s, *c, d, id, false, now_ms)) {
        if (d.store_id != 0 && d.qos == 2) {
            // Only QoS 2 needs its packet id back after a crash [MQTT-4.3.3]: a QoS 1
            // message is resent under a new id, which at-least-once allows, and not
            // recording the id saves one write per message.
            store_->message_sent(d.store_id, id, false);
        }
        s.inflight.add(id, Inflight{std::move(d), false});
    } else {
        forget_stored(d);
    }
}

void Broker::enqueue(Session &s, Delivery &&d) {
    const uint32_t max_messages =
        s.queue_max_messages != 0 ? s.queue_max_messages : settings_.max_queued_messages;
    const uint64_t max_bytes =
        s.queue_max_bytes != 0 ? s.queue_max_bytes : settings_.max_queued_bytes;
    if (d.message->payload.size() > max_bytes) {
        ++stats_.dropped_queue_full; // could never fit: keep what is queued
        ++s.drops.queue_full;
        forget_stored(d);
        return;
    }
    // Full queue policy: drop a queued QoS 0 message first, else the oldest message.
    while (!s.queue.empty() && (s.queue.size() >= max_messages ||
                                s.queued_bytes + d.message->payload.size() > max_bytes)) {
        auto victim = std::find_if(s.queue.begin(), s.queue.end(),
                                   [](const Delivery &q) { return q.qos == 0; });
        if (victim == s.queue.end()) {
            victim = s.queue.begin();
        }
        s.queued_bytes -= victim->message->payload.size();
        queued_bytes_total_ -= victim->message->payload.size();
        forget_stored(*victim);
        s.queue.erase(victim);
        ++stats_.dropped_queue_full;
        ++s.drops.queue_full;
    }
    s.queued_bytes += d.message->payload.size();
    queued_bytes_total_ += d.message->payload.size();
    s.queue.push_back(std::move(d));
}

void Broker::pump(Session &s, uint64_t now_ms) {
    Client *c = client_of(s);
    if (c == nullptr) {
        return;
    }
    while (!s.queue.empty()) {
        if (c->link->pending_bytes() > settings_.high_water_bytes) {
            return; // resumed from on_writable
        }
        Delivery &front = s.queue.front();
        if (front.qos > 0 && s.inflight.size() >= send_window(*c)) {
            return; // resumed by PUBACK/PUBCOMP
        }
        Delivery d = std::move(front);
        s.queued_bytes -= d.message->payload.size();
        queued_bytes_total_ -= d.message->payload.size();
        s.queue.pop_front();
        if (d.qos == 0) {
            transmit(s, *c, d, 0, false, now_ms);
            continue;
        }
        const uint16_t id = s.next_packet_id();
        if (transmit(s, *c, d, id, false, now_ms)) {
            if (d.store_id != 0 && d.qos == 2) {
                store_->message_sent(d.store_id, id, false); // see deliver()
            }
            s.inflight.add(id, Inflight{std::move(d), false});
        } else {
            forget_stored(d);
        }
    }
}

bool Broker::transmit(Session &s, Client &c, const Delivery &d, uint16_t packet_id, bool dup,
                      uint64_t now_ms) {
    const Message &m = *d.message;
    mqtt::PublishRef ref;
    if (c.acl && !c.acl->may_receive(m.topic)) {
        // Read access is checked where a message is written, so retained messages, wills
        // and messages queued while the client was away obey the client's current rules.
        ++stats_.acl_denied_deliveries;
        return false;
    }
    if (s.queue_max_age_s != 0 &&
        static_cast<int64_t>(now_ms) - m.created_ms > int64_t{s.queue_max_age_s} * 1000) {
        ++stats_.dropped_max_age; // waited longer than its queue allows
        ++s.drops.max_age;
        return false;
    }
    if (m.expiry_ms != 0) {
        if (now_ms >= m.expiry_ms) {
            ++stats_.dropped_expired; // [MQTT-3.3.2-5]
            ++s.drops.expired;
            return false;
        }
        // The receiver sees the time left [MQTT-3.3.2-6].
        ref.message_expiry = static_cast<uint32_t>((m.expiry_ms - now_ms + 999) / 1000);
    }
    ref.topic = m.topic;
    ref.payload = m.payload;
    ref.properties = &m.properties;
    ref.subscription_ids = d.subscription_ids;
    ref.qos = d.qos;
    ref.retain = d.retain;
    ref.dup = dup;
    ref.packet_id = packet_id;
    // Outbound Topic Alias (spec 3.3.2.3.4): a topic the client already knows by its alias
    // goes out empty. Packets are encoded in the order they are sent, so the client has
    // learnt every mapping before it meets an empty topic.
    TopicAliasTable::Assignment alias;
    if (c.outbound_alias_max != 0) {
        if (!c.outbound_aliases) {
            c.outbound_aliases = std::make_unique<TopicAliasTable>(c.outbound_alias_max);
        }
        alias = c.outbound_aliases->assign(m.topic);
        ref.topic_alias = alias.alias;
        if (alias.known) {
            ref.topic = {};
        }
    }
    if (!c.link->send_publish(ref, d.message)) {
        if (alias.alias != 0 && !alias.known) {
            c.outbound_aliases->forget(alias.alias); // the client never learnt it
        }
        ++stats_.dropped_too_large; // [MQTT-3.1.2-25]
        ++s.drops.too_large;
        log_.debug("dropped a message on %s for %s: larger than its Maximum Packet Size",
                   m.topic.c_str(), s.client_id().c_str());
        return false;
    }
    if (alias.known) {
        ++stats_.topic_alias_hits;
        stats_.topic_alias_bytes_saved += m.topic.size();
    }
    ++stats_.messages_sent;
    return true;
}

void Broker::handle_puback(Client &c, uint16_t packet_id) {
    Session &s = *c.session;
    Inflight *m = s.inflight.find(packet_id);
    if (m == nullptr || m->delivery.qos != 1) {
        return; // unknown ids are ignored, as most brokers do
    }
    forget_stored(m->delivery);
    s.inflight.erase(packet_id);
    pump(s, now_ms_);
}

void Broker::handle_pubrec(Client &c, const mqtt::Pubrec &pubrec) {
    Session &s = *c.session;
    Inflight *m = s.inflight.find(pubrec.packet_id);
    if (m == nullptr || m->delivery.qos != 2) {
        if (c.version == Version::v5) {
            count_reason(Reason::packet_identifier_not_found);
        }
        send(c, mqtt::Pubrel{{pubrec.packet_id, Reason::packet_identifier_not_found, {}}},
             "no QoS 2 message with this Packet Identifier awaits PUBREC");
        return;
    }
    if (static_cast<uint8_t>(pubrec.reason) >= 0x80) {
        // The receiver refused the message: the flow ends here [MQTT-4.3.3-4 note].
        forget_stored(m->delivery);
        s.inflight.erase(pubrec.packet_id);
        pump(s, now_ms_);
        return;
    }
    m->released = true;
    if (m->delivery.store_id != 0) {
        store_->message_sent(m->delivery.store_id, pubrec.packet_id, true);
    }
    send(c, mqtt::Pubrel{{pubrec.packet_id, Reason::success, {}}});
}

void Broker::handle_pubrel(Client &c, uint16_t packet_id) {
    Session &s = *c.session;
    const bool known = s.inbound_qos2.erase(packet_id);
    if (known && s.persisted) {
        store_->qos2_delete(s.client_id(), packet_id);
    }
    if (!known && c.version == Version::v5) {
        count_reason(Reason::packet_identifier_not_found);
    }
    if (known) {
        send(c, mqtt::Pubcomp{{packet_id, Reason::success, {}}});
    } else {
        send(c, mqtt::Pubcomp{{packet_id, Reason::packet_identifier_not_found, {}}},
             "no QoS 2 message with this Packet Identifier awaits PUBREL");
    }
}

void Broker::handle_pubcomp(Client &c, uint16_t packet_id) {
    Session &s = *c.session;
    Inflight *m = s.inflight.find(packet_id);
    if (m == nullptr || !m->released) {
        return;
    }
    forget_stored(m->delivery);
    s.inflight.erase(packet_id);
    pump(s, now_ms_);
}

void Broker::handle_subscribe(Client &c, mqtt::Subscribe &&subscribe, uint64_t now_ms) {
    Session &s = *c.session;
    const uint32_t identifier = subscribe.properties.subscription_identifiers.empty()
                                    ? 0
                                    : subscribe.properties.subscription_identifiers.front();
    mqtt::Suback ack;
    ack.packet_id = subscribe.packet_id;
    std::vector<std::pair<std::string, SubscriptionOptions>> retained_wanted;
    std::string_view why; // the Reason String: one per SUBACK, whatever was refused
    for (mqtt::Subscription &sub : subscribe.subscriptions) {
        const std::optional<mqtt::SharedFilter> shared = mqtt::check_filter(sub.filter).shared;
        if (shared && !settings_.shared_subscriptions) {
            ack.reasons.push_back(c.version == Version::v5
                                      ? Reason::shared_subscriptions_not_supported
                                      : Reason::unspecified_error);
            why = "shared subscriptions are turned off on this server";
            continue;
        }
        if (c.acl && !c.acl->may_subscribe(shared ? shared->filter : sub.filter)) {
            // 5.0: 0x87 Not authorized; 3.1.1: 0x80 Failure [MQTT-3.9.3-2].
            ++stats_.acl_denied_subscribe;
            abuse_.note(c.link->peer(), AbuseKind::acl_denial, now_ms);
            ack.reasons.push_back(c.version == Version::v5 ? Reason::not_authorized
                                                           : Reason::unspecified_error);
            why = "not authorized to subscribe to this filter";
            continue;
        }
        SubscriptionOptions o;
        o.qos = std::min(sub.qos, settings_.max_qos);
        o.no_local = sub.no_local;
        o.retain_as_published = sub.retain_as_published;
        o.retain_handling = sub.retain_handling;
        o.identifier = identifier;
        if (shared) {
            // 3.1.1 clients may use them too, as with most brokers. No retained messages are
            // sent for a shared subscription (spec 4.8.2), whatever its Retain Handling.
            shared_.add(shared->group, shared->filter, &s, o);
            s.subscriptions[sub.filter] = o;
            if (s.persisted) {
                store_->subscription_save(s.client_id(), sub.filter, o);
            }
            ack.reasons.push_back(static_cast<Reason>(o.qos));
            continue;
        }
        const bool existed = tree_.add(sub.filter, &s, o);
        s.subscriptions[sub.filter] = o;
        if (s.persisted) {
            store_->subscription_save(s.client_id(), sub.filter, o);
        }
        ack.reasons.push_back(static_cast<Reason>(o.qos));
        // Retain Handling 0 sends always, 1 only for a new subscription, 2 never.
        if (o.retain_handling == mqtt::RetainHandling::send ||
            (o.retain_handling == mqtt::RetainHandling::send_if_new && !existed)) {
            retained_wanted.emplace_back(std::move(sub.filter), o);
        }
    }
    for (Reason r : ack.reasons) {
        if (static_cast<uint8_t>(r) >= 0x80) {
            count_reason(r); // granted QoS 1 and 2 are successes
        }
    }
    send(c, std::move(ack), why);
    for (const auto &[filter, o] : retained_wanted) {
        send_retained(c, filter, o, now_ms);
    }
}

void Broker::send_retained(Client &c, const std::string &filter, const SubscriptionOptions &o,
                           uint64_t now_ms) {
    for (auto it = retained_.begin(); it != retained_.end();) {
        const MessagePtr &m = it->second;
        if (expired(*m, now_ms)) {
            if (store_ != nullptr) {
                store_->retained_clear(m->topic);
            }
            it = retained_.erase(it);
            continue;
        }
        if (mqtt::topic_matches(filter, m->topic)) {
            // Retained messages sent on subscribe keep the retain flag [MQTT-3.3.1-9].
            Delivery d{.message = m,
                       .qos = std::min(m->qos, o.qos),
                       .retain = true,
                       .shared_group = 0,
                       .subscription_ids = {}};
            if (o.identifier != 0) {
                d.subscription_ids.push_back(o.identifier);
            }
            deliver(*c.session, std::move(d), now_ms);
        }
        ++it;
    }
}

void Broker::handle_unsubscribe(Client &c, const mqtt::Unsubscribe &unsubscribe) {
    Session &s = *c.session;
    mqtt::Unsuback ack;
    ack.packet_id = unsubscribe.packet_id;
    for (const std::string &filter : unsubscribe.filters) {
        const bool existed = s.subscriptions.erase(filter) != 0;
        unsubscribe_filter(s, filter);
        if (existed && s.persisted) {
            store_->subscription_delete(s.client_id(), filter);
        }
        if (c.version == Version::v5) {
            ack.reasons.push_back(existed ? Reason::success : Reason::no_subscription_existed);
            if (!existed) {
                count_reason(Reason::no_subscription_existed);
            }
        }
    }
    send(c, std::move(ack));
}

void Broker::handle_disconnect(Client &c, const mqtt::Disconnect &d, uint64_t) {
    Session &s = *c.session;
    if (auto expiry = d.properties.session_expiry_interval) {
        if (s.expiry_interval == 0 && *expiry != 0) {
            // Spec 3.14.2.2.2: a session that ends at disconnect cannot be extended here.
            return fail(c, Reason::protocol_error, "Session Expiry Interval set after 0");
        }
        s.expiry_interval = std::min(*expiry, settings_.max_session_expiry);
    }
    // A normal DISCONNECT discards the will, except with reason 0x04 [MQTT-3.14.4-3].
    c.will_suppressed = d.reason != Reason::disconnect_with_will;
    c.closing = true;
    c.link->close();
}

void Broker::publish_will(Session &s, uint64_t now_ms) {
    s.will_at_ms = 0;
    if (!s.will) {
        return;
    }
    mqtt::Will will = std::move(*s.will);
    s.will.reset();
    will.properties.will_delay_interval.reset();
    publish_message(make_message(std::move(will.topic), std::move(will.payload), will.qos,
                                 will.retain, std::move(will.properties), s.client_id(), now_ms),
                    now_ms);
}

void Broker::detach(Client &c, uint64_t now_ms) {
    Session *s = c.session;
    if (s != nullptr) {
        --connected_[version_index(c.version)];
    }
    c.session = nullptr;
    if (s == nullptr || s->link_id != c.link->id()) {
        return;
    }
    s->link_id = 0;
    if (c.will_suppressed) {
        s->will.reset();
    } else if (s->will) {
        // The will waits for the Will Delay Interval, but never beyond the session's end
        // [MQTT-3.1.3-9]; 3.1.1 wills have no delay.
        const uint32_t delay =
            std::min(s->will->properties.will_delay_interval.value_or(0), s->expiry_interval);
        if (delay == 0) {
            publish_will(*s, now_ms);
        } else {
            s->will_at_ms = now_ms + uint64_t{delay} * 1000;
        }
    }
    if (s->expiry_interval == 0) {
        destroy_session(s);
        return;
    }
    hand_over_shared(*s, false, now_ms);
    s->expires_at_ms =
        s->expiry_interval == kNeverExpires ? 0 : now_ms + uint64_t{s->expiry_interval} * 1000;
    if (s->persisted) {
        store_->session_save(*s); // offline now, with its deadline and pending will
    }
}

void Broker::destroy_session(Session *s) {
    if (s->will_at_ms != 0) {
        publish_will(*s, now_ms_); // the session ends before the will delay did
    }
    hand_over_shared(*s, true, now_ms_);
    if (s->persisted) {
        store_->session_delete(s->client_id());
    }
    queued_bytes_total_ -= s->queued_bytes;
    for (const auto &[filter, options] : s->subscriptions) {
        unsubscribe_filter(*s, filter);
    }
    sessions_.erase(sessions_.find(s->client_id())); // the key views s's own id
}

void Broker::unsubscribe_filter(Session &s, const std::string &filter) {
    if (auto shared = mqtt::check_filter(filter).shared) {
        shared_.remove(shared->group, shared->filter, &s);
    } else {
        tree_.remove(filter, &s);
    }
}

void Broker::hand_over_shared(Session &s, bool ending, uint64_t now_ms) {
    // Called from detach() and destroy_session() once `s` is offline. Spec 4.8.2 lets a
    // QoS 1 message go to another member once the chosen one's connection breaks, and says
    // it should when its session ends; a QoS 2 message already sent must be completed
    // with the same client or not at all [MQTT-4.8.2-4], [MQTT-4.8.2-5]. Queued messages
    // were never sent, whatever their QoS. Without another member they stay (or end with
    // the session).
    if (shared_.empty()) {
        return;
    }
    std::vector<std::pair<Session *, Delivery>> moved;
    auto take = [&](Delivery &d) {
        const SharedChoice to = shared_.choose_other(d.shared_group, *d.message, &s, !ending);
        if (to.session == nullptr) {
            return false;
        }
        moved.emplace_back(to.session, shared_delivery(d.message, *to.options, to.group_id));
        return true;
    };
    for (uint16_t id : s.inflight.ids_in_order()) {
        Inflight *m = s.inflight.find(id);
        if (m->delivery.shared_group != 0 && m->delivery.qos == 1 && take(m->delivery)) {
            forget_stored(m->delivery);
            s.inflight.erase(id);
        }
    }
    DeliveryQueue kept;
    while (!s.queue.empty()) {
        Delivery d = std::move(s.queue.front());
        s.queue.pop_front();
        if (d.shared_group != 0 && take(d)) {
            forget_stored(d);
            s.queued_bytes -= d.message->payload.size();
            queued_bytes_total_ -= d.message->payload.size();
        } else {
            kept.push_back(std::move(d));
        }
    }
    s.queue = std::move(kept);
    for (auto &[to, d] : moved) {
        ++stats_.shared_redeliveries;
        deliver(*to, std::move(d), now_ms);
    }
}

void Broker::on_close(Link &link, uint64_t now_ms) {
    now_ms_ = now_ms;
    auto it = clients_.find(link.id());
    if (it == clients_.end()) {
        return;
    }
    detach(it->second, now_ms);
    clients_.erase(it);
}

void Broker::on_writable(Link &link) {
    auto it = clients_.find(link.id());
    if (it != clients_.end() && it->second.session != nullptr) {
        pump(*it->second.session, now_ms_);
    }
}

void Broker::tick(uint64_t now_ms) {
    now_ms_ = now_ms;
    std::vector<Session *> expired_sessions;
    std::vector<Session *> due_wills;
    for (const auto &[id, s] : sessions_) {
        if (s->link_id != 0) {
            continue;
        }
        if (s->expires_at_ms != 0 && now_ms >= s->expires_at_ms) {
            expired_sessions.push_back(s.get());
        } else if (s->will_at_ms != 0 && now_ms >= s->will_at_ms) {
            due_wills.push_back(s.get());
        }
    }
    for (Session *s : due_wills) {
        publish_will(*s, now_ms);
        if (s->persisted) {
            store_->session_save(*s);
        }
    }
    for (Session *s : expired_sessions) {
        log_.debug("session %s expired", s->client_id().c_str());
        destroy_session(s);
    }
    abuse_.prune(now_ms);
    if (started_ms_ == 0) {
        started_ms_ = now_ms;
    }
    if (settings_.sys_interval != 0 && now_ms >= next_sys_ms_) {
        next_sys_ms_ = now_ms + uint64_t{settings_.sys_interval} * 1000;
        publish_sys(now_ms);
    }
}

size_t Broker::version_index(Version version) {
    switch (version) {
    case Version::v31:
        return size_t(SysVersion::v31);
    case Version::v311:
        return size_t(SysVersion::v311);
    case Version::v5:
        break;
    }
    return size_t(SysVersion::v5);
}

void Broker::publish_sys(uint64_t now_ms) {
    // Called from tick() every sys_interval seconds. Like a will, each value is a message
    // the broker originates: retained so a new subscriber sees it at once, QoS 0, and sent
    // only when it changed so an idle broker stays quiet.
    SysState state;
    state.version = settings_.version;
    state.uptime_s = (now_ms - started_ms_) / 1000;
    state.connected = connected_;
    state.sessions = sessions_.size();
    state.retained = retained_.size();
    StoreStatus store_status;
    if (store_ != nullptr) {
        store_status = store_->status();
        state.store = &store_status;
    }
    for (auto &[topic, value] : sys_topics(stats_, state)) {
        auto [it, inserted] = sys_published_.try_emplace(topic, value);
        if (!inserted) {
            if (it->second == value) {
                continue;
            }
            it->second = value;
        }
        publish_message(make_message(std::move(topic), std::string(value), 0, true, {}, {}, now_ms),
                        now_ms);
    }
}

void Broker::restore(std::vector<MessagePtr> &&retained, std::vector<RestoredSession> &&sessions,
                     uint64_t now_ms) {
    // Called once by the app before the listeners open, with what the store read back.
    now_ms_ = now_ms;
    for (MessagePtr &m : retained) {
        retained_[m->topic] = std::move(m);
    }
    for (RestoredSession &r : sessions) {
        auto owned = std::make_unique<Session>(r.client_id);
        Session &s = *owned;
        sessions_.emplace(s.client_id(), std::move(owned));
        s.version = r.version;
        s.expiry_interval = r.expiry_interval;
        s.persisted = store_ != nullptr;
        s.will = std::move(r.will);
        if (r.online) {
            // The broker stopped under a connected client (killed, power lost): the
            // connection ended without DISCONNECT, so it ends now, will included.
            s.expires_at_ms = s.expiry_interval == kNeverExpires
                                  ? 0
                                  : now_ms + uint64_t{s.expiry_interval} * 1000;
            if (s.will) {
                const uint32_t delay =
                    std::min(s.will->properties.will_delay_interval.value_or(0), s.expiry_interval);
                s.will_at_ms = now_ms + uint64_t{delay} * 1000; // sent by the next tick
            }
            if (s.persisted) {
                store_->session_save(s);
            }
        } else {
            // Deadlines that passed while the broker was down fall due at the first tick.
            s.expires_at_ms = r.expires_at_ms;
            s.will_at_ms = s.will ? r.will_at_ms : 0;
        }
        for (auto &[filter, options] : r.subscriptions) {
            if (auto shared = mqtt::check_filter(filter).shared) {
                shared_.add(shared->group, shared->filter, &s, options);
            } else {
                tree_.add(filter, &s, options);
            }
            s.subscriptions[filter] = options;
        }
    }
    // Messages once every session's shared subscriptions are back, so a message chosen by a
    // group finds the group again, whichever member it was queued for.
    for (RestoredSession &r : sessions) {
        Session &s = *sessions_.find(r.client_id)->second;
        for (RestoredMessage &m : r.messages) {
            Delivery d{.message = std::move(m.message),
                       .qos = m.qos,
                       .retain = m.retain,
                       .shared_group = m.shared_group.empty() ? 0 : shared_.id_of(m.shared_group),
                       .subscription_ids = std::move(m.subscription_ids),
                       .store_id = m.id};
            if (m.packet_id != 0 && !s.inflight.contains(m.packet_id)) {
                s.inflight.add(m.packet_id, Inflight{std::move(d), m.released});
            } else {
                s.queued_bytes += d.message->payload.size();
                queued_bytes_total_ += d.message->payload.size();
                s.queue.push_back(std::move(d));
            }
        }
        for (uint16_t id : r.inbound_qos2) {
            s.inbound_qos2.insert(id);
        }
    }
}

void Broker::publish_system(std::string topic, std::string payload, bool retain, uint64_t now_ms) {
    now_ms_ = now_ms;
    publish_message(make_message(std::move(topic), std::move(payload), 0, retain, {}, {}, now_ms),
                    now_ms);
}

std::vector<std::string> Broker::subscriptions_of(const std::string &client_id) const {
    std::vector<std::string> out;
    if (auto it = sessions_.find(client_id); it != sessions_.end()) {
        for (const auto &[filter, options] : it->second->subscriptions) {
            out.push_back(filter);
        }
    }
    return out;
}

Broker::Backlog Broker::backlog_of(const std::string &client_id) const {
    Backlog b;
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) {
        return b;
    }
    Session &s = *it->second;
    b.queued = s.queue.size();
    b.inflight = s.inflight.size();
    b.drops = s.drops;
    // The oldest message is the first in flight, else the first queued.
    int64_t oldest = 0;
    bool any = false;
    for (uint16_t id : s.inflight.ids_in_order()) {
        oldest = s.inflight.find(id)->delivery.message->created_ms;
        any = true;
        break;
    }
    if (!any && !s.queue.empty()) {
        oldest = s.queue.front().message->created_ms;
        any = true;
    }
    if (any && static_cast<int64_t>(now_ms_) > oldest) {
        b.oldest_age_ms = static_cast<uint64_t>(static_cast<int64_t>(now_ms_) - oldest);
    }
    return b;
}

void Broker::write_all_to_store() {
    for (const auto &[topic, m] : retained_) {
        if (!topic.starts_with("$SYS/")) {
            store_->retained_set(m);
        }
    }
    for (const auto &[id, s] : sessions_) {
        if (s->persisted) {
            s->persisted = false; // sync_persisted() then writes the whole session
            sync_persisted(*s);
        }
    }
}

void Broker::shutdown(uint64_t now_ms) {
    now_ms_ = now_ms;
    for (auto &[id, c] : clients_) {
        if (c.closing) {
            continue;
        }
        if (c.session != nullptr && c.version == Version::v5) {
            mqtt::Disconnect d;
            d.reason = Reason::server_shutting_down;
            count_reason(d.reason);
            send(c, std::move(d), "the server is shutting down");
        }
        c.closing = true;
        c.link->close();
    }
}

} // namespace ferrymq::broker
