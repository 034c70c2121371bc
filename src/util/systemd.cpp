// SPDX-License-Identifier: Apache-2.0
#include "util/systemd.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace ferrymq::util {

Notifier::~Notifier() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

Notifier::Notifier(Notifier &&other) noexcept
    : path_(std::move(other.path_)), watchdog_usec_(other.watchdog_usec_),
      fd_(std::exchange(other.fd_, -1)) {
    other.path_.clear();
}

Notifier &Notifier::operator=(Notifier &&other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        path_ = std::exchange(other.path_, std::string());
        watchdog_usec_ = other.watchdog_usec_;
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

Notifier Notifier::from_environment() {
    const char *path = std::getenv("NOTIFY_SOCKET");
    return Notifier(path != nullptr ? path : "", watchdog_usec_from_environment());
}

bool Notifier::notify(std::string_view state) {
    if (path_.empty()) {
        return true;
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    // Only absolute paths and abstract names are valid (a relative one would depend on
    // the working directory); the name must fit sun_path.
    if ((path_[0] != '/' && path_[0] != '@') || path_.size() > sizeof address.sun_path) {
        return false;
    }
    std::memcpy(address.sun_path, path_.data(), path_.size());
    if (path_[0] == '@') {
        address.sun_path[0] = '\0'; // an abstract name: its length counts, no terminator
    }
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
    if (fd_ < 0) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd_ < 0) {
            return false;
        }
    }
    const ssize_t sent = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                                  reinterpret_cast<const sockaddr *>(&address), length);
    return sent == static_cast<ssize_t>(state.size());
}

uint64_t watchdog_usec_from_environment() {
    const char *usec = std::getenv("WATCHDOG_USEC");
    if (usec == nullptr) {
        return 0;
    }
    // systemd sets WATCHDOG_PID to the main process; a child that inherited the variables
    // must not ping for its parent.
    if (const char *pid = std::getenv("WATCHDOG_PID");
        pid != nullptr && std::strtoll(pid, nullptr, 10) != static_cast<long long>(::getpid())) {
        return 0;
    }
    char *end = nullptr;
    const unsigned long long value = std::strtoull(usec, &end, 10);
    return end != usec && *end == '\0' ? value : 0;
}

} // namespace ferrymq::util
