// SPDX-License-Identifier: Apache-2.0
#include "bridge/uplink.hpp"

#include <algorithm>
#include <cmath>

namespace ferrymq::bridge {

namespace {

// How long one attempt may take from the lookup to CONNACK.
constexpr uint64_t kConnectTimeoutMs = 10'000;
// Keep-alive checks while Online.
constexpr uint64_t kTickMs = 250;
// Largest packet accepted from upstream.
constexpr uint32_t kMaxInbound = mqtt::kMaxRemainingLength + 5;

} // namespace

const char *Uplink::state_name(State s) {
    switch (s) {
    case State::idle:
        return "idle";
    case State::resolving:
        return "resolving";
    case State::connecting:
        return "connecting";
    case State::tls_handshake:
        return "tls_handshake";
    case State::await_connack:
        return "await_connack";
    case State::online:
        return "online";
    case State::backoff:
        return "backoff";
    }
    return "?";
}

Uplink::Uplink(uv_loop_t &loop, UplinkOwner &owner, const config::BridgeConfig &config,
               util::Log &log, std::shared_ptr<const net::TlsContext> tls)
    : loop_(loop), owner_(owner), config_(config), log_(log),
      version_(config.v5 ? mqtt::Version::v5 : mqtt::Version::v311), tls_context_(std::move(tls)) {}

Uplink::~Uplink() = default;

std::string Uplink::server_name() const {
    const std::string &name = tls_context_->settings().server_name;
    return name.empty() ? config_.addresses[address_index_].host : name;
}

void Uplink::want_flush() {
    if (!dirty_) {
        dirty_ = true;
        owner_.want_flush(*this);
    }
}

std::string Uplink::current_address() const {
    const config::Endpoint &e = config_.addresses[address_index_];
    return config::format_endpoint(e.host, e.port);
}

void Uplink::set_state(State s) {
    if (s != state_) {
        log_.debug("bridge %s: %s -> %s", config_.name.c_str(), state_name(state_), state_name(s));
        state_ = s;
    }
}

void Uplink::start() {
    uv_timer_init(&loop_, &timer_);
    timer_.data = this;
    ++handles_;
    stopping_ = false;
    resolve();
}

void Uplink::resolve() {
    set_state(State::resolving);
    const config::Endpoint &e = config_.addresses[address_index_];
    uv_timer_start(
        &timer_, [](uv_timer_t *t) { static_cast<Uplink *>(t->data)->on_timer(); },
        kConnectTimeoutMs, 0);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    // Each lookup has its own request: one abandoned by a timeout may still be running in
    // the thread pool, and its callback must find it, not a newer one.
    auto *req = new uv_getaddrinfo_t;
    req->data = this;
    ++handles_;
    resolve_ = req;
    const std::string port = std::to_string(e.port);
    const int rc = uv_getaddrinfo(
        &loop_, req,
        [](uv_getaddrinfo_t *r, int status, addrinfo *res) {
            static_cast<Uplink *>(r->data)->on_resolved(r, status, res);
        },
        e.host.c_str(), port.c_str(), &hints);
    if (rc != 0) {
        delete req;
        --handles_;
        resolve_ = nullptr;
        fail("cannot resolve " + current_address() + ": " + uv_err_name(rc));
    }
}

void Uplink::on_resolved(uv_getaddrinfo_t *req, int status, addrinfo *res) {
    const bool current = req == resolve_;
    --handles_;
    delete req;
    if (!current || stopping_ || status == UV_ECANCELED) {
        uv_freeaddrinfo(res);
        return;
    }
    resolve_ = nullptr;
    if (status < 0 || res == nullptr) {
        uv_freeaddrinfo(res);
        fail("cannot resolve " + current_address() + ": " + uv_err_name(status));
        return;
    }
    conn_ = new Conn;
    conn_->uplink = this;
    uv_tcp_init(&loop_, &conn_->tcp);
    ++handles_;
    conn_->tcp.data = conn_;
    conn_->connect_req.data = conn_;
    conn_->write_req.data = conn_;
    uv_tcp_nodelay(&conn_->tcp, 1);
    set_state(State::connecting);
    const int rc = uv_tcp_connect(&conn_->connect_req, &conn_->tcp, res->ai_addr,
                                  [](uv_connect_t *req, int st) {
                                      auto *c = static_cast<Conn *>(req->data);
                                      if (c->uplink != nullptr && c->uplink->conn_ == c) {
                                          c->uplink->on_connected(st);
                                      }
                                  });
    uv_freeaddrinfo(res);
    if (rc != 0) {
        fail("connect to " + current_address() + ": " + uv_err_name(rc));
    }
}

void Uplink::on_connected(int status) {
    if (status < 0) {
        fail("connect to " + current_address() + ": " + uv_err_name(status));
        return;
    }
    const int rc = uv_read_start(
        reinterpret_cast<uv_stream_t *>(&conn_->tcp),
        [](uv_handle_t *h, size_t, uv_buf_t *buf) {
            auto *c = static_cast<Conn *>(h->data);
            c->uplink->in_.alloc(c->uplink->read_shared_, buf);
        },
        [](uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
            auto *c = static_cast<Conn *>(s->data);
            if (c->uplink->conn_ == c) {
                c->uplink->on_read(nread, buf);
            }
        });
    if (rc != 0) {
        fail(std::string("read: ") + uv_err_name(rc));
        return;
    }
    if (tls_context_) {
        if (tls_context_->settings().insecure) {
            log_.warn("bridge %s: TLS to %s WITHOUT certificate verification (insecure: true)",
                      config_.name.c_str(), current_address().c_str());
        }
        set_state(State::tls_handshake);
        tls_ = std::make_unique<net::TlsSession>(tls_context_, server_name());
        if (tls_->start() == net::TlsSession::Status::failed) {
            fail("TLS to " + current_address() + ": " + tls_->error());
            return;
        }
        flush(); // the ClientHello
        return;
    }
    send_connect();
}

void Uplink::send_connect() {
    mqtt::Connect connect;
    connect.version = version_;
    connect.clean_start = config_.clean_start;
    connect.keep_alive = config_.keep_alive;
    connect.client_id = config_.client_id;
    connect.username = config_.username;
    connect.password = config_.password;
    sent_private_ = version_ != mqtt::Version::v5 && config_.try_private && !private_refused_;
    connect.bridge = sent_private_;
    if (version_ == mqtt::Version::v5) {
        if (config_.session_expiry != 0) {
            connect.properties.session_expiry_interval = config_.session_expiry;
        }
        connect.properties.receive_maximum = 65535;
    }
    set_state(State::await_connack);
    out_.clear();
    mqtt::encode(connect, version_, out_);
    bytes_out_ += out_.size();
    flush();
}

void Uplink::send(const mqtt::Packet &packet) {
    if (state_ != State::online) {
        return;
    }
    const size_t before = out_.size();
    mqtt::encode(packet, version_, out_);
    bytes_out_ += out_.size() - before;
    want_flush();
}

bool Uplink::publish(const mqtt::PublishRef &publish) {
    if (state_ != State::online) {
        return true;
    }
    const size_t before = out_.size();
    mqtt::encode_publish(publish, version_, out_);
    if (out_.size() - before > max_packet_size_) {
        out_.resize(before); // the upstream must not get it [MQTT-3.1.2-24]
        return false;
    }
    bytes_out_ += out_.size() - before;
    want_flush();
    return true;
}

void Uplink::flush() {
    dirty_ = false;
    if (conn_ == nullptr || write_in_flight_) {
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
    last_sent_ms_ = uv_now(&loop_);
    const int rc = uv_write(&conn_->write_req, reinterpret_cast<uv_stream_t *>(&conn_->tcp), &buf,
                            1, [](uv_write_t *req, int status) {
                                auto *c = static_cast<Conn *>(req->data);
                                if (c->uplink != nullptr && c->uplink->conn_ == c) {
                                    c->uplink->on_write_done(status);
                                }
                            });
    if (rc != 0) {
        write_in_flight_ = false;
        fail(std::string("write: ") + uv_err_name(rc));
    }
}

void Uplink::on_write_done(int status) {
    write_in_flight_ = false;
    writing_.clear();
    if (status < 0) {
        fail(std::string("write: ") + uv_err_name(status));
        return;
    }
    if (stopping_ && !has_output()) {
        close_conn();
        return;
    }
    if (has_output()) {
        want_flush();
    }
}

void Uplink::on_read(ssize_t nread, const uv_buf_t *buf) {
    if (nread < 0) {
        fail(nread == UV_EOF ? "closed by the upstream broker"
                             : std::string("read: ") + uv_err_name(static_cast<int>(nread)));
        return;
    }
    if (tls_) {
        on_tls_read(std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(buf->base),
                                             static_cast<size_t>(nread)));
        return;
    }
    bytes_in_ += static_cast<uint64_t>(nread); // MQTT bytes, like bytes_out_
    in_.on_read(buf, static_cast<size_t>(nread),
                [this](std::span<const uint8_t> b) { return consume(b); });
}

void Uplink::on_tls_read(std::span<const uint8_t> ciphertext) {
    const bool was_established = tls_->established();
    std::span<const uint8_t> plaintext;
    const net::TlsSession::Status status = tls_->receive(ciphertext, plaintext);
    if (status == net::TlsSession::Status::failed) {
        fail("TLS to " + current_address() + " (" + server_name() + "): " + tls_->error());
        return;
    }
    if (!tls_->output().empty()) {
        want_flush();
    }
    if (!was_established && tls_->established()) {
        log_.info("bridge %s: TLS to %s: %s", config_.name.c_str(), current_address().c_str(),
                  tls_->description().c_str());
        send_connect();
    }
    bytes_in_ += plaintext.size();
    in_.push(plaintext, [this](std::span<const uint8_t> b) { return consume(b); });
    if (status == net::TlsSession::Status::closed && conn_ != nullptr) {
        fail("closed by the upstream broker (TLS close_notify)");
    }
}

size_t Uplink::consume(std::span<const uint8_t> bytes) {
    size_t used = 0;
    Conn *conn = conn_;
    while (conn_ == conn && conn != nullptr && used < bytes.size()) {
        const std::span<const uint8_t> avail = bytes.subspan(used);
        const mqtt::FrameHeader h = mqtt::parse_frame_header(avail, kMaxInbound);
        if (h.status == mqtt::FrameHeader::Status::error) {
            fail(std::string("bad frame from upstream: ") + h.error.what);
            return bytes.size();
        }
        if (h.status == mqtt::FrameHeader::Status::need_more || avail.size() < h.total_length()) {
            in_.reserve(h.total_length());
            break;
        }
        mqtt::Result<mqtt::Packet> r = mqtt::decode(avail.first(h.total_length()), version_);
        used += h.total_length();
        if (!r.ok()) {
            fail(std::string("undecodable packet from upstream: ") + r.error().what);
            return bytes.size();
        }
        handle(std::move(r.value()));
    }
    return conn_ == conn ? used : bytes.size();
}

void Uplink::handle(mqtt::Packet &&packet) {
    last_received_ms_ = uv_now(&loop_);
    if (state_ == State::await_connack) {
        auto *ack = std::get_if<mqtt::Connack>(&packet);
        if (ack == nullptr) {
            fail("upstream sent a packet before CONNACK");
            return;
        }
        if (ack->reason != mqtt::Reason::success) {
            if (sent_private_ && ack->reason == mqtt::Reason::unsupported_protocol_version) {
                // It does not know the bridge flag: connect as a plain client; the echo
                // filter prevents loops instead.
                private_refused_ = true;
                fail("upstream refused the 3.1.1 bridge flag (try_private); retrying without it");
                return;
            }
            fail("upstream refused the connection: " + std::string(mqtt::reason_name(ack->reason)));
            return;
        }
        keep_alive_ = ack->properties.server_keep_alive.value_or(config_.keep_alive);
        max_packet_size_ = ack->properties.maximum_packet_size.value_or(kMaxInbound);
        if (attempt_ != 0 || reconnects_ != 0 || !logged_reason_.empty()) {
            log_.info("bridge %s: online again (%s)", config_.name.c_str(),
                      current_address().c_str());
        } else {
            log_.info("bridge %s: online (%s)", config_.name.c_str(), current_address().c_str());
        }
        ++reconnects_;
        attempt_ = 0;
        online_since_ms_ = uv_now(&loop_);
        logged_reason_.clear();
        set_state(State::online);
        uv_timer_start(
            &timer_, [](uv_timer_t *t) { static_cast<Uplink *>(t->data)->on_timer(); }, kTickMs,
            kTickMs);
        owner_.on_uplink_online(*ack);
        return;
    }
    if (state_ != State::online) {
        return;
    }
    if (std::holds_alternative<mqtt::Pingresp>(packet)) {
        return;
    }
    if (auto *d = std::get_if<mqtt::Disconnect>(&packet)) {
        fail("DISCONNECT from upstream: " + std::string(mqtt::reason_name(d->reason)));
        return;
    }
    owner_.on_uplink_packet(std::move(packet));
}

void Uplink::on_timer() {
    const uint64_t now = uv_now(&loop_);
    switch (state_) {
    case State::backoff:
        resolve();
        return;
    case State::resolving:
    case State::connecting:
    case State::tls_handshake:
    case State::await_connack:
        fail("no CONNACK from " + current_address() + " within " +
             std::to_string(kConnectTimeoutMs / 1000) + " s");
        return;
    case State::online:
        if (address_index_ != 0 && config_.failback != 0 &&
            now - online_since_ms_ >= uint64_t{config_.failback} * 1000) {
            // On a backup for long enough: try the first address again (if it is still
            // down, the next failure moves on to the backup once more).
            address_index_ = 0;
            fail("failing back to the first address " + current_address());
            return;
        }
        if (keep_alive_ != 0) {
            // A link that delivers nothing for 1.5 x keep-alive is half-open [MQTT-3.1.2-22
            // applied to ourselves]: our PINGREQ after keep-alive got no answer.
            if (now - last_received_ms_ > uint64_t{keep_alive_} * 1500) {
                fail("keep-alive: nothing from upstream for " +
                     std::to_string(keep_alive_ * 3 / 2) + " s (half-open link)");
                return;
            }
            if (now - last_sent_ms_ >= uint64_t{keep_alive_} * 1000 ||
                now - last_received_ms_ >= uint64_t{keep_alive_} * 1000) {
                send(mqtt::Pingreq{});
                flush();
            }
        }
        return;
    case State::idle:
        return;
    }
}

void Uplink::fail(const std::string &reason) {
    if (state_ == State::idle || state_ == State::backoff) {
        return;
    }
    const bool was_online = state_ == State::online;
    if (state_ == State::await_connack && sent_private_ && !private_refused_ &&
        reason.starts_with("closed by")) {
        // Some brokers close instead of answering an unknown protocol level.
        private_refused_ = true;
    }
    last_reason_ = reason;
    if (reason != logged_reason_) {
        log_.warn("bridge %s: %s", config_.name.c_str(), reason.c_str());
        logged_reason_ = reason;
    } else {
        log_.debug("bridge %s: %s", config_.name.c_str(), reason.c_str());
    }
    close_conn();
    if (!was_online) {
        // The next attempt goes to the next address; after a full round, the first again.
        address_index_ = (address_index_ + 1) % config_.addresses.size();
    }
    enter_backoff();
    owner_.on_uplink_offline(reason);
}

void Uplink::drop(const std::string &reason) {
    fail(reason);
}

void Uplink::close_conn() {
    if (resolve_ != nullptr) {
        uv_cancel(reinterpret_cast<uv_req_t *>(resolve_)); // its callback frees it
        resolve_ = nullptr;
    }
    out_.clear();
    dirty_ = false;
    in_ = net::ReadBuffer();
    tls_.reset();
    if (conn_ == nullptr) {
        return;
    }
    Conn *c = conn_;
    conn_ = nullptr;
    // The write buffer must outlive a write the close cancels: keep it with the Conn.
    write_in_flight_ = false;
    uv_close(reinterpret_cast<uv_handle_t *>(&c->tcp), [](uv_handle_t *h) {
        auto *conn = static_cast<Conn *>(h->data);
        --conn->uplink->handles_;
        delete conn;
    });
    writing_.clear();
}

void Uplink::enter_backoff() {
    if (stopping_) {
        set_state(State::idle);
        return;
    }
    set_state(State::backoff);
    const double base =
        std::min<double>(config_.backoff_max_ms, config_.backoff_min_ms * std::pow(2.0, attempt_));
    const double jitter = base * config_.backoff_jitter / 100.0;
    std::uniform_real_distribution<double> spread(-jitter, jitter);
    const uint64_t delay = static_cast<uint64_t>(std::max(10.0, base + spread(rng_)));
    attempt_ = std::min<uint32_t>(attempt_ + 1, 30);
    uv_timer_start(
        &timer_, [](uv_timer_t *t) { static_cast<Uplink *>(t->data)->on_timer(); }, delay, 0);
}

void Uplink::stop() {
    if (stopping_) {
        return;
    }
    stopping_ = true;
    if (state_ == State::online && conn_ != nullptr) {
        mqtt::encode(mqtt::Disconnect{}, version_, out_);
        state_ = State::idle;
        flush();
        if (!write_in_flight_) {
            close_conn();
        }
    } else {
        close_conn();
        state_ = State::idle;
    }
    if (handles_ > 0 && !uv_is_closing(reinterpret_cast<uv_handle_t *>(&timer_))) {
        uv_close(reinterpret_cast<uv_handle_t *>(&timer_),
                 [](uv_handle_t *h) { --static_cast<Uplink *>(h->data)->handles_; });
    }
}

} // namespace ferrymq::bridge
