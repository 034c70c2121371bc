// SPDX-License-Identifier: Apache-2.0
// The service manager's notification protocol (sd_notify), spoken directly: one datagram
// of "KEY=VALUE" lines to the AF_UNIX socket named by $NOTIFY_SOCKET. ferrymq uses it for
// READY=1 once its listeners are bound, STATUS= with a one-line summary, WATCHDOG=1 from
// the loop and STOPPING=1. Without $NOTIFY_SOCKET (not started by systemd) it does nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ferrymq::util {

// Created by main() from the environment and handed to app::Server, which owns it until
// run() returns. It holds one datagram socket, opened on the first notify().
class Notifier {
  public:
    // Disabled: notify() does nothing and returns true.
    Notifier() = default;
    // `socket_path` as in $NOTIFY_SOCKET: a file system path, or an abstract socket name
    // written with a leading '@'. Empty: disabled. `watchdog_usec`: how often systemd wants
    // WATCHDOG=1 at the latest, 0 for no watchdog.
    explicit Notifier(std::string socket_path, uint64_t watchdog_usec = 0)
        : path_(std::move(socket_path)), watchdog_usec_(watchdog_usec) {}
    ~Notifier();

    Notifier(Notifier &&other) noexcept;
    Notifier &operator=(Notifier &&other) noexcept;
    Notifier(const Notifier &) = delete;
    Notifier &operator=(const Notifier &) = delete;

    // Reads $NOTIFY_SOCKET and the watchdog variables.
    static Notifier from_environment();

    bool enabled() const { return !path_.empty(); }
    // 0 when disabled or without a watchdog.
    uint64_t watchdog_usec() const { return path_.empty() ? 0 : watchdog_usec_; }

    // Sends `state` ("READY=1", "STATUS=...", several lines separated by '\n') as one
    // datagram. Returns false when the socket cannot be reached; the caller logs it once.
    bool notify(std::string_view state);

  private:
    std::string path_;
    uint64_t watchdog_usec_ = 0;
    int fd_ = -1;
};

// The watchdog interval systemd asks for in microseconds ($WATCHDOG_USEC, when
// $WATCHDOG_PID is unset or names this process), or 0 when there is no watchdog.
uint64_t watchdog_usec_from_environment();

} // namespace ferrymq::util
