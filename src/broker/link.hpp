// SPDX-License-Identifier: Apache-2.0
// What the broker core needs from a client connection. net/ implements it over TCP (and
// later TLS and WebSocket); unit tests implement it in memory. The core never sees sockets.
#pragma once

#include "message.hpp"
#include "mqtt/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferrymq::broker {

// What the listener a connection came in on allows.
struct ListenerPolicy {
    bool allow_anonymous = true; // clients without a username may connect
    // User Properties of 5.0 PUBLISH packets: limits (0 = none), allowed names (empty =
    // all), and whether breaking them strips the properties or refuses the message.
    uint32_t max_user_properties = 0;
    uint32_t max_user_property_bytes = 0;
    std::vector<std::string> allowed_user_property_keys;
    bool strip_user_properties = false;
    // The transport authenticated the client (a TLS client certificate): its identity is
    // the username, and no password is asked for. A client without one is not authorized.
    bool identity_as_username = false;
};

class Link {
  public:
    // The rules of the listener this connection was accepted on.
    virtual const ListenerPolicy &policy() const = 0;
    // Unique for the life of the process; sessions name their connection by it.
    virtual uint64_t id() const = 0;
    // Queues a packet for sending in the negotiated version (written once per loop turn).
    virtual void send(const mqtt::Packet &packet) = 0;
    // Queues a PUBLISH whose topic, payload and properties belong to `message`, which the
    // link may keep referencing until written. Returns false (and sends nothing) when it
    // would exceed the client's Maximum Packet Size.
    virtual bool send_publish(const mqtt::PublishRef &publish, const MessagePtr &message) = 0;
    // Bytes queued but not yet written: the broker stops sending above its high-water mark.
    virtual size_t pending_bytes() const = 0;
    // Version for decoding and encoding every packet after CONNECT.
    virtual void set_version(mqtt::Version version) = 0;
    // Keep-alive the connection enforces (1.5 x seconds without a packet; 0 = off).
    virtual void set_keep_alive(uint16_t seconds) = 0;
    // Largest packet the client accepts (its Maximum Packet Size).
    virtual void set_max_outgoing_packet(uint32_t bytes) = 0;
    // Writes what is queued, then closes. Idempotent; the broker hears of it via on_close.
    virtual void close() = 0;

    // An internal client (a bridge's local side) rather than a network connection: it may
    // use a "$bridge/" client id and is not redirected.
    virtual bool internal() const { return false; }
    // The client's address (IP without port) for abuse counters and bans; empty when there
    // is none (internal clients, tests).
    virtual std::string_view peer() const { return {}; }
    // Who the transport authenticated (a verified TLS client certificate's CN or SAN, as
    // the listener chose); empty when nobody.
    virtual std::string_view certificate_identity() const { return {}; }
    // Overrides for the session of an internal client, 0 = the broker's settings: outgoing
    // QoS 1/2 in flight, and the queue's message and payload-byte limits.
    virtual uint16_t inflight_window() const { return 0; }
    virtual uint32_t queue_max_messages() const { return 0; }
    virtual uint64_t queue_max_bytes() const { return 0; }
    // Seconds a message may wait in the queue before it is dropped, 0 = no limit.
    virtual uint32_t queue_max_age() const { return 0; }
    // When the queue is full: true refuses new QoS 1/2 PUBLISHes bound for it (0x97),
    // false drops the oldest queued message.
    virtual bool queue_refuses_when_full() const { return false; }

  protected:
    ~Link() = default;
};

} // namespace ferrymq::broker
