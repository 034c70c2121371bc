// SPDX-License-Identifier: Apache-2.0
// Wires the broker together from a Config and runs the libuv loop until SIGINT or SIGTERM.
// Under systemd it reports READY=1, STATUS= and STOPPING=1, and pings the watchdog.
#pragma once

#include "app/plugins.hpp"
#include "auth/password_file.hpp"
#include "auth/scram.hpp"
#include "bridge/bridge.hpp"
#include "broker/broker.hpp"
#include "config/config.hpp"
#include "net/connection.hpp"
#include "net/listener.hpp"
#include "store/store.hpp"
#include "util/log.hpp"
#include "util/systemd.hpp"

#include <uv.h>

#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

namespace ferrymq::app {

// Created by main() after the configuration is final and lives until run() has returned;
// run() is called once. The Server owns the loop and every handle on it, so when run()
// returns the loop has been closed and no callback can reach the Server any more.
class Server final : private net::ListenerHandler, private net::ConnectionOwner {
  public:
    // `notifier` reaches the service manager (systemd); a default one does nothing.
    Server(const config::Config &config, util::Log &log, util::Notifier notifier = {});
    ~Server();

    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    // Creates the data directory, opens the listeners and serves until SIGINT or SIGTERM.
    // Returns the process exit code: 0 after a graceful stop, 1 if start-up failed.
    int run();

  private:
    bool make_data_dir();
    void raise_fd_limit();
    bool start();
    void stop();
    void on_signal(int signum);
    // SIGHUP: re-reads what may change under a running broker (today the TLS certificates
    // and keys of every listener). What cannot be read keeps its old value.
    void reload();
    // Builds listener `i`'s TLS context from its config; null and logged on failure.
    std::shared_ptr<const net::TlsContext> make_listener_tls(size_t i);
    // Sends STATUS= to the service manager when the summary changed since the last one.
    void notify_status();
    // "2 listeners, 5 clients, 1/1 bridges online": the STATUS= line of systemctl status.
    std::string status_line() const;
    void notify(const std::string &state);
    void on_accept(net::Listener &listener) override;
    void on_listener_closed(net::Listener &listener) override;
    void on_tick();
    size_t listener_index(const net::Listener &listener) const;
    void flush_all();
    void resume_paused();
    void close_aux_handles();
    bool open_store();
    void on_polled();
    // Commits the store's pending changes now, then lets the broker send what waited for it.
    void commit_store();

    // net::ConnectionOwner
    void want_flush(net::Connection &c) override { dirty_.push_back(c.id()); }
    void on_connection_closed(net::Connection &c) override;
    void on_paused(net::Connection &c) override { paused_.push_back(c.id()); }
    uint64_t now_ms() const override { return uv_now(const_cast<uv_loop_t *>(&loop_)); }
    std::vector<uint8_t> &read_buffer() override { return read_buffer_; }

    const config::Config &config_;
    util::Log &log_;
    uv_loop_t loop_{};
    bool stopping_ = false;
    uint64_t stop_started_ms_ = 0; // loop clock when stop() ran
    uv_signal_t sigint_{};
    uv_signal_t sigterm_{};
    uv_signal_t sighup_{};
    bool signals_open_ = false;
    util::Notifier notifier_;
    bool notify_failed_ = false; // a notification could not be sent, already logged
    std::string last_status_;    // the last STATUS= sent
    uv_timer_t watchdog_{};      // WATCHDOG=1 every half interval, from the loop itself
    std::vector<std::unique_ptr<net::Listener>> listeners_;
    std::vector<broker::ListenerPolicy> policies_;              // one per listener, same order
    // One per listener, same order; null for plain TCP. Replaced on SIGHUP: connections
    // keep the context they started with.
    std::vector<std::shared_ptr<const net::TlsContext>> tls_contexts_;
    std::map<std::string, auth::ScramCredentials> scram_users_; // derived from the config
    std::unique_ptr<auth::PasswordStore> passwords_;            // null: no password file
    bool auth_ok_ = true;    // false: the password file could not be read, run() refuses to start
    Plugins plugins_;        // declared before broker_, so unloaded after it
    bool plugins_ok_ = true; // false: a plugin failed to load, run() refuses to start
    std::unique_ptr<broker::Broker> broker_;
    // Open connections by id; an entry is erased only from its close callback.
    std::unordered_map<uint64_t, std::unique_ptr<net::Connection>> connections_;
    std::vector<uint64_t> dirty_;  // connections with output to write this turn
    std::vector<uint64_t> closed_; // connections whose close callback ran this turn
    std::vector<uint64_t> paused_; // connections not reading because of backpressure
    std::vector<uint8_t> read_buffer_ = std::vector<uint8_t>(64 * 1024);
    uint64_t next_connection_id_ = 1;
    size_t closed_since_trim_ = 0; // connections closed since the heap was last trimmed
    uv_prepare_t flush_{};         // writes every dirty connection before the loop sleeps
    uv_check_t polled_{};          // marks the start of a loop turn, see on_polled()
    uint64_t turn_started_ns_ = 0; // when the current turn's poll returned, 0 = none open
    uv_timer_t tick_{};            // keep-alive, connect timeout, session expiry
    uv_timer_t commit_timer_{};    // storage.flush_interval: the next group commit
    bool commit_armed_ = false;    // commit_timer_ is running
    uint64_t next_resync_ms_ = 0;  // loop clock of the next attempt to leave degraded mode
    std::unique_ptr<store::Store> store_;
    // Bridges, in config order; created after the store is restored, before the listeners.
    std::vector<std::unique_ptr<bridge::Bridge>> bridges_;
    bool aux_open_ = false;
};

} // namespace ferrymq::app
