// SPDX-License-Identifier: Apache-2.0
// The network side of a bridge: one MQTT client connection to an upstream broker, with the
// link state machine Idle -> Resolving -> Connecting -> (TlsHandshake) -> AwaitConnack ->
// Online -> Backoff,
// reconnects with exponential backoff and jitter, failover over an address list, and
// keep-alive that detects a half-open link. It frames and encodes packets; what they mean
// is the Bridge's business (UplinkOwner). With a tls block, a net::TlsSession sits between
// the socket and the MQTT bytes; nothing above it knows.
//
// Owned by its Bridge for the life of the broker. Every TCP handle it opens is freed in its
// close callback; stop() ends the state machine and closes what is open.
#pragma once

#include "config/config.hpp"
#include "mqtt/codec.hpp"
#include "net/read_buffer.hpp"
#include "net/tls.hpp"
#include "util/log.hpp"

#include <uv.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace ferrymq::bridge {

class Uplink;

// Implemented by the Bridge. Called from the Uplink's libuv callbacks, never from inside a
// send().
class UplinkOwner {
  public:
    // CONNACK with success arrived: the link is Online.
    virtual void on_uplink_online(const mqtt::Connack &connack) = 0;
    // A packet other than CONNACK and PINGRESP arrived while Online.
    virtual void on_uplink_packet(mqtt::Packet &&packet) = 0;
    // The link left Online (or an attempt failed); `reason` says why. Backoff follows.
    virtual void on_uplink_offline(const std::string &reason) = 0;
    // Output is queued: call Uplink::flush() before the loop sleeps.
    virtual void want_flush(Uplink &uplink) = 0;

  protected:
    ~UplinkOwner() = default;
};

class Uplink {
  public:
    enum class State : uint8_t {
        idle,          // not started, or stopped
        resolving,     // DNS lookup of the current address
        connecting,    // TCP connect in progress
        tls_handshake, // TCP connected, TLS handshake in progress
        await_connack, // CONNECT sent
        online,        // CONNACK success received
        backoff,       // waiting before the next attempt
    };
    static const char *state_name(State s);

    Uplink(uv_loop_t &loop, UplinkOwner &owner, const config::BridgeConfig &config, util::Log &log,
           std::shared_ptr<const net::TlsContext> tls = nullptr);
    ~Uplink();
    Uplink(const Uplink &) = delete;
    Uplink &operator=(const Uplink &) = delete;

    // Starts the first attempt.
    void start();
    // Sends DISCONNECT when Online, closes everything and stays Idle. `on_stopped` is
    // called once every handle is closed.
    void stop();
    bool stopped() const { return state_ == State::idle && handles_ == 0; }

    // Queues a packet (encoded for the negotiated version). Only while Online (CONNECT
    // is the uplink's own).
    void send(const mqtt::Packet &packet);
    // False (and nothing queued) when the packet is above the upstream's Maximum Packet Size.
    bool publish(const mqtt::PublishRef &publish);
    // Writes what is queued in one write.
    void flush();
    // Closes the connection (e.g. after a protocol error by the upstream) and backs off.
    void drop(const std::string &reason);

    State state() const { return state_; }
    bool online() const { return state_ == State::online; }
    mqtt::Version version() const { return version_; }
    size_t pending_bytes() const {
        return out_.size() + writing_.size() + (tls_ ? tls_->output().size() : 0);
    }
    uint64_t bytes_out() const { return bytes_out_; }
    uint64_t bytes_in() const { return bytes_in_; }
    uint64_t reconnects() const { return reconnects_; }
    const std::string &last_reason() const { return last_reason_; }
    std::string current_address() const;

  private:
    // One TCP connection attempt. Freed by its close callback; the Uplink forgets it first.
    struct Conn {
        uv_tcp_t tcp{};
        uv_connect_t connect_req{};
        uv_write_t write_req{};
        Uplink *uplink = nullptr; // null once the Uplink let go of it
    };

    void resolve();
    void on_resolved(uv_getaddrinfo_t *req, int status, addrinfo *res);
    void on_connected(int status);
    void on_read(ssize_t nread, const uv_buf_t *buf);
    void on_tls_read(std::span<const uint8_t> ciphertext);
    void send_connect();
    // SNI and the name the upstream certificate must carry.
    std::string server_name() const;
    bool has_output() const { return !out_.empty() || (tls_ && !tls_->output().empty()); }
    void want_flush();
    void on_write_done(int status);
    void on_timer();
    size_t consume(std::span<const uint8_t> bytes);
    void handle(mqtt::Packet &&packet);
    void fail(const std::string &reason);
    void close_conn();
    void enter_backoff();
    void set_state(State s);

    uv_loop_t &loop_;
    UplinkOwner &owner_;
    const config::BridgeConfig &config_;
    util::Log &log_;
    mqtt::Version version_;
    State state_ = State::idle;
    bool stopping_ = false;
    uv_timer_t timer_{};                  // backoff, connect timeout, keep-alive
    uv_getaddrinfo_t *resolve_ = nullptr; // the current lookup; freed by its callback
    Conn *conn_ = nullptr;                // the current attempt, if any
    int handles_ = 0;                     // open handles (timer + connections), for stopped()
    size_t address_index_ = 0;            // into config_.addresses
    uint32_t attempt_ = 0;                // failed attempts in a row, for the backoff
    bool write_in_flight_ = false;
    bool dirty_ = false;
    net::ReadBuffer in_;
    std::vector<uint8_t> read_shared_ = std::vector<uint8_t>(64 * 1024);
    std::vector<uint8_t> out_;
    std::vector<uint8_t> writing_;
    uint64_t last_sent_ms_ = 0;     // loop clock of the last write (for PINGREQ)
    uint64_t last_received_ms_ = 0; // loop clock of the last packet from upstream
    uint64_t online_since_ms_ = 0;  // loop clock of the latest CONNACK
    bool private_refused_ = false;  // the upstream refused the 3.1.1 bridge flag: sent no more
    bool sent_private_ = false;     // the current attempt's CONNECT carries the flag
    uint32_t max_packet_size_ = mqtt::kMaxRemainingLength + 5; // from CONNACK
    uint16_t keep_alive_ = 0; // negotiated (Server Keep Alive replaces ours)
    uint64_t bytes_out_ = 0;
    uint64_t bytes_in_ = 0;
    uint64_t reconnects_ = 0;
    std::string last_reason_;
    std::string logged_reason_; // the failure last logged, to log each change once
    std::shared_ptr<const net::TlsContext> tls_context_; // null: plain TCP
    std::unique_ptr<net::TlsSession> tls_;               // the current attempt's TLS state
    std::mt19937 rng_{std::random_device{}()};
};

} // namespace ferrymq::bridge
