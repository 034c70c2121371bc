// SPDX-License-Identifier: Apache-2.0
#include "net/connection.hpp"

#include <arpa/inet.h>

#include <cinttypes>
#include <cstring>

namespace ferrymq::net {

namespace {
// Output buffers larger than this are released after a write instead of kept for reuse,
// so one burst does not pin memory for an idle connection.
constexpr size_t kKeepCapacity = 16 * 1024;
// Smaller buffers are not worth keeping between writes.
constexpr size_t kReuseCapacity = 256;
// Payloads at least this large are written by reference to the shared message.
constexpr size_t kSharedPayloadMin = 1024;
} // namespace

Connection::Connection(uv_loop_t &loop, uint64_t id, broker::Broker &broker, ConnectionOwner &owner,
                       uint32_t max_packet_size, uint32_t buffer_limit,
                       const broker::ListenerPolicy &policy, util::Log &log,
                       std::shared_ptr<const TlsContext> tls)
    : id_(id), broker_(broker), owner_(owner), log_(log), policy_(policy),
      max_packet_size_(max_packet_size), buffer_limit_(buffer_limit), tls_context_(std::move(tls)) {
    uv_tcp_init(&loop, &handle_);
    handle_.data = this;
}

Connection::~Connection() {
    // Destroying an open handle would leave libuv pointing at freed memory.
    if (state_ != State::closed) {
        std::abort();
    }
}

void Connection::start() {
    opened_ms_ = last_packet_ms_ = owner_.now_ms();
    sockaddr_storage addr{};
    int len = sizeof addr;
    if (uv_tcp_getpeername(&handle_, reinterpret_cast<sockaddr *>(&addr), &len) == 0) {
        char text[INET6_ADDRSTRLEN] = "";
        if (addr.ss_family == AF_INET) {
            uv_ip4_name(reinterpret_cast<const sockaddr_in *>(&addr), text, sizeof text);
        } else if (addr.ss_family == AF_INET6) {
            uv_ip6_name(reinterpret_cast<const sockaddr_in6 *>(&addr), text, sizeof text);
        }
        peer_ = text;
    }
    if (!broker_.admit(*this, opened_ms_)) {
        // Banned or over the connection rate: closed before the broker knows of it.
        close_handle();
        return;
    }
    uv_tcp_nodelay(&handle_, 1);
    if (tls_context_) {
        tls_ = std::make_unique<TlsSession>(std::move(tls_context_));
    }
    broker_.on_open(*this);
    start_reading();
}

void Connection::start_reading() {
    const int rc = uv_read_start(
        reinterpret_cast<uv_stream_t *>(&handle_),
        [](uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
            static_cast<Connection *>(h->data)->on_alloc(suggested, buf);
        },
        [](uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
            static_cast<Connection *>(s->data)->on_read(nread, buf);
        });
    if (rc != 0) {
        log_.warn("connection %" PRIu64 ": cannot read: %s", id_, uv_err_name(rc));
        close_handle();
    }
}

void Connection::pause_reading() {
    if (paused_ || state_ != State::open) {
        return;
    }
    paused_ = true;
    uv_read_stop(reinterpret_cast<uv_stream_t *>(&handle_));
    owner_.on_paused(*this);
}

void Connection::resume_reading() {
    if (!paused_ || state_ != State::open) {
        return;
    }
    paused_ = false;
    // Frames that arrived before the pause are still in `in_`.
    in_.replay([this](std::span<const uint8_t> b) { return consume(b); });
    if (paused_ || state_ != State::open) {
        return;
    }
    start_reading();
}

void Connection::on_alloc(size_t, uv_buf_t *buf) {
    in_.alloc(owner_.read_buffer(), buf);
}

void Connection::on_read(ssize_t nread, const uv_buf_t *buf) {
    if (nread < 0) {
        if (nread != UV_EOF) {
            log_.debug("connection %" PRIu64 ": read error %s", id_, uv_err_name(int(nread)));
        }
        close_handle();
        return;
    }
    if (tls_) {
        on_tls_read(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(buf->base), size_t(nread)));
        return;
    }
    in_.on_read(buf, size_t(nread), [this](std::span<const uint8_t> b) { return consume(b); });
}

void Connection::on_tls_read(std::span<const uint8_t> ciphertext) {
    const bool was_established = tls_->established();
    std::span<const uint8_t> plaintext;
    const TlsSession::Status status = tls_->receive(ciphertext, plaintext);
    if (status == TlsSession::Status::failed) {
        log_.info("connection %" PRIu64 " from %s: TLS %s failed: %s", id_, peer_.c_str(),
                  was_established ? "record" : "handshake", tls_->error().c_str());
        broker_.on_transport_refused(*this, tls_->credentials_refused(), owner_.now_ms());
        close_handle();
        return;
    }
    if (!was_established && tls_->established()) {
        identity_ = tls_->peer_identity(tls_->context().settings().identity_as_username);
        log_.debug("connection %" PRIu64 ": %s%s%s", id_, tls_->description().c_str(),
                   identity_.empty() ? "" : ", certificate of ", identity_.c_str());
    }
    if (!tls_->output().empty()) {
        mark_dirty(); // handshake messages
    }
    in_.push(plaintext, [this](std::span<const uint8_t> b) { return consume(b); });
    if (status == TlsSession::Status::closed && state_ == State::open) {
        close_handle();
    }
}

// Hands every complete frame in `bytes` to the broker; returns the bytes consumed.
size_t Connection::consume(std::span<const uint8_t> bytes) {
    size_t used = 0;
    while (state_ == State::open && !paused_ && used < bytes.size()) {
        const std::span<const uint8_t> avail = bytes.subspan(used);
        const mqtt::FrameHeader h = mqtt::parse_frame_header(avail, max_packet_size_);
        if (h.status == mqtt::FrameHeader::Status::error) {
            // Refused before the body is buffered.
            broker_.on_decode_error(*this, h.error, avail.first(std::min<size_t>(avail.size(), 5)),
                                    owner_.now_ms());
            return bytes.size();
        }
        if (h.status == mqtt::FrameHeader::Status::need_more || avail.size() < h.total_length()) {
            if (h.status == mqtt::FrameHeader::Status::ok) {
                in_.reserve(h.total_length()); // room for the whole frame at once
            }
            break;
        }
        const auto frame = avail.first(h.total_length());
        used += h.total_length();
        last_packet_ms_ = owner_.now_ms();
        mqtt::Result<mqtt::Packet> r = mqtt::decode(frame, version_);
        if (!r.ok()) {
            broker_.on_decode_error(*this, r.error(), frame, last_packet_ms_);
            return bytes.size();
        }
        // Only publishers add load; acknowledgements from subscribers drain it.
        const bool publish = std::holds_alternative<mqtt::Publish>(r.value());
        broker_.on_packet(*this, std::move(r.value()), last_packet_ms_);
        if ((publish && broker_.overloaded()) || pending_bytes() > buffer_limit_) {
            pause_reading();
        }
    }
    return used;
}

void Connection::send(const mqtt::Packet &packet) {
    if (state_ != State::open && state_ != State::draining) {
        return;
    }
    mqtt::encode(packet, version_, out_.bytes());
    mark_dirty();
}

bool Connection::send_publish(const mqtt::PublishRef &publish, const broker::MessagePtr &message) {
    if (state_ != State::open) {
        return true; // the session keeps it in flight and resends it on reconnect
    }
    std::vector<uint8_t> &bytes = out_.bytes();
    const size_t before = bytes.size();
    // Large payloads are written from the shared message instead of being copied.
    const bool by_reference = publish.payload.size() >= kSharedPayloadMin;
    mqtt::encode_publish(publish, version_, bytes, !by_reference);
    const size_t size = bytes.size() - before + (by_reference ? publish.payload.size() : 0);
    if (size > max_outgoing_) {
        bytes.resize(before);
        return false;
    }
    if (by_reference) {
        out_.append_shared(message, publish.payload);
    }
    mark_dirty();
    return true;
}

void Connection::mark_dirty() {
    if (!dirty_) {
        dirty_ = true;
        owner_.want_flush(*this);
    }
}

void Connection::flush() {
    dirty_ = false;
    if (write_ || state_ == State::closing || state_ == State::closed) {
        return;
    }
    if (tls_ && tls_->established()) {
        // Encrypted here, after the turn's commit, in the order the broker queued it.
        out_.for_each([this](std::span<const uint8_t> piece) { tls_->send(piece); });
        out_.clear(kKeepCapacity);
        if (state_ == State::draining && !close_notify_sent_) {
            close_notify_sent_ = true;
            tls_->close_notify();
        }
    }
    if (!has_output()) {
        return;
    }
    write_ = std::make_unique<WriteRequest>();
    write_->req.data = this;
    if (tls_) {
        write_->data.bytes().swap(tls_->output());
    } else {
        write_->data.swap(out_);
    }
    write_->data.to_bufs(write_->bufs);
    const int rc =
        uv_write(&write_->req, reinterpret_cast<uv_stream_t *>(&handle_), write_->bufs.data(),
                 static_cast<unsigned>(write_->bufs.size()), [](uv_write_t *req, int status) {
                     static_cast<Connection *>(req->data)->on_write_done(status);
                 });
    if (rc != 0) {
        write_.reset();
        log_.debug("connection %" PRIu64 ": write failed: %s", id_, uv_err_name(rc));
        close_handle();
    }
}

void Connection::on_write_done(int status) {
    std::unique_ptr<WriteRequest> done = std::move(write_);
    // A busy connection reuses the finished buffer for its next turn; an idle one keeps
    // nothing.
    done->data.clear(kKeepCapacity);
    if (done->data.bytes().capacity() >= kReuseCapacity) {
        if (tls_ && tls_->output().empty()) {
            tls_->output().swap(done->data.bytes());
        } else if (!tls_ && out_.empty()) {
            out_.swap(done->data);
        }
    }
    done.reset();
    if (status < 0) {
        log_.debug("connection %" PRIu64 ": write error %s", id_, uv_err_name(status));
        close_handle();
        return;
    }
    if (state_ == State::draining && !has_output()) {
        close_handle();
        return;
    }
    if (has_output()) {
        // Not written from here: output leaves only from the owner's flush, after the
        // turn's group commit, so a PUBREL never overtakes the write of its new state.
        mark_dirty();
    }
    if (state_ == State::open) {
        if (paused_ && pending_bytes() <= buffer_limit_ / 2 && !broker_.overloaded()) {
            resume_reading();
        }
        broker_.on_writable(*this);
    }
}

void Connection::close() {
    if (state_ != State::open) {
        return;
    }
    state_ = State::draining;
    uv_read_stop(reinterpret_cast<uv_stream_t *>(&handle_));
    if (!write_) {
        if (!has_output() && !(tls_ && tls_->established())) {
            close_handle();
        } else {
            // Written by the owner's flush, after the turn's commit (TLS ends with a
            // close_notify).
            mark_dirty();
        }
    }
}

void Connection::abort() {
    close_handle();
}

void Connection::close_handle() {
    if (state_ == State::closing || state_ == State::closed) {
        return;
    }
    state_ = State::closing;
    uv_close(reinterpret_cast<uv_handle_t *>(&handle_),
             [](uv_handle_t *h) { static_cast<Connection *>(h->data)->on_closed(); });
}

void Connection::on_closed() {
    state_ = State::closed;
    broker_.on_close(*this, owner_.now_ms());
    owner_.on_connection_closed(*this);
}

void Connection::check_timers(uint64_t now_ms, uint64_t connect_timeout_ms) {
    if (state_ != State::open) {
        return;
    }
    if (tls_ && !tls_->established() &&
        now_ms - opened_ms_ > uint64_t{tls_->context().settings().handshake_timeout} * 1000) {
        log_.info("connection %" PRIu64 " from %s: no TLS handshake in %u s", id_, peer_.c_str(),
                  tls_->context().settings().handshake_timeout);
        close_handle();
        return;
    }
    if (!broker_.connected(*this)) {
        if (now_ms - opened_ms_ > connect_timeout_ms) {
            log_.debug("connection %" PRIu64 ": no CONNECT in time", id_);
            close_handle();
        }
        return;
    }
    // [MQTT-3.1.2-24]: one and a half times the keep-alive without a packet.
    if (keep_alive_ms_ != 0 && now_ms - last_packet_ms_ > keep_alive_ms_ * 3 / 2) {
        broker_.on_keep_alive_timeout(*this, now_ms);
    }
}

} // namespace ferrymq::net
