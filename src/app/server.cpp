// SPDX-License-Identifier: Apache-2.0
#include "app/server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace ferrymq::app {

namespace {

// Creates `path` and its missing parents like "mkdir -p". On failure returns false with the
// failing step in `error`, such as "mkdir /var/lib/ferrymq: Permission denied".
bool make_directories(const std::string &path, std::string &error) {
    for (size_t slash = 0; slash != std::string::npos;) {
        slash = path.find('/', slash + 1);
        std::string prefix = path.substr(0, slash);
        // Intermediate directories are world-readable like mkdir -p's; the data directory
        // itself holds client sessions and messages, so others get no access to it.
        bool last = path.find_first_not_of('/', slash) == std::string::npos;
        if (::mkdir(prefix.c_str(), last ? 0750 : 0755) == 0) {
            continue;
        }
        int mkdir_errno = errno;
        struct stat info {};
        if (mkdir_errno != EEXIST) {
            error = "mkdir " + prefix + ": " + std::strerror(mkdir_errno);
            return false;
        }
        if (::stat(prefix.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
            error = prefix + " exists and is not a directory";
            return false;
        }
    }
    if (::access(path.c_str(), W_OK | X_OK) != 0) {
        error = std::string("not writable: ") + std::strerror(errno);
        return false;
    }
    return true;
}

const char *signal_name(int signum) {
    return signum == SIGINT ? "SIGINT" : signum == SIGTERM ? "SIGTERM" : "signal";
}

} // namespace

Server::Server(const config::Config &config, util::Log &log) : config_(config), log_(log) {}

int Server::run() {
    if (!make_data_dir()) {
        return 1;
    }
    int rc = uv_loop_init(&loop_);
    if (rc != 0) {
        log_.error("cannot create the event loop: %s (%s)", uv_err_name(rc), uv_strerror(rc));
        return 1;
    }
    int exit_code = 0;
    if (!start()) {
        // Whatever start() opened is closed by running the loop once more after stop().
        stop();
        exit_code = 1;
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    // Every close callback has run, so no handle refers to a Listener any more.
    listeners_.clear();
    rc = uv_loop_close(&loop_);
    if (rc != 0) {
        log_.error("event loop closed with handles still open: %s", uv_err_name(rc));
        return 1;
    }
    if (exit_code == 0) {
        log_.info("stopped");
    }
    return exit_code;
}

bool Server::make_data_dir() {
    std::string error;
    if (!make_directories(config_.data_dir, error)) {
        log_.error("cannot use data directory '%s': %s", config_.data_dir.c_str(), error.c_str());
        return false;
    }
    log_.debug("data directory: %s", config_.data_dir.c_str());
    return true;
}

// Opens the signal watchers and the listeners. Returns false after logging the first
// failure; the caller then stops whatever was opened.
bool Server::start() {
    uv_signal_init(&loop_, &sigint_);
    uv_signal_init(&loop_, &sigterm_);
    sigint_.data = this;
    sigterm_.data = this;
    signals_open_ = true;
    auto on_signal = [](uv_signal_t *handle, int signum) {
        static_cast<Server *>(handle->data)->on_signal(signum);
    };
    int rc = uv_signal_start(&sigint_, on_signal, SIGINT);
    if (rc == 0) {
        rc = uv_signal_start(&sigterm_, on_signal, SIGTERM);
    }
    if (rc != 0) {
        log_.error("cannot watch signals: %s (%s)", uv_err_name(rc), uv_strerror(rc));
        return false;
    }

    for (const config::ListenerConfig &listener_config : config_.listeners) {
        std::string wanted = config::format_endpoint(listener_config.host, listener_config.port);
        net::ListenerHandler &handler = *this;
        listeners_.push_back(std::make_unique<net::Listener>(loop_, log_, handler));
        rc = listeners_.back()->listen(listener_config.host, listener_config.port);
        if (rc != 0) {
            log_.error("cannot listen on %s: %s (%s)", wanted.c_str(), uv_err_name(rc),
                       uv_strerror(rc));
            return false;
        }
        // Integration tests read the real port from this exact line; keep its form.
        log_.info("listening on %s", listeners_.back()->address().c_str());
    }
    return true;
}

// Closes every handle so that uv_run() returns once their close callbacks have run.
// Idempotent: a second signal during the stop changes nothing.
void Server::stop() {
    if (stopping_) {
        return;
    }
    stopping_ = true;
    for (const auto &listener : listeners_) {
        listener->close();
    }
    if (signals_open_) {
        // The handles are members, so there is nothing to free in a close callback.
        uv_close(reinterpret_cast<uv_handle_t *>(&sigint_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&sigterm_), nullptr);
        signals_open_ = false;
    }
}

void Server::on_signal(int signum) {
    log_.info("received %s, stopping", signal_name(signum));
    stop();
}

void Server::on_accept(net::Listener &listener) {
    // There is no broker to hand the connection to yet, so it is closed at once.
    log_.debug("connection on %s closed: no broker yet", listener.address().c_str());
    listener.reject();
}

} // namespace ferrymq::app
