// SPDX-License-Identifier: Apache-2.0
// One bridge to a cloud broker. Locally it is an internal client of the broker core (a
// broker::Link with the persistent session "$bridge/<name>"): its forward rules are that
// session's subscriptions, so matching messages are queued, stored in SQLite and
// acknowledged to their publishers after the commit exactly like for any persistent
// session. While the uplink is online the session is attached and the broker sends it
// what is queued, in order, within the upstream's window; a message is acknowledged to the
// broker (and so leaves the store) only when the upstream acknowledged it. While the
// uplink is down the session is detached and the queue grows on disk. Packet ids pass
// through unchanged in both directions (each direction has its own id space).
//
// Owned by app::Server for the life of the broker; stop() detaches and closes the uplink.
#pragma once

#include "bridge/uplink.hpp"
#include "broker/broker.hpp"
#include "broker/topic_alias_table.hpp"
#include "config/config.hpp"
#include "util/log.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ferrymq::bridge {

// Counters of one bridge, for $SYS and the stop log line.
struct BridgeStats {
    uint64_t sent = 0;           // PUBLISHes sent upstream (resends included)
    uint64_t acknowledged = 0;   // acknowledged by the upstream (or sent at QoS 0)
    uint64_t received = 0;       // PUBLISHes from upstream published locally
    uint64_t refused = 0;        // permanently refused by the upstream (dead-lettered)
    uint64_t retried = 0;        // refused with a retryable reason: reconnect and resend
    uint64_t too_large = 0;      // above the upstream's Maximum Packet Size: dropped
    uint64_t alias_hits = 0;     // PUBLISHes sent upstream with only a topic alias
    uint64_t echoes_dropped = 0; // 3.1.1: our own forwards coming back down, dropped
    // Properties a 3.1.1 uplink cannot carry, dropped per kind: user properties, message
    // expiry, content type, response topic, correlation data, payload format indicator.
    std::array<uint64_t, 6> properties_dropped{};
};

class Bridge final : public broker::Link, private UplinkOwner {
  public:
    // `id_base` names this bridge's local links (each attachment gets the next id); `tls`
    // is the uplink's TLS context when the bridge has a tls block.
    Bridge(uv_loop_t &loop, broker::Broker &broker, const config::BridgeConfig &config,
           util::Log &log, uint64_t id_base, std::shared_ptr<const net::TlsContext> tls = nullptr);
    ~Bridge();
    Bridge(const Bridge &) = delete;
    Bridge &operator=(const Bridge &) = delete;

    const config::BridgeConfig &config() const { return config_; }
    // The bridge was removed by a reload: stops like stop(), takes the forward rules' local
    // subscriptions away so nothing new queues, and lets the local session (with what is
    // queued) expire after `retention_s` seconds unless a bridge of the same name returns.
    void retire(uint64_t now_ms, uint32_t retention_s);
    // Creates (or resumes) the local session with its subscriptions, so messages queue from
    // now on, and starts the uplink. Before the listeners open.
    void start(uint64_t now_ms);
    // Detaches the local session (its queue stays stored) and closes the uplink.
    void stop(uint64_t now_ms);
    bool stopped() const { return uplink_.stopped(); }
    // Connected upstream (CONNACK received).
    bool online() const { return uplink_.online(); }
    // Once per loop turn before the group commit: hands the broker what waited for it.
    void turn(uint64_t now_ms);
    // After the commit: writes upstream what the turn produced.
    void flush() { uplink_.flush(); }
    // Every second: health topics.
    void tick(uint64_t now_ms);

    const std::string &name() const { return config_.name; }
    const BridgeStats &stats() const { return stats_; }
    uint64_t bytes_up() const { return uplink_.bytes_out(); }
    uint64_t bytes_down() const { return uplink_.bytes_in(); }
    uint64_t connections() const { return uplink_.reconnects(); }
    std::string local_client_id() const { return "$bridge/" + config_.name; }

    // broker::Link
    const broker::ListenerPolicy &policy() const override { return policy_; }
    uint64_t id() const override { return link_id_; }
    void send(const mqtt::Packet &packet) override;
    bool send_publish(const mqtt::PublishRef &publish, const broker::MessagePtr &message) override;
    size_t pending_bytes() const override { return uplink_.pending_bytes(); }
    void set_version(mqtt::Version) override {}
    void set_keep_alive(uint16_t) override {}
    void set_max_outgoing_packet(uint32_t) override {}
    void close() override;
    bool internal() const override { return true; }
    uint16_t inflight_window() const override { return window_; }
    uint32_t queue_max_messages() const override { return config_.queue_max_messages; }
    uint64_t queue_max_bytes() const override { return config_.queue_max_bytes; }
    uint32_t queue_max_age() const override { return config_.queue_max_age; }
    bool queue_refuses_when_full() const override { return config_.queue_refuse_when_full; }

  private:
    // UplinkOwner
    void on_uplink_online(const mqtt::Connack &connack) override;
    void on_uplink_packet(mqtt::Packet &&packet) override;
    void on_uplink_offline(const std::string &reason) override;
    void want_flush(Uplink &) override {}

    // Connects the local session; `subscribe`: with the forward rules (and none other).
    void attach(uint64_t now_ms, bool subscribe = true);
    void detach(uint64_t now_ms);
    void subscribe_upstream();
    void on_upstream_publish(mqtt::Publish &&publish);
    // The upstream acknowledged (or refused) our PUBLISH `packet_id`.
    void on_upstream_ack(uint16_t packet_id, mqtt::Reason reason);
    void ack_local(uint16_t packet_id);
    // Publishes a refused message on the dead-letter topic, if one is configured.
    void dead_letter(const broker::Message &m, const std::string &reason);
    void publish_state(uint64_t now_ms);
    const config::SubscribeRule *inbound_rule(const mqtt::Publish &publish) const;
    // The 3.1.1 echo filter: what went up recently, so the same message coming back down
    // (a 3.1.1 upstream has no No Local) is recognised and dropped.
    void remember_forward(std::string_view topic, std::string_view payload, uint64_t now_ms);
    bool is_echo(std::string_view topic, std::string_view payload, uint64_t now_ms);

    uv_loop_t &loop_;
    broker::Broker &broker_;
    const config::BridgeConfig &config_;
    util::Log &log_;
    Uplink uplink_;
    broker::ListenerPolicy policy_;
    const uint64_t id_base_;
    uint64_t link_id_ = 0;         // the current local attachment's id
    uint64_t attaches_ = 0;        // local attachments so far
    bool attached_ = false;        // the local session has this link
    bool close_requested_ = false; // the broker asked this link to close
    uint16_t window_;              // in flight upstream: config, capped by the upstream
    // Upstream PUBLISHes awaiting their acknowledgement, by packet id (the local one too).
    std::map<uint16_t, broker::MessagePtr> inflight_;
    std::vector<uint16_t> local_acks_; // PUBACKs to give the broker in turn()
    // Refusal by closing (3.1.1 upstreams): the first message sent on the current
    // connection, the one suspected after consecutive closes, and the one to take out.
    static constexpr uint32_t kParkAfter = 3;
    broker::MessagePtr first_sent_;
    broker::MessagePtr suspect_;
    uint32_t suspect_count_ = 0;
    broker::MessagePtr parked_;
    // Messages taken out of the queue, with why; dead-lettered in turn().
    std::vector<std::pair<broker::MessagePtr, std::string>> parked_out_;
    std::unique_ptr<broker::TopicAliasTable> aliases_; // 5.0 uplink, per connection
    uint16_t upstream_qos_max_ = 2;
    bool upstream_retain_ = true;
    BridgeStats stats_;
    std::string state_published_; // last value of $SYS/bridges/<name>/state
    uint64_t next_health_ms_ = 0;
    std::map<std::string, std::string> health_published_; // topic -> last value
    std::deque<std::pair<uint64_t, uint64_t>> recent_up_; // (hash, loop ms) in send order
    std::unordered_map<uint64_t, uint32_t> recent_count_; // hash -> entries in recent_up_
};

} // namespace ferrymq::bridge
