// SPDX-License-Identifier: Apache-2.0
#include "config/config.hpp"

#include "bridge/rules.hpp"
#include "mqtt/topic.hpp"

#include <arpa/inet.h>
#include <mbedtls/ssl.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <initializer_list>
#include <unistd.h>
#include <utility>

namespace ferrymq::config {

ConfigError::ConfigError(std::string file, int line, int column, std::string message)
    : std::runtime_error(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                         message),
      file_(std::move(file)), line_(line), column_(column), message_(std::move(message)) {}

ConfigError::ConfigError(std::string file, std::string message)
    : std::runtime_error(file + ": " + message), file_(std::move(file)),
      message_(std::move(message)) {}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string *error) {
    auto fail = [error](const char *why) -> std::optional<Endpoint> {
        if (error != nullptr) {
            *error = why;
        }
        return std::nullopt;
    };
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos) {
            return fail("missing ']' after the IPv6 address");
        }
        host = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (rest.empty() || rest.front() != ':') {
            return fail("missing ':PORT' after ']'");
        }
        port = rest.substr(1);
        if (host.find(':') == std::string_view::npos) {
            return fail("brackets are only for IPv6 addresses");
        }
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return fail("missing ':PORT'");
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return fail("an IPv6 address must be in brackets, as in [::1]:1883");
        }
    }
    if (host.empty()) {
        return fail("empty host");
    }
    if (host.find_first_of("[] \t") != std::string_view::npos) {
        return fail("invalid character in host");
    }
    // from_chars would accept a leading '-' for signed types only, but it also stops at the
    // first non-digit, so both ends are checked here.
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec == std::errc::invalid_argument || end != port.data() + port.size()) {
        return fail("the port must be a decimal number");
    }
    if (ec == std::errc::result_out_of_range || value > 65535) {
        return fail("the port is larger than 65535");
    }
    return Endpoint{std::string(host), static_cast<uint16_t>(value)};
}

std::string format_endpoint(std::string_view host, uint16_t port) {
    std::string text;
    if (host.find(':') != std::string_view::npos) {
        text.append("[").append(host).append("]");
    } else {
        text.append(host);
    }
    return text + ":" + std::to_string(port);
}

bool is_ip_literal(std::string_view host) {
    std::string copy(host);
    unsigned char bytes[sizeof(in6_addr)];
    return inet_pton(AF_INET, copy.c_str(), bytes) == 1 ||
           inet_pton(AF_INET6, copy.c_str(), bytes) == 1;
}

bool is_loopback(std::string_view host) {
    std::string copy(host);
    in_addr v4{};
    if (inet_pton(AF_INET, copy.c_str(), &v4) == 1) {
        return (ntohl(v4.s_addr) >> 24) == 127;
    }
    in6_addr v6{};
    return inet_pton(AF_INET6, copy.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

namespace {

// A YAML node together with what an error about it should point at and call it.
struct Value {
    YAML::Node node;
    YAML::Mark mark;  // the node's own position, or its key's when the node is null
    std::string path; // "limits.max_connections", "listeners[1].bind"; empty for the root
};

std::string describe(const YAML::Node &node) {
    switch (node.Type()) {
    case YAML::NodeType::Scalar:
        return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Map:
        return "a mapping";
    default:
        return "nothing";
    }
}

std::string join(std::initializer_list<std::string_view> words) {
    std::string text;
    for (std::string_view word : words) {
        text.append(text.empty() ? "" : ", ").append(word);
    }
    return text;
}

class Section;

// Turns YAML nodes into typed values and every mistake into a ConfigError at the node's
// position. Lives on the stack of one load_config_*() call; the section readers below share
// it so that they all check and report the same way.
class Reader {
  public:
    explicit Reader(const std::string &name) : name_(name) {}

    [[noreturn]] void fail(const YAML::Mark &mark, const std::string &message) const {
        // yaml-cpp counts from 0 and uses -1 for "no position"; an error always gets one.
        throw ConfigError(name_, std::max(mark.line, 0) + 1, std::max(mark.column, 0) + 1, message);
    }
    [[noreturn]] void fail(const Value &value, const std::string &message) const {
        fail(value.mark, message);
    }

    // Checks that `value` is a mapping whose keys are all in `allowed`, each at most once.
    // A null value (a key with nothing after it) reads as an empty mapping, i.e. defaults.
    Section section(const Value &value, std::initializer_list<std::string_view> allowed) const;

    std::string string(const Value &value) const {
        require_scalar(value, "a string");
        return value.node.Scalar();
    }

    bool boolean(const Value &value) const {
        require_scalar(value, "true or false");
        const std::string &text = value.node.Scalar();
        if (text == "true" || text == "True" || text == "TRUE") {
            return true;
        }
        if (text == "false" || text == "False" || text == "FALSE") {
            return false;
        }
        fail(value, value.path + " must be true or false, got '" + text + "'");
    }

    uint64_t integer(const Value &value, uint64_t min, uint64_t max) const {
        require_scalar(value, "an integer");
        const std::string &text = value.node.Scalar();
        std::string_view digits = text;
        bool negative = !digits.empty() && digits.front() == '-';
        if (negative) {
            digits.remove_prefix(1);
        }
        uint64_t number = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
        if (digits.empty() || ec == std::errc::invalid_argument ||
            end != digits.data() + digits.size()) {
            fail(value, value.path + " must be an integer, got '" + text + "'");
        }
        if (negative || ec == std::errc::result_out_of_range || number < min || number > max) {
            fail(value, value.path + " must be between " + std::to_string(min) + " and " +
                            std::to_string(max) + ", got " + text);
        }
        return number;
    }

  private:
    void require_scalar(const Value &value, const char *expected) const {
        if (!value.node.IsScalar()) {
            fail(value, value.path + " must be " + expected + ", got " + describe(value.node));
        }
    }

    const std::string &name_;
};

// The checked keys of one mapping, in file order. Only Reader::section() makes one, so
// holding a Section means its keys were already validated.
class Section {
  public:
    // The value under `key`, or nothing when the key is absent (the default applies).
    std::optional<Value> get(std::string_view key) const {
        for (const auto &[name, value] : entries_) {
            if (name == key) {
                return value;
            }
        }
        return std::nullopt;
    }

  private:
    friend class Reader;
    std::vector<std::pair<std::string, Value>> entries_;
    std::vector<int> key_lines_; // 0-based line of each entry's key, for duplicate reports
};

Section Reader::section(const Value &value, std::initializer_list<std::string_view> allowed) const {
    Section section;
    if (value.node.IsNull()) {
        return section;
    }
    std::string where = value.path.empty() ? "top level" : value.path;
    if (!value.node.IsMap()) {
        fail(value, where + " must be a mapping of key: value lines, got " + describe(value.node));
    }
    for (auto it = value.node.begin(); it != value.node.end(); ++it) {
        // Copies, not references: the iterator hands out a temporary pair.
        YAML::Node key = it->first;
        YAML::Node node = it->second;
        if (!key.IsScalar()) {
            fail(key.Mark(), "keys in " + where + " must be plain words");
        }
        const std::string &name = key.Scalar();
        bool known = false;
        for (std::string_view candidate : allowed) {
            known = known || candidate == name;
        }
        if (!known) {
            fail(key.Mark(),
                 "unknown key '" + name + "' in " + where + "; expected one of: " + join(allowed));
        }
        for (size_t i = 0; i < section.entries_.size(); ++i) {
            if (section.entries_[i].first == name) {
                fail(key.Mark(), "duplicate key '" + name + "' in " + where + " (first on line " +
                                     std::to_string(section.key_lines_[i] + 1) + ")");
            }
        }
        YAML::Mark mark = node.IsNull() || node.Mark().is_null() ? key.Mark() : node.Mark();
        std::string path = value.path.empty() ? name : value.path + "." + name;
        section.entries_.emplace_back(name, Value{node, mark, std::move(path)});
        section.key_lines_.push_back(key.Mark().line);
    }
    return section;
}

// One function per section below: each takes the section's value, checks its keys with
// Reader::section() and fills its part of Config. A new section is one more function and
// one more key in read_top_level().

// The binary form of a listener's address, so that "::1" and "0:0::1" count as the same.
std::string address_key(const ListenerConfig &listener) {
    unsigned char bytes[sizeof(in6_addr)] = {};
    int family = listener.host.find(':') == std::string::npos ? AF_INET : AF_INET6;
    inet_pton(family, listener.host.c_str(), bytes);
    return std::string(reinterpret_cast<const char *>(bytes), sizeof bytes) +
           std::to_string(family) + ":" + std::to_string(listener.port);
}

// Reads one "- bind: ..." entry; `earlier` are the entries above it, which it must not repeat.
// listeners[].user_properties: limits on the User Properties of 5.0 PUBLISH packets.
void read_user_property_limits(const Reader &reader, const Value &value,
                               UserPropertyLimits &limits) {
    Section section = reader.section(value, {"max_count", "max_bytes", "allowed_keys", "action"});
    if (auto v = section.get("max_count")) {
        limits.max_count = static_cast<uint32_t>(reader.integer(*v, 0, 65535));
    }
    if (auto v = section.get("max_bytes")) {
        limits.max_bytes = static_cast<uint32_t>(reader.integer(*v, 0, UINT32_MAX));
    }
    if (auto v = section.get("allowed_keys")) {
        if (!v->node.IsSequence()) {
            reader.fail(*v,
                        "allowed_keys must be a list of property names, got " + describe(v->node));
        }
        for (size_t i = 0; i < v->node.size(); ++i) {
            YAML::Node node = v->node[i];
            Value key{node, node.Mark().is_null() ? v->mark : node.Mark(),
                      v->path + "[" + std::to_string(i) + "]"};
            limits.allowed_keys.push_back(reader.string(key));
        }
    }
    if (auto v = section.get("action")) {
        const std::string action = reader.string(*v);
        if (action != "reject" && action != "strip") {
            reader.fail(*v, "unknown action '" + action + "'; expected one of: reject, strip");
        }
        limits.strip = action == "strip";
    }
}

enum class TlsSide { listener, bridge };
TlsConfig read_tls(const Reader &reader, const Value &value, TlsSide side);

ListenerConfig read_listener(const Reader &reader, const Value &item,
                             const std::vector<ListenerConfig> &earlier) {
    Section section = reader.section(item, {"bind", "allow_anonymous", "user_properties", "tls"});
    ListenerConfig listener;
    listener.line = item.mark.line + 1;
    std::optional<Value> bind = section.get("bind");
    if (!bind) {
        reader.fail(item, item.path + " needs a 'bind: HOST:PORT' key");
    }
    std::string text = reader.string(*bind);
    std::string why;
    std::optional<Endpoint> endpoint = parse_endpoint(text, &why);
    if (!endpoint) {
        reader.fail(*bind, bind->path + " '" + text + "' is not HOST:PORT or [IPV6]:PORT: " + why);
    }
    if (!is_ip_literal(endpoint->host)) {
        reader.fail(*bind, bind->path + " host '" + endpoint->host +
                               "' must be a numeric IPv4 or IPv6 address");
    }
    if (endpoint->port == 0) {
        reader.fail(*bind, bind->path + " port must be between 1 and 65535, got 0");
    }
    listener.host = endpoint->host;
    listener.port = endpoint->port;
    listener.allow_anonymous = is_loopback(listener.host);
    for (size_t i = 0; i < earlier.size(); ++i) {
        if (address_key(earlier[i]) == address_key(listener)) {
            reader.fail(*bind, "duplicate bind '" + format_endpoint(listener.host, listener.port) +
                                   "', already used by listeners[" + std::to_string(i) +
                                   "] on line " + std::to_string(earlier[i].line));
        }
    }
    if (auto value = section.get("allow_anonymous")) {
        listener.allow_anonymous = reader.boolean(*value);
    }
    if (auto value = section.get("user_properties")) {
        read_user_property_limits(reader, *value, listener.user_properties);
    }
    if (auto value = section.get("tls")) {
        listener.tls = read_tls(reader, *value, TlsSide::listener);
    }
    return listener;
}

void read_listeners(const Reader &reader, const Value &value, Config &config) {
    if (value.node.IsNull() || (value.node.IsSequence() && value.node.size() == 0)) {
        reader.fail(value, "listeners must list at least one listener");
    }
    if (!value.node.IsSequence()) {
        reader.fail(value, "listeners must be a list of '- bind: HOST:PORT' entries, got " +
                               describe(value.node));
    }
    std::vector<ListenerConfig> listeners;
    for (size_t i = 0; i < value.node.size(); ++i) {
        YAML::Node node = value.node[i];
        // A null item ("-" alone) has the position of whatever follows it, so point at the
        // list instead.
        Value item{node, node.IsNull() || node.Mark().is_null() ? value.mark : node.Mark(),
                   value.path + "[" + std::to_string(i) + "]"};
        listeners.push_back(read_listener(reader, item, listeners));
    }
    config.listeners = std::move(listeners);
}

void read_data_dir(const Reader &reader, const Value &value, Config &config) {
    std::string dir = reader.string(value);
    if (dir.empty()) {
        reader.fail(value, "data_dir must not be empty");
    }
    config.data_dir = std::move(dir);
}

void read_log(const Reader &reader, const Value &value, Config &config) {
    Section section = reader.section(value, {"level"});
    if (auto level = section.get("level")) {
        std::string name = reader.string(*level);
        std::optional<util::LogLevel> parsed = util::parse_log_level(name);
        if (!parsed) {
            reader.fail(*level, "unknown log level '" + name +
                                    "'; expected one of: error, warn, info, debug, trace");
        }
        config.log_level = *parsed;
    }
}

// Reads an optional integer key of `section` into `field`, checked against [lo, hi].
template <class T>
void read_integer(const Reader &reader, Section &section, const char *key, uint64_t lo, uint64_t hi,
                  T &field) {
    if (auto value = section.get(key)) {
        field = static_cast<T>(reader.integer(*value, lo, hi));
    }
}

// A list of strings, such as tls.ciphers or tls.alpn.
std::vector<std::string> read_string_list(const Reader &reader, const Value &value) {
    if (!value.node.IsSequence()) {
        reader.fail(value, value.path + " must be a list, got " + describe(value.node));
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < value.node.size(); ++i) {
        YAML::Node node = value.node[i];
        out.push_back(reader.string(Value{node, node.Mark().is_null() ? value.mark : node.Mark(),
                                          value.path + "[" + std::to_string(i) + "]"}));
    }
    return out;
}

// One of `names` (in enum order), or an error listing them.
template <class E>
E read_choice(const Reader &reader, const Value &value,
              std::initializer_list<std::string_view> names) {
    const std::string text = reader.string(value);
    size_t i = 0;
    for (std::string_view name : names) {
        if (name == text) {
            return static_cast<E>(i);
        }
        ++i;
    }
    reader.fail(value,
                value.path + ": unknown value '" + text + "'; expected one of: " + join(names));
}

// listeners[].tls and bridges[].tls. Files must be readable now, so that a typo in a path is
// reported with its line instead of at the first handshake.
TlsConfig read_tls(const Reader &reader, const Value &value, TlsSide side) {
    const bool listener = side == TlsSide::listener;
    Section s =
        listener ? reader.section(value, {"ca_file", "cert_file", "key_file", "key_password_file",
                                          "ciphers", "min_version", "client_certificates",
                                          "identity_as_username", "handshake_timeout"})
                 : reader.section(value, {"ca_file", "cert_file", "key_file", "key_password_file",
                                          "ciphers", "min_version", "server_name", "alpn",
                                          "verify_hostname", "insecure"});
    TlsConfig tls;
    tls.line = value.mark.line + 1;
    auto file = [&](const char *key, std::string &field) {
        if (auto v = s.get(key)) {
            field = reader.string(*v);
            if (::access(field.c_str(), R_OK) != 0) {
                reader.fail(*v, v->path + " '" + field + "': cannot read: " + std::strerror(errno));
            }
        }
    };
    file("ca_file", tls.ca_file);
    file("cert_file", tls.cert_file);
    file("key_file", tls.key_file);
    file("key_password_file", tls.key_password_file);
    if (auto v = s.get("ciphers")) {
        tls.ciphers = read_string_list(reader, *v);
        for (const std::string &name : tls.ciphers) {
            if (mbedtls_ssl_get_ciphersuite_id(name.c_str()) == 0) {
                reader.fail(*v,
                            v->path + ": unknown cipher suite '" + name +
                                "' (mbedTLS names, e.g. TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256)");
            }
        }
    }
    if (auto v = s.get("min_version")) {
        tls.min_version = reader.string(*v);
        if (tls.min_version != "1.2" && tls.min_version != "1.3") {
            reader.fail(*v, v->path + " must be 1.2 or 1.3, got '" + tls.min_version + "'");
        }
#if !defined(MBEDTLS_SSL_PROTO_TLS1_3)
        if (tls.min_version == "1.3") {
            reader.fail(*v, v->path + ": this build's mbedTLS has no TLS 1.3");
        }
#endif
    }
    if (tls.cert_file.empty() != tls.key_file.empty()) {
        reader.fail(value, value.path + " needs cert_file and key_file together");
    }
    if (listener) {
        if (tls.cert_file.empty()) {
            reader.fail(value, value.path + " needs cert_file and key_file");
        }
        if (auto v = s.get("client_certificates")) {
            tls.client_certificates = read_choice<TlsConfig::ClientCertificates>(
                reader, *v, {"none", "optional", "required"});
        }
        if (auto v = s.get("identity_as_username")) {
            tls.identity_as_username =
                read_choice<TlsConfig::Identity>(reader, *v, {"none", "cn", "san"});
        }
        read_integer(reader, s, "handshake_timeout", 1, 3600, tls.handshake_timeout);
        if (tls.client_certificates != TlsConfig::ClientCertificates::none && tls.ca_file.empty()) {
            reader.fail(value, value.path + ": client_certificates needs ca_file, the CAs that "
                                            "sign client certificates");
        }
        if (tls.identity_as_username != TlsConfig::Identity::none &&
            tls.client_certificates == TlsConfig::ClientCertificates::none) {
            reader.fail(value, value.path + ": identity_as_username needs client_certificates "
                                            "optional or required");
        }
    } else {
        if (auto v = s.get("server_name")) {
            tls.server_name = reader.string(*v);
        }
        if (auto v = s.get("alpn")) {
            tls.alpn = read_string_list(reader, *v);
            for (const std::string &p : tls.alpn) {
                if (p.empty() || p.size() > 255) {
                    reader.fail(*v, v->path + ": a protocol name has 1 to 255 bytes");
                }
            }
        }
        if (auto v = s.get("verify_hostname")) {
            tls.verify_hostname = reader.boolean(*v);
        }
        if (auto v = s.get("insecure")) {
            tls.insecure = reader.boolean(*v);
        }
    }
    return tls;
}

void read_limits(const Reader &reader, const Value &value, Config &config) {
    Section section =
        reader.section(value, {"max_packet_size", "max_connections", "max_inflight",
                               "max_queued_messages", "max_queued_bytes", "max_qos",
                               "connect_timeout", "max_session_expiry", "topic_alias_maximum",
                               "client_buffer_bytes", "max_pending_bytes", "outbound_topic_aliases",
                               "receive_maximum", "server_keep_alive", "validate_utf8_payloads"});
    Limits &l = config.limits;
    read_integer(reader, section, "max_packet_size", 1, kMaxPacketSize, l.max_packet_size);
    read_integer(reader, section, "max_connections", 1, UINT32_MAX, l.max_connections);
    read_integer(reader, section, "max_inflight", 1, 65535, l.max_inflight);
    read_integer(reader, section, "max_queued_messages", 1, UINT32_MAX, l.max_queued_messages);
    read_integer(reader, section, "max_queued_bytes", 1, UINT64_MAX >> 1, l.max_queued_bytes);
    read_integer(reader, section, "max_qos", 0, 2, l.max_qos);
    read_integer(reader, section, "connect_timeout", 1, 3600, l.connect_timeout);
    read_integer(reader, section, "max_session_expiry", 0, UINT32_MAX, l.max_session_expiry);
    read_integer(reader, section, "topic_alias_maximum", 0, 65535, l.topic_alias_maximum);
    read_integer(reader, section, "client_buffer_bytes", 1024, UINT32_MAX, l.client_buffer_bytes);
    read_integer(reader, section, "max_pending_bytes", 1024, UINT64_MAX >> 1, l.max_pending_bytes);
    read_integer(reader, section, "outbound_topic_aliases", 0, 65535, l.outbound_topic_aliases);
    read_integer(reader, section, "receive_maximum", 1, 65535, l.receive_maximum);
    read_integer(reader, section, "server_keep_alive", 0, 65535, l.server_keep_alive);
    if (auto value = section.get("validate_utf8_payloads")) {
        l.validate_utf8_payloads = reader.boolean(*value);
    }
}

void read_shared_subscriptions(const Reader &reader, const Value &value, Config &config) {
    Section section = reader.section(value, {"enabled", "strategy"});
    SharedSubscriptionsConfig &shared = config.shared_subscriptions;
    if (auto enabled = section.get("enabled")) {
        shared.enabled = reader.boolean(*enabled);
    }
    if (auto strategy = section.get("strategy")) {
        static constexpr std::pair<std::string_view, SharedStrategy> kNames[] = {
            {"round_robin", SharedStrategy::round_robin},
            {"random", SharedStrategy::random},
            {"sticky", SharedStrategy::sticky},
            {"hash_client", SharedStrategy::hash_client},
            {"hash_topic", SharedStrategy::hash_topic},
        };
        const std::string name = reader.string(*strategy);
        auto it = std::find_if(std::begin(kNames), std::end(kNames),
                               [&](const auto &entry) { return entry.first == name; });
        if (it == std::end(kNames)) {
            reader.fail(*strategy, "unknown " + strategy->path + " '" + name +
                                       "'; expected one of: round_robin, random, sticky, "
                                       "hash_client, hash_topic");
        }
        shared.strategy = it->second;
    }
}

// authentication: SCRAM-SHA-256 users for MQTT 5.0 enhanced authentication.
void read_authentication(const Reader &reader, const Value &value, Config &config) {
    Section section = reader.section(value, {"password_file", "scram_users", "scram_iterations"});
    AuthenticationConfig &a = config.authentication;
    if (auto v = section.get("password_file")) {
        a.password_file = reader.string(*v);
        if (a.password_file.empty()) {
            reader.fail(*v, "password_file must not be empty");
        }
    }
    read_integer(reader, section, "scram_iterations", 4096, 10'000'000, a.scram_iterations);
    auto users = section.get("scram_users");
    if (!users || users->node.IsNull()) {
        return;
    }
    if (!users->node.IsSequence()) {
        reader.fail(*users, "scram_users must be a list of '- username: NAME' entries, got " +
                                describe(users->node));
    }
    for (size_t i = 0; i < users->node.size(); ++i) {
        YAML::Node node = users->node[i];
        Value item{node, node.IsNull() || node.Mark().is_null() ? users->mark : node.Mark(),
                   users->path + "[" + std::to_string(i) + "]"};
        Section entry = reader.section(item, {"username", "password"});
        auto name = entry.get("username");
        auto password = entry.get("password");
        if (!name || !password) {
            reader.fail(item, "each SCRAM user needs a username and a password");
        }
        ScramUser user{reader.string(*name), reader.string(*password)};
        if (user.username.empty()) {
            reader.fail(*name, "username must not be empty");
        }
        for (const ScramUser &other : a.scram_users) {
            if (other.username == user.username) {
                reader.fail(*name, "duplicate SCRAM user '" + user.username + "'");
            }
        }
        a.scram_users.push_back(std::move(user));
    }
}

void read_redirect(const Reader &reader, const Value &value, Config &config) {
    Section section = reader.section(value, {"server_reference", "permanent"});
    if (auto v = section.get("server_reference")) {
        config.redirect.server_reference = reader.string(*v);
    }
    if (auto v = section.get("permanent")) {
        config.redirect.permanent = reader.boolean(*v);
    }
}

void read_request_response(const Reader &reader, const Value &value, Config &config) {
    Section section = reader.section(value, {"response_information"});
    if (auto info = section.get("response_information")) {
        config.request_response.response_information = reader.string(*info);
    }
}

// sys: the $SYS topics.
void read_sys(const Reader &reader, const Value &value, Config &config) {
    Section section = reader.section(value, {"interval"});
    read_integer(reader, section, "interval", 0, 86400, config.sys.interval);
}

// storage: the SQLite database of retained messages and persistent sessions.
void read_storage(const Reader &reader, const Value &value, Config &config) {
    Section section = reader.section(value, {"durability", "flush_interval", "max_size",
                                             "full_policy", "removed_bridge_retention"});
    StorageConfig &storage = config.storage;
    if (auto v = section.get("durability")) {
        const std::string name = reader.string(*v);
        if (name == "crash") {
            storage.durability = Durability::crash;
        } else if (name == "power") {
            storage.durability = Durability::power;
        } else {
            reader.fail(*v, "unknown " + v->path + " '" + name + "'; expected crash or power");
        }
    }
    read_integer(reader, section, "flush_interval", 0, 10'000, storage.flush_interval_ms);
    read_integer(reader, section, "max_size", 0, UINT64_MAX >> 1, storage.max_size);
    read_integer(reader, section, "removed_bridge_retention", 0, UINT32_MAX,
                 storage.removed_bridge_retention);
    if (auto v = section.get("full_policy")) {
        const std::string name = reader.string(*v);
        if (name == "refuse") {
            storage.full_policy = StoreFullPolicy::refuse;
        } else if (name == "drop_oldest") {
            storage.full_policy = StoreFullPolicy::drop_oldest;
        } else {
            reader.fail(*v,
                        "unknown " + v->path + " '" + name + "'; expected refuse or drop_oldest");
        }
    }
}

// Reads a list of "- name: value" maps of user properties.
std::vector<std::pair<std::string, std::string>> read_user_property_list(const Reader &reader,
                                                                         const Value &value) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!value.node.IsSequence()) {
        reader.fail(value, value.path + " must be a list of '- name: value' entries, got " +
                               describe(value.node));
    }
    for (size_t i = 0; i < value.node.size(); ++i) {
        YAML::Node node = value.node[i];
        Value item{node, node.Mark().is_null() ? value.mark : node.Mark(),
                   value.path + "[" + std::to_string(i) + "]"};
        if (!node.IsMap() || node.size() != 1) {
            reader.fail(item, item.path + " must be one 'name: value' pair");
        }
        for (const auto &kv : node) {
            Value v{kv.second, kv.second.Mark(), item.path};
            out.emplace_back(kv.first.Scalar(), reader.string(v));
        }
    }
    return out;
}

// One forward or subscribe rule's filter and topic template, checked together.
void check_rule_topics(const Reader &reader, const Value &filter_value, const std::string &filter,
                       const Value &template_value, const std::string &topic_template) {
    const mqtt::FilterCheck check = mqtt::check_filter(filter);
    if (filter.empty() || check.reason != mqtt::Reason::success || check.shared) {
        reader.fail(filter_value, "'" + filter + "' is not a valid topic filter");
    }
    if (auto error = bridge::check_template(filter, topic_template)) {
        reader.fail(template_value, *error);
    }
}

ForwardRule read_forward_rule(const Reader &reader, const Value &item) {
    Section s = reader.section(item, {"local", "remote", "qos", "retain", "properties",
                                      "add_user_properties", "message_expiry", "content_type"});
    ForwardRule r;
    r.line = item.mark.line + 1;
    auto local = s.get("local");
    if (!local) {
        reader.fail(item, "a forward rule needs 'local' (the local topic filter)");
    }
    r.local = reader.string(*local);
    auto remote = s.get("remote");
    if (remote) {
        r.remote = reader.string(*remote);
    }
    check_rule_topics(reader, *local, r.local, remote ? *remote : *local, r.remote);
    read_integer(reader, s, "qos", 0, 2, r.qos);
    if (auto v = s.get("retain")) {
        const std::string name = reader.string(*v);
        if (name == "keep") {
            r.retain = ForwardRule::Retain::keep;
        } else if (name == "clear") {
            r.retain = ForwardRule::Retain::clear;
        } else if (name == "force") {
            r.retain = ForwardRule::Retain::force;
        } else {
            reader.fail(*v, "unknown retain '" + name + "'; expected keep, clear or force");
        }
    }
    if (auto v = s.get("properties")) {
        const std::string name = reader.string(*v);
        if (name != "keep" && name != "drop") {
            reader.fail(*v, "unknown properties '" + name + "'; expected keep or drop");
        }
        r.drop_properties = name == "drop";
    }
    if (auto v = s.get("add_user_properties")) {
        r.add_user_properties = read_user_property_list(reader, *v);
    }
    if (auto v = s.get("message_expiry")) {
        r.message_expiry = static_cast<uint32_t>(reader.integer(*v, 1, UINT32_MAX));
    }
    if (auto v = s.get("content_type")) {
        r.content_type = reader.string(*v);
    }
    return r;
}

SubscribeRule read_subscribe_rule(const Reader &reader, const Value &item) {
    Section s = reader.section(item, {"remote", "local", "qos", "add_user_properties"});
    SubscribeRule r;
    r.line = item.mark.line + 1;
    auto remote = s.get("remote");
    if (!remote) {
        reader.fail(item, "a subscribe rule needs 'remote' (the remote topic filter)");
    }
    r.remote = reader.string(*remote);
    auto local = s.get("local");
    if (local) {
        r.local = reader.string(*local);
    }
    check_rule_topics(reader, *remote, r.remote, local ? *local : *remote, r.local);
    read_integer(reader, s, "qos", 0, 2, r.qos);
    if (auto v = s.get("add_user_properties")) {
        r.add_user_properties = read_user_property_list(reader, *v);
    }
    return r;
}

BridgeConfig read_bridge(const Reader &reader, const Value &item,
                         const std::vector<BridgeConfig> &earlier) {
    Section s = reader.section(
        item, {"name",     "address",           "addresses",   "client_id",      "username",
               "password", "keep_alive",        "clean_start", "session_expiry", "protocol",
               "backoff",  "failback",          "window",      "topic_aliases",  "try_private",
               "queue",    "dead_letter_topic", "forward",     "subscribe",      "tls"});
    BridgeConfig b;
    b.line = item.mark.line + 1;
    auto name = s.get("name");
    if (!name) {
        reader.fail(item, "a bridge needs a name");
    }
    b.name = reader.string(*name);
    if (b.name.empty() || b.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
                                                   "UVWXYZ0123456789_-") != std::string::npos) {
        reader.fail(*name, "bridge name '" + b.name + "' must be letters, digits, '_' or '-'");
    }
    for (const BridgeConfig &other : earlier) {
        if (other.name == b.name) {
            reader.fail(*name, "duplicate bridge name '" + b.name + "'");
        }
    }
    auto add_address = [&](const Value &v) {
        std::string error;
        const std::string text = reader.string(v);
        std::optional<Endpoint> e = parse_endpoint(text, &error);
        if (!e || e->port == 0) {
            reader.fail(v, "bad address '" + text + "': " + (e ? "port 0" : error));
        }
        b.addresses.push_back(*e);
    };
    if (auto v = s.get("address")) {
        add_address(*v);
    }
    if (auto v = s.get("addresses")) {
        if (!v->node.IsSequence()) {
            reader.fail(*v, "addresses must be a list of HOST:PORT, got " + describe(v->node));
        }
        for (size_t i = 0; i < v->node.size(); ++i) {
            YAML::Node node = v->node[i];
            add_address(Value{node, node.Mark().is_null() ? v->mark : node.Mark(),
                              v->path + "[" + std::to_string(i) + "]"});
        }
    }
    if (b.addresses.empty()) {
        reader.fail(item, "bridge '" + b.name + "' needs an address (HOST:PORT)");
    }
    b.client_id = "ferrymq-" + b.name;
    if (auto v = s.get("client_id")) {
        b.client_id = reader.string(*v);
    }
    if (auto v = s.get("username")) {
        b.username = reader.string(*v);
    }
    if (auto v = s.get("password")) {
        b.password = reader.string(*v);
    }
    read_integer(reader, s, "keep_alive", 0, 65535, b.keep_alive);
    if (auto v = s.get("clean_start")) {
        b.clean_start = reader.boolean(*v);
    }
    read_integer(reader, s, "session_expiry", 0, UINT32_MAX, b.session_expiry);
    if (auto v = s.get("protocol")) {
        const std::string p = reader.string(*v);
        if (p != "5" && p != "3.1.1") {
            reader.fail(*v, "unknown protocol '" + p + "'; expected 5 or 3.1.1");
        }
        b.v5 = p == "5";
    }
    if (auto v = s.get("backoff")) {
        Section bs = reader.section(*v, {"min", "max", "jitter"});
        read_integer(reader, bs, "min", 10, 3'600'000, b.backoff_min_ms);
        read_integer(reader, bs, "max", 10, 3'600'000, b.backoff_max_ms);
        read_integer(reader, bs, "jitter", 0, 100, b.backoff_jitter);
        if (b.backoff_max_ms < b.backoff_min_ms) {
            reader.fail(*v, "backoff.max must not be below backoff.min");
        }
    }
    read_integer(reader, s, "failback", 0, 86400 * 365, b.failback);
    read_integer(reader, s, "window", 1, 65535, b.window);
    if (auto v = s.get("topic_aliases")) {
        b.topic_aliases = reader.boolean(*v);
    }
    if (auto v = s.get("try_private")) {
        b.try_private = reader.boolean(*v);
    }
    if (auto v = s.get("queue")) {
        Section qs = reader.section(*v, {"max_messages", "max_bytes", "max_age", "full_policy"});
        read_integer(reader, qs, "max_messages", 1, UINT32_MAX, b.queue_max_messages);
        read_integer(reader, qs, "max_bytes", 1, UINT64_MAX >> 1, b.queue_max_bytes);
        read_integer(reader, qs, "max_age", 0, UINT32_MAX, b.queue_max_age);
        if (auto p = qs.get("full_policy")) {
            const std::string name = reader.string(*p);
            if (name != "drop_oldest" && name != "refuse") {
                reader.fail(*p,
                            "unknown full_policy '" + name + "'; expected drop_oldest or refuse");
            }
            b.queue_refuse_when_full = name == "refuse";
        }
    }
    if (auto v = s.get("dead_letter_topic")) {
        b.dead_letter_topic = reader.string(*v);
    }
    if (auto v = s.get("tls")) {
        b.tls = read_tls(reader, *v, TlsSide::bridge);
    }
    auto read_list = [&](const char *key, auto &&read_one) {
        auto v = s.get(key);
        if (!v || v->node.IsNull()) {
            return;
        }
        if (!v->node.IsSequence()) {
            reader.fail(*v, v->path + " must be a list of rules, got " + describe(v->node));
        }
        for (size_t i = 0; i < v->node.size(); ++i) {
            YAML::Node node = v->node[i];
            read_one(Value{node, node.IsNull() || node.Mark().is_null() ? v->mark : node.Mark(),
                           v->path + "[" + std::to_string(i) + "]"});
        }
    };
    read_list("forward",
              [&](const Value &v) { b.forward.push_back(read_forward_rule(reader, v)); });
    read_list("subscribe",
              [&](const Value &v) { b.subscribe.push_back(read_subscribe_rule(reader, v)); });
    if (b.forward.empty() && b.subscribe.empty()) {
        reader.fail(item, "bridge '" + b.name + "' has no forward or subscribe rule");
    }
    return b;
}

void read_bridges(const Reader &reader, const Value &value, Config &config) {
    if (value.node.IsNull()) {
        return;
    }
    if (!value.node.IsSequence()) {
        reader.fail(value, "bridges must be a list of '- name: NAME' entries, got " +
                               describe(value.node));
    }
    for (size_t i = 0; i < value.node.size(); ++i) {
        YAML::Node node = value.node[i];
        Value item{node, node.IsNull() || node.Mark().is_null() ? value.mark : node.Mark(),
                   value.path + "[" + std::to_string(i) + "]"};
        config.bridges.push_back(read_bridge(reader, item, config.bridges));
    }
}

// plugins: shared objects to load, as "- path: FILE" entries (a mapping, so options can
// join the path later without breaking existing files).
void read_plugins(const Reader &reader, const Value &value, Config &config) {
    if (value.node.IsNull()) {
        return;
    }
    if (!value.node.IsSequence()) {
        reader.fail(value, "plugins must be a list of '- path: FILE' entries, got " +
                               describe(value.node));
    }
    for (size_t i = 0; i < value.node.size(); ++i) {
        YAML::Node node = value.node[i];
        Value item{node, node.IsNull() || node.Mark().is_null() ? value.mark : node.Mark(),
                   value.path + "[" + std::to_string(i) + "]"};
        Section entry = reader.section(item, {"path"});
        auto path = entry.get("path");
        if (!path) {
            reader.fail(item, "each plugin needs a path");
        }
        PluginConfig plugin{reader.string(*path)};
        if (plugin.path.empty()) {
            reader.fail(*path, "path must not be empty");
        }
        config.plugins.push_back(std::move(plugin));
    }
}

// acl: access rules, first match wins, deny by default once one exists.
void read_acl(const Reader &reader, const Value &value, Config &config) {
    if (value.node.IsNull()) {
        return;
    }
    if (!value.node.IsSequence()) {
        reader.fail(value,
                    "acl must be a list of '- topic: FILTER' rules, got " + describe(value.node));
    }
    for (size_t i = 0; i < value.node.size(); ++i) {
        YAML::Node node = value.node[i];
        Value item{node, node.IsNull() || node.Mark().is_null() ? value.mark : node.Mark(),
                   value.path + "[" + std::to_string(i) + "]"};
        Section s = reader.section(item, {"username", "client_id", "topic", "access", "action"});
        AclRuleConfig rule;
        rule.line = item.mark.line + 1;
        auto topic = s.get("topic");
        if (!topic) {
            reader.fail(item, item.path + " needs a 'topic: FILTER'");
        }
        rule.topic = reader.string(*topic);
        const mqtt::FilterCheck check = mqtt::check_filter(rule.topic);
        if (rule.topic.empty() || check.reason != mqtt::Reason::success || check.shared) {
            reader.fail(*topic, "'" + rule.topic + "' is not a valid topic filter");
        }
        if (auto v = s.get("username")) {
            rule.username = reader.string(*v);
        }
        if (auto v = s.get("client_id")) {
            rule.client_id = reader.string(*v);
        }
        if (auto v = s.get("access")) {
            const std::string name = reader.string(*v);
            if (name == "publish") {
                rule.access = AclAccess::publish;
            } else if (name == "subscribe") {
                rule.access = AclAccess::subscribe;
            } else if (name == "both") {
                rule.access = AclAccess::both;
            } else {
                reader.fail(*v,
                            "unknown access '" + name + "'; expected publish, subscribe or both");
            }
        }
        if (auto v = s.get("action")) {
            const std::string name = reader.string(*v);
            if (name != "allow" && name != "deny") {
                reader.fail(*v, "unknown action '" + name + "'; expected allow or deny");
            }
            rule.allow = name == "allow";
        }
        config.acl.push_back(std::move(rule));
    }
}

// abuse: per-address counters, bans and connection rate.
void read_abuse(const Reader &reader, const Value &value, Config &config) {
    Section s = reader.section(
        value, {"ban_after_failures", "window", "ban_time", "max_connects", "log_interval"});
    AbuseConfig &a = config.abuse;
    read_integer(reader, s, "ban_after_failures", 0, 1'000'000, a.ban_after_failures);
    read_integer(reader, s, "window", 1, 86'400, a.window);
    read_integer(reader, s, "ban_time", 1, 30 * 86'400, a.ban_time);
    read_integer(reader, s, "max_connects", 0, 1'000'000, a.max_connects);
    read_integer(reader, s, "log_interval", 1, 86'400, a.log_interval);
}

Config read_top_level(const Reader &reader, const Value &root) {
    Section top =
        reader.section(root, {"listeners", "data_dir", "log", "limits", "shared_subscriptions",
                              "authentication", "request_response", "sys", "redirect", "storage",
                              "bridges", "plugins", "acl", "abuse"});
    Config config;
    if (auto value = top.get("listeners")) {
        read_listeners(reader, *value, config);
    }
    if (auto value = top.get("data_dir")) {
        read_data_dir(reader, *value, config);
    }
    if (auto value = top.get("log")) {
        read_log(reader, *value, config);
    }
    if (auto value = top.get("limits")) {
        read_limits(reader, *value, config);
    }
    if (auto value = top.get("shared_subscriptions")) {
        read_shared_subscriptions(reader, *value, config);
    }
    if (auto value = top.get("authentication")) {
        read_authentication(reader, *value, config);
    }
    if (auto value = top.get("request_response")) {
        read_request_response(reader, *value, config);
    }
    if (auto value = top.get("redirect")) {
        read_redirect(reader, *value, config);
    }
    if (auto value = top.get("sys")) {
        read_sys(reader, *value, config);
    }
    if (auto value = top.get("storage")) {
        read_storage(reader, *value, config);
    }
    if (auto value = top.get("bridges")) {
        read_bridges(reader, *value, config);
    }
    if (auto value = top.get("plugins")) {
        read_plugins(reader, *value, config);
    }
    if (auto value = top.get("acl")) {
        read_acl(reader, *value, config);
    }
    if (auto value = top.get("abuse")) {
        read_abuse(reader, *value, config);
    }
    return config;
}

} // namespace

Config load_config_string(std::string_view yaml, const std::string &name) {
    Reader reader(name);
    std::vector<YAML::Node> documents;
    try {
        documents = YAML::LoadAll(std::string(yaml));
    } catch (const YAML::Exception &e) {
        reader.fail(e.mark, e.msg);
    }
    if (documents.empty()) {
        return Config{};
    }
    if (documents.size() > 1) {
        reader.fail(documents[1].Mark(), "expected one YAML document, found a second one");
    }
    return read_top_level(reader, Value{documents[0], documents[0].Mark(), ""});
}

Config load_config_file(const std::string &path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        throw ConfigError(path, std::string("cannot read: ") + std::strerror(errno));
    }
    std::string text;
    char buffer[16384];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
            text.append(buffer, static_cast<size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            int error = errno;
            ::close(fd);
            throw ConfigError(path, std::string("cannot read: ") + std::strerror(error));
        }
    }
    ::close(fd);
    return load_config_string(text, path);
}

} // namespace ferrymq::config
