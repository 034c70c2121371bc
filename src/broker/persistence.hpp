// SPDX-License-Identifier: Apache-2.0
// What the broker core tells durable storage, and what it gets back at start-up. The core
// stays free of I/O: it reports each change of durable state here as it happens, and the
// store (src/store/) turns the changes of one loop turn into one SQLite transaction.
#pragma once

#include "message.hpp"
#include "mqtt/packet.hpp"
#include "subscription_tree.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ferrymq::broker {

class Session;
struct Delivery;

// How the store is doing, for $SYS and the stop log line.
struct StoreStatus {
    uint64_t commits = 0;           // transactions committed
    uint64_t failed_commits = 0;    // transactions rolled back on an SQLite error
    uint64_t size_bytes = 0;        // database pages in use
    uint64_t longest_commit_us = 0; // the longest commit so far
    bool degraded = false;          // the latest commit failed: durable state is in memory only
};

// Receives every change to retained messages and persistent sessions (sessions with a
// Session Expiry Interval above 0). Owned by the app; outlives the Broker. All times are
// loop-clock milliseconds; the store converts them to wall-clock time on disk.
class Persistence {
  public:
    virtual ~Persistence() = default;

    // A retained message was stored (non-empty payload) or removed.
    virtual void retained_set(const MessagePtr &message) = 0;
    virtual void retained_clear(const std::string &topic) = 0;

    // The session's own row: version, expiry, whether a client is attached, the will.
    virtual void session_save(const Session &session) = 0;
    // The session ended: its row, subscriptions, messages and packet ids go.
    virtual void session_delete(const std::string &client_id) = 0;

    virtual void subscription_save(const std::string &client_id, const std::string &filter,
                                   const SubscriptionOptions &options) = 0;
    virtual void subscription_delete(const std::string &client_id, const std::string &filter) = 0;

    // A QoS 1/2 delivery for a persistent session; returns the id that names it from now on.
    // `shared_group`: the "group/filter" key of the shared subscription group that chose the
    // session, empty when none, so the message can still go to another member after a
    // restart (spec 4.8.2).
    virtual uint64_t message_add(const std::string &client_id, const Delivery &delivery,
                                 std::string_view shared_group) = 0;
    // The delivery was sent with `packet_id` (0: back to unsent); `released`: PUBREL sent.
    virtual void message_sent(uint64_t id, uint16_t packet_id, bool released) = 0;
    // The delivery was acknowledged, dropped or handed to another session.
    virtual void message_delete(uint64_t id) = 0;

    // Inbound QoS 2 packet ids acknowledged with PUBREC and awaiting PUBREL.
    virtual void qos2_add(const std::string &client_id, uint16_t packet_id) = 0;
    virtual void qos2_delete(const std::string &client_id, uint16_t packet_id) = 0;

    // Changes reported so far: a PUBLISH whose handling moved this must not be
    // acknowledged before the transaction holding those changes committed.
    virtual uint64_t changes() const = 0;
    // True once the database reached its configured size: new durable messages are
    // refused or make room, as configured.
    virtual bool full() const = 0;
    virtual StoreStatus status() const = 0;
};

// One delivery of a persistent session as read back at start-up.
struct RestoredMessage {
    uint64_t id = 0;
    MessagePtr message;
    uint8_t qos = 1;
    bool retain = false;
    std::vector<uint32_t> subscription_ids;
    std::string shared_group; // "group/filter" of the shared subscription group, or empty
    uint16_t packet_id = 0;   // 0: not sent yet
    bool released = false;    // QoS 2: PUBREL sent
};

// A persistent session as read back at start-up.
struct RestoredSession {
    std::string client_id;
    mqtt::Version version = mqtt::Version::v5;
    uint32_t expiry_interval = 0;
    uint64_t expires_at_ms = 0;       // loop clock; 0 = never, or see `online`
    bool online = false;              // a client was attached when the broker stopped
    std::unique_ptr<mqtt::Will> will; // with its Will Delay Interval property
    uint64_t will_at_ms = 0;          // loop clock; 0 = no will pending
    std::vector<std::pair<std::string, SubscriptionOptions>> subscriptions;
    std::vector<RestoredMessage> messages; // in the order they were queued
    std::vector<uint16_t> inbound_qos2;
};

} // namespace ferrymq::broker
