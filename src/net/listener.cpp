// SPDX-License-Identifier: Apache-2.0
#include "net/listener.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace ferrymq::net {

namespace {

// Formats a bound socket address as HOST:PORT with IPv6 in brackets, or "" if unknown.
std::string format_sockaddr(const sockaddr_storage &address) {
    char host[INET6_ADDRSTRLEN] = {};
    uint16_t port = 0;
    if (address.ss_family == AF_INET) {
        const auto &v4 = reinterpret_cast<const sockaddr_in &>(address);
        uv_ip4_name(&v4, host, sizeof host);
        port = ntohs(v4.sin_port);
    } else if (address.ss_family == AF_INET6) {
        const auto &v6 = reinterpret_cast<const sockaddr_in6 &>(address);
        uv_ip6_name(&v6, host, sizeof host);
        port = ntohs(v6.sin6_port);
    } else {
        return {};
    }
    std::string text = address.ss_family == AF_INET6 ? "[" + std::string(host) + "]" : host;
    return text + ":" + std::to_string(port);
}

// A connection accepted only to be closed. It owns itself from reject() until its close
// callback, which deletes it; nothing else refers to it.
struct RejectedSocket {
    uv_tcp_t handle{};
};

} // namespace

Listener::Listener(uv_loop_t &loop, util::Log &log, ListenerHandler &handler)
    : log_(log), handler_(handler) {
    // uv_tcp_init() without flags creates no socket and cannot fail; the socket is made by
    // uv_tcp_bind() in listen().
    uv_tcp_init(&loop, &handle_);
    handle_.data = this;
}

Listener::~Listener() {
    if (state_ != State::closed) {
        // libuv still holds a pointer to handle_; carrying on would corrupt the loop later.
        std::fprintf(stderr, "ferrymq: Listener destroyed before its close callback\n");
        std::abort();
    }
}

int Listener::listen(const std::string &host, uint16_t port, int backlog) {
    sockaddr_storage address{};
    int rc = host.find(':') == std::string::npos
                 ? uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in *>(&address))
                 : uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6 *>(&address));
    if (rc == 0) {
        // IPV6ONLY keeps "[::]:1883" from also taking 0.0.0.0:1883, so both can be listed.
        unsigned flags = address.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
        rc = uv_tcp_bind(&handle_, reinterpret_cast<const sockaddr *>(&address), flags);
    }
    if (rc == 0) {
        rc = uv_listen(reinterpret_cast<uv_stream_t *>(&handle_), backlog,
                       [](uv_stream_t *server, int status) {
                           static_cast<Listener *>(server->data)->on_connection(status);
                       });
    }
    if (rc != 0) {
        return rc;
    }
    sockaddr_storage bound{};
    int length = sizeof bound;
    if (uv_tcp_getsockname(&handle_, reinterpret_cast<sockaddr *>(&bound), &length) == 0) {
        address_ = format_sockaddr(bound);
    }
    return 0;
}

int Listener::accept(uv_tcp_t &client) {
    return uv_accept(reinterpret_cast<uv_stream_t *>(&handle_),
                     reinterpret_cast<uv_stream_t *>(&client));
}

void Listener::reject() {
    auto socket = std::make_unique<RejectedSocket>();
    uv_tcp_init(handle_.loop, &socket->handle);
    socket->handle.data = socket.get();
    int rc = accept(socket->handle);
    if (rc != 0) {
        log_.warn("accept on %s failed: %s (%s)", address_.c_str(), uv_err_name(rc),
                  uv_strerror(rc));
    }
    // The handle is closed whether or not accept worked, since uv_tcp_init() opened it.
    uv_close(reinterpret_cast<uv_handle_t *>(&socket.release()->handle),
             [](uv_handle_t *h) { delete static_cast<RejectedSocket *>(h->data); });
}

void Listener::close() {
    if (state_ != State::open) {
        return;
    }
    state_ = State::closing;
    uv_close(reinterpret_cast<uv_handle_t *>(&handle_),
             [](uv_handle_t *h) { static_cast<Listener *>(h->data)->on_closed(); });
}

void Listener::on_connection(int status) {
    if (status < 0) {
        // Typically EMFILE or ENFILE. libuv has already dropped the waiting connections to
        // make progress and keeps listening, so this is worth a warning, not a stop.
        log_.warn("accept on %s failed: %s (%s)", address_.c_str(), uv_err_name(status),
                  uv_strerror(status));
        return;
    }
    handler_.on_accept(*this);
}

void Listener::on_closed() {
    state_ = State::closed;
    handler_.on_listener_closed(*this);
}

} // namespace ferrymq::net
