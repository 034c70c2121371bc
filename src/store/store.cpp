// SPDX-License-Identifier: Apache-2.0
#include "store/store.hpp"

#include "mqtt/codec.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>

namespace ferrymq::store {

namespace {

// The schema this build writes. Each migration takes the database from version N-1 to N
// inside one transaction; PRAGMA user_version records where a file stands.
constexpr int kSchemaVersion = 2;

const char *const kMigrations[kSchemaVersion] = {
    // 1: retained messages and persistent sessions. Messages are stored as the MQTT 5.0
    // PUBLISH they were received as (minus per-hop properties), so the codec that checks
    // every packet also reads them back. Deadlines are wall-clock milliseconds, 0 = none.
    // messages has no index on client_id: a session's rows are deleted only when the
    // session ends, and one index more would be one more B-tree write per message.
    "CREATE TABLE retained ("
    "  topic TEXT PRIMARY KEY, frame BLOB NOT NULL, expires_at INTEGER NOT NULL,"
    "  origin TEXT NOT NULL);"
    "CREATE TABLE sessions ("
    "  client_id TEXT PRIMARY KEY, version INTEGER NOT NULL, expiry_interval INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL, online INTEGER NOT NULL, will BLOB,"
    "  will_delay INTEGER NOT NULL, will_at INTEGER NOT NULL);"
    "CREATE TABLE subscriptions ("
    "  client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL,"
    "  no_local INTEGER NOT NULL, retain_as_published INTEGER NOT NULL,"
    "  retain_handling INTEGER NOT NULL, identifier INTEGER NOT NULL,"
    "  PRIMARY KEY (client_id, filter)) WITHOUT ROWID;"
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY, client_id TEXT NOT NULL, frame BLOB NOT NULL,"
    "  expires_at INTEGER NOT NULL, origin TEXT NOT NULL, qos INTEGER NOT NULL,"
    "  retain INTEGER NOT NULL, packet_id INTEGER NOT NULL, released INTEGER NOT NULL);"
    "CREATE TABLE inbound_qos2 ("
    "  client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,"
    "  PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;",
    // 2: when each queued message was received (wall-clock ms), for queue max_age; rows
    // from version 1 count as received when they are read back.
    "ALTER TABLE messages ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;",
};

// A message as the PUBLISH frame it is stored as: its own QoS and retain flag, its
// properties, and the subscriber's Subscription Identifiers when it is a delivery.
void encode_message(const broker::Message &m, std::span<const uint32_t> subscription_ids,
                    std::vector<uint8_t> &out) {
    mqtt::PublishRef ref;
    ref.topic = m.topic;
    ref.payload = m.payload;
    ref.properties = &m.properties;
    ref.subscription_ids = subscription_ids;
    ref.qos = m.qos;
    ref.retain = m.retain;
    ref.packet_id = m.qos != 0 ? 1 : 0;
    out.clear();
    mqtt::encode_publish(ref, mqtt::Version::v5, out);
}

// The inverse of encode_message; false when the bytes are not a valid PUBLISH.
bool decode_message(std::span<const uint8_t> frame, broker::Message &m,
                    std::vector<uint32_t> *subscription_ids) {
    mqtt::Result<mqtt::Packet> packet = mqtt::decode(frame, mqtt::Version::v5);
    if (!packet) {
        return false;
    }
    auto *p = std::get_if<mqtt::Publish>(&*packet);
    if (p == nullptr) {
        return false;
    }
    m.topic = std::move(p->topic);
    m.payload = std::move(p->payload);
    m.qos = p->qos;
    m.retain = p->retain;
    if (subscription_ids != nullptr) {
        *subscription_ids = std::move(p->properties.subscription_identifiers);
    }
    p->properties.subscription_identifiers.clear();
    m.properties = std::move(p->properties);
    return true;
}

// A will as a PUBLISH frame; its Will Delay Interval (not a PUBLISH property) is stored
// in a column of its own.
std::vector<uint8_t> encode_will(const mqtt::Will &will) {
    mqtt::Publish p;
    p.topic = will.topic;
    p.payload = will.payload;
    p.qos = will.qos;
    p.retain = will.retain;
    p.packet_id = will.qos != 0 ? 1 : 0;
    p.properties = will.properties;
    p.properties.will_delay_interval.reset();
    return mqtt::encode(mqtt::Packet(std::move(p)), mqtt::Version::v5);
}

std::unique_ptr<mqtt::Will> decode_will(std::span<const uint8_t> frame, int64_t delay) {
    mqtt::Result<mqtt::Packet> packet = mqtt::decode(frame, mqtt::Version::v5);
    auto *p = packet ? std::get_if<mqtt::Publish>(&*packet) : nullptr;
    if (p == nullptr) {
        return nullptr;
    }
    auto will = std::make_unique<mqtt::Will>();
    will->topic = std::move(p->topic);
    will->payload = std::move(p->payload);
    will->qos = p->qos;
    will->retain = p->retain;
    will->properties = std::move(p->properties);
    if (delay > 0) {
        will->properties.will_delay_interval = static_cast<uint32_t>(delay);
    }
    return will;
}

} // namespace

Store::~Store() {
    close();
}

int64_t Store::to_wall(uint64_t loop_ms) const {
    return loop_ms == 0 ? 0 : static_cast<int64_t>(loop_ms) + options_.wall_minus_loop_ms;
}

uint64_t Store::to_loop(int64_t wall_ms) const {
    if (wall_ms == 0) {
        return 0;
    }
    // A deadline that passed while the broker was down is "due now" (1, since 0 = none).
    const int64_t loop = wall_ms - options_.wall_minus_loop_ms;
    return loop > 0 ? static_cast<uint64_t>(loop) : 1;
}

void Store::fail(const char *what, int rc) {
    stats_.last_error = rc;
    log_.error("store %s: %s: %s (%s)", path().c_str(), what, error_name(rc).c_str(),
               db_.message().c_str());
}

bool Store::open(const StoreOptions &options) {
    options_ = options;
    bool corrupt = false;
    if (open_file(&corrupt)) {
        return true;
    }
    if (!corrupt) {
        return false;
    }
    move_aside();
    corrupt = false;
    return open_file(&corrupt);
}

bool Store::open_file(bool *corrupt) {
    const std::string file = path();
    int rc = db_.open(file);
    if (rc != SQLITE_OK) {
        fail("cannot open the database", rc);
        return false;
    }
    auto is_corrupt = [](int code) {
        return (code & 0xFF) == SQLITE_NOTADB || (code & 0xFF) == SQLITE_CORRUPT;
    };
    // Exclusive locking: no shared-memory file, and a second broker on the same data
    // directory fails at the lock below instead of interleaving writes.
    rc = db_.exec("PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;");
    if (rc == SQLITE_OK) {
        rc = db_.exec(options_.power_safe ? "PRAGMA synchronous=FULL;"
                                          : "PRAGMA synchronous=NORMAL;");
    }
    if (rc == SQLITE_OK) {
        Statement check = db_.prepare("PRAGMA quick_check(1)", &rc);
        if (check) {
            rc = check.step();
            if (rc == SQLITE_ROW) {
                if (check.column_text(0) != "ok") {
                    log_.warn("store %s: integrity check failed: %s", file.c_str(),
                              std::string(check.column_text(0)).c_str());
                    rc = SQLITE_CORRUPT;
                } else {
                    rc = SQLITE_OK;
                }
            }
        }
    }
    if (rc != SQLITE_OK) {
        *corrupt = is_corrupt(rc);
        fail(*corrupt                     ? "the database file is damaged"
             : (rc & 0xFF) == SQLITE_BUSY ? "the database is in use by another process"
                                          : "cannot set up the database",
             rc);
        db_.close();
        return false;
    }
    rc = db_.exec("BEGIN EXCLUSIVE; COMMIT;");
    if (rc != SQLITE_OK) {
        fail((rc & 0xFF) == SQLITE_BUSY ? "the database is in use by another process"
                                        : "cannot lock the database",
             rc);
        db_.close();
        return false;
    }
    if (!migrate() || !prepare_statements()) {
        db_.close();
        return false;
    }
    measure_size();
    return true;
}

void Store::move_aside() {
    const std::string file = path();
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, ".corrupt-%lld",
                  static_cast<long long>(std::time(nullptr)));
    for (const char *extra : {"", "-wal", "-shm"}) {
        const std::string from = file + extra;
        const std::string to = file + suffix + extra;
        if (std::rename(from.c_str(), to.c_str()) == 0) {
            log_.warn("store: moved the damaged %s aside to %s; starting with an empty database",
                      from.c_str(), to.c_str());
        }
    }
}

bool Store::migrate() {
    const int64_t version = db_.query_int("PRAGMA user_version");
    if (version < 0) {
        fail("cannot read the schema version", SQLITE_ERROR);
        return false;
    }
    if (version > kSchemaVersion) {
        log_.error("store %s: schema version %lld is newer than this ferrymq knows (%d); "
                   "use a newer ferrymq or another data_dir",
                   path().c_str(), static_cast<long long>(version), kSchemaVersion);
        return false;
    }
    for (int64_t v = version; v < kSchemaVersion; ++v) {
        std::string sql = "BEGIN;";
        sql += kMigrations[v];
        sql += "PRAGMA user_version=" + std::to_string(v + 1) + "; COMMIT;";
        const int rc = db_.exec(sql.c_str());
        if (rc != SQLITE_OK) {
            db_.exec("ROLLBACK;");
            fail("schema migration failed", rc);
            return false;
        }
        log_.info("store %s: schema version %lld", path().c_str(), static_cast<long long>(v + 1));
    }
    return true;
}

bool Store::prepare_statements() {
    struct Entry {
        Statement *st;
        const char *sql;
    } entries[] = {
        {&begin_, "BEGIN"},
        {&commit_, "COMMIT"},
        {&rollback_, "ROLLBACK"},
        {&retained_set_,
         "INSERT OR REPLACE INTO retained (topic, frame, expires_at, origin) VALUES (?,?,?,?)"},
        {&retained_clear_, "DELETE FROM retained WHERE topic = ?"},
        {&session_save_,
         "INSERT OR REPLACE INTO sessions (client_id, version, expiry_interval, expires_at, "
         "online, will, will_delay, will_at) VALUES (?,?,?,?,?,?,?,?)"},
        {&session_delete_[0], "DELETE FROM sessions WHERE client_id = ?"},
        {&session_delete_[1], "DELETE FROM subscriptions WHERE client_id = ?"},
        {&session_delete_[2], "DELETE FROM messages WHERE client_id = ?"},
        {&session_delete_[3], "DELETE FROM inbound_qos2 WHERE client_id = ?"},
        {&subscription_save_,
         "INSERT OR REPLACE INTO subscriptions (client_id, filter, qos, no_local, "
         "retain_as_published, retain_handling, identifier) VALUES (?,?,?,?,?,?,?)"},
        {&subscription_delete_, "DELETE FROM subscriptions WHERE client_id = ? AND filter = ?"},
        {&message_add_,
         "INSERT INTO messages (id, client_id, frame, expires_at, origin, qos, retain, "
         "packet_id, released, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)"},
        {&message_sent_, "UPDATE messages SET packet_id = ?, released = ? WHERE id = ?"},
        {&message_delete_, "DELETE FROM messages WHERE id = ?"},
        {&qos2_add_, "INSERT OR IGNORE INTO inbound_qos2 (client_id, packet_id) VALUES (?,?)"},
        {&qos2_delete_, "DELETE FROM inbound_qos2 WHERE client_id = ? AND packet_id = ?"},
    };
    for (Entry &e : entries) {
        int rc = SQLITE_OK;
        *e.st = db_.prepare(e.sql, &rc);
        if (!*e.st) {
            fail("cannot prepare a statement", rc);
            return false;
        }
    }
    return true;
}

bool Store::load(std::vector<broker::MessagePtr> &retained,
                 std::vector<broker::RestoredSession> &sessions, uint64_t now_loop_ms) {
    const int64_t now_wall = to_wall(now_loop_ms);
    int rc = SQLITE_OK;
    // Messages whose Message Expiry Interval passed while the broker was down are gone
    // [MQTT-3.3.2-5]; so are rows of sessions that no longer exist.
    {
        const std::string sql = "BEGIN;"
                                "DELETE FROM messages WHERE expires_at != 0 AND expires_at <= " +
                                std::to_string(now_wall) +
                                ";"
                                "DELETE FROM retained WHERE expires_at != 0 AND expires_at <= " +
                                std::to_string(now_wall) + ";";
        rc = db_.exec(sql.c_str());
        stats_.expired_at_load = static_cast<uint64_t>(sqlite3_total_changes(db_.handle()));
        if (rc == SQLITE_OK) {
            rc = db_.exec("DELETE FROM messages WHERE client_id NOT IN "
                          "(SELECT client_id FROM sessions);"
                          "DELETE FROM subscriptions WHERE client_id NOT IN "
                          "(SELECT client_id FROM sessions);"
                          "DELETE FROM inbound_qos2 WHERE client_id NOT IN "
                          "(SELECT client_id FROM sessions);"
                          "COMMIT;");
        }
        if (rc != SQLITE_OK) {
            db_.exec("ROLLBACK;");
            fail("cannot remove expired messages", rc);
            return false;
        }
    }
    size_t undecodable = 0;
    Statement st = db_.prepare("SELECT topic, frame, expires_at, origin FROM retained", &rc);
    while (st && (rc = st.step()) == SQLITE_ROW) {
        auto m = std::make_shared<broker::Message>();
        if (!decode_message(st.column_blob(1), *m, nullptr)) {
            ++undecodable;
            continue;
        }
        m->expiry_ms = to_loop(st.column_int(2));
        m->origin_client_id = st.column_text(3);
        retained.push_back(std::move(m));
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read retained messages", rc);
        return false;
    }

    std::map<std::string, size_t, std::less<>> index; // client id -> position in `sessions`
    st = db_.prepare("SELECT client_id, version, expiry_interval, expires_at, online, will, "
                     "will_delay, will_at FROM sessions",
                     &rc);
    while (st && (rc = st.step()) == SQLITE_ROW) {
        broker::RestoredSession s;
        s.client_id = st.column_text(0);
        s.version = static_cast<mqtt::Version>(st.column_int(1));
        s.expiry_interval = static_cast<uint32_t>(st.column_int(2));
        s.expires_at_ms = to_loop(st.column_int(3));
        s.online = st.column_int(4) != 0;
        if (!st.column_is_null(5)) {
            s.will = decode_will(st.column_blob(5), st.column_int(6));
            s.will_at_ms = s.will ? to_loop(st.column_int(7)) : 0;
        }
        index.emplace(s.client_id, sessions.size());
        sessions.push_back(std::move(s));
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read sessions", rc);
        return false;
    }
    st = db_.prepare("SELECT client_id, filter, qos, no_local, retain_as_published, "
                     "retain_handling, identifier FROM subscriptions",
                     &rc);
    while (st && (rc = st.step()) == SQLITE_ROW) {
        auto it = index.find(st.column_text(0));
        if (it == index.end()) {
            continue;
        }
        broker::SubscriptionOptions o;
        o.qos = static_cast<uint8_t>(st.column_int(2));
        o.no_local = st.column_int(3) != 0;
        o.retain_as_published = st.column_int(4) != 0;
        o.retain_handling = static_cast<mqtt::RetainHandling>(st.column_int(5));
        o.identifier = static_cast<uint32_t>(st.column_int(6));
        sessions[it->second].subscriptions.emplace_back(std::string(st.column_text(1)), o);
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read subscriptions", rc);
        return false;
    }
    st = db_.prepare("SELECT id, client_id, frame, expires_at, origin, qos, retain, packet_id, "
                     "released, created_at FROM messages ORDER BY id",
                     &rc);
    size_t message_count = 0;
    while (st && (rc = st.step()) == SQLITE_ROW) {
        const uint64_t id = static_cast<uint64_t>(st.column_int(0));
        next_id_ = std::max(next_id_, id + 1);
        auto it = index.find(st.column_text(1));
        if (it == index.end()) {
            continue;
        }
        auto m = std::make_shared<broker::Message>();
        broker::RestoredMessage r;
        if (!decode_message(st.column_blob(2), *m, &r.subscription_ids)) {
            ++undecodable;
            continue;
        }
        m->expiry_ms = to_loop(st.column_int(3));
        m->origin_client_id = st.column_text(4);
        const int64_t created = st.column_int(9);
        m->created_ms = created != 0 ? created - options_.wall_minus_loop_ms
                                     : static_cast<int64_t>(now_loop_ms);
        r.id = id;
        r.message = std::move(m);
        r.qos = static_cast<uint8_t>(st.column_int(5));
        r.retain = st.column_int(6) != 0;
        r.packet_id = static_cast<uint16_t>(st.column_int(7));
        r.released = st.column_int(8) != 0;
        sessions[it->second].messages.push_back(std::move(r));
        ++message_count;
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read messages", rc);
        return false;
    }
    st = db_.prepare("SELECT client_id, packet_id FROM inbound_qos2", &rc);
    while (st && (rc = st.step()) == SQLITE_ROW) {
        if (auto it = index.find(st.column_text(0)); it != index.end()) {
            sessions[it->second].inbound_qos2.push_back(static_cast<uint16_t>(st.column_int(1)));
        }
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read QoS 2 packet ids", rc);
        return false;
    }
    if (undecodable != 0) {
        log_.warn("store %s: %zu stored messages could not be read back and were skipped",
                  path().c_str(), undecodable);
    }
    log_.info("store %s: restored %zu retained messages, %zu sessions, %zu queued messages "
              "(%llu expired while stopped)",
              path().c_str(), retained.size(), sessions.size(), message_count,
              static_cast<unsigned long long>(stats_.expired_at_load));
    return true;
}

Store::Op &Store::push(OpType type) {
    ++stats_.changes;
    Op &op = ops_.emplace_back();
    op.type = type;
    return op;
}

void Store::retained_set(const broker::MessagePtr &message) {
    if (auto it = pending_retained_.find(message->topic); it != pending_retained_.end()) {
        ops_[it->second].cancelled = true; // only the latest value of a topic is written
    }
    pending_retained_[message->topic] = ops_.size();
    Op &op = push(OpType::retained_set);
    op.message = message;
}

void Store::retained_clear(const std::string &topic) {
    if (auto it = pending_retained_.find(topic); it != pending_retained_.end()) {
        ops_[it->second].cancelled = true;
    }
    pending_retained_[topic] = ops_.size();
    Op &op = push(OpType::retained_clear);
    op.key = topic;
}

void Store::session_save(const broker::Session &s) {
    Op &op = push(OpType::session_save);
    op.key = s.client_id();
    op.a = static_cast<int64_t>(s.version);
    op.b = s.expiry_interval;
    op.expires_at = to_wall(s.expires_at_ms);
    op.online = s.link_id != 0;
    if (s.will) {
        op.blob = encode_will(*s.will);
        op.will_delay = s.will->properties.will_delay_interval.value_or(0);
        op.will_at = to_wall(s.will_at_ms);
    }
}

void Store::session_delete(const std::string &client_id) {
    push(OpType::session_delete).key = client_id;
}

void Store::subscription_save(const std::string &client_id, const std::string &filter,
                              const broker::SubscriptionOptions &o) {
    Op &op = push(OpType::subscription_save);
    op.key = client_id;
    op.key2 = filter;
    op.qos = o.qos;
    op.a = (o.no_local ? 1 : 0) | (o.retain_as_published ? 2 : 0) |
           (static_cast<int64_t>(o.retain_handling) << 2);
    op.b = o.identifier;
}

void Store::subscription_delete(const std::string &client_id, const std::string &filter) {
    Op &op = push(OpType::subscription_delete);
    op.key = client_id;
    op.key2 = filter;
}

uint64_t Store::message_add(const std::string &client_id, const broker::Delivery &d) {
    const uint64_t id = next_id_++;
    pending_adds_[id] = ops_.size();
    Op &op = push(OpType::message_add);
    op.key = client_id;
    op.id = id;
    op.message = d.message;
    op.qos = d.qos;
    op.retain = d.retain;
    op.subscription_ids = d.subscription_ids;
    return id;
}

void Store::message_sent(uint64_t id, uint16_t packet_id, bool released) {
    if (auto it = pending_adds_.find(id); it != pending_adds_.end()) {
        // Sent in the same batch it was added in: one INSERT says it all.
        ++stats_.changes;
        ops_[it->second].a = packet_id;
        ops_[it->second].b = released ? 1 : 0;
        return;
    }
    Op &op = push(OpType::message_sent);
    op.id = id;
    op.a = packet_id;
    op.b = released ? 1 : 0;
}

void Store::message_delete(uint64_t id) {
    if (auto it = pending_adds_.find(id); it != pending_adds_.end()) {
        // Acknowledged before it was ever written: nothing to write at all.
        ops_[it->second].cancelled = true;
        pending_adds_.erase(it);
        return;
    }
    ++stats_.changes;
    lazy_deletes_.push_back(id);
}

void Store::qos2_add(const std::string &client_id, uint16_t packet_id) {
    Op &op = push(OpType::qos2_add);
    op.key = client_id;
    op.a = packet_id;
}

void Store::qos2_delete(const std::string &client_id, uint16_t packet_id) {
    Op &op = push(OpType::qos2_delete);
    op.key = client_id;
    op.a = packet_id;
}

bool Store::apply(Op &op) {
    int rc = SQLITE_DONE;
    switch (op.type) {
    case OpType::retained_set: {
        const broker::Message &m = *op.message;
        encode_message(m, {}, scratch_);
        retained_set_.bind_text(1, m.topic);
        retained_set_.bind_blob(2, scratch_);
        retained_set_.bind(3, to_wall(m.expiry_ms));
        retained_set_.bind_text(4, m.origin_client_id);
        rc = retained_set_.run();
        break;
    }
    case OpType::retained_clear:
        retained_clear_.bind_text(1, op.key);
        rc = retained_clear_.run();
        break;
    case OpType::session_save:
        session_save_.bind_text(1, op.key);
        session_save_.bind(2, op.a);
        session_save_.bind(3, op.b);
        session_save_.bind(4, op.expires_at);
        session_save_.bind(5, op.online ? 1 : 0);
        if (op.blob.empty()) {
            session_save_.bind_null(6);
        } else {
            session_save_.bind_blob(6, op.blob);
        }
        session_save_.bind(7, op.will_delay);
        session_save_.bind(8, op.will_at);
        rc = session_save_.run();
        break;
    case OpType::session_delete:
        for (Statement &st : session_delete_) {
            st.bind_text(1, op.key);
            rc = st.run();
            if (rc != SQLITE_DONE) {
                break;
            }
        }
        break;
    case OpType::subscription_save:
        subscription_save_.bind_text(1, op.key);
        subscription_save_.bind_text(2, op.key2);
        subscription_save_.bind(3, op.qos);
        subscription_save_.bind(4, op.a & 1);
        subscription_save_.bind(5, (op.a >> 1) & 1);
        subscription_save_.bind(6, op.a >> 2);
        subscription_save_.bind(7, op.b);
        rc = subscription_save_.run();
        break;
    case OpType::subscription_delete:
        subscription_delete_.bind_text(1, op.key);
        subscription_delete_.bind_text(2, op.key2);
        rc = subscription_delete_.run();
        break;
    case OpType::message_add: {
        const broker::Message &m = *op.message;
        encode_message(m, op.subscription_ids, scratch_);
        message_add_.bind(1, static_cast<int64_t>(op.id));
        message_add_.bind_text(2, op.key);
        message_add_.bind_blob(3, scratch_);
        message_add_.bind(4, to_wall(m.expiry_ms));
        message_add_.bind_text(5, m.origin_client_id);
        message_add_.bind(6, op.qos);
        message_add_.bind(7, op.retain ? 1 : 0);
        message_add_.bind(8, op.a);
        message_add_.bind(9, op.b);
        message_add_.bind(10, m.created_ms + options_.wall_minus_loop_ms);
        rc = message_add_.run();
        break;
    }
    case OpType::message_sent:
        message_sent_.bind(1, op.a);
        message_sent_.bind(2, op.b);
        message_sent_.bind(3, static_cast<int64_t>(op.id));
        rc = message_sent_.run();
        break;
    case OpType::message_delete:
        message_delete_.bind(1, static_cast<int64_t>(op.id));
        rc = message_delete_.run();
        break;
    case OpType::qos2_add:
        qos2_add_.bind_text(1, op.key);
        qos2_add_.bind(2, op.a);
        rc = qos2_add_.run();
        break;
    case OpType::qos2_delete:
        qos2_delete_.bind_text(1, op.key);
        qos2_delete_.bind(2, op.a);
        rc = qos2_delete_.run();
        break;
    case OpType::clear_all:
        rc = db_.exec("DELETE FROM retained; DELETE FROM sessions; DELETE FROM subscriptions;"
                      "DELETE FROM messages; DELETE FROM inbound_qos2;");
        rc = rc == SQLITE_OK ? SQLITE_DONE : rc;
        break;
    }
    if (rc != SQLITE_DONE) {
        stats_.last_error = rc;
        return false;
    }
    ++stats_.rows_written;
    return true;
}

bool Store::commit() {
    if ((ops_.empty() && lazy_deletes_.empty()) || !db_.is_open()) {
        return true;
    }
    for (uint64_t id : lazy_deletes_) {
        push(OpType::message_delete).id = id;
        --stats_.changes; // counted when it was reported
    }
    lazy_deletes_.clear();
    const auto started = std::chrono::steady_clock::now();
    int rc = begin_.run();
    bool ok = rc == SQLITE_DONE;
    const char *what = "cannot begin a transaction";
    if (ok) {
        for (Op &op : ops_) {
            if (!op.cancelled && !apply(op)) {
                ok = false;
                rc = stats_.last_error;
                what = "a write failed";
                break;
            }
        }
    }
    if (ok) {
        rc = commit_.run();
        ok = rc == SQLITE_DONE;
        what = "commit failed";
    }
    if (!ok) {
        rollback_.run();
        ++stats_.failed_commits;
        if (!stats_.degraded) {
            log_.error("store: durability degraded: retained messages and sessions are kept "
                       "in memory only until the database can be written again");
        }
        stats_.degraded = true;
        fail(what, rc);
    } else {
        ++stats_.commits;
    }
    ops_.clear();
    pending_adds_.clear();
    pending_retained_.clear();
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    stats_.total_commit_us += static_cast<uint64_t>(us);
    stats_.longest_commit_us = std::max(stats_.longest_commit_us, static_cast<uint64_t>(us));
    if (ok && options_.max_size != 0) {
        measure_size();
    }
    return ok;
}

bool Store::resync(const std::function<void()> &write_all) {
    ops_.clear();
    lazy_deletes_.clear();
    pending_adds_.clear();
    pending_retained_.clear();
    push(OpType::clear_all);
    write_all();
    const bool was_degraded = stats_.degraded;
    stats_.degraded = false; // commit() sets it again if this attempt fails too
    const bool ok = commit();
    if (ok && was_degraded) {
        log_.warn("store %s: durability restored: the database holds the broker's state again",
                  path().c_str());
    }
    return ok;
}

void Store::measure_size() {
    const int64_t pages = db_.query_int("PRAGMA page_count");
    const int64_t free_pages = db_.query_int("PRAGMA freelist_count");
    const int64_t page_size = db_.query_int("PRAGMA page_size");
    if (pages < 0 || free_pages < 0 || page_size < 0) {
        return;
    }
    stats_.size_bytes = static_cast<uint64_t>((pages - free_pages) * page_size);
    const bool was_full = full_;
    full_ = options_.max_size != 0 && stats_.size_bytes >= options_.max_size;
    if (full_ != was_full) {
        if (full_) {
            log_.warn("store %s: %llu bytes in use reached storage.max_size (%llu)", path().c_str(),
                      static_cast<unsigned long long>(stats_.size_bytes),
                      static_cast<unsigned long long>(options_.max_size));
        } else {
            log_.info("store %s: below storage.max_size again", path().c_str());
        }
    }
}

void Store::close() {
    if (!db_.is_open()) {
        return;
    }
    // Changes not committed yet are dropped, as a killed process would drop them: the
    // owner commits first when it stops cleanly.
    ops_.clear();
    lazy_deletes_.clear();
    // Statements before the connection (sqlite3_close_v2 would wait for them anyway).
    for (Statement *st :
         {&begin_, &commit_, &rollback_, &retained_set_, &retained_clear_, &session_save_,
          &session_delete_[0], &session_delete_[1], &session_delete_[2], &session_delete_[3],
          &subscription_save_, &subscription_delete_, &message_add_, &message_sent_,
          &message_delete_, &qos2_add_, &qos2_delete_}) {
        *st = Statement();
    }
    db_.close();
}

} // namespace ferrymq::store
