// SPDX-License-Identifier: Apache-2.0
// The ferrymq command line: "run" (the default) starts the broker, "check-config" validates
// a configuration file. It turns options into a final Config and hands it to app::Server;
// it holds no state of its own beyond main()'s stack.
#include "app/server.hpp"
#include "auth/password_file.hpp"
#include "bench/bench.hpp"
#include "config/config.hpp"
#include "config/diff.hpp"
#include "util/log.hpp"
#include "util/systemd.hpp"

#include <CLI/CLI.hpp>

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace ferrymq;

// The options of "run". They are declared both on the top-level command and on the "run"
// subcommand, bound to one RunOptions, so that "ferrymq --listen X" and "ferrymq run
// --listen X" mean the same and both show up in --help.
struct RunOptions {
    std::string config_file;         // empty: built-in defaults
    std::vector<std::string> listen; // replaces the configured listeners when not empty
    std::string data_dir;            // empty: keep the configured one
    std::string log_level;           // empty: keep the configured one
};

// CLI11 validators: each returns an error sentence, or "" when the value is acceptable.

std::string check_listen(const std::string &text) {
    std::string why;
    std::optional<config::Endpoint> endpoint = config::parse_endpoint(text, &why);
    if (!endpoint) {
        return "'" + text + "' is not HOST:PORT: " + why;
    }
    if (!config::is_ip_literal(endpoint->host)) {
        return "'" + endpoint->host + "' is not a numeric IPv4 or IPv6 address";
    }
    return "";
}

std::string check_data_dir(const std::string &text) {
    return text.empty() ? "must not be empty" : "";
}

std::string check_log_level(const std::string &text) {
    if (!util::parse_log_level(text)) {
        return "'" + text + "' is not one of error, warn, info, debug, trace";
    }
    return "";
}

// Declares the run options on `app` and returns them, so that main() can tell which were given.
std::vector<CLI::Option *> add_run_options(CLI::App &app, RunOptions &options) {
    // The empty validator descriptions keep CLI11 from repeating the type name in --help.
    return {
        app.add_option("-c,--config", options.config_file, "YAML configuration file")
            ->type_name("FILE"),
        app.add_option("--listen", options.listen,
                       "Listen on HOST:PORT ([IPV6]:PORT; port 0 picks a free one); repeatable, "
                       "replaces the configured listeners")
            ->type_name("HOST:PORT")
            ->check(check_listen, ""),
        app.add_option("--data-dir", options.data_dir,
                       "Directory for persistent state (overrides the config)")
            ->type_name("DIR")
            ->check(check_data_dir, ""),
        app.add_option("--log-level", options.log_level,
                       "error, warn, info, debug or trace (overrides the config)")
            ->type_name("LEVEL")
            ->check(check_log_level, ""),
    };
}

// Loads the configuration file (or the defaults) and applies the command-line overrides.
// Throws config::ConfigError.
config::Config final_config(const RunOptions &options) {
    config::Config config = options.config_file.empty()
                                ? config::Config{}
                                : config::load_config_file(options.config_file);
    if (!options.listen.empty()) {
        config.listeners.clear();
        for (const std::string &text : options.listen) {
            // The validator accepted the text already, so parse_endpoint() succeeds here.
            config::Endpoint endpoint = *config::parse_endpoint(text);
            config::ListenerConfig listener;
            listener.host = endpoint.host;
            listener.port = endpoint.port;
            // The same default as a listener in a file: anonymous clients on loopback only.
            listener.allow_anonymous = config::is_loopback(endpoint.host);
            config.listeners.push_back(std::move(listener));
        }
    }
    if (!options.data_dir.empty()) {
        config.data_dir = options.data_dir;
    }
    if (!options.log_level.empty()) {
        config.log_level = *util::parse_log_level(options.log_level);
    }
    return config;
}

int run(const RunOptions &options) {
    config::Config config;
    try {
        config = final_config(options);
    } catch (const config::ConfigError &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    // Under systemd, stderr is the journal: no timestamps of our own, syslog priorities.
    util::Log log(config.log_level, stderr, util::detect_log_style(stderr));
    log.info("ferrymq %s starting (config: %s)", FERRYMQ_VERSION,
             options.config_file.empty() ? "built-in defaults" : options.config_file.c_str());
    app::ConfigSource source;
    if (!options.config_file.empty()) {
        source.path = options.config_file;
        source.load = [&options] { return final_config(options); };
    }
    app::Server server(std::move(config), log, std::move(source),
                       util::Notifier::from_environment());
    return server.run();
}

// "check-config FILE [--diff]": validates FILE; with --diff also lists what a reload of
// it would change in the broker running on the same data_dir, whose last applied file
// is <data_dir>/config.applied.yaml.
int check_config(const std::string &path, bool diff) {
    try {
        const config::Config config = config::load_config_file(path);
        if (!config.authentication.password_file.empty()) {
            auth::load_password_file(config.authentication.password_file);
        }
        if (diff) {
            const std::string applied = config.data_dir + "/config.applied.yaml";
            if (::access(applied.c_str(), R_OK) != 0) {
                std::fprintf(stderr, "%s: no applied configuration to compare with (%s)\n",
                             applied.c_str(), std::strerror(errno));
                return 1;
            }
            const std::vector<config::Change> changes =
                config::diff(config::load_config_file(applied), config);
            for (const config::Change &c : changes) {
                std::printf("%s%s\n", c.what.c_str(),
                            c.needs_restart ? " (needs a restart: a reload keeps the old value)"
                                            : "");
            }
            std::printf("%s: ok, %zu change%s from %s\n", path.c_str(), changes.size(),
                        changes.size() == 1 ? "" : "s", applied.c_str());
            return 0;
        }
    } catch (const config::ConfigError &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    } catch (const auth::PasswordFileError &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    std::printf("%s: ok\n", path.c_str());
    return 0;
}

// The options of "passwd".
struct PasswdOptions {
    std::string file;
    std::string user;
    bool remove = false;
    uint32_t iterations = auth::kDefaultPasswordIterations;
    uint32_t scram_iterations = 4096; // 0: no SCRAM-SHA-256 keys
};

// Reads one line from stdin; on a terminal with echo off, so the password is never shown,
// never in argv (visible in ps) and never in the shell history.
std::optional<std::string> read_secret(const char *prompt) {
    const bool tty = ::isatty(STDIN_FILENO) != 0;
    termios saved{};
    if (tty) {
        std::fprintf(stderr, "%s", prompt);
        std::fflush(stderr);
        ::tcgetattr(STDIN_FILENO, &saved);
        termios quiet = saved;
        quiet.c_lflag &= ~tcflag_t(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::string line;
    const bool got = static_cast<bool>(std::getline(std::cin, line));
    if (tty) {
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        std::fprintf(stderr, "\n");
    }
    if (!got) {
        return std::nullopt;
    }
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    return line;
}

// "ferrymq passwd FILE USER": adds or changes USER (creating FILE), or removes it with
// --delete. The file is replaced atomically with mode 0600.
int run_passwd(const PasswdOptions &o) {
    if (!auth::valid_password_username(o.user)) {
        std::fprintf(stderr, "ferrymq passwd: a user name must be non-empty, without ':' or "
                             "line breaks\n");
        return 1;
    }
    std::vector<auth::PasswordEntry> entries;
    try {
        if (::access(o.file.c_str(), F_OK) == 0) {
            entries = auth::load_password_file(o.file);
        }
    } catch (const auth::PasswordFileError &e) {
        std::fprintf(stderr, "ferrymq passwd: %s\n", e.what());
        return 1;
    }
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const auth::PasswordEntry &e) { return e.username == o.user; });
    const bool existed = it != entries.end();
    if (o.remove) {
        if (it == entries.end()) {
            std::fprintf(stderr, "ferrymq passwd: no user '%s' in %s\n", o.user.c_str(),
                         o.file.c_str());
            return 1;
        }
        entries.erase(it);
    } else {
        const std::optional<std::string> password = read_secret("Password: ");
        if (!password || password->empty()) {
            std::fprintf(stderr, "ferrymq passwd: no password given (one line on stdin)\n");
            return 1;
        }
        if (::isatty(STDIN_FILENO) != 0) {
            const std::optional<std::string> again = read_secret("Password again: ");
            if (!again || *again != *password) {
                std::fprintf(stderr, "ferrymq passwd: the passwords differ\n");
                return 1;
            }
        }
        auth::PasswordEntry entry =
            auth::make_password_entry(o.user, *password, o.iterations, o.scram_iterations);
        if (existed) {
            *it = std::move(entry);
        } else {
            entries.push_back(std::move(entry));
        }
    }
    try {
        auth::write_password_file(o.file, entries);
    } catch (const auth::PasswordFileError &e) {
        std::fprintf(stderr, "ferrymq passwd: %s\n", e.what());
        return 1;
    }
    std::printf("%s: %s '%s'\n", o.file.c_str(),
                o.remove ? "removed" : (existed ? "changed" : "added"), o.user.c_str());
    return 0;
}

// Declares "bench", the load generator (src/bench/), bound to `options`.
CLI::App *add_bench_command(CLI::App &app, bench::Options &options) {
    CLI::App *bench_command = app.add_subcommand(
        "bench", "Measure an MQTT broker (ferrymq or another): throughput, loss, latency, "
                 "connect rate, memory per connection");
    bench_command->add_option("--host", options.host, "Broker host")->capture_default_str();
    bench_command->add_option("--port", options.port, "Broker port")->capture_default_str();
    bench_command
        ->add_option("--scenario", options.scenario,
                     "fanin, fanout, latency, connect, idle or durable (QoS 1 into an offline "
                     "persistent session)")
        ->check(CLI::IsMember({"fanin", "fanout", "latency", "connect", "idle", "durable"}))
        ->capture_default_str();
    bench_command->add_option("--clients", options.clients,
                              "Publishers (fanin 8, latency 1, durable 4), subscribers (fanout "
                              "1000) or connections (connect 1000, idle 10000)");
    bench_command->add_option("--qos", options.qos, "QoS of publishing and subscribing")
        ->check(CLI::Range(0, 1))
        ->capture_default_str();
    bench_command->add_option("--payload", options.payload, "Payload bytes (at least 20)")
        ->check(CLI::Range(20u, 1u << 20))
        ->capture_default_str();
    bench_command
        ->add_option("--duration", options.duration,
                     "Seconds of traffic (10), or of holding the idle connections (2)")
        ->check(CLI::PositiveNumber);
    bench_command->add_option("--messages", options.messages,
                              "Messages in total over all publishers, instead of --duration");
    bench_command->add_option("--topic", options.topic,
                              "Topic to publish (and subscribe) on; default one of the run's own");
    bench_command
        ->add_option("--rate", options.rate,
                     "Total msg/s over all publishers; 0 = flat out (latency: 20000)")
        ->check(CLI::NonNegativeNumber);
    bench_command->add_option("--broker-pid", options.broker_pid,
                              "Broker process, for CPU, RSS and bytes written from /proc");
    bench_command->add_flag("--json", options.json, "Print one JSON object per scenario");
    bench_command->add_option("--protocol", options.protocol, "3.1.1 or 5")
        ->check(CLI::IsMember({"3.1.1", "5", "5.0"}))
        ->capture_default_str();
    bench_command
        ->add_option("--window", options.window,
                     "Messages a publisher may be ahead of its slowest subscriber")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    bench_command
        ->add_option("--inflight", options.inflight,
                     "Unacknowledged QoS 1 PUBLISHes (at most the broker's Receive Maximum)")
        ->check(CLI::Range(1, 65535))
        ->capture_default_str();
    bench_command->add_option("--concurrency", options.concurrency, "Connections set up at once")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    bench_command->add_flag("!--no-drain", options.drain,
                            "durable: skip resuming the session to count the queued messages");
    bench_command->add_flag("!--no-subscriber", options.subscriber,
                            "durable: publishers only, for a bridge forward rule to store");
    bench_command->add_option("--tls-ca", options.tls_ca,
                              "Connect over TLS, trusting the CAs in this PEM file");
    bench_command->add_option("--tls-server-name", options.tls_server_name,
                              "Name in the broker's certificate (default: --host)");
    bench_command->footer("Exit status: 0 measured, 2 measured but messages were lost or "
                          "reordered, 1 the run failed.");
    return bench_command;
}

} // namespace

int main(int argc, char **argv) {
    CLI::App app{"ferrymq: an MQTT 3.1.1 and 5.0 broker.", "ferrymq"};
    app.set_version_flag("--version", "ferrymq " FERRYMQ_VERSION);
    app.require_subcommand(0, 1);

    RunOptions options;
    std::vector<CLI::Option *> top_level = add_run_options(app, options);
    CLI::App *run_command =
        app.add_subcommand("run", "Run the broker (the default without a subcommand)");
    add_run_options(*run_command, options);

    // Set after the subcommands are added, which would otherwise inherit it.
    app.footer("Without a subcommand, ferrymq runs the broker.");

    std::string check_path;
    CLI::App *check_command = app.add_subcommand(
        "check-config", "Validate a configuration file; print 'FILE: ok' or the first error");
    check_command->add_option("FILE", check_path, "YAML configuration file")->required();
    bool check_diff = false;
    check_command->add_flag("--diff", check_diff,
                            "Also list what a reload (SIGHUP) of FILE would change in the broker "
                            "running on its data_dir");

    bench::Options bench_options;
    CLI::App *bench_command = add_bench_command(app, bench_options);

    PasswdOptions passwd_options;
    CLI::App *passwd_command = app.add_subcommand(
        "passwd", "Add or change a user in a password file (the password is read from stdin, "
                  "with echo off on a terminal), or remove one with --delete");
    passwd_command->add_option("FILE", passwd_options.file, "Password file (created if missing)")
        ->required();
    passwd_command->add_option("USER", passwd_options.user, "User name")->required();
    passwd_command->add_flag("-D,--delete", passwd_options.remove, "Remove USER");
    passwd_command
        ->add_option("--iterations", passwd_options.iterations,
                     "PBKDF2-SHA512 rounds (each CONNECT check costs this much CPU once)")
        ->check(CLI::Range(auth::kMinPasswordIterations, auth::kMaxPasswordIterations))
        ->capture_default_str();
    passwd_command
        ->add_option("--scram-iterations", passwd_options.scram_iterations,
                     "PBKDF2-SHA256 rounds of the SCRAM-SHA-256 keys; 0 = no SCRAM keys")
        ->check(CLI::Range(0u, auth::kMaxPasswordIterations))
        ->capture_default_str();

    try {
        app.parse(argc, argv);
        for (CLI::Option *option : top_level) {
            if (check_command->parsed() && option->count() > 0) {
                throw CLI::ValidationError(option->get_name(),
                                           "applies to run, not to check-config");
            }
        }
        for (CLI::Option *option : top_level) {
            if (passwd_command->parsed() && option->count() > 0) {
                throw CLI::ValidationError(option->get_name(), "applies to run, not to passwd");
            }
        }
        if (passwd_command->parsed() && passwd_options.scram_iterations != 0 &&
            passwd_options.scram_iterations < 4096) {
            throw CLI::ValidationError("--scram-iterations", "must be 0 or at least 4096");
        }
        for (CLI::Option *option : top_level) {
            if (bench_command->parsed() && option->count() > 0) {
                throw CLI::ValidationError(option->get_name(), "applies to run, not to bench");
            }
        }
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    }

    if (check_command->parsed()) {
        return check_config(check_path, check_diff);
    }
    if (bench_command->parsed()) {
        return bench::run(bench_options);
    }
    if (passwd_command->parsed()) {
        return run_passwd(passwd_options);
    }
    return run(options);
}
