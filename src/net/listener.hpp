// SPDX-License-Identifier: Apache-2.0
// A TCP listening socket on the libuv loop. It knows nothing about MQTT: each incoming
// connection is offered to a ListenerHandler, which accepts it into a handle it owns (a
// future Connection) or rejects it.
#pragma once

#include "util/log.hpp"

#include <uv.h>

#include <cstdint>
#include <string>

namespace ferrymq::net {

class Listener;

// Receives what happens on a Listener. Implemented by whoever owns the connections (for now
// the Server, later the broker layer); it must outlive every Listener it is given to.
class ListenerHandler {
  public:
    // A client is waiting. The handler must call listener.accept() or listener.reject()
    // exactly once before returning; otherwise libuv stops accepting on this socket.
    virtual void on_accept(Listener &listener) = 0;

    // The listening socket is closed and the Listener may now be destroyed.
    virtual void on_listener_closed(Listener &listener) { (void)listener; }

  protected:
    ~ListenerHandler() = default;
};

// Owns one embedded uv_tcp_t in listening mode. Held by unique_ptr by the object that
// created it; it lives from construction until after its close callback, and destroying it
// earlier aborts, because libuv still points at its memory.
class Listener {
  public:
    Listener(uv_loop_t &loop, util::Log &log, ListenerHandler &handler);
    ~Listener();

    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;

    // Binds to a numeric IPv4 or IPv6 `host` (no brackets) and starts listening; port 0
    // picks a free port. Call it once. Returns 0 or a negative libuv error code; on error
    // the caller still calls close().
    int listen(const std::string &host, uint16_t port, int backlog = 511);

    // The address actually bound, such as "127.0.0.1:34567" or "[::1]:34567", which tells
    // the real port after listening on port 0. Empty before listen() succeeded.
    const std::string &address() const { return address_; }

    // Accepts the waiting connection into `client`, which the caller has initialised with
    // uv_tcp_init() on the same loop and owns. Returns 0 or a negative libuv error code.
    int accept(uv_tcp_t &client);

    // Accepts the waiting connection and closes it at once, for when no connection may be
    // made (no broker yet, too many connections). Needs no handle from the caller.
    void reject();

    // Stops listening. Idempotent; the handler's on_listener_closed() follows from the loop.
    void close();

    // True once the close callback ran, i.e. when the Listener may be destroyed.
    bool closed() const { return state_ == State::closed; }

  private:
    enum class State : uint8_t { open, closing, closed };

    void on_connection(int status);
    void on_closed();

    uv_tcp_t handle_{};
    util::Log &log_;
    ListenerHandler &handler_;
    State state_ = State::open;
    std::string address_;
};

} // namespace ferrymq::net
