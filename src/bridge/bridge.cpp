// SPDX-License-Identifier: Apache-2.0
#include "bridge/bridge.hpp"

#include "bridge/rules.hpp"
#include "mqtt/topic.hpp"

#include <algorithm>

namespace ferrymq::bridge {

using mqtt::Reason;

namespace {

// Refusals worth another try later (the upstream may recover); every other reason code
// of 0x80 or more is final for that message.
bool retryable(Reason r) {
    return r == Reason::unspecified_error || r == Reason::implementation_specific_error ||
           r == Reason::quota_exceeded;
}

// Seconds between the health counters ($SYS/bridges/<name>/...).
constexpr uint64_t kHealthEveryMs = 5000;

// The echo filter's memory: forwards of the last 10 s, at most 10,000 of them.
constexpr uint64_t kEchoWindowMs = 10'000;
constexpr size_t kEchoMaxEntries = 10'000;

uint64_t message_hash(std::string_view topic, std::string_view payload) {
    const uint64_t a = std::hash<std::string_view>{}(topic);
    const uint64_t b = std::hash<std::string_view>{}(payload);
    return a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
}

} // namespace

Bridge::Bridge(uv_loop_t &loop, broker::Broker &broker, const config::BridgeConfig &config,
               util::Log &log, uint64_t id_base, std::shared_ptr<const net::TlsContext> tls)
    : loop_(loop), broker_(broker), config_(config), log_(log),
      uplink_(loop, *this, config, log, std::move(tls)), id_base_(id_base), window_(config.window) {
}

Bridge::~Bridge() = default;

void Bridge::start(uint64_t now_ms) {
    // Attaching once creates or resumes the session and (re)subscribes the forward rules;
    // detaching again leaves it offline, so messages queue until the uplink is online.
    attach(now_ms);
    detach(now_ms);
    uplink_.start();
    publish_state(now_ms);
}

void Bridge::stop(uint64_t now_ms) {
    if (attached_) {
        detach(now_ms);
    }
    uplink_.stop();
}

void Bridge::retire(uint64_t now_ms, uint32_t retention_s) {
    stop(now_ms);
    attach(now_ms, false);
    if (!attached_) {
        return;
    }
    mqtt::Disconnect disconnect;
    disconnect.properties.session_expiry_interval = retention_s;
    broker_.on_packet(*this, std::move(disconnect), now_ms);
    if (attached_) {
        detach(now_ms);
    }
    log_.info("bridge %s: removed; its queue is kept for %u s", config_.name.c_str(), retention_s);
}

void Bridge::attach(uint64_t now_ms, bool subscribe) {
    link_id_ = id_base_ + ++attaches_;
    attached_ = true;
    close_requested_ = false;
    broker_.on_open(*this);
    mqtt::Connect connect;
    connect.version = mqtt::Version::v5;
    connect.clean_start = false;
    connect.client_id = local_client_id();
    connect.properties.session_expiry_interval = 0xFFFFFFFF;
    connect.properties.receive_maximum = window_;
    broker_.on_packet(*this, std::move(connect), now_ms);
    if (!attached_ || !broker_.connected(*this)) {
        log_.error("bridge %s: the local session was refused", config_.name.c_str());
        return;
    }
    // Forward rules are the session's subscriptions, each with its index + 1 as the
    // Subscription Identifier, so a delivery says which rule it matched. No Local keeps what
    // the bridge itself publishes locally from going back up; QoS 1 at most, because the
    // upstream QoS is decided per rule when the message leaves.
    std::vector<std::string> wanted;
    for (size_t i = 0; subscribe && i < config_.forward.size(); ++i) {
        const config::ForwardRule &rule = config_.forward[i];
        mqtt::Subscribe s;
        s.packet_id = static_cast<uint16_t>(i + 1);
        s.properties.subscription_identifiers.push_back(static_cast<uint32_t>(i + 1));
        s.subscriptions.push_back({rule.local, static_cast<uint8_t>(std::min<int>(rule.qos, 1)),
                                   true, true, mqtt::RetainHandling::send_if_new});
        broker_.on_packet(*this, std::move(s), now_ms);
        wanted.push_back(rule.local);
    }
    // Rules removed from the configuration since the session was made leave with it.
    mqtt::Unsubscribe stale;
    stale.packet_id = 0xFFFF;
    for (std::string &filter : broker_.subscriptions_of(local_client_id())) {
        if (std::find(wanted.begin(), wanted.end(), filter) == wanted.end()) {
            stale.filters.push_back(std::move(filter));
        }
    }
    if (!stale.filters.empty()) {
        broker_.on_packet(*this, std::move(stale), now_ms);
    }
}

void Bridge::detach(uint64_t now_ms) {
    attached_ = false;
    broker_.on_close(*this, now_ms);
}

void Bridge::close() {
    // Called by the broker from inside its own handling: act in the next turn().
    close_requested_ = true;
}

void Bridge::turn(uint64_t now_ms) {
    if (close_requested_ && attached_) {
        close_requested_ = false;
        log_.warn("bridge %s: the broker closed the local session", config_.name.c_str());
        detach(now_ms);
        uplink_.drop("local session closed");
    }
    for (const auto &[m, reason] : std::exchange(parked_out_, {})) {
        dead_letter(*m, reason);
    }
    if (!local_acks_.empty()) {
        std::vector<uint16_t> acks;
        acks.swap(local_acks_);
        for (uint16_t id : acks) {
            if (attached_) {
                broker_.on_packet(*this, mqtt::Puback{{id, Reason::success, {}}}, now_ms);
            }
        }
    }
}

// Packets the broker sends to the bridge's local side.
void Bridge::send(const mqtt::Packet &packet) {
    switch (mqtt::packet_type(packet)) {
    case mqtt::PacketType::puback:
    case mqtt::PacketType::pubrec:
    case mqtt::PacketType::pubcomp:
        // Acknowledgements of what the bridge published locally for a subscribe rule:
        // they answer the upstream's PUBLISH with the same packet id, after the local
        // commit when the message had to be stored.
        uplink_.send(packet);
        break;
    case mqtt::PacketType::connack:
        if (std::get<mqtt::Connack>(packet).reason != Reason::success) {
            attached_ = false;
        }
        break;
    case mqtt::PacketType::suback:
        for (Reason r : std::get<mqtt::Suback>(packet).reasons) {
            if (static_cast<uint8_t>(r) >= 0x80) {
                log_.error("bridge %s: a forward rule's local subscription was refused (0x%02X)",
                           config_.name.c_str(), unsigned(r));
            }
        }
        break;
    default:
        break;
    }
}

bool Bridge::send_publish(const mqtt::PublishRef &ref, const broker::MessagePtr &message) {
    if (!uplink_.online()) {
        // Only between a lost uplink and the detach it causes; the broker keeps it in
        // flight and resends it on the next attachment.
        return true;
    }
    const broker::Message &m = *message;
    if (parked_ && message == parked_ && ref.qos > 0) {
        // The upstream closed the link every time this message was at the head of the
        // window: a 3.1.1 broker's way of refusing it. It leaves the queue like a message
        // refused with a reason code, so the ones behind it can go.
        parked_.reset();
        ++stats_.refused;
        log_.warn("bridge %s: the upstream closed the link %u times with the message on %s at "
                  "the head of the queue; it is taken out of the queue%s",
                  config_.name.c_str(), kParkAfter, m.topic.c_str(),
                  config_.dead_letter_topic.empty() ? " (dropped)" : " (dead-lettered)");
        parked_out_.emplace_back(message, "the upstream closed the link on it");
        local_acks_.push_back(ref.packet_id);
        return true;
    }
    size_t index = ref.subscription_ids.empty() ? 0 : ref.subscription_ids.front() - 1;
    if (index >= config_.forward.size()) {
        index = 0;
    }
    const config::ForwardRule &rule = config_.forward[index];
    const std::string topic = map_topic(rule.local, rule.remote, m.topic);
    mqtt::PublishRef up;
    up.payload = m.payload;
    up.qos = std::min<uint8_t>({m.qos, rule.qos, static_cast<uint8_t>(upstream_qos_max_)});
    switch (rule.retain) {
    case config::ForwardRule::Retain::keep:
        up.retain = ref.retain;
        break;
    case config::ForwardRule::Retain::clear:
        up.retain = false;
        break;
    case config::ForwardRule::Retain::force:
        up.retain = true;
        break;
    }
    up.retain = up.retain && upstream_retain_;
    up.dup = ref.dup && up.qos > 0;
    up.packet_id = up.qos > 0 ? ref.packet_id : 0;
    mqtt::Properties modified;
    if (uplink_.version() == mqtt::Version::v5) {
        // Subscription identifiers and topic aliases are per hop and never go on; the
        // time left of a message expiry does (the broker computed it for this send).
        // A Response Topic is a local topic: the reply must come back through a subscribe
        // rule, so it goes up as the remote topic that rule maps to it, when one does.
        std::optional<std::string> response_topic;
        if (m.properties.response_topic && !rule.drop_properties) {
            for (const config::SubscribeRule &back : config_.subscribe) {
                response_topic = unmap_topic(back.remote, back.local, *m.properties.response_topic);
                if (response_topic) {
                    break;
                }
            }
        }
        const bool needs_copy = rule.drop_properties || !rule.add_user_properties.empty() ||
                                (rule.message_expiry && !m.properties.message_expiry_interval) ||
                                (rule.content_type && !m.properties.content_type) ||
                                response_topic.has_value();
        up.properties = &m.properties;
        up.message_expiry = ref.message_expiry;
        if (needs_copy) {
            modified = rule.drop_properties ? mqtt::Properties{} : m.properties;
            for (const auto &kv : rule.add_user_properties) {
                modified.user_properties.push_back(kv);
            }
            if (rule.message_expiry && !modified.message_expiry_interval) {
                modified.message_expiry_interval = rule.message_expiry;
            }
            if (rule.content_type && !modified.content_type) {
                modified.content_type = rule.content_type;
            }
            if (response_topic) {
                modified.response_topic = std::move(response_topic);
            }
            if (rule.drop_properties) {
                up.message_expiry.reset();
            }
            up.properties = &modified;
        }
        if (aliases_) {
            const broker::TopicAliasTable::Assignment a = aliases_->assign(topic);
            up.topic_alias = a.alias;
            if (a.known) {
                ++stats_.alias_hits;
            }
            up.topic = a.known ? std::string_view() : std::string_view(topic);
        } else {
            up.topic = topic;
        }
    } else {
        // A 3.1.1 upstream carries no properties: say what was lost, by kind.
        const mqtt::Properties &p = m.properties;
        stats_.properties_dropped[0] += p.user_properties.empty() ? 0 : 1;
        stats_.properties_dropped[1] += p.message_expiry_interval ? 1 : 0;
        stats_.properties_dropped[2] += p.content_type ? 1 : 0;
        stats_.properties_dropped[3] += p.response_topic ? 1 : 0;
        stats_.properties_dropped[4] += p.correlation_data ? 1 : 0;
        stats_.properties_dropped[5] += p.payload_format_indicator ? 1 : 0;
        up.topic = topic;
        if (!config_.subscribe.empty()) {
            remember_forward(topic, m.payload, uv_now(&loop_));
        }
    }
    if (!uplink_.publish(up)) {
        if (up.topic_alias && !up.topic.empty()) {
            aliases_->forget(*up.topic_alias); // the upstream never learnt it
        }
        ++stats_.too_large;
        log_.warn("bridge %s: a message on %s is larger than the upstream's Maximum Packet Size; "
                  "it is taken out of the queue%s",
                  config_.name.c_str(), m.topic.c_str(),
                  config_.dead_letter_topic.empty() ? " (dropped)" : " (dead-lettered)");
        parked_out_.emplace_back(message, "larger than the upstream's Maximum Packet Size");
        if (ref.qos > 0) {
            local_acks_.push_back(ref.packet_id);
        }
        return true;
    }
    ++stats_.sent;
    if (up.qos == 0) {
        ++stats_.acknowledged;
        if (ref.qos > 0) {
            local_acks_.push_back(ref.packet_id); // sent is all QoS 0 promises
        }
    } else {
        inflight_[ref.packet_id] = message;
        if (!first_sent_) {
            first_sent_ = message; // the head of the window on this connection
        }
    }
    return true;
}

void Bridge::on_uplink_online(const mqtt::Connack &connack) {
    const uint64_t now = uv_now(&loop_);
    const mqtt::Properties &p = connack.properties;
    window_ = std::min<uint16_t>(config_.window, p.receive_maximum.value_or(65535));
    upstream_qos_max_ = p.maximum_qos.value_or(2);
    upstream_retain_ = p.retain_available.value_or(1) != 0;
    inflight_.clear();
    aliases_.reset();
    first_sent_.reset();
    if (uplink_.version() == mqtt::Version::v5 && config_.topic_aliases &&
        p.topic_alias_maximum.value_or(0) > 0) {
        aliases_ = std::make_unique<broker::TopicAliasTable>(*p.topic_alias_maximum);
    }
    subscribe_upstream();
    attach(now);
    publish_state(now);
}

void Bridge::subscribe_upstream() {
    if (config_.subscribe.empty()) {
        return;
    }
    if (uplink_.version() == mqtt::Version::v5) {
        // One SUBSCRIBE per rule, its index + 1 as the Subscription Identifier; No Local so
        // what the bridge forwards never comes back down.
        for (size_t i = 0; i < config_.subscribe.size(); ++i) {
            mqtt::Subscribe s;
            s.packet_id = static_cast<uint16_t>(i + 1);
            s.properties.subscription_identifiers.push_back(static_cast<uint32_t>(i + 1));
            s.subscriptions.push_back({config_.subscribe[i].remote, config_.subscribe[i].qos, true,
                                       true, mqtt::RetainHandling::send});
            uplink_.send(s);
        }
        return;
    }
    mqtt::Subscribe s;
    s.packet_id = 1;
    for (const config::SubscribeRule &rule : config_.subscribe) {
        s.subscriptions.push_back(
            {rule.remote, rule.qos, false, false, mqtt::RetainHandling::send});
    }
    uplink_.send(s);
}

void Bridge::on_uplink_offline(const std::string &) {
    const uint64_t now = uv_now(&loop_);
    // The link ended while the first message sent on it still awaited its acknowledgement:
    // that message may be what the upstream refuses by closing. The same one at the head
    // kParkAfter times in a row is taken out of the queue when it is resent.
    if (first_sent_ && std::any_of(inflight_.begin(), inflight_.end(),
                                   [this](const auto &kv) { return kv.second == first_sent_; })) {
        suspect_count_ = first_sent_ == suspect_ ? suspect_count_ + 1 : 1;
        suspect_ = first_sent_;
        if (suspect_count_ >= kParkAfter) {
            parked_ = suspect_;
            suspect_.reset();
            suspect_count_ = 0;
        }
    } else {
        suspect_.reset();
        suspect_count_ = 0;
    }
    first_sent_.reset();
    inflight_.clear();
    aliases_.reset();
    local_acks_.clear(); // the broker resends those deliveries on the next attachment
    if (attached_) {
        detach(now);
    }
    publish_state(now);
}

void Bridge::on_uplink_packet(mqtt::Packet &&packet) {
    const uint64_t now = uv_now(&loop_);
    switch (mqtt::packet_type(packet)) {
    case mqtt::PacketType::puback: {
        const auto &a = std::get<mqtt::Puback>(packet);
        on_upstream_ack(a.packet_id, a.reason);
        break;
    }
    case mqtt::PacketType::pubrec: {
        const auto &a = std::get<mqtt::Pubrec>(packet);
        if (static_cast<uint8_t>(a.reason) >= 0x80) {
            on_upstream_ack(a.packet_id, a.reason);
        } else if (inflight_.count(a.packet_id) != 0) {
            uplink_.send(mqtt::Pubrel{{a.packet_id, Reason::success, {}}});
        }
        break;
    }
    case mqtt::PacketType::pubcomp:
        on_upstream_ack(std::get<mqtt::Pubcomp>(packet).packet_id, Reason::success);
        break;
    case mqtt::PacketType::publish:
        on_upstream_publish(std::move(std::get<mqtt::Publish>(packet)));
        break;
    case mqtt::PacketType::pubrel:
        if (attached_) {
            broker_.on_packet(*this, std::move(packet), now);
        }
        break;
    case mqtt::PacketType::suback:
        for (Reason r : std::get<mqtt::Suback>(packet).reasons) {
            if (static_cast<uint8_t>(r) >= 0x80) {
                log_.warn("bridge %s: the upstream refused a subscription (0x%02X)",
                          config_.name.c_str(), unsigned(r));
            }
        }
        break;
    default:
        break;
    }
}

void Bridge::on_upstream_ack(uint16_t packet_id, Reason reason) {
    auto it = inflight_.find(packet_id);
    if (it == inflight_.end()) {
        return;
    }
    broker::MessagePtr m = std::move(it->second);
    inflight_.erase(it);
    if (static_cast<uint8_t>(reason) < 0x80) {
        ++stats_.acknowledged;
        ack_local(packet_id);
        return;
    }
    if (retryable(reason)) {
        // The message stays in the local session's window: reconnecting after the backoff
        // resends it (with DUP), so a busy upstream is not hammered.
        ++stats_.retried;
        uplink_.drop("the upstream refused a message with 0x" +
                     std::string(1, "0123456789ABCDEF"[uint8_t(reason) >> 4]) +
                     std::string(1, "0123456789ABCDEF"[uint8_t(reason) & 15]) + " (" +
                     std::string(mqtt::reason_name(reason)) + "); retrying after a backoff");
        return;
    }
    // Final: the message leaves the queue so it cannot block the ones behind it.
    ++stats_.refused;
    log_.warn("bridge %s: the upstream refused a message on %s: %s%s", config_.name.c_str(),
              m->topic.c_str(), std::string(mqtt::reason_name(reason)).c_str(),
              config_.dead_letter_topic.empty() ? " (dropped)" : " (dead-lettered)");
    dead_letter(*m, std::string(mqtt::reason_name(reason)));
    ack_local(packet_id);
}

void Bridge::dead_letter(const broker::Message &m, const std::string &reason) {
    if (config_.dead_letter_topic.empty() || !attached_) {
        return;
    }
    mqtt::Publish dead;
    dead.topic = config_.dead_letter_topic;
    dead.payload = m.payload;
    dead.properties = m.properties;
    dead.properties.user_properties.emplace_back("ferrymq-bridge", config_.name);
    dead.properties.user_properties.emplace_back("ferrymq-topic", m.topic);
    dead.properties.user_properties.emplace_back("ferrymq-reason", reason);
    broker_.on_packet(*this, std::move(dead), uv_now(&loop_));
}

void Bridge::ack_local(uint16_t packet_id) {
    if (attached_) {
        broker_.on_packet(*this, mqtt::Puback{{packet_id, Reason::success, {}}}, uv_now(&loop_));
    }
}

const config::SubscribeRule *Bridge::inbound_rule(const mqtt::Publish &publish) const {
    const auto &ids = publish.properties.subscription_identifiers;
    if (!ids.empty() && ids.front() >= 1 && ids.front() <= config_.subscribe.size()) {
        return &config_.subscribe[ids.front() - 1];
    }
    for (const config::SubscribeRule &rule : config_.subscribe) {
        if (mqtt::topic_matches(rule.remote, publish.topic)) {
            return &rule;
        }
    }
    return nullptr;
}

void Bridge::on_upstream_publish(mqtt::Publish &&publish) {
    const uint64_t now = uv_now(&loop_);
    const config::SubscribeRule *rule = inbound_rule(publish);
    if (rule == nullptr || !attached_ || publish.topic.empty()) {
        // Nothing to deliver it to (or an alias we never allowed): acknowledge so the
        // upstream does not resend it forever.
        if (publish.qos == 1) {
            uplink_.send(mqtt::Puback{{publish.packet_id, Reason::success, {}}});
        } else if (publish.qos == 2) {
            uplink_.send(mqtt::Pubrec{{publish.packet_id, Reason::success, {}}});
        }
        return;
    }
    if (uplink_.version() != mqtt::Version::v5 && is_echo(publish.topic, publish.payload, now)) {
        // Our own forward, sent back by a 3.1.1 upstream that has no No Local.
        ++stats_.echoes_dropped;
        if (publish.qos == 1) {
            uplink_.send(mqtt::Puback{{publish.packet_id, Reason::success, {}}});
        } else if (publish.qos == 2) {
            uplink_.send(mqtt::Pubrec{{publish.packet_id, Reason::success, {}}});
        }
        return;
    }
    ++stats_.received;
    publish.topic = map_topic(rule->remote, rule->local, publish.topic);
    publish.properties.subscription_identifiers.clear();
    publish.properties.topic_alias.reset();
    if (publish.properties.response_topic) {
        // The reply will be published locally and must go up through a forward rule.
        for (const config::ForwardRule &up : config_.forward) {
            if (auto local = unmap_topic(up.local, up.remote, *publish.properties.response_topic)) {
                publish.properties.response_topic = std::move(local);
                break;
            }
        }
    }
    for (const auto &kv : rule->add_user_properties) {
        publish.properties.user_properties.push_back(kv);
    }
    publish.dup = false;
    // The local acknowledgement comes back through send() and answers the upstream.
    broker_.on_packet(*this, std::move(publish), now);
}

void Bridge::remember_forward(std::string_view topic, std::string_view payload, uint64_t now_ms) {
    const uint64_t h = message_hash(topic, payload);
    recent_up_.emplace_back(h, now_ms);
    ++recent_count_[h];
    while (!recent_up_.empty() && (recent_up_.size() > kEchoMaxEntries ||
                                   now_ms - recent_up_.front().second > kEchoWindowMs)) {
        auto it = recent_count_.find(recent_up_.front().first);
        if (it != recent_count_.end() && --it->second == 0) {
            recent_count_.erase(it);
        }
        recent_up_.pop_front();
    }
}

bool Bridge::is_echo(std::string_view topic, std::string_view payload, uint64_t now_ms) {
    if (recent_up_.empty() || now_ms - recent_up_.back().second > kEchoWindowMs) {
        return false;
    }
    auto it = recent_count_.find(message_hash(topic, payload));
    if (it == recent_count_.end()) {
        return false;
    }
    // One echo per forward: the count is used up (the deque entry ages out by itself).
    if (--it->second == 0) {
        recent_count_.erase(it);
    }
    return true;
}

void Bridge::publish_state(uint64_t now_ms) {
    std::string state;
    switch (uplink_.state()) {
    case Uplink::State::online:
        state = "online";
        break;
    case Uplink::State::backoff:
        state = "backoff";
        break;
    case Uplink::State::idle:
        state = "offline";
        break;
    default:
        state = "connecting";
        break;
    }
    if (uplink_.state() != Uplink::State::online && !uplink_.last_reason().empty()) {
        state += ": " + uplink_.last_reason();
    }
    if (state != state_published_) {
        state_published_ = state;
        broker_.publish_system("$SYS/bridges/" + config_.name + "/state", state, true, now_ms);
    }
}

void Bridge::tick(uint64_t now_ms) {
    publish_state(now_ms);
    if (now_ms < next_health_ms_) {
        return;
    }
    next_health_ms_ = now_ms + kHealthEveryMs;
    const broker::Broker::Backlog backlog = broker_.backlog_of(local_client_id());
    const std::pair<const char *, uint64_t> values[] = {
        {"queued", backlog.queued},
        {"inflight", backlog.inflight},
        {"oldest_age_s", backlog.oldest_age_ms / 1000},
        {"dropped/queue_full", backlog.drops.queue_full},
        {"dropped/max_age", backlog.drops.max_age},
        {"dropped/expired", backlog.drops.expired},
        {"dropped/too_large", backlog.drops.too_large + stats_.too_large},
        {"properties_dropped/user_properties", stats_.properties_dropped[0]},
        {"properties_dropped/message_expiry", stats_.properties_dropped[1]},
        {"properties_dropped/content_type", stats_.properties_dropped[2]},
        {"properties_dropped/response_topic", stats_.properties_dropped[3]},
        {"properties_dropped/correlation_data", stats_.properties_dropped[4]},
        {"properties_dropped/payload_format", stats_.properties_dropped[5]},
        {"echoes_dropped", stats_.echoes_dropped},
        {"sent", stats_.sent},
        {"acknowledged", stats_.acknowledged},
        {"received", stats_.received},
        {"refused", stats_.refused},
        {"retried", stats_.retried},
        {"reconnects", uplink_.reconnects()},
        {"bytes_up", uplink_.bytes_out()},
        {"bytes_down", uplink_.bytes_in()},
        {"alias_hits", stats_.alias_hits},
    };
    for (const auto &[name, value] : values) {
        std::string topic = "$SYS/bridges/" + config_.name + "/" + name;
        std::string text = std::to_string(value);
        auto [it, inserted] = health_published_.try_emplace(topic, text);
        if (!inserted && it->second == text) {
            continue;
        }
        it->second = text;
        broker_.publish_system(std::move(topic), std::move(text), true, now_ms);
    }
}

} // namespace ferrymq::bridge
