// SPDX-License-Identifier: Apache-2.0
// Tests for src/config: defaults, the shipped configs/ferrymq.yaml, and that every kind of
// mistake is reported at the right FILE:LINE:COL.
#include "config/config.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <regex>
#include <string>
#include <string_view>

using ferrymq::config::AclAccess;
using ferrymq::config::Config;
using ferrymq::config::ConfigError;
using ferrymq::config::Endpoint;
using ferrymq::config::is_loopback;
using ferrymq::config::kMaxPacketSize;
using ferrymq::config::load_config_file;
using ferrymq::config::load_config_string;
using ferrymq::config::parse_endpoint;
using ferrymq::config::SharedStrategy;
using ferrymq::util::LogLevel;

namespace {

// The what() of the ConfigError that loading `yaml` throws, or "no error".
std::string error_of(std::string_view yaml) {
    try {
        load_config_string(yaml, "t.yaml");
    } catch (const ConfigError &e) {
        return e.what();
    }
    return "no error";
}

// True when `text` starts with `prefix`; doctest then prints both strings on failure.
bool starts_with(const std::string &text, std::string_view prefix) {
    return std::string_view(text).substr(0, prefix.size()) == prefix;
}

void check_defaults(const Config &config) {
    REQUIRE(config.listeners.size() == 1);
    CHECK(config.listeners[0].host == "127.0.0.1");
    CHECK(config.listeners[0].port == 1883);
    CHECK(config.listeners[0].allow_anonymous);
    CHECK(config.data_dir == "ferrymq-data");
    CHECK(config.log_level == LogLevel::info);
    CHECK(config.limits.max_packet_size == 268435460);
    CHECK(config.limits.max_connections == 100000);
    CHECK(config.shared_subscriptions.enabled);
    CHECK(config.shared_subscriptions.strategy == SharedStrategy::round_robin);
    CHECK(config.limits.outbound_topic_aliases == 10);
    CHECK(config.limits.receive_maximum == 65535);
    CHECK(config.limits.server_keep_alive == 0);
    CHECK_FALSE(config.limits.validate_utf8_payloads);
    CHECK(config.plugins.empty());
}

} // namespace

TEST_CASE("config: defaults") {
    check_defaults(Config{});
    check_defaults(load_config_string("", "empty.yaml"));
    check_defaults(load_config_string("# only a comment\n", "comment.yaml"));
    check_defaults(load_config_string("log:\nlimits:\n", "null-sections.yaml"));
}

TEST_CASE("config: full example") {
    Config config = load_config_string(R"(
listeners:
  - bind: "127.0.0.1:1883"     # HOST:PORT, IPv6 as "[::1]:1883"
    allow_anonymous: true
  - bind: "[::1]:8883"
    allow_anonymous: false
data_dir: /var/lib/ferrymq
log:
  level: debug
limits:
  max_packet_size: 65536
  max_connections: 10
)",
                                       "full.yaml");
    REQUIRE(config.listeners.size() == 2);
    CHECK(config.listeners[0].host == "127.0.0.1");
    CHECK(config.listeners[0].port == 1883);
    CHECK(config.listeners[0].allow_anonymous);
    CHECK(config.listeners[0].line == 3);
    CHECK(config.listeners[1].host == "::1");
    CHECK(config.listeners[1].port == 8883);
    CHECK_FALSE(config.listeners[1].allow_anonymous);
    CHECK(config.listeners[1].line == 5);
    CHECK(config.data_dir == "/var/lib/ferrymq");
    CHECK(config.log_level == LogLevel::debug);
    CHECK(config.limits.max_packet_size == 65536);
    CHECK(config.limits.max_connections == 10);
}

TEST_CASE("config: partial sections keep the other defaults") {
    Config config = load_config_string("limits:\n  max_connections: 5\n", "t.yaml");
    CHECK(config.limits.max_connections == 5);
    CHECK(config.limits.max_packet_size == kMaxPacketSize);
    CHECK(config.listeners.size() == 1);
}

TEST_CASE("config: the shipped configs/ferrymq.yaml loads and matches the defaults") {
    Config config = load_config_file(FERRYMQ_SOURCE_DIR "/configs/ferrymq.yaml");
    Config defaults;
    CHECK(config.data_dir == "/var/lib/ferrymq");
    config.data_dir = defaults.data_dir;
    check_defaults(config);
}

TEST_CASE("config: MQTT 5.0 flow-control keys: defaults, values and ranges") {
    Config defaults;
    CHECK(defaults.limits.outbound_topic_aliases == 10);
    CHECK(defaults.limits.receive_maximum == 65535);
    CHECK(defaults.limits.server_keep_alive == 0);
    CHECK_FALSE(defaults.limits.validate_utf8_payloads);
    Config config = load_config_string("limits:\n"
                                       "  outbound_topic_aliases: 0\n"
                                       "  receive_maximum: 1\n"
                                       "  server_keep_alive: 65535\n"
                                       "  validate_utf8_payloads: true\n",
                                       "t.yaml");
    CHECK(config.limits.outbound_topic_aliases == 0);
    CHECK(config.limits.receive_maximum == 1);
    CHECK(config.limits.server_keep_alive == 65535);
    CHECK(config.limits.validate_utf8_payloads);
    CHECK(error_of("limits:\n  receive_maximum: 0\n") ==
          "t.yaml:2:20: limits.receive_maximum must be between 1 and 65535, got 0");
    CHECK(starts_with(error_of("limits:\n  outbound_topic_aliases: 65536\n"), "t.yaml:2:27: "));
    CHECK(starts_with(error_of("limits:\n  server_keep_alive: -1\n"), "t.yaml:2:22: "));
    CHECK(error_of("limits:\n  validate_utf8_payloads: yes please\n") ==
          "t.yaml:2:27: limits.validate_utf8_payloads must be true or false, got 'yes please'");
}

TEST_CASE("config: shared_subscriptions: values, unknown strategies and keys") {
    Config config = load_config_string("shared_subscriptions:\n"
                                       "  enabled: false\n"
                                       "  strategy: hash_topic\n",
                                       "t.yaml");
    CHECK_FALSE(config.shared_subscriptions.enabled);
    CHECK(config.shared_subscriptions.strategy == SharedStrategy::hash_topic);
    for (const auto &named :
         {std::pair{"round_robin", SharedStrategy::round_robin},
          std::pair{"random", SharedStrategy::random}, std::pair{"sticky", SharedStrategy::sticky},
          std::pair{"hash_client", SharedStrategy::hash_client},
          std::pair{"hash_topic", SharedStrategy::hash_topic}}) {
        CHECK(load_config_string(
                  std::string("shared_subscriptions:\n  strategy: ") + named.first + "\n", "t.yaml")
                  .shared_subscriptions.strategy == named.second);
    }
    CHECK(error_of("shared_subscriptions:\n  strategy: fair\n") ==
          "t.yaml:2:13: unknown shared_subscriptions.strategy 'fair'; expected one of: "
          "round_robin, random, sticky, hash_client, hash_topic");
    CHECK(error_of("shared_subscriptions:\n  enabled: yes\n") ==
          "t.yaml:2:12: shared_subscriptions.enabled must be true or false, got 'yes'");
    CHECK(error_of("shared_subscriptions:\n  strategies: random\n") ==
          "t.yaml:2:3: unknown key 'strategies' in shared_subscriptions; expected one of: "
          "enabled, strategy");
}

TEST_CASE("config: YAML syntax errors carry the parser's position") {
    CHECK(error_of("listeners: [\n") == "t.yaml:2:1: end of sequence flow not found");
    CHECK(starts_with(error_of("log:\n  level: info\n level: x\n"), "t.yaml:3:"));
    CHECK(error_of("a: 1\n---\nb: 2\n") ==
          "t.yaml:3:1: expected one YAML document, found a second one");
}

TEST_CASE("config: unknown keys are refused at every level") {
    CHECK(error_of("listners:\n  - bind: 127.0.0.1:1883\n") ==
          "t.yaml:1:1: unknown key 'listners' in top level; expected one of: listeners, "
          "data_dir, log, limits, shared_subscriptions, authentication, request_response, sys, "
          "redirect, storage, bridges, plugins, acl, abuse");
    CHECK(error_of("log:\n  levle: info\n") ==
          "t.yaml:2:3: unknown key 'levle' in log; expected one of: level");
    CHECK(starts_with(error_of("limits:\n  max_conections: 1\n"),
                      "t.yaml:2:3: unknown key 'max_conections' in limits;"));
    CHECK(starts_with(error_of("listeners:\n  - bind: 127.0.0.1:1883\n    allow_anonymus: true\n"),
                      "t.yaml:3:5: unknown key 'allow_anonymus' in listeners[0];"));
    CHECK(error_of("log: {}\nlog: {}\n") ==
          "t.yaml:2:1: duplicate key 'log' in top level (first on line 1)");
    CHECK(starts_with(error_of("? [a]\n: 1\n"), "t.yaml:1:3: keys in top level"));
}

TEST_CASE("config: wrong types") {
    CHECK(starts_with(error_of("log: info\n"), "t.yaml:1:6: log must be a mapping"));
    CHECK(starts_with(error_of("just a string\n"), "t.yaml:1:1: top level must be a mapping"));
    CHECK(error_of("data_dir: [a]\n") == "t.yaml:1:11: data_dir must be a string, got a list");
    CHECK(error_of("data_dir:\n") == "t.yaml:1:1: data_dir must be a string, got nothing");
    CHECK(error_of("data_dir: \"\"\n") == "t.yaml:1:11: data_dir must not be empty");
    CHECK(error_of("limits:\n  max_connections: many\n") ==
          "t.yaml:2:20: limits.max_connections must be an integer, got 'many'");
    CHECK(starts_with(error_of("limits:\n  max_connections: 1.5\n"), "t.yaml:2:20: "));
    CHECK(starts_with(error_of("limits:\n  max_connections: 0x10\n"), "t.yaml:2:20: "));
    CHECK(error_of("listeners:\n  - bind: 127.0.0.1:1883\n    allow_anonymous: maybe\n") ==
          "t.yaml:3:22: listeners[0].allow_anonymous must be true or false, got 'maybe'");
    CHECK(starts_with(error_of("listeners:\n  bind: 127.0.0.1:1883\n"),
                      "t.yaml:2:3: listeners must be a list"));
    CHECK(starts_with(error_of("listeners:\n  - bind: [1]\n"),
                      "t.yaml:2:11: listeners[0].bind must be a string"));
}

TEST_CASE("config: out-of-range values") {
    CHECK(error_of("listeners:\n  - bind: 127.0.0.1:0\n") ==
          "t.yaml:2:11: listeners[0].bind port must be between 1 and 65535, got 0");
    CHECK(starts_with(error_of("listeners:\n  - bind: \"127.0.0.1:65536\"\n"), "t.yaml:2:11: "));
    CHECK(error_of("limits:\n  max_packet_size: 0\n") ==
          "t.yaml:2:20: limits.max_packet_size must be between 1 and 268435460, got 0");
    CHECK(starts_with(error_of("limits:\n  max_packet_size: 268435461\n"), "t.yaml:2:20: "));
    CHECK(load_config_string("limits:\n  max_packet_size: 268435460\n", "t.yaml")
              .limits.max_packet_size == kMaxPacketSize);
    CHECK(starts_with(error_of("limits:\n  max_connections: 0\n"), "t.yaml:2:20: "));
    CHECK(starts_with(error_of("limits:\n  max_connections: -5\n"), "t.yaml:2:20: "));
    CHECK(starts_with(error_of("limits:\n  max_connections: 4294967296\n"), "t.yaml:2:20: "));
    CHECK(starts_with(error_of("limits:\n  max_connections: 99999999999999999999999\n"),
                      "t.yaml:2:20: "));
}

TEST_CASE("config: bad bind strings") {
    CHECK(error_of("listeners:\n  - bind: localhost:1883\n") ==
          "t.yaml:2:11: listeners[0].bind host 'localhost' must be a numeric IPv4 or IPv6 "
          "address");
    CHECK(starts_with(error_of("listeners:\n  - bind: \"::1:1883\"\n"), "t.yaml:2:11: "));
    CHECK(starts_with(error_of("listeners:\n  - bind: \"[::1]1883\"\n"), "t.yaml:2:11: "));
    CHECK(starts_with(error_of("listeners:\n  - bind: \":1883\"\n"), "t.yaml:2:11: "));
    CHECK(starts_with(error_of("listeners:\n  - bind: 127.0.0.1\n"), "t.yaml:2:11: "));
    CHECK(starts_with(error_of("listeners:\n  - bind: 300.0.0.1:1883\n"), "t.yaml:2:11: "));
    CHECK(starts_with(error_of("listeners:\n  - allow_anonymous: false\n"),
                      "t.yaml:2:5: listeners[0] needs a 'bind: HOST:PORT' key"));
}

TEST_CASE("config: unknown log level") {
    CHECK(error_of("log:\n  level: verbose\n") ==
          "t.yaml:2:10: unknown log level 'verbose'; expected one of: error, warn, info, debug, "
          "trace");
}

TEST_CASE("config: the listener list may not be empty") {
    CHECK(error_of("listeners: []\n") == "t.yaml:1:12: listeners must list at least one listener");
    CHECK(error_of("listeners:\n") == "t.yaml:1:1: listeners must list at least one listener");
}

TEST_CASE("config: duplicate binds") {
    CHECK(error_of("listeners:\n  - bind: 127.0.0.1:1883\n  - bind: 127.0.0.1:1883\n") ==
          "t.yaml:3:11: duplicate bind '127.0.0.1:1883', already used by listeners[0] on line 2");
    // Different spellings of one IPv6 address are the same socket.
    CHECK(starts_with(error_of("listeners:\n  - bind: \"[::1]:1883\"\n  - bind: \"[0::1]:1883\"\n"),
                      "t.yaml:3:11: duplicate bind"));
    // The same host on another port, or another family, is fine.
    CHECK(load_config_string("listeners:\n  - bind: 0.0.0.0:1883\n  - bind: 0.0.0.0:1884\n"
                             "  - bind: \"[::]:1883\"\n",
                             "t.yaml")
              .listeners.size() == 3);
}

TEST_CASE("config: an unreadable file") {
    try {
        load_config_file("/nonexistent/ferrymq.yaml");
        FAIL("no error");
    } catch (const ConfigError &e) {
        CHECK(std::string(e.what()) ==
              "/nonexistent/ferrymq.yaml: cannot read: No such file or directory");
        CHECK(e.line() == 0);
    }
}

TEST_CASE("config: ConfigError keeps its parts") {
    try {
        load_config_string("log:\n  level: loud\n", "x.yaml");
        FAIL("no error");
    } catch (const ConfigError &e) {
        CHECK(e.file() == "x.yaml");
        CHECK(e.line() == 2);
        CHECK(e.column() == 10);
        CHECK(starts_with(e.message(), "unknown log level 'loud'"));
    }
}

TEST_CASE("config: parse_endpoint") {
    CHECK(parse_endpoint("127.0.0.1:1883") == Endpoint{"127.0.0.1", 1883});
    CHECK(parse_endpoint("0.0.0.0:0") == Endpoint{"0.0.0.0", 0});
    CHECK(parse_endpoint("127.0.0.1:65535") == Endpoint{"127.0.0.1", 65535});
    CHECK(parse_endpoint("[::1]:1883") == Endpoint{"::1", 1883});
    CHECK(parse_endpoint("[::]:0") == Endpoint{"::", 0});
    CHECK(parse_endpoint("[fe80::1%eth0]:1883") == Endpoint{"fe80::1%eth0", 1883});
    // Names pass here; only listeners insist on numeric addresses.
    CHECK(parse_endpoint("broker.example:8883") == Endpoint{"broker.example", 8883});

    for (std::string_view bad :
         {"", ":", ":1883", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
          "127.0.0.1:+1", "127.0.0.1:18x", "127.0.0.1: 1883", "::1:1883", "[::1]", "[::1]1883",
          "[::1:1883", "[]:1883", "[1.2.3.4]:80", "a b:1", "127.0.0.1:99999999999999999999"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_endpoint(bad).has_value());
    }

    std::string why;
    CHECK_FALSE(parse_endpoint("::1:1883", &why));
    CHECK(why == "an IPv6 address must be in brackets, as in [::1]:1883");
}

TEST_CASE("config: format_endpoint and is_ip_literal") {
    using ferrymq::config::format_endpoint;
    using ferrymq::config::is_ip_literal;
    CHECK(format_endpoint("127.0.0.1", 1883) == "127.0.0.1:1883");
    CHECK(format_endpoint("::1", 0) == "[::1]:0");
    CHECK(is_ip_literal("127.0.0.1"));
    CHECK(is_ip_literal("::"));
    CHECK_FALSE(is_ip_literal("localhost"));
    CHECK_FALSE(is_ip_literal("1.2.3"));
}

// The Log checks below live here until tests/meson.build lists a test_log.cpp; log levels
// are read by the config, and integration tests depend on the line format.
TEST_CASE("config: log level names") {
    using ferrymq::util::log_level_name;
    using ferrymq::util::parse_log_level;
    for (LogLevel level :
         {LogLevel::error, LogLevel::warn, LogLevel::info, LogLevel::debug, LogLevel::trace}) {
        CHECK(parse_log_level(log_level_name(level)) == level);
    }
    CHECK_FALSE(parse_log_level("INFO").has_value());
    CHECK_FALSE(parse_log_level("").has_value());
}

TEST_CASE("log: one escaped line per message, filtered by level") {
    std::FILE *out = std::tmpfile();
    REQUIRE(out != nullptr);
    ferrymq::util::Log log(LogLevel::info, out);
    CHECK(log.enabled(LogLevel::warn));
    CHECK_FALSE(log.enabled(LogLevel::debug));
    log.info("listening on %s:%d", "127.0.0.1", 34567);
    log.debug("dropped %d", 1);
    log.error("two\nlines");
    std::rewind(out);
    char buffer[256] = {};
    size_t n = std::fread(buffer, 1, sizeof buffer - 1, out);
    std::fclose(out);
    std::string text(buffer, n);
    std::regex expected(
        "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z info  listening on "
        "127\\.0\\.0\\.1:34567\n"
        "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z error two\\\\nlines\n");
    CAPTURE(text);
    CHECK(std::regex_match(text, expected));
}

TEST_CASE("log: a message longer than the stack buffer is written whole") {
    std::FILE *out = std::tmpfile();
    REQUIRE(out != nullptr);
    ferrymq::util::Log log(LogLevel::info, out);
    std::string long_text(2000, 'x');
    log.warn("%s|", long_text.c_str());
    std::rewind(out);
    std::string text(4096, '\0');
    text.resize(std::fread(text.data(), 1, text.size(), out));
    std::fclose(out);
    CHECK(text.find(long_text + "|\n") != std::string::npos);
}

TEST_CASE("config: SCRAM users for enhanced authentication") {
    const Config c = load_config_string("authentication:\n"
                                        "  scram_iterations: 8192\n"
                                        "  scram_users:\n"
                                        "    - username: alice\n"
                                        "      password: s3cret\n",
                                        "t.yaml");
    REQUIRE(c.authentication.scram_users.size() == 1);
    CHECK(c.authentication.scram_users[0].username == "alice");
    CHECK(c.authentication.scram_iterations == 8192);
    CHECK(error_of("authentication:\n  scram_users:\n    - username: alice\n") ==
          "t.yaml:3:7: each SCRAM user needs a username and a password");
    CHECK(error_of("authentication:\n  scram_users:\n    - {username: a, password: x}\n"
                   "    - {username: a, password: y}\n") ==
          "t.yaml:4:18: duplicate SCRAM user 'a'");
    CHECK(error_of("authentication:\n  scram_iterations: 10\n").rfind("t.yaml:2:21:", 0) == 0);
}

TEST_CASE("config: storage section") {
    const ferrymq::config::Config c = ferrymq::config::load_config_string(
        "storage:\n  durability: power\n  flush_interval: 50\n  max_size: 1000000\n"
        "  full_policy: drop_oldest\n",
        "t.yaml");
    CHECK(c.storage.durability == ferrymq::config::Durability::power);
    CHECK(c.storage.flush_interval_ms == 50);
    CHECK(c.storage.max_size == 1000000);
    CHECK(c.storage.full_policy == ferrymq::config::StoreFullPolicy::drop_oldest);
    CHECK(error_of("storage:\n  durability: disk\n") ==
          "t.yaml:2:15: unknown storage.durability 'disk'; expected crash or power");
    CHECK(error_of("storage:\n  flush_interval: 20000\n").starts_with("t.yaml:2:19:"));
}

TEST_CASE("config: plugins are '- path: FILE' entries, in order") {
    const Config c = load_config_string("plugins:\n"
                                        "  - path: /usr/lib/ferrymq/a.so\n"
                                        "  - {path: ./b.so}\n",
                                        "t.yaml");
    REQUIRE(c.plugins.size() == 2);
    CHECK(c.plugins[0].path == "/usr/lib/ferrymq/a.so");
    CHECK(c.plugins[1].path == "./b.so");
    CHECK(load_config_string("plugins: []\n", "t.yaml").plugins.empty());
    CHECK(load_config_string("", "t.yaml").plugins.empty());
    CHECK(starts_with(error_of("plugins: /a.so\n"), "t.yaml:1:10: plugins must be a list"));
    CHECK(error_of("plugins:\n  - {}\n") == "t.yaml:2:5: each plugin needs a path");
    CHECK(error_of("plugins:\n  - path: \"\"\n") == "t.yaml:2:11: path must not be empty");
    CHECK(starts_with(error_of("plugins:\n  - path: a.so\n    opts: 1\n"),
                      "t.yaml:3:5: unknown key 'opts' in plugins[0];"));
}

TEST_CASE("config: allow_anonymous defaults to true on loopback addresses only") {
    Config config = load_config_string("listeners:\n"
                                       "  - bind: 127.0.0.1:1883\n"
                                       "  - bind: 127.8.9.10:1883\n"
                                       "  - bind: \"[::1]:1883\"\n"
                                       "  - bind: 0.0.0.0:1883\n"
                                       "  - bind: \"[::]:1883\"\n"
                                       "  - bind: 192.168.1.2:1883\n"
                                       "  - bind: 192.168.1.2:1884\n"
                                       "    allow_anonymous: true\n",
                                       "t.yaml");
    REQUIRE(config.listeners.size() == 7);
    CHECK(config.listeners[0].allow_anonymous);
    CHECK(config.listeners[1].allow_anonymous);
    CHECK(config.listeners[2].allow_anonymous);
    CHECK_FALSE(config.listeners[3].allow_anonymous);
    CHECK_FALSE(config.listeners[4].allow_anonymous);
    CHECK_FALSE(config.listeners[5].allow_anonymous);
    CHECK(config.listeners[6].allow_anonymous);
    CHECK(Config{}.listeners[0].allow_anonymous); // the embedded default, 127.0.0.1
    CHECK(is_loopback("127.0.0.1"));
    CHECK(is_loopback("::1"));
    CHECK_FALSE(is_loopback("::"));
    CHECK_FALSE(is_loopback("128.0.0.1"));
}

TEST_CASE("config: password_file and acl rules") {
    Config config = load_config_string("authentication:\n"
                                       "  password_file: /etc/ferrymq/passwd\n"
                                       "acl:\n"
                                       "  - topic: \"users/%u/#\"\n"
                                       "  - username: admin\n"
                                       "    topic: \"#\"\n"
                                       "    access: subscribe\n"
                                       "  - client_id: dev1\n"
                                       "    topic: cmd/dev1\n"
                                       "    access: publish\n"
                                       "    action: deny\n",
                                       "t.yaml");
    CHECK(config.authentication.password_file == "/etc/ferrymq/passwd");
    REQUIRE(config.acl.size() == 3);
    CHECK(config.acl[0].topic == "users/%u/#");
    CHECK(config.acl[0].access == AclAccess::both);
    CHECK(config.acl[0].allow);
    CHECK_FALSE(config.acl[0].username.has_value());
    CHECK(config.acl[0].line == 4);
    CHECK(config.acl[1].username == "admin");
    CHECK(config.acl[1].access == AclAccess::subscribe);
    CHECK(config.acl[2].client_id == "dev1");
    CHECK(config.acl[2].access == AclAccess::publish);
    CHECK_FALSE(config.acl[2].allow);
    auto error_at = [](const std::string &yaml) {
        try {
            load_config_string(yaml, "t.yaml");
        } catch (const ConfigError &e) {
            return std::string(e.what());
        }
        return std::string();
    };
    CHECK(error_at("acl:\n  - topic: a/#/b\n") ==
          "t.yaml:2:12: 'a/#/b' is not a valid topic filter");
    CHECK(error_at("acl:\n  - topic: a\n    access: read\n") ==
          "t.yaml:3:13: unknown access 'read'; expected publish, subscribe or both");
    CHECK(error_at("acl:\n  - topic: a\n    action: maybe\n") ==
          "t.yaml:3:13: unknown action 'maybe'; expected allow or deny");
    CHECK(error_at("acl:\n  - username: x\n") == "t.yaml:2:5: acl[0] needs a 'topic: FILTER'");
    CHECK(
        error_at("acl:\n  - topic: a\n    user: x\n").rfind("t.yaml:3:5: unknown key 'user'", 0) ==
        0);
    CHECK(error_at("authentication:\n  password_file: \"\"\n") ==
          "t.yaml:2:18: password_file must not be empty");
}

TEST_CASE("config: abuse section") {
    Config config = load_config_string("abuse:\n  ban_after_failures: 5\n  window: 30\n"
                                       "  ban_time: 600\n  max_connects: 20\n",
                                       "t.yaml");
    CHECK(config.abuse.ban_after_failures == 5);
    CHECK(config.abuse.window == 30);
    CHECK(config.abuse.ban_time == 600);
    CHECK(config.abuse.max_connects == 20);
    CHECK(config.abuse.log_interval == 10);
    CHECK(error_of("abuse:\n  window: 0\n") == "t.yaml:2:11: abuse.window must be between 1 and "
                                               "86400, got 0");
}
