// SPDX-License-Identifier: Apache-2.0
// Routing and MQTT state for every client: CONNECT, sessions, subscriptions, retained
// messages, QoS flows, wills and limits. It does no I/O: net/ feeds it decoded packets and
// connection events through a Link, so the same core runs under doctest without sockets.
// Owned by app::Server for the life of the loop; everything it owns dies with it.
#pragma once

#include "abuse.hpp"
#include "acl.hpp"
#include "authenticator.hpp"
#include "link.hpp"
#include "message.hpp"
#include "persistence.hpp"
#include "session.hpp"
#include "shared_subscriptions.hpp"
#include "subscription_tree.hpp"
#include "topic_alias_table.hpp"
#include "util/log.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferrymq::broker {

// Tunables of the core, filled from config::Config by the app.
struct BrokerSettings {
    uint16_t max_inflight = 20;             // outgoing QoS 1/2 per client without ack
    uint32_t max_queued_messages = 1000;    // per session; then QoS 0 first, then oldest
    uint64_t max_queued_bytes = 16u << 20;  // payload bytes per session
    uint16_t receive_maximum = 65535;       // inbound QoS 1/2 we accept unacknowledged
    uint16_t topic_alias_maximum = 10;      // inbound aliases per connection (5.0)
    uint16_t outbound_topic_aliases = 10;   // aliases we assign per 5.0 connection, 0 = none
    uint16_t server_keep_alive = 0;         // seconds imposed on 5.0 clients, 0 = theirs
    std::string server_reference;           // non-empty: refuse every CONNECT, pointing here (4.11)
    bool server_moved = false;              // 0x9D Server moved (permanent) instead of 0x9C
    std::string response_information;       // CONNACK Response Information; "{client_id}" expands
    bool validate_utf8_payloads = false;    // check payloads marked UTF-8 (5.0), 0x99 if not
    uint32_t max_packet_size = 268'435'460; // inbound limit, advertised in CONNACK
    uint32_t max_session_expiry = 0xFFFFFFFF;  // cap on Session Expiry Interval, seconds
    uint8_t max_qos = 2;                       // granted QoS cap
    size_t high_water_bytes = 1u << 20;        // pending output above which a client is slow
    uint64_t max_pending_bytes = 256ull << 20; // all session queues: above it, pause publishers
    bool shared_subscriptions = true;          // accept $share/... and say so in CONNACK
    // Once the store is full: true refuses QoS 1/2 PUBLISHes bound for a persistent session
    // (0x97; 3.1.1 publishers are disconnected unacknowledged), false drops the receiving
    // session's oldest queued message to make room.
    bool store_full_refuses = true;
    // Enhanced authentication methods by name (spec 4.12); a CONNECT naming another method,
    // or any method while this is empty, gets CONNACK 0x8C.
    AuthenticatorRegistry authenticators;
    // Checks the username and password of a CONNECT against the password file (app/ wires
    // it to auth::PasswordStore); empty when no password file is configured. Runs on the
    // loop thread, so it must be cheap or cache its results.
    std::function<bool(std::string_view username, std::string_view password)> check_password;
    // Access control rules; empty: every client may publish and subscribe to anything.
    // Internal clients (bridges) are never checked.
    AclRules acl;
    // Per-address counters, bans after failed authentications, connection rate limit.
    AbuseSettings abuse;
    uint64_t random_seed = 0; // random and sticky strategies; 0 = random_device
    // How a shared subscription group picks the member for each message.
    ShareStrategy shared_strategy = ShareStrategy::round_robin;
    // Seconds between $SYS publications (retained, only changed values); 0 = none.
    uint32_t sys_interval = 10;
    std::string version = "unknown"; // published as $SYS/broker/version
};

// Counters for every drop and error, surfaced in the stop log line and in $SYS.
struct BrokerStats {
    uint64_t messages_received = 0;
    uint64_t messages_sent = 0;
    uint64_t dropped_qos0_offline = 0;
    uint64_t dropped_queue_full = 0;
    uint64_t dropped_too_large = 0;
    uint64_t dropped_expired = 0;
    uint64_t protocol_errors = 0;
    uint64_t shared_deliveries = 0;       // messages a shared subscription gave one member
    uint64_t shared_redeliveries = 0;     // of those, handed to another member when one left
    uint64_t user_property_drops = 0;     // 5.0 PUBLISHes stripped or refused by the rules
    uint64_t invalid_utf8_payloads = 0;   // refused with 0x99 (validate_utf8_payloads)
    uint64_t topic_alias_hits = 0;        // PUBLISHes sent with an empty topic and an alias
    uint64_t topic_alias_bytes_saved = 0; // topic bytes those left out (each alias property
                                          // costs 3 bytes, on hits and assignments alike)
    uint64_t dropped_sys_publish = 0;     // client PUBLISHes to $SYS/..., never routed
    uint64_t longest_loop_turn_us = 0;    // longest time the loop ran callbacks without
                                          // polling (reported by the app), microseconds
    uint64_t refused_store_full = 0;      // QoS 1/2 PUBLISHes refused: the store is full
    uint64_t dropped_store_full = 0;      // queued messages dropped to make room in the store
    uint64_t deferred_acks = 0;           // PUBACK/PUBREC held until their commit
    uint64_t auth_failures = 0;           // CONNECTs refused for a wrong username or password
    uint64_t acl_denied_publish = 0;      // PUBLISHes (and wills at CONNECT) the ACL refused
    uint64_t acl_denied_subscribe = 0;    // subscription filters the ACL refused
    uint64_t acl_denied_deliveries = 0;   // messages not written: the receiver may not read them
    uint64_t dropped_max_age = 0;         // queued longer than the session's max_age
    uint64_t refused_queue_full = 0;      // QoS 1/2 PUBLISHes refused: a refusing queue is full
    // Non-success reason codes the broker sent (CONNACK, DISCONNECT, PUBACK, PUBREC, PUBREL,
    // PUBCOMP, SUBACK, UNSUBACK), indexed by value.
    std::array<uint64_t, 256> reasons_sent{};
};

// Inbound topic aliases of one 5.0 connection (alias -> topic name).
class TopicAliases {
  public:
    const std::string *find(uint16_t alias) const {
        auto it = map_.find(alias);
        return it == map_.end() ? nullptr : &it->second;
    }
    void set(uint16_t alias, const std::string &topic) { map_[alias] = topic; }

  private:
    std::unordered_map<uint16_t, std::string> map_;
};

// What a listener's User Property rules made of one 5.0 PUBLISH.
enum class UserPropertyVerdict : uint8_t { ok, stripped, too_large, key_not_allowed };
UserPropertyVerdict apply_user_property_policy(const ListenerPolicy &policy,
                                               std::vector<mqtt::UserProperty> &props);

class Broker {
  public:
    Broker(const BrokerSettings &settings, util::Log &log);
    ~Broker();
    Broker(const Broker &) = delete;
    Broker &operator=(const Broker &) = delete;

    // Whether a new connection from `link.peer()` may proceed (not banned, within the
    // connection rate); net/ closes it at once, before on_open(), when not.
    bool admit(const Link &link, uint64_t now_ms) {
        return link.internal() || abuse_.admit(link.peer(), now_ms);
    }
    const AbuseTotals &abuse_totals() const { return abuse_.totals(); }
    // A connection opened; no packet yet.
    void on_open(Link &link);
    // A reload: new limits, ACL rules, password check and abuse settings, for new
    // connections and (ACL rules) for connected clients too. The enhanced-authentication
    // methods, the random seed and the version string stay as they are.
    void reconfigure(BrokerSettings settings);
    // The transport refused `link` before any MQTT (a failed TLS handshake); `credentials`:
    // it was the client's certificate, counted as a failed authentication, else as
    // malformed input. net/ closes the link.
    void on_transport_refused(Link &link, bool credentials, uint64_t now_ms);
    // A packet decoded on `link`.
    void on_packet(Link &link, mqtt::Packet &&packet, uint64_t now_ms);
    // Bytes on `link` could not be decoded; `frame` is the offending packet when whole.
    void on_decode_error(Link &link, const mqtt::Error &error, std::span<const uint8_t> frame,
                         uint64_t now_ms);
    // The client went silent for 1.5 x keep-alive [MQTT-3.1.2-22].
    void on_keep_alive_timeout(Link &link, uint64_t now_ms);
    // The connection is gone (closed by either side). The Link dies after this returns.
    void on_close(Link &link, uint64_t now_ms);
    // The connection's output drained below the low-water mark: send what waits.
    void on_writable(Link &link);
    // Periodic housekeeping: session expiry, wills due, $SYS topics.
    void tick(uint64_t now_ms);
    // Graceful stop: 5.0 clients get DISCONNECT 0x8B; every connection is closed.
    void shutdown(uint64_t now_ms);

    // Durable storage: every change of retained messages and persistent sessions from now
    // on is reported to `store`, which outlives the Broker. Set once, before restore().
    void set_persistence(Persistence *store) { store_ = store; }
    // Rebuilds retained messages and persistent sessions read back at start-up. Sessions
    // that had a client attached when the broker stopped count as disconnected now.
    void restore(std::vector<MessagePtr> &&retained, std::vector<RestoredSession> &&sessions,
                 uint64_t now_ms);
    // The store committed every change reported so far: acknowledgements held for it go out.
    void on_committed();
    // Reports every retained message and persistent session to the store again, after it
    // was emptied (the store's resync after a failed commit).
    void write_all_to_store();
    // The app measured a loop turn of `us` microseconds (commits included).
    void note_loop_turn(uint64_t us) {
        stats_.longest_loop_turn_us = std::max(stats_.longest_loop_turn_us, us);
    }
    // Publishes a message the broker itself originates (e.g. a bridge's $SYS state).
    void publish_system(std::string topic, std::string payload, bool retain, uint64_t now_ms);
    // The filters a session subscribes to (empty when there is no such session).
    std::vector<std::string> subscriptions_of(const std::string &client_id) const;
    // What waits for a session: messages queued and in flight, the age of the oldest, and
    // what it lost by cause.
    struct Backlog {
        size_t queued = 0;
        size_t inflight = 0;
        uint64_t oldest_age_ms = 0;
        Session::Drops drops;
    };
    Backlog backlog_of(const std::string &client_id) const;
    // PUBACK/PUBREC waiting for a commit.
    size_t deferred_ack_count() const { return deferred_acks_.size(); }

    // True while session queues hold more than max_pending_bytes: net/ stops reading from
    // publishers until it is false again (backpressure instead of unbounded memory).
    bool overloaded() const { return queued_bytes_total_ > settings_.max_pending_bytes; }
    uint64_t queued_bytes_total() const { return queued_bytes_total_; }

    // Whether `link` has completed CONNECT (for the connect timeout).
    bool connected(const Link &link) const;

    const BrokerStats &stats() const { return stats_; }
    size_t session_count() const { return sessions_.size(); }
    size_t retained_count() const { return retained_.size(); }
    // Connected clients (CONNECT accepted, not yet closed) by protocol version.
    uint64_t connected_count(mqtt::Version version) const {
        return connected_[version_index(version)];
    }

  private:
    // An enhanced authentication (spec 4.12): the method chosen in CONNECT, the exchange
    // under way, and the CONNECT waiting for it to end. Lives as long as the connection.
    struct AuthExchange {
        std::string method;                     // fixed for the connection [MQTT-4.12.0-5]
        std::optional<std::string> username;    // CONNECT's, for re-authentication
        AuthenticatorPtr exchange;              // the exchange under way; null between them
        std::unique_ptr<mqtt::Connect> pending; // set until CONNACK
    };

    // Per-connection MQTT state; lives from on_open to on_close.
    struct Client {
        Link *link = nullptr;
        Session *session = nullptr; // set by CONNECT
        mqtt::Version version = mqtt::Version::v311;
        bool closing = false;                  // close requested; ignore further packets
        bool will_suppressed = false;          // normal DISCONNECT or session taken by CONNECT
        bool problem_information = true;       // Request Problem Information (5.0)
        uint32_t max_packet_size = UINT32_MAX; // the client's Maximum Packet Size (5.0), bytes
        uint16_t client_receive_maximum = 65535;
        std::unique_ptr<TopicAliases> inbound_aliases; // 5.0, allocated on first use
        // Aliases we may assign: min(the client's Topic Alias Maximum, outbound_topic_aliases),
        // 0 for none (3.1.1, or a client that sent no maximum [MQTT-3.1.2-27]).
        uint16_t outbound_alias_max = 0;
        std::unique_ptr<TopicAliasTable> outbound_aliases; // allocated on the first PUBLISH
        std::unique_ptr<AuthExchange> auth; // 5.0 enhanced authentication, when negotiated
        // The user name someone vouched for: checked against the password file, or the
        // identity of an enhanced authentication. Absent for anonymous clients and for
        // names nobody checked, which the ACL treats as anonymous.
        std::optional<std::string> username;
        std::unique_ptr<ClientAcl> acl; // compiled at CONNECT; null: not checked
        // Acknowledgements of this client's PUBLISHes held in deferred_acks_; while any
        // is, later ones wait behind it so acks keep the order of the PUBLISHes [MQTT-4.6.0-2].
        uint32_t deferred_acks = 0;
    };

    // A PUBACK (QoS 1) or PUBREC (QoS 2) held until the store committed its message.
    struct DeferredAck {
        uint64_t link_id = 0;
        uint8_t qos = 1;
        uint16_t packet_id = 0;
        mqtt::Reason reason = mqtt::Reason::success;
        std::string why; // Reason String of a refusal, empty for a success
    };

    static size_t version_index(mqtt::Version version);
    // Counts a non-success reason code about to be sent.
    void count_reason(mqtt::Reason reason) { ++stats_.reasons_sent[static_cast<uint8_t>(reason)]; }
    // Publishes every $SYS value that changed since the last call, retained at QoS 0.
    void publish_sys(uint64_t now_ms);

    void handle_connect(Client &c, mqtt::Connect &&connect, uint64_t now_ms);
    // Completes a CONNECT that passed every check (and its authentication, if any).
    void accept_connect(Client &c, mqtt::Connect &&connect, mqtt::Connack &&ack, uint64_t now_ms);
    void handle_auth(Client &c, const mqtt::Auth &auth, uint64_t now_ms);
    void advance_auth(Client &c, AuthStep &&step, uint64_t now_ms);
    void handle_publish(Client &c, mqtt::Publish &&publish, uint64_t now_ms);
    void refuse_publish(Client &c, uint8_t qos, uint16_t packet_id, mqtt::Reason reason,
                        std::string_view why);
    // Answers a PUBLISH that is not routed ($SYS topic, ACL): a 5.0 QoS 1/2 sender gets 0x87
    // with `why`; a 3.1/3.1.1 one cannot be told, so its flow completes as if delivered.
    void drop_publish(Client &c, const mqtt::Publish &publish, std::string_view why);
    // Sends the PUBACK/PUBREC of a QoS 1/2 PUBLISH, or holds it until the next commit when
    // `durable` (its handling changed durable state) or when an earlier one is held.
    void ack_publish(Client &c, uint8_t qos, uint16_t packet_id, mqtt::Reason reason, bool durable,
                     std::string_view why = {});
    // Whether a QoS 1/2 message on `topic` would go to a session whose queue is full and
    // refuses rather than drops (a bridge with queue.full_policy refuse).
    bool blocked_by_full_queue(const std::string &topic, const std::string &origin, uint8_t qos);
    // Whether a QoS 1/2 message on `topic` would be stored for some persistent session.
    bool reaches_persistent_session(const std::string &topic, const std::string &origin,
                                    uint8_t qos);
    // Brings the store in line with the session: its whole state when it just became
    // persistent, its row when it still is, nothing left when it no longer is.
    void sync_persisted(Session &session);
    // Reports that a stored delivery left the session (acknowledged, dropped, moved).
    void forget_stored(Delivery &d);
    void handle_subscribe(Client &c, mqtt::Subscribe &&subscribe, uint64_t now_ms);
    void handle_unsubscribe(Client &c, const mqtt::Unsubscribe &unsubscribe);
    void handle_disconnect(Client &c, const mqtt::Disconnect &disconnect, uint64_t now_ms);
    void handle_puback(Client &c, uint16_t packet_id);
    void handle_pubrec(Client &c, const mqtt::Pubrec &pubrec);
    void handle_pubrel(Client &c, uint16_t packet_id);
    void handle_pubcomp(Client &c, uint16_t packet_id);

    // The one way packets other than PUBLISH reach a client. A non-empty `why` becomes the
    // Reason String of a 5.0 packet; Reason Strings and User Properties are left out where the
    // client asked for no problem information or where they would break its Maximum Packet
    // Size.
    void send(Client &c, mqtt::Packet &&packet, std::string_view why = {});
    // Answers CONNECT with a refusing CONNACK (`reason`, with `what` as its Reason String)
    // and closes the connection.
    void refuse(Client &c, mqtt::Reason reason, std::string_view what,
                mqtt::Properties properties = {});
    // Ends the connection for a protocol violation: DISCONNECT with `reason` (and `what` as
    // its Reason String) for 5.0, a plain close for 3.1/3.1.1. The will is published.
    void fail(Client &c, mqtt::Reason reason, std::string_view what);

    // Stores or clears the retained copy as the message says, then routes it.
    size_t publish_message(const MessagePtr &message, uint64_t now_ms);
    // Routes a message to every matching subscription, and to one member of every matching
    // shared subscription group; returns how many deliveries it made (0: no subscribers).
    size_t route(const MessagePtr &message, uint64_t now_ms);
    // Hands one message to one session: sent now, queued, or dropped by policy.
    void deliver(Session &session, Delivery &&delivery, uint64_t now_ms);
    // Sends queued messages while the window and the connection allow.
    void pump(Session &session, uint64_t now_ms);
    // Writes one PUBLISH to the session's link; false if it had to be dropped.
    bool transmit(Session &session, Client &c, const Delivery &d, uint16_t packet_id, bool dup,
                  uint64_t now_ms);
    void enqueue(Session &session, Delivery &&delivery);
    void publish_will(Session &session, uint64_t now_ms);
    void detach(Client &c, uint64_t now_ms);
    void destroy_session(Session *session);
    // Removes one subscription of `session`, shared or not, from the routing indexes.
    void unsubscribe_filter(Session &session, const std::string &filter);
    // Gives the messages shared subscriptions chose `session` for, and that it has not
    // started to receive, to other members of their groups: to online ones while the
    // session lives on (`ending` false), to any member when the session ends.
    void hand_over_shared(Session &session, bool ending, uint64_t now_ms);
    void send_retained(Client &c, const std::string &filter, const SubscriptionOptions &options,
                       uint64_t now_ms);
    Client *client_of(const Session &session);
    uint16_t send_window(const Client &c) const;

    BrokerSettings settings_;
    util::Log &log_;
    BrokerStats stats_;
    AbuseTracker abuse_;
    std::unordered_map<uint64_t, Client> clients_; // by link id
    // By client id; each key views its Session's own client_id(), so ids are stored once.
    std::unordered_map<std::string_view, std::unique_ptr<Session>> sessions_;
    std::unordered_map<std::string, MessagePtr> retained_; // by topic
    SubscriptionTree tree_;
    SharedSubscriptions shared_;      // $share/{group}/{filter} groups
    uint64_t queued_bytes_total_ = 0; // sum of every session's queued_bytes
    uint64_t now_ms_ = 0;             // loop clock at the latest entry from net/ or the timer
    uint64_t match_epoch_ = 0;
    uint64_t assigned_ids_ = 0;
    std::vector<std::pair<Session *, Delivery>> matches_; // scratch for route()
    std::array<uint64_t, 3> connected_{};                 // connected clients by version_index()
    uint64_t started_ms_ = 0;                             // loop clock at the first tick
    uint64_t next_sys_ms_ = 0;                            // when publish_sys() runs next
    std::unordered_map<std::string, std::string> sys_published_; // $SYS topic -> last value
    bool any_refusing_queue_ = false;        // a session with refuse_when_full was ever attached
    Persistence *store_ = nullptr;           // not owned; null = none
    std::vector<DeferredAck> deferred_acks_; // in the order they were held
};

} // namespace ferrymq::broker
