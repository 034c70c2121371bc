// SPDX-License-Identifier: Apache-2.0
#include "bench/client.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <variant>

namespace ferrymq::bench {

namespace {
// Output buffers larger than this are released after a write, so that a burst does not pin
// memory in each of 10,000 idle clients.
constexpr size_t kKeepCapacity = 16 * 1024;
// Frames from the broker are trusted to be sane but not unbounded.
constexpr uint32_t kMaxInboundPacket = 16u << 20;
} // namespace

Client::Client(uv_loop_t &loop, ClientOwner &owner, uint32_t index, mqtt::Version version,
               std::shared_ptr<const net::TlsContext> tls)
    : owner_(owner), index_(index), version_(version), tls_context_(std::move(tls)) {
    uv_tcp_init(&loop, &handle_);
    handle_.data = this;
    connect_req_.data = this;
    write_req_.data = this;
}

Client::~Client() {
    // Destroying an open handle would leave libuv pointing at freed memory.
    if (state_ != State::closed) {
        std::abort();
    }
}

int Client::connect(const sockaddr &address, std::string client_id, uint16_t keep_alive,
                    SessionOptions session) {
    client_id_ = std::move(client_id);
    keep_alive_ = keep_alive;
    session_ = session;
    const int rc = uv_tcp_connect(&connect_req_, &handle_, &address, [](uv_connect_t *req, int s) {
        static_cast<Client *>(req->data)->on_connect(s);
    });
    if (rc != 0) {
        failed_ = true; // the caller reports the error it gets back
        close(false);
    }
    return rc;
}

void Client::on_connect(int status) {
    if (status == UV_ECANCELED) {
        return; // closed while connecting; on_closed() follows
    }
    if (status < 0) {
        fail(std::string("connect: ") + uv_err_name(status));
        return;
    }
    tcp_connected_ = true;
    uv_tcp_nodelay(&handle_, 1);
    const int rc = uv_read_start(
        reinterpret_cast<uv_stream_t *>(&handle_),
        [](uv_handle_t *h, size_t, uv_buf_t *buf) {
            static_cast<Client *>(h->data)->on_alloc(buf);
        },
        [](uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
            static_cast<Client *>(s->data)->on_read(nread, buf);
        });
    if (rc != 0) {
        fail(std::string("read: ") + uv_err_name(rc));
        return;
    }
    if (tls_context_) {
        tls_ = std::make_unique<net::TlsSession>(tls_context_);
        if (tls_->start() == net::TlsSession::Status::failed) {
            fail("TLS: " + tls_->error());
            return;
        }
        mark_dirty(); // the ClientHello; CONNECT follows the handshake
        return;
    }
    send_connect();
}

void Client::send_connect() {
    mqtt::Connect connect;
    connect.version = version_;
    connect.clean_start = session_.clean_start;
    connect.keep_alive = keep_alive_;
    connect.client_id = client_id_;
    if (version_ == mqtt::Version::v5 && session_.expiry_seconds != 0) {
        // Without it a 5.0 session ends with its connection, whatever Clean Start says.
        connect.properties.session_expiry_interval = session_.expiry_seconds;
    }
    state_ = State::awaiting_connack;
    send(connect);
}

void Client::subscribe(const std::string &filter, uint8_t qos) {
    mqtt::Subscribe subscribe;
    subscribe.packet_id = ++next_packet_id_ == 0 ? ++next_packet_id_ : next_packet_id_;
    mqtt::Subscription subscription;
    subscription.filter = filter;
    subscription.qos = qos;
    subscribe.subscriptions.push_back(std::move(subscription));
    send(subscribe);
}

void Client::send(const mqtt::Packet &packet) {
    if (state_ != State::awaiting_connack && state_ != State::ready) {
        return;
    }
    mqtt::encode(packet, version_, out_);
    mark_dirty();
}

void Client::publish(const mqtt::PublishRef &publish) {
    if (state_ != State::ready) {
        return;
    }
    // encode_publish() reserves the exact size it appends, which reallocates the whole
    // buffer on every call once a batch outgrows it; growing geometrically here first keeps
    // a batch of N messages at O(N) copies. The slack covers the fixed header, packet id and
    // an empty 5.0 property length.
    const size_t need = out_.size() + publish.topic.size() + publish.payload.size() + 16;
    if (out_.capacity() < need) {
        out_.reserve(std::max(need, out_.capacity() * 2));
    }
    mqtt::encode_publish(publish, version_, out_);
    mark_dirty();
}

void Client::mark_dirty() {
    if (!dirty_) {
        dirty_ = true;
        owner_.want_flush(*this);
    }
}

void Client::flush() {
    dirty_ = false;
    if (write_in_flight_ || !tcp_connected_ || state_ == State::closing ||
        state_ == State::closed) {
        return;
    }
    if (tls_ ? !tls_->seal_into(out_, writing_) : out_.empty()) {
        return;
    }
    if (!tls_) {
        writing_.swap(out_);
    }
    write_in_flight_ = true;
    uv_buf_t buf = uv_buf_init(reinterpret_cast<char *>(writing_.data()),
                               static_cast<unsigned>(writing_.size()));
    const int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t *>(&handle_), &buf, 1,
                            [](uv_write_t *req, int status) {
                                static_cast<Client *>(req->data)->on_write_done(status);
                            });
    if (rc != 0) {
        write_in_flight_ = false;
        fail(std::string("write: ") + uv_err_name(rc));
    }
}

void Client::on_write_done(int status) {
    write_in_flight_ = false;
    writing_.clear();
    if (writing_.capacity() > kKeepCapacity) {
        writing_.shrink_to_fit();
    }
    if (status == UV_ECANCELED) {
        return; // the handle is closing
    }
    if (status < 0) {
        fail(std::string("write: ") + uv_err_name(status));
        return;
    }
    if (state_ == State::draining && !has_output()) {
        close(false);
        return;
    }
    if (has_output()) {
        flush();
    }
}

void Client::disconnect() {
    if (state_ != State::ready && state_ != State::awaiting_connack) {
        if (state_ == State::connecting) {
            close(false);
        }
        return;
    }
    send(mqtt::Disconnect{});
    state_ = State::draining;
    uv_read_stop(reinterpret_cast<uv_stream_t *>(&handle_));
    if (!write_in_flight_) {
        flush();
    }
}

void Client::close(bool reset) {
    if (state_ == State::closing || state_ == State::closed) {
        return;
    }
    state_ = State::closing;
    uv_close_cb on_close = [](uv_handle_t *h) { static_cast<Client *>(h->data)->on_closed(); };
    // uv_tcp_close_reset() refuses a socket that never connected; those get a plain close.
    if (reset && tcp_connected_ && uv_tcp_close_reset(&handle_, on_close) == 0) {
        return;
    }
    uv_close(reinterpret_cast<uv_handle_t *>(&handle_), on_close);
}

void Client::on_closed() {
    state_ = State::closed;
    owner_.on_closed(*this);
}

void Client::fail(const std::string &what) {
    if (failed_ || state_ == State::closing || state_ == State::closed) {
        return;
    }
    failed_ = true;
    owner_.on_failed(*this, what);
    close(false);
}

void Client::on_alloc(uv_buf_t *buf) {
    in_.alloc(owner_.read_buffer(), buf);
}

void Client::on_read(ssize_t nread, const uv_buf_t *buf) {
    if (nread < 0) {
        fail(nread == UV_EOF ? std::string("closed by the broker")
                             : std::string("read: ") + uv_err_name(int(nread)));
        return;
    }
    const uint64_t recv_ns = uv_hrtime();
    if (tls_) {
        on_tls_read(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(buf->base), size_t(nread)),
            recv_ns);
        return;
    }
    in_.on_read(buf, size_t(nread),
                [this, recv_ns](std::span<const uint8_t> b) { return consume(b, recv_ns); });
}

void Client::on_tls_read(std::span<const uint8_t> ciphertext, uint64_t recv_ns) {
    const bool was_established = tls_->established();
    std::span<const uint8_t> plaintext;
    const net::TlsSession::Status status = tls_->receive(ciphertext, plaintext);
    if (status == net::TlsSession::Status::failed) {
        fail("TLS: " + tls_->error());
        return;
    }
    if (!tls_->output().empty()) {
        mark_dirty();
    }
    if (!was_established && tls_->established()) {
        send_connect();
    }
    in_.push(plaintext,
             [this, recv_ns](std::span<const uint8_t> b) { return consume(b, recv_ns); });
    if (status == net::TlsSession::Status::closed) {
        fail("TLS closed by the broker");
    }
}

// Hands every complete frame in `bytes` to handle(); returns the bytes consumed.
size_t Client::consume(std::span<const uint8_t> bytes, uint64_t recv_ns) {
    size_t used = 0;
    while (!failed_ && used < bytes.size()) {
        const std::span<const uint8_t> avail = bytes.subspan(used);
        const mqtt::FrameHeader h = mqtt::parse_frame_header(avail, kMaxInboundPacket);
        if (h.status == mqtt::FrameHeader::Status::error) {
            fail(std::string("bad frame from the broker: ") + h.error.what);
            return bytes.size();
        }
        if (h.status == mqtt::FrameHeader::Status::need_more || avail.size() < h.total_length()) {
            break;
        }
        mqtt::Result<mqtt::Packet> r = mqtt::decode(avail.first(h.total_length()), version_);
        used += h.total_length();
        if (!r.ok()) {
            fail(std::string("undecodable packet from the broker: ") + r.error().what);
            return bytes.size();
        }
        if (!handle(std::move(r.value()), recv_ns)) {
            return bytes.size();
        }
    }
    return used;
}

// Acts on one packet from the broker; false when the client failed because of it.
bool Client::handle(mqtt::Packet &&packet, uint64_t recv_ns) {
    if (auto *publish = std::get_if<mqtt::Publish>(&packet)) {
        if (publish->qos == 1) {
            send(mqtt::Puback{{publish->packet_id, mqtt::Reason::success, {}}});
        } else if (publish->qos == 2) {
            fail("QoS 2 PUBLISH, which no scenario subscribes for");
            return false;
        }
        owner_.on_message(*this, *publish, recv_ns);
        return true;
    }
    if (auto *puback = std::get_if<mqtt::Puback>(&packet)) {
        owner_.on_acked(*this, puback->packet_id);
        return true;
    }
    if (auto *connack = std::get_if<mqtt::Connack>(&packet)) {
        if (state_ != State::awaiting_connack) {
            fail("unexpected CONNACK");
            return false;
        }
        if (connack->reason != mqtt::Reason::success) {
            fail("CONNACK refused: " + std::string(mqtt::reason_name(connack->reason)));
            return false;
        }
        state_ = State::ready;
        session_present_ = connack->session_present;
        receive_maximum_ = connack->properties.receive_maximum.value_or(65535);
        owner_.on_connected(*this);
        return true;
    }
    if (auto *suback = std::get_if<mqtt::Suback>(&packet)) {
        for (mqtt::Reason reason : suback->reasons) {
            if (uint8_t(reason) >= 0x80) {
                fail("SUBACK refused: " + std::string(mqtt::reason_name(reason)));
                return false;
            }
        }
        owner_.on_subscribed(*this);
        return true;
    }
    if (std::holds_alternative<mqtt::Pingresp>(packet)) {
        return true;
    }
    if (auto *disconnect = std::get_if<mqtt::Disconnect>(&packet)) {
        fail("DISCONNECT from the broker: " + std::string(mqtt::reason_name(disconnect->reason)));
        return false;
    }
    fail("unexpected " + std::string(mqtt::packet_type_name(mqtt::packet_type(packet))) +
         " from the broker");
    return false;
}

} // namespace ferrymq::bench
