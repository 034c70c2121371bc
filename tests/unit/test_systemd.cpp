// SPDX-License-Identifier: Apache-2.0
// util::Notifier against a real AF_UNIX datagram socket, bound the way systemd binds
// NOTIFY_SOCKET: once at a file system path, once under an abstract name ('@').
#include "util/systemd.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

using ferrymq::util::Notifier;

namespace {

// A bound, non-blocking datagram socket standing in for the service manager.
struct Receiver {
    // `name` as NOTIFY_SOCKET spells it.
    explicit Receiver(std::string name) : name(std::move(name)) {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        REQUIRE(fd >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path, this->name.data(), this->name.size());
        if (this->name[0] == '@') {
            address.sun_path[0] = '\0';
        }
        const auto length =
            static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + this->name.size());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr *>(&address), length) == 0);
    }
    ~Receiver() {
        ::close(fd);
        if (name[0] == '/') {
            ::unlink(name.c_str());
        }
    }
    Receiver(const Receiver &) = delete;
    Receiver &operator=(const Receiver &) = delete;

    // The next datagram, or "" when none is waiting.
    std::string next() {
        char buffer[512];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
    }

    std::string name;
    int fd = -1;
};

std::string temp_socket_path() {
    char dir[] = "/tmp/ferrymq-notify-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    return std::string(dir) + "/notify";
}

} // namespace

TEST_CASE("systemd: each notification is one datagram to a socket path") {
    const std::string path = temp_socket_path();
    {
        Receiver manager(path);
        Notifier notifier(path);
        CHECK(notifier.enabled());
        CHECK(notifier.notify("READY=1\nSTATUS=1 listener, 0 clients"));
        CHECK(notifier.notify("WATCHDOG=1"));
        CHECK(manager.next() == "READY=1\nSTATUS=1 listener, 0 clients");
        CHECK(manager.next() == "WATCHDOG=1");
        CHECK(manager.next().empty());
    }
    std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST_CASE("systemd: an abstract socket name starts with '@'") {
    const std::string name = "@ferrymq-test-notify-" + std::to_string(::getpid());
    Receiver manager(name);
    Notifier notifier(name);
    CHECK(notifier.notify("STOPPING=1"));
    CHECK(manager.next() == "STOPPING=1");
}

TEST_CASE("systemd: without a socket nothing is sent and nothing fails") {
    Notifier notifier;
    CHECK_FALSE(notifier.enabled());
    CHECK(notifier.notify("READY=1"));
    CHECK(notifier.watchdog_usec() == 0);
    // A watchdog interval means nothing without a socket to ping.
    CHECK(Notifier("", 1000000).watchdog_usec() == 0);
    CHECK(Notifier("@x", 1000000).watchdog_usec() == 1000000);
}

TEST_CASE("systemd: an unreachable or invalid socket is reported, not fatal") {
    CHECK_FALSE(Notifier("/nonexistent/ferrymq-notify").notify("READY=1"));
    CHECK_FALSE(Notifier("relative/path").notify("READY=1"));
    CHECK_FALSE(Notifier("/" + std::string(200, 'x')).notify("READY=1"));
}

TEST_CASE("systemd: a moved Notifier keeps its socket, the source is disabled") {
    const std::string name = "@ferrymq-test-move-" + std::to_string(::getpid());
    Receiver manager(name);
    Notifier first(name, 2000000);
    CHECK(first.notify("STATUS=a"));
    Notifier second(std::move(first));
    CHECK(second.notify("STATUS=b"));
    CHECK(second.watchdog_usec() == 2000000);
    CHECK(manager.next() == "STATUS=a");
    CHECK(manager.next() == "STATUS=b");
}

TEST_CASE("systemd: the watchdog interval comes from WATCHDOG_USEC for this process only") {
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    CHECK(ferrymq::util::watchdog_usec_from_environment() == 0);
    ::setenv("WATCHDOG_USEC", "30000000", 1);
    CHECK(ferrymq::util::watchdog_usec_from_environment() == 30000000);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    CHECK(ferrymq::util::watchdog_usec_from_environment() == 30000000);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
    CHECK(ferrymq::util::watchdog_usec_from_environment() == 0);
    ::unsetenv("WATCHDOG_PID");
    ::setenv("WATCHDOG_USEC", "soon", 1);
    CHECK(ferrymq::util::watchdog_usec_from_environment() == 0);
    ::unsetenv("WATCHDOG_USEC");
}
