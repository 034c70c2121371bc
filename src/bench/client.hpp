// SPDX-License-Identifier: Apache-2.0
// One MQTT client connection of the load generator: TCP connect, CONNECT/CONNACK, then
// whatever the scenario asks (SUBSCRIBE, PUBLISH), with every outgoing packet of a loop
// turn written in one uv_write. Incoming frames are decoded with our codec and handed to
// the owner. Owned by a bench::Fleet (unique_ptr) from creation until after its close
// callback; it never deletes itself.
#pragma once

#include "mqtt/codec.hpp"

#include "net/read_buffer.hpp"
#include "net/tls.hpp"

#include <uv.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ferrymq::bench {

class Client;

// Implemented by whoever owns the clients. Every callback runs on the loop thread from
// inside one of the client's own libuv callbacks, so it must not destroy the client.
class ClientOwner {
  public:
    // CONNACK with success arrived.
    virtual void on_connected(Client &c) = 0;
    // SUBACK granting every filter arrived.
    virtual void on_subscribed(Client &c) = 0;
    // A PUBLISH arrived; `recv_ns` is uv_hrtime() when its bytes were read. A QoS 1
    // PUBLISH has already been acknowledged by the client.
    virtual void on_message(Client &c, const mqtt::Publish &publish, uint64_t recv_ns) = 0;
    // A PUBACK for one of our QoS 1 PUBLISHes arrived.
    virtual void on_acked(Client &c, uint16_t packet_id) = 0;
    // The connection failed or was closed by the broker; `what` says how. The client is
    // closing itself; on_closed() follows.
    virtual void on_failed(Client &c, const std::string &what) = 0;
    // The handle is closed; the client may be destroyed once this call has returned.
    virtual void on_closed(Client &c) = 0;
    // `c` has output queued: call flush() before the loop sleeps.
    virtual void want_flush(Client &c) = 0;
    // One read buffer shared by every client (the loop reads one socket at a time).
    virtual std::vector<uint8_t> &read_buffer() = 0;

  protected:
    ~ClientOwner() = default;
};

// The session a CONNECT asks for: a clean one (every scenario but durable), or a persistent
// one that outlives the connection, to be resumed by a later CONNECT with the same id.
struct SessionOptions {
    bool clean_start = true;     // Clean Start (5.0), clean session (3.1.1)
    uint32_t expiry_seconds = 0; // 5.0 Session Expiry Interval; 3.1.1 has none to send
};

class Client final {
  public:
    enum class State : uint8_t {
        connecting,       // TCP connect in progress
        awaiting_connack, // CONNECT sent
        ready,            // CONNACK received; may publish and subscribe
        draining,         // DISCONNECT queued; closes once it is written
        closing,          // uv_close called
        closed,           // close callback ran
    };

    // `index` is the owner's name for this client. The handle is initialised here, so the
    // client must be closed before it is destroyed.
    // With `tls`, the connection speaks TLS (the context names the server and its CA).
    Client(uv_loop_t &loop, ClientOwner &owner, uint32_t index, mqtt::Version version,
           std::shared_ptr<const net::TlsContext> tls = nullptr);
    ~Client();
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    // Starts the TCP connect; CONNECT follows on success. Returns a libuv error (0 = ok);
    // on error the client has started closing itself and on_closed() follows.
    int connect(const sockaddr &address, std::string client_id, uint16_t keep_alive,
                SessionOptions session = {});
    // Queues a SUBSCRIBE for one filter.
    void subscribe(const std::string &filter, uint8_t qos);
    // Queues any packet.
    void send(const mqtt::Packet &packet);
    // Queues a PUBLISH without building an mqtt::Publish.
    void publish(const mqtt::PublishRef &publish);
    // Writes everything queued as one write, unless a write is already in flight (then
    // its completion writes the rest).
    void flush();
    // Sends DISCONNECT and closes once it has been written.
    void disconnect();
    // Closes now. With `reset` an established connection is ended with RST instead of FIN,
    // which leaves no TIME_WAIT socket behind after a 10,000-connection scenario.
    void close(bool reset);

    uint32_t index() const { return index_; }
    State state() const { return state_; }
    bool ready() const { return state_ == State::ready; }
    // Whether the CONNACK said the broker resumed a session it kept for this client id.
    bool session_present() const { return session_present_; }
    // QoS 1/2 PUBLISHes the broker accepts unacknowledged (its CONNACK Receive Maximum;
    // 65535 without one, and for 3.1.1).
    uint16_t receive_maximum() const { return receive_maximum_; }
    // Bytes queued or being written: the sender's own backlog.
    size_t pending_bytes() const {
        return out_.size() + writing_.size() + (tls_ ? tls_->output().size() : 0);
    }

  private:
    void on_connect(int status);
    void on_alloc(uv_buf_t *buf);
    void on_read(ssize_t nread, const uv_buf_t *buf);
    void on_write_done(int status);
    void on_closed();
    size_t consume(std::span<const uint8_t> bytes, uint64_t recv_ns);
    bool handle(mqtt::Packet &&packet, uint64_t recv_ns);
    void fail(const std::string &what);
    void mark_dirty();
    void send_connect();
    void on_tls_read(std::span<const uint8_t> ciphertext, uint64_t recv_ns);
    bool has_output() const { return !out_.empty() || (tls_ && !tls_->output().empty()); }

    uv_tcp_t handle_{};
    uv_connect_t connect_req_{};
    uv_write_t write_req_{};
    ClientOwner &owner_;
    uint32_t index_;
    mqtt::Version version_;
    State state_ = State::connecting;
    bool tcp_connected_ = false;
    bool write_in_flight_ = false;
    bool dirty_ = false;
    bool failed_ = false;
    bool session_present_ = false;
    uint16_t receive_maximum_ = 65535;
    uint16_t next_packet_id_ = 0;
    std::string client_id_;
    uint16_t keep_alive_ = 0;
    SessionOptions session_;
    net::ReadBuffer in_;                                 // bytes not yet cut into frames
    std::vector<uint8_t> out_;                           // encoded this turn, not yet written
    std::vector<uint8_t> writing_;                       // owned by the write in flight
    std::shared_ptr<const net::TlsContext> tls_context_; // null: plain TCP
    std::unique_ptr<net::TlsSession> tls_;               // from the TCP connect on
};

} // namespace ferrymq::bench
