// SPDX-License-Identifier: Apache-2.0
// One client's TCP connection: reads bytes, cuts them into MQTT frames for the broker core,
// and batches everything the core sends into one write per loop turn. Owned by the
// app::Server's registry (unique_ptr) from accept until its close callback; it tells its
// owner when it may be destroyed and never deletes itself.
#pragma once

#include "broker/broker.hpp"
#include "broker/link.hpp"
#include "net/output_buffer.hpp"
#include "net/read_buffer.hpp"
#include "net/tls.hpp"
#include "util/log.hpp"

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ferrymq::net {

class Connection;

// Implemented by whoever owns the connections.
class ConnectionOwner {
  public:
    // `c` has output to write: flush it before the loop sleeps.
    virtual void want_flush(Connection &c) = 0;
    // `c` stopped reading for backpressure; call resume_reading() when the broker recovers.
    virtual void on_paused(Connection &c) = 0;
    // `c`'s handle is closed: destroy it (after this call returns).
    virtual void on_connection_closed(Connection &c) = 0;
    // Loop-clock milliseconds.
    virtual uint64_t now_ms() const = 0;
    // One read buffer shared by every connection (the loop reads one socket at a time).
    virtual std::vector<uint8_t> &read_buffer() = 0;

  protected:
    ~ConnectionOwner() = default;
};

class Connection final : public broker::Link {
  public:
    Connection(uv_loop_t &loop, uint64_t id, broker::Broker &broker, ConnectionOwner &owner,
               uint32_t max_packet_size, uint32_t buffer_limit,
               const broker::ListenerPolicy &policy, util::Log &log,
               std::shared_ptr<const TlsContext> tls = nullptr);
    ~Connection();
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    uv_tcp_t &handle() { return handle_; }
    // Starts reading and introduces the connection to the broker.
    void start();
    void start_reading();
    // Writes what the broker queued this turn, as one write.
    void flush();
    // Connect timeout and keep-alive, checked by the owner's periodic timer.
    void check_timers(uint64_t now_ms, uint64_t connect_timeout_ms);
    // Closes at once without flushing (the owner is stopping or the peer is gone).
    void abort();
    bool closed() const { return state_ == State::closed; }
    // Backpressure: stop reading while the broker is overloaded or this client does not
    // read what we send it; resumed by the owner or when the output drains.
    void pause_reading();
    void resume_reading();
    bool paused() const { return paused_; }

    // broker::Link
    uint64_t id() const override { return id_; }
    const broker::ListenerPolicy &policy() const override { return policy_; }
    std::string_view peer() const override { return peer_; }
    std::string_view certificate_identity() const override { return identity_; }
    void send(const mqtt::Packet &packet) override;
    bool send_publish(const mqtt::PublishRef &publish, const broker::MessagePtr &message) override;
    // Bytes the kernel has not accepted yet: this turn's output plus what libuv still
    // holds of the write in flight (not the part already sent).
    size_t pending_bytes() const override {
        return out_.size() + handle_.write_queue_size + (tls_ ? tls_->output().size() : 0);
    }
    void set_version(mqtt::Version version) override { version_ = version; }
    void set_keep_alive(uint16_t seconds) override { keep_alive_ms_ = uint64_t{seconds} * 1000; }
    void set_max_outgoing_packet(uint32_t bytes) override { max_outgoing_ = bytes; }
    void close() override;

  private:
    enum class State : uint8_t { open, draining, closing, closed };

    void on_alloc(size_t suggested, uv_buf_t *buf);
    void on_read(ssize_t nread, const uv_buf_t *buf);
    void on_write_done(int status);
    void on_closed();
    size_t consume(std::span<const uint8_t> bytes);
    void close_handle();
    void mark_dirty();
    void on_tls_read(std::span<const uint8_t> ciphertext);
    bool has_output() const { return !out_.empty() || (tls_ && !tls_->output().empty()); }

    uv_tcp_t handle_{};
    // One write in flight: the request and everything its buffers point at, released
    // together by the write callback. Allocated per write so idle connections carry none.
    struct WriteRequest {
        uv_write_t req{};
        OutputBuffer data;
        std::vector<uv_buf_t> bufs;
    };
    std::unique_ptr<WriteRequest> write_; // set while a write is in flight
    uint64_t id_;
    broker::Broker &broker_;
    ConnectionOwner &owner_;
    util::Log &log_;
    const broker::ListenerPolicy &policy_; // owned by the Server, outlives connections
    State state_ = State::open;
    mqtt::Version version_ = mqtt::Version::v311;
    uint32_t max_packet_size_;           // inbound limit, bytes
    uint32_t max_outgoing_ = UINT32_MAX; // the client's Maximum Packet Size
    uint64_t opened_ms_ = 0;
    uint64_t last_packet_ms_ = 0;
    uint64_t keep_alive_ms_ = 0;
    bool dirty_ = false;    // queued in the owner's flush list
    bool paused_ = false;   // reading stopped for backpressure
    uint32_t buffer_limit_; // unsent output bytes above which reading pauses
    std::string peer_;      // the client's IP address, set by start()
    ReadBuffer in_;         // received bytes not yet cut into frames
    OutputBuffer out_;      // encoded this turn, not yet written (plaintext)
    // TLS listeners: the shared context until start(), then this connection's session,
    // which takes out_ as plaintext and holds the ciphertext to write.
    std::shared_ptr<const TlsContext> tls_context_;
    std::unique_ptr<TlsSession> tls_;
    bool close_notify_sent_ = false;
    std::string identity_; // from the client certificate, when the listener uses it
};

} // namespace ferrymq::net
