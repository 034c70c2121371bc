// SPDX-License-Identifier: Apache-2.0
// Wires the broker together from a Config and runs the libuv loop until SIGINT or SIGTERM.
#pragma once

#include "config/config.hpp"
#include "net/listener.hpp"
#include "util/log.hpp"

#include <uv.h>

#include <memory>
#include <vector>

namespace ferrymq::app {

// Created by main() after the configuration is final and lives until run() has returned;
// run() is called once. The Server owns the loop and every handle on it, so when run()
// returns the loop has been closed and no callback can reach the Server any more.
class Server final : private net::ListenerHandler {
  public:
    Server(const config::Config &config, util::Log &log);

    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    // Creates the data directory, opens the listeners and serves until SIGINT or SIGTERM.
    // Returns the process exit code: 0 after a graceful stop, 1 if start-up failed.
    int run();

  private:
    bool make_data_dir();
    bool start();
    void stop();
    void on_signal(int signum);
    void on_accept(net::Listener &listener) override;

    const config::Config &config_;
    util::Log &log_;
    uv_loop_t loop_{};
    bool stopping_ = false;
    uv_signal_t sigint_{};
    uv_signal_t sigterm_{};
    bool signals_open_ = false;
    std::vector<std::unique_ptr<net::Listener>> listeners_;
};

} // namespace ferrymq::app
