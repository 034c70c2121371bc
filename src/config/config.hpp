// SPDX-License-Identifier: Apache-2.0
// The typed configuration and its YAML reader. Every field has a default, so an empty file
// (or no file at all) gives a working broker on 127.0.0.1:1883. Reading is strict: a typo,
// a wrong type or an out-of-range value is an error that names FILE:LINE:COL, because a
// setting that is silently ignored is worse than a broker that refuses to start.
#pragma once

#include "util/log.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ferrymq::config {

// The largest MQTT packet: a remaining length of 268435455 plus a 5-byte fixed header.
inline constexpr uint32_t kMaxPacketSize = 268'435'460;

// A "HOST:PORT" pair as written by the user. The host is kept without IPv6 brackets.
struct Endpoint {
    std::string host;  // IPv4 literal, IPv6 literal (no brackets) or a name
    uint16_t port = 0; // 0 means "any free port" where the caller allows it
    bool operator==(const Endpoint &) const = default;
};

// Parses "HOST:PORT" or "[IPV6]:PORT" with a non-empty host and a decimal port 0..65535.
// An IPv6 address must be in brackets so that its last group is not read as the port. On
// failure, `error` (when given) receives a short reason such as "missing ':PORT'".
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string *error = nullptr);

// Formats an address for logs and messages the way parse_endpoint() reads it, with brackets
// around IPv6 hosts: "127.0.0.1:1883", "[::1]:1883".
std::string format_endpoint(std::string_view host, uint16_t port);

// True when `host` is a numeric IPv4 or IPv6 address. Listeners need one: binding to a name
// would depend on DNS at start-up and hide which interface is actually served.
bool is_ip_literal(std::string_view host);

// True when `host` is a numeric loopback address (127.0.0.0/8 or ::1): only this machine can
// connect there, so such listeners accept anonymous clients unless the file says otherwise.
bool is_loopback(std::string_view host);

// One TCP listening socket.
// What a listener accepts in the User Properties of a 5.0 PUBLISH.
struct UserPropertyLimits {
    uint32_t max_count = 0;                // properties per message, 0 = no limit
    uint32_t max_bytes = 0;                // names and values together, 0 = no limit
    std::vector<std::string> allowed_keys; // empty = every key
    bool strip = false;                    // true: remove what breaks a rule; false: refuse
    bool operator==(const UserPropertyLimits &) const = default;
};

// TLS for a listener (`listeners[].tls`) or a bridge's uplink (`bridges[].tls`). The keys
// of both sides share this struct; the reader accepts on each side only the keys that mean
// something there. Files are PEM and are read when the broker starts (and, for listeners,
// again on SIGHUP).
struct TlsConfig {
    enum class ClientCertificates : uint8_t { none, optional, required };
    enum class Identity : uint8_t { none, cn, san };

    // Both sides.
    std::string ca_file;   // CAs that sign the peer's certificate; bridge: empty = the system store
    std::string cert_file; // our certificate, then its intermediates (bridge: optional)
    std::string key_file;  // its private key
    std::string key_password_file;    // first line: the key's password; empty = key not encrypted
    std::vector<std::string> ciphers; // mbedTLS suite names; empty = the library's defaults
    std::string min_version = "1.2";  // "1.2", or "1.3" where the library has it
    // Listener only.
    ClientCertificates client_certificates = ClientCertificates::none;
    Identity identity_as_username = Identity::none; // the client certificate names the user
    uint32_t handshake_timeout = 10;                // seconds from accept to a finished handshake
    // Bridge only.
    std::string server_name;       // SNI and the name checked; empty = the address's host
    std::vector<std::string> alpn; // e.g. x-amzn-mqtt-ca for AWS IoT Core on port 443
    bool verify_hostname = true;   // the certificate must name server_name
    bool insecure = false;         // no verification at all (warned at every connect)
    int line = 0;
    bool operator==(const TlsConfig &) const = default;
};

struct ListenerConfig {
    UserPropertyLimits user_properties;
    std::optional<TlsConfig> tls;   // absent: plain TCP
    std::string host = "127.0.0.1"; // numeric address to bind, IPv6 without brackets
    uint16_t port = 1883;           // 0 (command line only) means any free port
    // Whether clients without a username may connect. Default: true on a loopback address
    // (the built-in 127.0.0.1 listener, "scripts/dev run"), false on any other.
    bool allow_anonymous = true;
    int line = 0; // 1-based line of the entry in the file, 0 if not from one
    bool operator==(const ListenerConfig &) const = default;
};

// Resource limits, each with a stated effect when reached.
struct Limits {
    uint32_t max_packet_size = kMaxPacketSize; // bytes, fixed header included; larger is refused
    uint32_t max_connections = 100'000;        // open client connections; more are refused
    uint16_t max_inflight = 20;                // outgoing QoS 1/2 messages awaiting ack, per client
    uint32_t max_queued_messages = 1000;       // per session; when full: QoS 0 first, then oldest
    uint64_t max_queued_bytes = 16 << 20;      // payload bytes queued per session, same policy
    uint8_t max_qos = 2;                       // highest QoS granted and accepted
    uint32_t connect_timeout = 10;             // seconds a new connection may take to send CONNECT
    uint32_t max_session_expiry = 0xFFFFFFFF;  // cap on Session Expiry Interval, seconds
    uint16_t topic_alias_maximum = 10;         // inbound topic aliases per 5.0 connection
    uint16_t outbound_topic_aliases = 10;      // aliases the broker assigns per 5.0 connection
                                               // (capped by the client's maximum), 0 = none
    uint16_t receive_maximum = 65535;          // inbound QoS 2 per 5.0 client awaiting PUBREL;
                                               // more is DISCONNECT 0x93
    uint16_t server_keep_alive = 0;            // seconds imposed on 5.0 clients, 0 = theirs
    bool validate_utf8_payloads = false;       // refuse (0x99) 5.0 payloads marked UTF-8 that
                                               // are not
    uint32_t client_buffer_bytes = 1 << 20;    // unsent output per client before it counts as slow
    uint64_t max_pending_bytes = 256ull << 20; // all queued output and session queues together;
                                               // above it publishers are paused
    bool operator==(const Limits &) const = default;
};

// How a shared subscription group picks the one member that gets each message.
enum class SharedStrategy {
    round_robin, // members in turn
    random,      // uniformly at random
    sticky,      // one member until it leaves or goes offline
    hash_client, // by the publisher's client id
    hash_topic,  // by the topic name
};

// Shared subscriptions, "$share/{group}/{filter}" (MQTT 5.0 spec 4.8.2; 3.1.1 clients too).
struct SharedSubscriptionsConfig {
    bool enabled = true; // false: SUBACK 0x9E (5.0) or 0x80 (3.1.1), CONNACK says unavailable
    SharedStrategy strategy = SharedStrategy::round_robin;
    bool operator==(const SharedSubscriptionsConfig &) const = default;
};

// The whole configuration, built once at start-up and read-only afterwards.
// A user that may authenticate with SCRAM-SHA-256 (MQTT 5.0 enhanced authentication).
struct ScramUser {
    std::string username;
    std::string password; // plain text until password files exist; derived at start-up
    bool operator==(const ScramUser &) const = default;
};

// Who may connect: the password file (for every listener) and SCRAM-SHA-256 users.
struct AuthenticationConfig {
    // "ferrymq passwd" file (auth/password_file.hpp); empty = none. Its users authenticate
    // with CONNECT's username and password on every listener, and with SCRAM-SHA-256 where
    // their line carries SCRAM keys.
    std::string password_file;
    std::vector<ScramUser> scram_users; // plain-text SCRAM users; with the file's, 0x8C if none
    uint32_t scram_iterations = 4096;   // PBKDF2 rounds for the keys derived from scram_users
    bool operator==(const AuthenticationConfig &) const = default;
};

// Who may publish or subscribe to what.
enum class AclAccess : uint8_t { publish = 1, subscribe = 2, both = 3 };

// One rule of the top-level `acl:` list; the first rule that matches a client and a topic
// decides. Once any rule exists, what no rule allows is denied.
struct AclRuleConfig {
    std::optional<std::string> username;  // only this user; absent: every client
    std::optional<std::string> client_id; // only this client id; absent: every client
    std::string topic;                    // filter; "%u" and "%c" stand for username, client id
    AclAccess access = AclAccess::both;
    bool allow = true; // action: allow or deny
    int line = 0;
    bool operator==(const AclRuleConfig &) const = default;
};

// Server redirection (spec 4.11): while set, every client is sent elsewhere.
struct RedirectConfig {
    std::string server_reference; // e.g. "gw2.example:1883"; empty = no redirection
    bool permanent = false;       // 0x9D Server moved instead of 0x9C Use another server
    bool operator==(const RedirectConfig &) const = default;
};

// MQTT 5.0 request/response (spec 4.10).
struct RequestResponseConfig {
    // Response Information sent in CONNACK to a client that asks for it, with "{client_id}"
    // replaced by the client's id, e.g. "reply/{client_id}/"; empty: none is sent.
    std::string response_information;
    bool operator==(const RequestResponseConfig &) const = default;
};

// A shared object loaded at start-up (include/ferrymq/plugin.h): today, one MQTT 5.0
// enhanced-authentication method each.
struct PluginConfig {
    std::string path; // as dlopen() takes it: with a '/', a file (relative to the cwd)
    bool operator==(const PluginConfig &) const = default;
};

// The $SYS topics the broker publishes about itself.
struct SysConfig {
    uint32_t interval = 10; // seconds between publications (changed values only), 0 = none
    bool operator==(const SysConfig &) const = default;
};

// When a commit may be lost: `crash` (WAL, synchronous=NORMAL) survives a killed process,
// `power` (synchronous=FULL) also survives power loss at the cost of an fsync per commit.
enum class Durability { crash, power };

// What happens to a new durable message once the database reached max_size.
enum class StoreFullPolicy {
    refuse,      // QoS 1/2 PUBLISH that would be stored is refused with 0x97 Quota exceeded
    drop_oldest, // the receiving session's oldest queued message makes room
};

// The SQLite database in data_dir that keeps retained messages and persistent sessions.
struct StorageConfig {
    Durability durability = Durability::crash;
    uint32_t flush_interval_ms = 0; // 0: one transaction per loop turn; N: at most one per N ms
    uint64_t max_size = 0;          // bytes of database pages in use, 0 = no limit
    StoreFullPolicy full_policy = StoreFullPolicy::refuse;
    // Seconds the queue of a bridge removed by a reload stays on disk (for a bridge of the
    // same name that returns); 0 deletes it at once.
    uint32_t removed_bridge_retention = 7 * 86400;
    bool operator==(const StorageConfig &) const = default;
};

// A bridge forward rule: local messages matching `local` go upstream to `remote`.
struct ForwardRule {
    std::string local;  // local topic filter
    std::string remote; // remote topic template ({1}.., {#}); empty = the same topic
    uint8_t qos = 1;    // the highest QoS used upstream (the message's own QoS if lower)
    enum class Retain : uint8_t { keep, clear, force } retain = Retain::keep;
    bool drop_properties = false; // 5.0 uplink: none of the message's properties go up
    std::vector<std::pair<std::string, std::string>> add_user_properties; // e.g. gateway id
    std::optional<uint32_t> message_expiry;  // seconds, set on messages that have none
    std::optional<std::string> content_type; // set on messages that have none
    int line = 0;
    bool operator==(const ForwardRule &) const = default;
};

// A bridge subscribe rule: upstream messages matching `remote` are published locally.
struct SubscribeRule {
    std::string remote; // remote topic filter
    std::string local;  // local topic template; empty = the same topic
    uint8_t qos = 1;    // QoS of the upstream subscription
    std::vector<std::pair<std::string, std::string>> add_user_properties; // added locally
    int line = 0;
    bool operator==(const SubscribeRule &) const = default;
};

// One uplink to a cloud broker.
struct BridgeConfig {
    std::string name;                // [A-Za-z0-9_-]+, unique; names logs and $SYS topics
    std::vector<Endpoint> addresses; // tried in order; back to the first after a failure
    std::string client_id;           // default "ferrymq-<name>"
    std::optional<std::string> username;
    std::optional<std::string> password;
    uint16_t keep_alive = 60;         // seconds
    bool clean_start = false;         // upstream session: keep it across reconnects
    uint32_t session_expiry = 3600;   // 5.0 upstream Session Expiry Interval, seconds
    bool v5 = true;                   // protocol "5" (default) or "3.1.1"
    uint32_t backoff_min_ms = 500;    // first reconnect delay
    uint32_t backoff_max_ms = 30'000; // the delay doubles up to this
    uint32_t backoff_jitter = 20;     // +/- percent of randomness on each delay
    uint32_t failback = 300;   // seconds online on a backup address before the first address is
                               // tried again, 0 = stay on the backup
    uint16_t window = 100;     // QoS 1/2 messages in flight upstream (5.0: at most
                               // the upstream's Receive Maximum)
    bool topic_aliases = true; // 5.0: assign aliases within the upstream's maximum
    bool try_private = true;   // 3.1.1: CONNECT as a bridge (protocol level 0x84) so the
                               // upstream does not echo; again without it if refused
    uint32_t queue_max_messages = 1'000'000; // queued while the uplink is down or slow
    uint64_t queue_max_bytes = 256ull << 20; // payload bytes queued
    uint32_t queue_max_age = 0;              // seconds a message may wait, 0 = no limit
    bool queue_refuse_when_full = false;     // full: refuse new (0x97) instead of drop oldest
    std::string dead_letter_topic;           // local topic for permanently refused messages;
                                             // empty: dropped (and counted)
    std::optional<TlsConfig> tls;            // absent: plain TCP
    std::vector<ForwardRule> forward;
    std::vector<SubscribeRule> subscribe;
    int line = 0;
    bool operator==(const BridgeConfig &) const = default;
};

// Per-address abuse counters (failed authentications, ACL denials, malformed packets are
// always counted and logged, rate-limited), and what they may trigger.
struct AbuseConfig {
    uint32_t ban_after_failures = 0; // failed authentications within `window` that ban, 0 = off
    uint32_t window = 60;            // seconds over which failures and connections are counted
    uint32_t ban_time = 300;         // seconds a banned address is refused
    uint32_t max_connects = 0;       // new connections per address per window, 0 = no limit
    uint32_t log_interval = 10;      // seconds between log lines per address and kind
    bool operator==(const AbuseConfig &) const = default;
};

struct Config {
    std::vector<ListenerConfig> listeners{ListenerConfig{}}; // never empty
    std::string data_dir = "ferrymq-data"; // persistent state; relative paths are from the cwd
    util::LogLevel log_level = util::LogLevel::info;
    Limits limits;
    SharedSubscriptionsConfig shared_subscriptions;
    AuthenticationConfig authentication;
    RequestResponseConfig request_response;
    RedirectConfig redirect;
    SysConfig sys;
    StorageConfig storage;
    std::vector<BridgeConfig> bridges;
    std::vector<PluginConfig> plugins; // loaded in this order
    std::vector<AclRuleConfig> acl;    // in order; empty: no access control
    AbuseConfig abuse;
    bool operator==(const Config &) const = default;
};

// Why a configuration was refused. what() is "FILE:LINE:COL: message" (1-based line and
// column) so that editors and CI annotate the right spot; an unreadable file has no position
// and reads "FILE: cannot read: <strerror>".
class ConfigError : public std::runtime_error {
  public:
    ConfigError(std::string file, int line, int column, std::string message);
    ConfigError(std::string file, std::string message);

    const std::string &file() const { return file_; }
    int line() const { return line_; }     // 1-based, 0 when the error has no position
    int column() const { return column_; } // 1-based, 0 when the error has no position
    const std::string &message() const { return message_; }

  private:
    std::string file_;
    int line_ = 0;
    int column_ = 0;
    std::string message_;
};

// Reads and validates the YAML file at `path`. Throws ConfigError.
Config load_config_file(const std::string &path);

// Reads and validates `yaml`; `name` stands for the file name in error messages. Throws
// ConfigError.
Config load_config_string(std::string_view yaml, const std::string &name);

} // namespace ferrymq::config
