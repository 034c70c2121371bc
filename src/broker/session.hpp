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

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
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
    // The shared subscription group that chose this session (SharedSubscriptions group id),
    // so the message can go to another member if this one leaves; 0 when not shared.
    uint32_t shared_group = 0;
    std::vector<uint32_t> subscription_ids;
    // The store's id for a QoS 1/2 delivery to a persistent session, 0 when not stored.
    uint64_t store_id = 0;
};

// A FIFO of deliveries that allocates nothing while empty: std::deque allocates its map
// and a first block on construction, which every idle session would pay for.
class DeliveryQueue {
  public:
    using Deque = std::deque<Delivery>;
    bool empty() const { return !q_ || q_->empty(); }
    size_t size() const { return q_ ? q_->size() : 0; }
    Delivery &front() { return q_->front(); }
    void push_back(Delivery &&d) {
        if (!q_) {
            q_ = std::make_unique<Deque>();
        }
        q_->push_back(std::move(d));
    }
    // Releases the storage once the queue runs dry.
    void pop_front() {
        q_->pop_front();
        if (q_->empty()) {
            q_.reset();
        }
    }
    Deque::iterator begin() { return q_ ? q_->begin() : Deque::iterator{}; }
    Deque::iterator end() { return q_ ? q_->end() : Deque::iterator{}; }
    void erase(Deque::iterator it) {
        q_->erase(it);
        if (q_->empty()) {
            q_.reset();
        }
    }

  private:
    std::unique_ptr<Deque> q_;
};

// An outgoing QoS 1/2 message that has a packet id and awaits its acknowledgement.
struct Inflight {
    Delivery delivery;
    bool released = false; // QoS 2: PUBREC received and PUBREL sent, awaiting PUBCOMP
};

// The outgoing QoS 1/2 messages awaiting acknowledgement, by packet id and in send order
// (for redelivery). Allocates nothing while empty, like DeliveryQueue.
class InflightWindow {
  public:
    size_t size() const { return d_ ? d_->by_id.size() : 0; }
    bool contains(uint16_t id) const { return d_ && d_->by_id.count(id) != 0; }
    Inflight *find(uint16_t id) {
        if (!d_) {
            return nullptr;
        }
        auto it = d_->by_id.find(id);
        return it == d_->by_id.end() ? nullptr : &it->second;
    }
    void add(uint16_t id, Inflight &&m) {
        if (!d_) {
            d_ = std::make_unique<Data>();
        }
        d_->by_id.emplace(id, std::move(m));
        d_->order.push_back(id);
    }
    void erase(uint16_t id) {
        if (!d_ || d_->by_id.erase(id) == 0) {
            return;
        }
        d_->order.erase(std::find(d_->order.begin(), d_->order.end(), id));
        if (d_->by_id.empty()) {
            d_.reset();
        }
    }
    // Packet ids in the order their messages were first sent.
    std::vector<uint16_t> ids_in_order() const { return d_ ? d_->order : std::vector<uint16_t>{}; }

  private:
    struct Data {
        std::map<uint16_t, Inflight> by_id;
        std::vector<uint16_t> order;
    };
    std::unique_ptr<Data> d_;
};

// Inbound QoS 2 packet ids that got PUBREC and await PUBREL [MQTT-4.3.3-10]. Allocates
// nothing while empty.
class PacketIdSet {
  public:
    bool contains(uint16_t id) const { return s_ && s_->count(id) != 0; }
    size_t size() const { return s_ ? s_->size() : 0; }
    std::vector<uint16_t> ids() const {
        return s_ ? std::vector<uint16_t>(s_->begin(), s_->end()) : std::vector<uint16_t>{};
    }
    void insert(uint16_t id) {
        if (!s_) {
            s_ = std::make_unique<std::set<uint16_t>>();
        }
        s_->insert(id);
    }
    // Returns whether `id` was present.
    bool erase(uint16_t id) {
        if (!s_ || s_->erase(id) == 0) {
            return false;
        }
        if (s_->empty()) {
            s_.reset();
        }
        return true;
    }

  private:
    std::unique_ptr<std::set<uint16_t>> s_;
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
    DeliveryQueue queue;                                      // not yet sent, in order
    InflightWindow inflight;                                  // sent, awaiting their acks
    PacketIdSet inbound_qos2;                                 // PUBREC sent, awaiting PUBREL
    std::unique_ptr<mqtt::Will> will;                         // held apart: most sessions have none
    // Loop-clock ms at which a detached session's will is due (5.0 Will Delay Interval);
    // 0 when no will is pending.
    uint64_t will_at_ms = 0;

    size_t queued_bytes = 0; // payload bytes held in `queue`
    // Whether the store holds this session (it has a Session Expiry Interval above 0 and
    // a Persistence is attached); every change is then reported to the store.
    bool persisted = false;

    // Limits set by an internal client's link (a bridge), 0 = the broker's settings.
    uint16_t window = 0;
    uint32_t queue_max_messages = 0;
    uint64_t queue_max_bytes = 0;
    uint32_t queue_max_age_s = 0;  // seconds a queued message may wait, 0 = no limit
    bool refuse_when_full = false; // full queue: refuse new messages instead of dropping

    // Messages this session lost, by cause (the broker-wide counters add them all up).
    struct Drops {
        uint64_t queue_full = 0;
        uint64_t max_age = 0;
        uint64_t expired = 0;
        uint64_t too_large = 0;
    } drops;

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
