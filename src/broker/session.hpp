// SPDX-License-Identifier: Apache-2.0
// The MQTT state of one client id that outlives its connections: subscriptions, QoS 1/2
// messages in flight both ways, the queue for when the client is away or slow, and the
// will. Owned by the Broker (by unique_ptr in its session map) from the first CONNECT with
// that client id until the session ends or expires. It names its connection by id only.
// Every field is plain data so the store layer can write and restore it.
#pragma once

#include "message.hpp"
#include "mqtt/packet.hpp"
#include "subscription_tree.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ferrymq::broker {

// One message on its way to this session's client, with this subscriber's details.
struct Delivery {
    MessagePtr message;
    uint8_t qos = 0;     // min(message QoS, granted QoS)
    bool retain = false; // retain flag to send
    std::vector<uint32_t> subscription_ids;
};

// An outgoing QoS 1/2 message that has a packet id and awaits its acknowledgement.
struct Inflight {
    Delivery delivery;
    bool released = false; // QoS 2: PUBREC received and PUBREL sent, awaiting PUBCOMP
};

class Session {
  public:
    explicit Session(std::string client_id) : client_id_(std::move(client_id)) {}

    const std::string &client_id() const { return client_id_; }

    // The connection currently attached, 0 while the client is away.
    uint64_t link_id = 0;
    mqtt::Version version = mqtt::Version::v311;

    // Seconds the session outlives its connection; 0xFFFFFFFF = never expires.
    uint32_t expiry_interval = 0;
    // Loop-clock ms at which a detached session expires; 0 while attached or never.
    uint64_t expires_at_ms = 0;

    std::map<std::string, SubscriptionOptions> subscriptions; // by filter
    std::deque<Delivery> queue;                               // not yet sent, in order
    std::map<uint16_t, Inflight> inflight;                    // sent, by packet id
    std::vector<uint16_t> inflight_order;                     // packet ids in send order
    std::set<uint16_t> inbound_qos2;                          // PUBREC sent, awaiting PUBREL
    std::optional<mqtt::Will> will;
    // Loop-clock ms at which a detached session's will is due (5.0 Will Delay Interval);
    // 0 when no will is pending.
    uint64_t will_at_ms = 0;

    size_t queued_bytes = 0; // payload bytes held in `queue`

    // Set during one publish's fan-out to merge overlapping subscriptions.
    uint64_t match_epoch = 0;
    size_t match_slot = 0;

    // A packet id not in use by an outgoing message [MQTT-2.2.1-2].
    uint16_t next_packet_id();

  private:
    std::string client_id_;
    uint16_t last_packet_id_ = 0;
};

} // namespace ferrymq::broker
