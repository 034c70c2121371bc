// SPDX-License-Identifier: Apache-2.0
#include "app/server.hpp"

#include "auth/password_file.hpp"
#include "auth/scram_authenticator.hpp"

#include <malloc.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
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

// Connections closed since the last heap trim that make another trim worthwhile.
constexpr size_t kTrimAfterClosed = 256;

// Deletes of delivered messages that make a commit by themselves (see Store::lazy_deletes()).
constexpr size_t kLazyDeleteBatch = 4096;

// How long a graceful stop waits for clients to take their last packets.
constexpr uint64_t kStopGraceMs = 2000;

// The broker's own name for a configured strategy (config/ does not depend on broker/).
broker::ShareStrategy share_strategy(config::SharedStrategy strategy) {
    switch (strategy) {
    case config::SharedStrategy::round_robin:
        return broker::ShareStrategy::round_robin;
    case config::SharedStrategy::random:
        return broker::ShareStrategy::random;
    case config::SharedStrategy::sticky:
        return broker::ShareStrategy::sticky;
    case config::SharedStrategy::hash_client:
        return broker::ShareStrategy::hash_client;
    case config::SharedStrategy::hash_topic:
        return broker::ShareStrategy::hash_topic;
    }
    return broker::ShareStrategy::round_robin;
}

// 16 random bytes for a SCRAM salt.
std::string random_salt() {
    std::string salt(16, '\0');
    if (::getrandom(salt.data(), salt.size(), 0) != static_cast<ssize_t>(salt.size())) {
        salt = "ferrymq-fallback"; // only if the kernel's pool is not ready at boot
    }
    return salt;
}

const char *signal_name(int signum) {
    return signum == SIGINT    ? "SIGINT"
           : signum == SIGTERM ? "SIGTERM"
           : signum == SIGHUP  ? "SIGHUP"
                               : "signal";
}

} // namespace

broker::BrokerSettings Server::broker_settings(const config::Config &config) {
    const config::Limits &limits = config.limits;
    broker::BrokerSettings settings;
    settings.max_packet_size = limits.max_packet_size;
    settings.max_inflight = limits.max_inflight;
    settings.max_queued_messages = limits.max_queued_messages;
    settings.max_queued_bytes = limits.max_queued_bytes;
    settings.max_qos = limits.max_qos;
    settings.max_session_expiry = limits.max_session_expiry;
    settings.topic_alias_maximum = limits.topic_alias_maximum;
    settings.outbound_topic_aliases = limits.outbound_topic_aliases;
    settings.receive_maximum = limits.receive_maximum;
    settings.server_keep_alive = limits.server_keep_alive;
    settings.validate_utf8_payloads = limits.validate_utf8_payloads;
    settings.response_information = config.request_response.response_information;
    settings.server_reference = config.redirect.server_reference;
    settings.server_moved = config.redirect.permanent;
    settings.high_water_bytes = limits.client_buffer_bytes;
    settings.max_pending_bytes = limits.max_pending_bytes;
    settings.shared_subscriptions = config.shared_subscriptions.enabled;
    settings.shared_strategy = share_strategy(config.shared_subscriptions.strategy);
    settings.sys_interval = config.sys.interval;
    settings.store_full_refuses = config.storage.full_policy == config::StoreFullPolicy::refuse;
    settings.version = FERRYMQ_VERSION;
    std::vector<broker::AclRule> acl;
    for (const config::AclRuleConfig &r : config.acl) {
        acl.push_back(broker::AclRule{r.username, r.client_id, r.topic,
                                      static_cast<uint8_t>(r.access), r.allow});
    }
    settings.acl = broker::AclRules(std::move(acl));
    settings.abuse = broker::AbuseSettings{config.abuse.ban_after_failures, config.abuse.window,
                                           config.abuse.ban_time, config.abuse.max_connects,
                                           config.abuse.log_interval};
    if (!config.authentication.password_file.empty()) {
        settings.check_password = [this](std::string_view user, std::string_view password) {
            return passwords_ && passwords_->check(user, password);
        };
    }
    return settings;
}

bool Server::load_credentials(const config::Config &config,
                              std::unique_ptr<auth::PasswordStore> &passwords,
                              std::map<std::string, auth::ScramCredentials> &scram) {
    // SCRAM keys are derived once here; the broker only ever sees the derived credentials.
    for (const config::ScramUser &user : config.authentication.scram_users) {
        scram.emplace(user.username, auth::scram_derive(user.password, random_salt(),
                                                        config.authentication.scram_iterations));
    }
    if (config.authentication.password_file.empty()) {
        return true;
    }
    try {
        passwords = std::make_unique<auth::PasswordStore>(
            auth::load_password_file(config.authentication.password_file));
        log_.info("password file %s: %zu users", config.authentication.password_file.c_str(),
                  passwords->size());
        return true;
    } catch (const auth::PasswordFileError &e) {
        log_.error("%s", e.what());
        return false;
    }
}

Server::Server(config::Config config, util::Log &log, ConfigSource source, util::Notifier notifier)
    : source_(std::move(source)), log_(log), notifier_(std::move(notifier)) {
    configs_.push_back(std::make_unique<const config::Config>(std::move(config)));
    config_ = configs_.back().get();
    broker::BrokerSettings settings = broker_settings(*config_);
    if (!settings.acl.empty()) {
        log_.info("access control: %zu ACL rules, deny by default", settings.acl.size());
    }
    // A broken password file stops the start like a broken config.
    auth_ok_ = load_credentials(*config_, passwords_, scram_users_);
    const bool file_has_scram = passwords_ && passwords_->has_scram();
    if (!scram_users_.empty() || file_has_scram) {
        // scram_users first, then the password file's SCRAM keys.
        auth::add_scram_sha256(
            settings.authenticators,
            [this](std::string_view name) -> std::optional<auth::ScramCredentials> {
                auto it = scram_users_.find(std::string(name));
                if (it != scram_users_.end()) {
                    return it->second;
                }
                return passwords_ ? passwords_->scram(name) : std::nullopt;
            });
    }
    for (const config::PluginConfig &plugin : config_->plugins) {
        std::string error;
        if (!plugins_.load_auth_method(plugin.path, settings.authenticators, error)) {
            log_.error("cannot load plugin %s: %s", plugin.path.c_str(), error.c_str());
            plugins_ok_ = false;
            break;
        }
        log_.info("loaded plugin %s", plugin.path.c_str());
    }
    for (const std::string &method : settings.authenticators.methods()) {
        log_.info("enhanced authentication method: %s", method.c_str());
    }
    broker_ = std::make_unique<broker::Broker>(settings, log);
}

Server::~Server() = default;

int Server::run() {
    if (!plugins_ok_ || !auth_ok_ || !make_data_dir()) {
        return 1;
    }
    raise_fd_limit();
    int rc = uv_loop_init(&loop_);
    if (rc != 0) {
        log_.error("cannot create the event loop: %s (%s)", uv_err_name(rc), uv_strerror(rc));
        return 1;
    }
    int exit_code = 0;
    if (!open_store()) {
        uv_loop_close(&loop_);
        return 1;
    }
    if (!start()) {
        // Whatever start() opened is closed by running the loop once more after stop().
        stop();
        exit_code = 1;
    } else {
        last_status_ = status_line();
        notify("READY=1\nSTATUS=" + last_status_);
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    // Every close callback has run, so no handle refers to a Listener any more.
    listeners_.clear();
    retired_listeners_.clear();
    connections_.clear();
    // The broker's last changes (sessions detached by the stop) are committed here.
    store_->commit();
    const store::StoreStats &ss = store_->stats();
    store_->close();
    rc = uv_loop_close(&loop_);
    if (rc != 0) {
        log_.error("event loop closed with handles still open: %s", uv_err_name(rc));
        return 1;
    }
    if (exit_code == 0) {
        const broker::BrokerStats &st = broker_->stats();
        log_.info(
            "stopped: %llu messages in, %llu out; dropped: %llu QoS 0 for absent clients, "
            "%llu queue full, %llu too large, %llu expired; %llu protocol errors, %llu "
            "payloads not the UTF-8 they declared; topic aliases: %llu hits, %llu bytes "
            "saved; shared subscriptions: %llu deliveries, %llu handed over",
            (unsigned long long)st.messages_received, (unsigned long long)st.messages_sent,
            (unsigned long long)st.dropped_qos0_offline, (unsigned long long)st.dropped_queue_full,
            (unsigned long long)st.dropped_too_large, (unsigned long long)st.dropped_expired,
            (unsigned long long)st.protocol_errors, (unsigned long long)st.invalid_utf8_payloads,
            (unsigned long long)st.topic_alias_hits, (unsigned long long)st.topic_alias_bytes_saved,
            (unsigned long long)st.shared_deliveries, (unsigned long long)st.shared_redeliveries);
        log_.info("store: %llu commits (%llu failed), %llu rows written, longest commit %.1f ms, "
                  "longest loop turn %.1f ms, %llu acks held for a commit; %llu PUBLISHes "
                  "refused and %llu messages dropped with the store full",
                  (unsigned long long)ss.commits, (unsigned long long)ss.failed_commits,
                  (unsigned long long)ss.rows_written, ss.longest_commit_us / 1000.0,
                  st.longest_loop_turn_us / 1000.0, (unsigned long long)st.deferred_acks,
                  (unsigned long long)st.refused_store_full,
                  (unsigned long long)st.dropped_store_full);
        for (const auto &b : bridges_) {
            const bridge::BridgeStats &bs = b->stats();
            log_.info("bridge %s: %llu sent, %llu acknowledged upstream, %llu received, %llu "
                      "refused, %llu retried, %llu alias hits, %llu echoes dropped; %llu bytes "
                      "up, %llu bytes down, %llu connections",
                      b->name().c_str(), (unsigned long long)bs.sent,
                      (unsigned long long)bs.acknowledged, (unsigned long long)bs.received,
                      (unsigned long long)bs.refused, (unsigned long long)bs.retried,
                      (unsigned long long)bs.alias_hits, (unsigned long long)bs.echoes_dropped,
                      (unsigned long long)b->bytes_up(), (unsigned long long)b->bytes_down(),
                      (unsigned long long)b->connections());
        }
    }
    return exit_code;
}

// Every client costs a file descriptor: lift the soft limit (often 1024) to the hard limit
// so max_connections, not the default ulimit, decides how many clients fit.
void Server::raise_fd_limit() {
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) {
        return;
    }
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        log_.warn("cannot raise the open file limit: %s", std::strerror(errno));
        return;
    }
    log_.debug("open file limit: %llu", static_cast<unsigned long long>(limit.rlim_cur));
}

bool Server::make_data_dir() {
    std::string error;
    if (!make_directories(config_->data_dir, error)) {
        log_.error("cannot use data directory '%s': %s", config_->data_dir.c_str(), error.c_str());
        return false;
    }
    log_.debug("data directory: %s", config_->data_dir.c_str());
    return true;
}

// Opens the database in the data directory and gives the broker what it holds. Runs before
// the listeners open, so no client sees a broker without its sessions.
bool Server::open_store() {
    store_ = std::make_unique<store::Store>(log_);
    const int64_t wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    store::StoreOptions options;
    options.dir = config_->data_dir;
    options.power_safe = config_->storage.durability == config::Durability::power;
    options.max_size = config_->storage.max_size;
    options.wall_minus_loop_ms = wall_ms - static_cast<int64_t>(now_ms());
    if (!store_->open(options)) {
        log_.error("cannot use data directory '%s': the database cannot be opened",
                   config_->data_dir.c_str());
        return false;
    }
    std::vector<broker::MessagePtr> retained;
    std::vector<broker::RestoredSession> sessions;
    if (!store_->load(retained, sessions, now_ms())) {
        return false;
    }
    broker_->set_persistence(store_.get());
    broker_->restore(std::move(retained), std::move(sessions), now_ms());
    store_->commit(); // sessions that were online are recorded as disconnected
    return true;
}

void Server::commit_store() {
    commit_armed_ = false;
    store_->commit();
    broker_->on_committed();
}

// Opens the signal watchers and the listeners. Returns false after logging the first
// failure; the caller then stops whatever was opened.
bool Server::start() {
    uv_signal_init(&loop_, &sigint_);
    uv_signal_init(&loop_, &sigterm_);
    uv_signal_init(&loop_, &sighup_);
    sigint_.data = this;
    sigterm_.data = this;
    sighup_.data = this;
    signals_open_ = true;
    auto on_signal = [](uv_signal_t *handle, int signum) {
        static_cast<Server *>(handle->data)->on_signal(signum);
    };
    int rc = uv_signal_start(&sigint_, on_signal, SIGINT);
    if (rc == 0) {
        rc = uv_signal_start(&sigterm_, on_signal, SIGTERM);
    }
    if (rc == 0) {
        rc = uv_signal_start(&sighup_, on_signal, SIGHUP);
    }
    if (rc != 0) {
        log_.error("cannot watch signals: %s (%s)", uv_err_name(rc), uv_strerror(rc));
        return false;
    }

    uv_prepare_init(&loop_, &flush_);
    uv_timer_init(&loop_, &tick_);
    uv_timer_init(&loop_, &commit_timer_);
    uv_check_init(&loop_, &polled_);
    uv_timer_init(&loop_, &watchdog_);
    watchdog_.data = this;
    polled_.data = this;
    uv_check_start(&polled_, [](uv_check_t *h) { static_cast<Server *>(h->data)->on_polled(); });
    flush_.data = this;
    tick_.data = this;
    commit_timer_.data = this;
    aux_open_ = true;
    uv_prepare_start(&flush_, [](uv_prepare_t *h) { static_cast<Server *>(h->data)->flush_all(); });
    uv_timer_start(
        &tick_, [](uv_timer_t *h) { static_cast<Server *>(h->data)->on_tick(); }, 1000, 1000);
    // The ping comes from a timer on this loop, so a loop stuck in a callback stops pinging
    // and systemd restarts the broker. Half the interval leaves room for a late turn.
    if (const uint64_t half_ms = notifier_.watchdog_usec() / 2000; half_ms != 0) {
        uv_timer_start(
            &watchdog_, [](uv_timer_t *h) { static_cast<Server *>(h->data)->notify("WATCHDOG=1"); },
            half_ms, half_ms);
        log_.debug("systemd watchdog: a ping every %llu ms", (unsigned long long)half_ms);
    }

    // Bridges first: their local sessions and forward subscriptions exist before any client
    // can publish, so nothing bound upstream is missed.
    for (const config::BridgeConfig &bc : config_->bridges) {
        std::unique_ptr<bridge::Bridge> b = make_bridge(bc);
        if (!b) {
            return false;
        }
        b->start(now_ms());
        bridges_.push_back(std::move(b));
    }
    // Saved before the listeners say they listen, so whoever waits for that finds it.
    save_applied_config();
    for (const config::ListenerConfig &lc : config_->listeners) {
        ListenerSlot slot;
        if (!prepare_listener(lc, slot)) {
            return false;
        }
        listeners_.push_back(std::move(slot));
        if (!open_listener(listeners_.back())) {
            return false;
        }
    }
    return true;
}

std::unique_ptr<bridge::Bridge> Server::make_bridge(const config::BridgeConfig &bc) {
    std::shared_ptr<const net::TlsContext> tls;
    if (bc.tls) {
        std::string error;
        tls = net::TlsContext::make(net::TlsContext::Role::client, *bc.tls, error);
        if (!tls) {
            log_.error("bridge %s: TLS (line %d): %s", bc.name.c_str(), bc.tls->line,
                       error.c_str());
            return nullptr;
        }
    }
    // Local link ids far above any connection id, a range per bridge ever made.
    const uint64_t id_base = (uint64_t{1} << 48) * next_bridge_slot_++;
    return std::make_unique<bridge::Bridge>(loop_, *broker_, bc, log_, id_base, std::move(tls));
}

namespace {
broker::ListenerPolicy listener_policy(const config::ListenerConfig &c) {
    const config::UserPropertyLimits &up = c.user_properties;
    const bool identity = c.tls && c.tls->identity_as_username != config::TlsConfig::Identity::none;
    return {c.allow_anonymous, up.max_count, up.max_bytes, up.allowed_keys, up.strip, identity};
}
} // namespace

bool Server::prepare_listener(const config::ListenerConfig &c, ListenerSlot &slot) {
    slot.config = &c;
    slot.tls = nullptr;
    if (!c.tls) {
        return true;
    }
    const std::string where = config::format_endpoint(c.host, c.port);
    std::string error;
    slot.tls = net::TlsContext::make(net::TlsContext::Role::server, *c.tls, error);
    if (!slot.tls) {
        log_.error("TLS on %s (line %d): %s", where.c_str(), c.tls->line, error.c_str());
        return false;
    }
    log_.info("TLS on %s: %s", where.c_str(), slot.tls->summary().c_str());
    return true;
}

bool Server::open_listener(ListenerSlot &slot) {
    const config::ListenerConfig &c = *slot.config;
    slot.policy = std::make_unique<broker::ListenerPolicy>(listener_policy(c));
    const std::string wanted = config::format_endpoint(c.host, c.port);
    net::ListenerHandler &handler = *this;
    slot.listener = std::make_unique<net::Listener>(loop_, log_, handler);
    const int rc = slot.listener->listen(c.host, c.port);
    if (rc != 0) {
        log_.error("cannot listen on %s: %s (%s)", wanted.c_str(), uv_err_name(rc),
                   uv_strerror(rc));
        return false;
    }
    if (!c.allow_anonymous && !passwords_ && config_->authentication.scram_users.empty() &&
        config_->plugins.empty() &&
        !(c.tls && c.tls->identity_as_username != config::TlsConfig::Identity::none)) {
        log_.warn("%s refuses anonymous clients and no password file is configured: every "
                  "client is refused (set authentication.password_file or allow_anonymous)",
                  wanted.c_str());
    }
    // Integration tests read the real port from this exact line; keep its form.
    log_.info("listening on %s", slot.listener->address().c_str());
    return true;
}

// Copies the file just applied into the data directory, so that "check-config --diff" can
// show what a reload of an edited file would change.
void Server::save_applied_config() {
    if (source_.path.empty()) {
        return;
    }
    std::ifstream in(source_.path, std::ios::binary);
    const std::string target = config_->data_dir + "/config.applied.yaml";
    const std::string temporary = target + ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out << in.rdbuf();
        if (!in || !out) {
            log_.warn("cannot save the applied configuration to %s", target.c_str());
            return;
        }
    }
    if (std::rename(temporary.c_str(), target.c_str()) != 0) {
        log_.warn("cannot save the applied configuration to %s: %s", target.c_str(),
                  std::strerror(errno));
    }
}

// Closes every handle so that uv_run() returns once their close callbacks have run.
// Idempotent: a second signal during the stop changes nothing.
void Server::stop() {
    if (stopping_) {
        return;
    }
    stopping_ = true;
    stop_started_ms_ = now_ms();
    notify("STOPPING=1");
    for (ListenerSlot &slot : listeners_) {
        slot.listener->close();
    }
    // Bridges detach their local sessions (the queues stay stored) and say DISCONNECT
    // upstream.
    for (const auto &b : bridges_) {
        b->stop(now_ms());
    }
    // 5.0 clients are told why [MQTT-3.14.2]; every connection writes what it has and
    // closes. The loop ends once the last close callback has run.
    broker_->shutdown(now_ms());
    flush_all();
    if (connections_.empty()) {
        close_aux_handles();
    }
    // The signal watchers stay open until the last connection is gone, so a second
    // SIGINT during the stop is ignored instead of killing the process.
}

void Server::on_signal(int signum) {
    if (signum == SIGHUP) {
        if (stopping_) {
            return; // the listeners and bridges are closing already
        }
        log_.info("received SIGHUP, reloading");
        reload();
        return;
    }
    log_.info("received %s, stopping", signal_name(signum));
    stop();
}

void Server::reload() {
    if (!source_.load) {
        log_.info("reload: no configuration file, nothing to reload");
        return;
    }
    auto refuse = [this](const std::string &why) {
        log_.error("reload refused: %s; the running configuration stays", why.c_str());
    };
    std::unique_ptr<config::Config> next;
    try {
        next = std::make_unique<config::Config>(source_.load());
    } catch (const config::ConfigError &e) {
        return refuse(e.what());
    }
    const std::vector<config::Change> changes = config::diff(*config_, *next);
    // What only a restart changes keeps its running value, so config_ says what runs.
    next->data_dir = config_->data_dir;
    next->plugins = config_->plugins;
    const uint32_t retention = next->storage.removed_bridge_retention;
    next->storage = config_->storage;
    next->storage.removed_bridge_retention = retention;

    // Everything that can fail is prepared before anything changes.
    std::unique_ptr<auth::PasswordStore> passwords;
    std::map<std::string, auth::ScramCredentials> scram;
    if (!load_credentials(*next, passwords, scram)) {
        return refuse("the password file cannot be used");
    }
    // Listener i of the new configuration, and the running one at its address (or none).
    std::vector<ListenerSlot> slots(next->listeners.size());
    std::vector<std::optional<size_t>> same_address(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) {
        const config::ListenerConfig &lc = next->listeners[i];
        if (!prepare_listener(lc, slots[i])) {
            return refuse("TLS on " + config::format_endpoint(lc.host, lc.port) +
                          " cannot be used");
        }
        for (size_t j = 0; j < listeners_.size(); ++j) {
            if (listeners_[j].config->host == lc.host && listeners_[j].config->port == lc.port) {
                same_address[i] = j;
            }
        }
    }
    // Bridge i of the new configuration: a running one with the same definition, or a new
    // one (not started yet).
    std::vector<std::unique_ptr<bridge::Bridge>> made(next->bridges.size());
    std::vector<std::optional<size_t>> unchanged(next->bridges.size());
    for (size_t i = 0; i < made.size(); ++i) {
        for (size_t j = 0; j < bridges_.size(); ++j) {
            if (config::same_bridge(bridges_[j]->config(), next->bridges[i])) {
                unchanged[i] = j;
            }
        }
        if (!unchanged[i] && !(made[i] = make_bridge(next->bridges[i]))) {
            return refuse("bridge " + next->bridges[i].name + ": TLS cannot be used");
        }
    }

    // Apply.
    configs_.push_back(std::move(next));
    config_ = configs_.back().get();
    log_.set_level(config_->log_level);
    passwords_ = std::move(passwords);
    scram_users_ = std::move(scram);
    broker_->reconfigure(broker_settings(*config_));
    const uint64_t now = now_ms();

    std::vector<bool> bridge_kept(bridges_.size(), false);
    for (const std::optional<size_t> &j : unchanged) {
        if (j) {
            bridge_kept[*j] = true;
        }
    }
    for (size_t j = 0; j < bridges_.size(); ++j) {
        if (bridge_kept[j]) {
            continue;
        }
        const bool returns = std::any_of(
            config_->bridges.begin(), config_->bridges.end(),
            [&](const config::BridgeConfig &bc) { return bc.name == bridges_[j]->name(); });
        if (returns) {
            bridges_[j]->stop(now); // its replacement resumes the same local session
        } else {
            bridges_[j]->retire(now, config_->storage.removed_bridge_retention);
        }
        retired_bridges_.push_back(std::move(bridges_[j]));
    }
    std::vector<std::unique_ptr<bridge::Bridge>> bridges;
    for (size_t i = 0; i < made.size(); ++i) {
        if (unchanged[i]) {
            bridges.push_back(std::move(bridges_[*unchanged[i]])); // stays connected
        } else {
            made[i]->start(now);
            bridges.push_back(std::move(made[i]));
        }
    }
    bridges_ = std::move(bridges);

    std::vector<bool> listener_kept(listeners_.size(), false);
    for (size_t i = 0; i < slots.size(); ++i) {
        if (same_address[i]) {
            ListenerSlot &old = listeners_[*same_address[i]];
            listener_kept[*same_address[i]] = true;
            slots[i].listener = std::move(old.listener);
            // Connections keep referring to this policy: updated in place.
            slots[i].policy = std::move(old.policy);
            *slots[i].policy = listener_policy(*slots[i].config);
        }
    }
    for (size_t j = 0; j < listeners_.size(); ++j) {
        if (!listener_kept[j]) {
            listeners_[j].listener->close(); // its connections stay, with its policy
            retired_listeners_.push_back(std::move(listeners_[j]));
        }
    }
    listeners_.clear();
    for (ListenerSlot &slot : slots) {
        if (slot.listener || open_listener(slot)) {
            listeners_.push_back(std::move(slot));
        } else {
            slot.listener->close();
            retired_listeners_.push_back(std::move(slot));
        }
    }
    for (const config::Change &change : changes) {
        log_.info("reload: %s%s", change.what.c_str(),
                  change.needs_restart ? " (needs a restart: not applied)" : "");
    }
    log_.info("reload done: %zu change%s", changes.size(), changes.size() == 1 ? "" : "s");
    save_applied_config();
}

// Sends one notification; the first failure is logged, later ones are not (the watchdog
// would otherwise log twice per interval).
void Server::notify(const std::string &state) {
    if (!notifier_.notify(state) && !notify_failed_) {
        notify_failed_ = true;
        log_.warn("cannot notify the service manager (NOTIFY_SOCKET): %s", std::strerror(errno));
    }
}

std::string Server::status_line() const {
    size_t online = 0;
    for (const auto &b : bridges_) {
        online += b->online() ? 1 : 0;
    }
    std::string line = std::to_string(listeners_.size()) +
                       (listeners_.size() == 1 ? " listener, " : " listeners, ") +
                       std::to_string(connections_.size()) +
                       (connections_.size() == 1 ? " client" : " clients");
    if (!bridges_.empty()) {
        line += ", " + std::to_string(online) + "/" + std::to_string(bridges_.size()) +
                (bridges_.size() == 1 ? " bridge online" : " bridges online");
    }
    return line;
}

void Server::notify_status() {
    if (!notifier_.enabled()) {
        return;
    }
    std::string line = status_line();
    if (line != last_status_) {
        last_status_ = std::move(line);
        notify("STATUS=" + last_status_);
    }
}

void Server::on_accept(net::Listener &listener) {
    if (stopping_ || connections_.size() >= config_->limits.max_connections) {
        log_.warn("connection on %s refused: %zu connections open (limit %u)",
                  listener.address().c_str(), connections_.size(), config_->limits.max_connections);
        listener.reject();
        return;
    }
    const uint64_t id = next_connection_id_++;
    net::ConnectionOwner &owner = *this;
    const ListenerSlot &slot = slot_of(listener);
    auto conn = std::make_unique<net::Connection>(
        loop_, id, *broker_, owner, config_->limits.max_packet_size,
        config_->limits.client_buffer_bytes, *slot.policy, log_, slot.tls);
    if (const int rc = listener.accept(conn->handle()); rc != 0) {
        log_.warn("accept on %s failed: %s", listener.address().c_str(), uv_err_name(rc));
        conn->abort(); // its close callback erases it from the registry
        connections_.emplace(id, std::move(conn));
        return;
    }
    net::Connection &c = *conn;
    connections_.emplace(id, std::move(conn));
    c.start();
}

void Server::on_listener_closed(net::Listener &) {}

Server::ListenerSlot &Server::slot_of(const net::Listener &listener) {
    for (ListenerSlot &slot : listeners_) {
        if (slot.listener.get() == &listener) {
            return slot;
        }
    }
    std::abort(); // only open listeners accept, and every open one is in listeners_
}

void Server::on_connection_closed(net::Connection &c) {
    // Called from the connection's own close callback: its memory is released once that
    // callback has returned, so the erase is deferred to flush_all(), which runs on the
    // next loop turn (the prepare handle stays open until the last connection is gone).
    closed_.push_back(c.id());
}

// Runs once per loop turn before the loop sleeps: one write per dirty connection, then
// the connections closed during the turn are destroyed.
void Server::flush_all() {
    for (const auto &b : bridges_) {
        b->turn(now_ms());
    }
    // Group commit first, so acknowledgements that waited for it leave in this turn's write.
    // Deletes of delivered messages alone wait (for the tick, or until there are many).
    if (store_->pending() || store_->lazy_deletes() >= kLazyDeleteBatch) {
        if (config_->storage.flush_interval_ms == 0 || stopping_) {
            commit_store();
        } else if (!commit_armed_) {
            commit_armed_ = true;
            uv_timer_start(
                &commit_timer_,
                [](uv_timer_t *h) { static_cast<Server *>(h->data)->commit_store(); },
                config_->storage.flush_interval_ms, 0);
        }
    } else if (broker_->deferred_ack_count() != 0) {
        broker_->on_committed(); // held only to keep their order behind committed ones
    }
    std::vector<uint64_t> dirty;
    dirty.swap(dirty_);
    for (uint64_t id : dirty) {
        if (auto it = connections_.find(id); it != connections_.end()) {
            it->second->flush();
        }
    }
    if (dirty_.empty()) {
        dirty_.swap(dirty);
        dirty_.clear();
    }
    for (const auto &b : bridges_) {
        b->flush();
    }
    for (uint64_t id : closed_) {
        connections_.erase(id);
    }
    closed_since_trim_ += closed_.size();
    closed_.clear();
    resume_paused();
    if (stopping_ && connections_.empty()) {
        close_aux_handles();
    }
    // The loop is about to poll again: the turn that began when the last poll returned
    // ends here (see on_polled()). Its length is the stall a client may have seen.
    if (turn_started_ns_ != 0) {
        const uint64_t now = uv_hrtime();
        broker_->note_loop_turn(now > turn_started_ns_ ? (now - turn_started_ns_) / 1000 : 0);
        turn_started_ns_ = 0;
    }
}

// Runs right after the loop polled and ran the I/O callbacks. libuv updated its clock
// when the poll returned, so that is when this turn started (to the coarse clock's few
// milliseconds).
void Server::on_polled() {
    turn_started_ns_ = uv_now(&loop_) * 1'000'000;
}

// Lets paused publishers read again once the broker has room.
void Server::resume_paused() {
    if (paused_.empty() || broker_->overloaded()) {
        return;
    }
    std::vector<uint64_t> paused;
    paused.swap(paused_);
    for (uint64_t id : paused) {
        if (auto it = connections_.find(id); it != connections_.end()) {
            it->second->resume_reading();
        }
    }
}

void Server::on_tick() {
    const uint64_t now = now_ms();
    if (stopping_) {
        // A client that does not read cannot hold the stop up: after the grace period the
        // remaining connections are cut.
        if (now - stop_started_ms_ >= kStopGraceMs) {
            for (const auto &[id, conn] : connections_) {
                conn->abort();
            }
        }
        return;
    }
    for (const auto &[id, conn] : connections_) {
        conn->check_timers(now, uint64_t{config_->limits.connect_timeout} * 1000);
    }
    // After many connections closed, their small allocations are scattered through the heap
    // and glibc keeps it all; give the free pages back so RSS follows the load down.
    if (closed_since_trim_ >= kTrimAfterClosed) {
        closed_since_trim_ = 0;
        ::malloc_trim(0);
    }
    broker_->tick(now);
    if (store_->lazy_deletes() != 0 && !commit_armed_) {
        commit_store(); // at most a second of deliveries to redeliver after a crash
    }
    for (const auto &b : bridges_) {
        b->tick(now);
    }
    notify_status();
    // After a failed commit the database misses changes: every 10 s, try to write the
    // whole state again (it succeeds once the disk has room or is writable again).
    if (store_->stats().degraded && now >= next_resync_ms_) {
        next_resync_ms_ = now + 10'000;
        store_->resync([this] { broker_->write_all_to_store(); });
        broker_->on_committed();
    }
}

// Closes the loop's own handles once no connection is left, which lets uv_run() return.
void Server::close_aux_handles() {
    if (aux_open_) {
        aux_open_ = false;
        uv_close(reinterpret_cast<uv_handle_t *>(&flush_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&tick_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&commit_timer_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&polled_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&watchdog_), nullptr);
    }
    if (signals_open_) {
        // The handles are members, so there is nothing to free in a close callback.
        signals_open_ = false;
        uv_close(reinterpret_cast<uv_handle_t *>(&sigint_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&sigterm_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&sighup_), nullptr);
    }
}

} // namespace ferrymq::app
