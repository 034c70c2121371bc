// SPDX-License-Identifier: Apache-2.0
#include "store/store.hpp"

#include "mqtt/codec.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <unordered_set>

namespace ferrymq::store {

namespace {

// The schema this build writes. Each migration takes the database from version N-1 to N
// inside one transaction; PRAGMA user_version records where a file stands.
constexpr int kSchemaVersion = 3;

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
    // 3: queued messages in batches (see store.hpp and the record format below): one row
    // per session and commit. batch_gone: messages delivered out of a batch that still
    // holds others; batch_sent: the packet id of a QoS 2 message sent, and whether its
    // PUBREL was. Rows of `messages` are moved into batches when they are read back.
    "CREATE TABLE batches ("
    "  id INTEGER PRIMARY KEY, client_id TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  records BLOB NOT NULL);"
    "CREATE TABLE batch_gone ("
    "  batch INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (batch, idx)) WITHOUT ROWID;"
    "CREATE TABLE batch_sent ("
    "  batch INTEGER NOT NULL, idx INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
    "  released INTEGER NOT NULL, PRIMARY KEY (batch, idx)) WITHOUT ROWID;",
};

// The page size of a new database. Each commit rewrites a few pages it only touches (the
// last leaf of a table, the B-tree root, the header), so smaller pages cost less per
// commit: with 1 KiB pages a queued message costs about half the bytes it costs with
// SQLite's default 4 KiB. A database keeps the page size it was created with.
constexpr int kPageSize = 1024;
// Pages in the WAL before a checkpoint copies them back: 1 MiB. A checkpoint runs inside
// a commit on the loop thread; at 1 MiB the longest commit of a flat-out ingest is about
// 13 ms (25-42 ms at SQLite's default, about 4 MiB), for about 2 % more bytes written.
constexpr int kCheckpointPages = 1024;

// A batch's `records` blob:
//   varint  format, 1
//   varint  how many strings follow, then each as varint length + bytes: the topics,
//           publishers and lists of subscription identifiers (varints) of the batch's
//           messages, each written once
//   then one record per index in the batch:
//     byte    flags: bits 0-1 the delivery's QoS, 2 its retain flag, 3-4 the message's
//             QoS, 5 its retain flag, 6 an expiry follows, 7 a second flags byte follows;
//             0xFF: no message at this index (acknowledged before its commit)
//     byte    (with bit 7) bit 0: the record holds the whole PUBLISH frame (a message with
//             properties; its subscription identifiers are in the frame), bit 1: a list of
//             subscription identifiers follows, bit 2: a shared subscription group follows
//     varint  the topic's string (not with a whole frame)
//     varint  the publisher's string
//     varint  the subscription identifiers' string (with bit 1 of the second byte)
//     varint  the "group/filter" string of the shared subscription group that chose the
//             session (with bit 2 of the second byte)
//     zigzag  created_at - the batch's created_at, wall-clock ms
//     zigzag  expires_at - created_at, ms (only with bit 6)
//     varint  length, then the payload (or the PUBLISH frame encode_message makes)
constexpr uint64_t kBatchFormat = 1;
constexpr uint8_t kNoMessage = 0xFF;
constexpr uint8_t kMoreFlags = 0x80;
constexpr uint8_t kWholeFrame = 0x01;    // in the second flags byte
constexpr uint8_t kSubscriptions = 0x02; // in the second flags byte
constexpr uint8_t kSharedGroup = 0x04;   // in the second flags byte

// Into a records blob (std::vector<uint8_t>) or a string that is interned (std::string).
template <class Bytes> void put_varint(Bytes &out, uint64_t v) {
    using Byte = typename Bytes::value_type;
    while (v >= 0x80) {
        out.push_back(static_cast<Byte>(static_cast<uint8_t>(v | 0x80)));
        v >>= 7;
    }
    out.push_back(static_cast<Byte>(static_cast<uint8_t>(v)));
}

uint64_t zigzag(int64_t v) {
    return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

int64_t unzigzag(uint64_t v) {
    return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Reads a records blob front to back; `ok` turns false at the first byte that does not fit.
struct BatchReader {
    std::span<const uint8_t> in;
    size_t pos = 0;
    bool ok = true;

    bool more() const { return ok && pos < in.size(); }
    uint8_t byte() {
        if (pos >= in.size()) {
            ok = false;
            return 0;
        }
        return in[pos++];
    }
    uint64_t varint() {
        uint64_t v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            const uint8_t b = byte();
            v |= static_cast<uint64_t>(b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                return v;
            }
        }
        ok = false;
        return 0;
    }
    std::span<const uint8_t> bytes() {
        const uint64_t n = varint();
        if (!ok || n > in.size() - pos) {
            ok = false;
            return {};
        }
        std::span<const uint8_t> out = in.subspan(pos, n);
        pos += n;
        return out;
    }
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

// One message of a batch row as read back. Times are wall-clock ms; the message's own
// created_ms and expiry_ms are the caller's to set.
struct BatchRecord {
    uint64_t index = 0;
    std::shared_ptr<broker::Message> message;
    broker::RestoredMessage restored; // QoS, retain, subscription ids, shared group
    int64_t created = 0;
    int64_t expires = 0; // 0: none
};

// Reads a batch's records blob (the format above) into `out`, in index order, skipping
// indexes without a message; `base` is the row's created_at, `max_records` how many
// indexes a batch can have. False when the blob stops making sense: `out` then holds the
// records before that point. Whole frames the codec refuses are skipped and counted in
// `undecodable`.
bool read_batch(std::span<const uint8_t> blob, int64_t base, uint64_t max_records,
                std::vector<BatchRecord> &out, size_t &undecodable) {
    BatchReader in{blob};
    std::vector<std::string> strings;
    if (in.varint() != kBatchFormat) {
        return false;
    }
    for (uint64_t n = in.varint(); in.ok && n > 0; --n) {
        std::span<const uint8_t> text = in.bytes();
        strings.emplace_back(reinterpret_cast<const char *>(text.data()), text.size());
    }
    auto string_at = [&](uint64_t i) -> const std::string * {
        if (i >= strings.size()) {
            in.ok = false;
            return nullptr;
        }
        return &strings[i];
    };
    for (uint64_t idx = 0; in.more(); ++idx) {
        const uint8_t flags = in.byte();
        if (flags == kNoMessage) {
            continue;
        }
        BatchRecord record;
        record.index = idx;
        record.message = std::make_shared<broker::Message>();
        broker::Message &m = *record.message;
        broker::RestoredMessage &r = record.restored;
        const uint8_t more = (flags & kMoreFlags) != 0 ? in.byte() : 0;
        const bool whole = (more & kWholeFrame) != 0;
        const std::string *topic = whole ? nullptr : string_at(in.varint());
        const std::string *origin = string_at(in.varint());
        if ((more & kSubscriptions) != 0) {
            if (const std::string *list = string_at(in.varint())) {
                BatchReader ids{{reinterpret_cast<const uint8_t *>(list->data()), list->size()}};
                while (ids.more()) {
                    r.subscription_ids.push_back(static_cast<uint32_t>(ids.varint()));
                }
                in.ok = in.ok && ids.ok;
            }
        }
        if ((more & kSharedGroup) != 0) {
            if (const std::string *group = string_at(in.varint())) {
                r.shared_group = *group;
            }
        }
        record.created = base + unzigzag(in.varint());
        record.expires = (flags & 0x40) != 0 ? record.created + unzigzag(in.varint()) : 0;
        std::span<const uint8_t> body = in.bytes();
        if (!in.ok || idx >= max_records) {
            return false;
        }
        if (whole) {
            if (!decode_message(body, m, &r.subscription_ids)) {
                ++undecodable;
                continue;
            }
        } else {
            m.topic = *topic;
            m.payload.assign(reinterpret_cast<const char *>(body.data()), body.size());
            m.qos = static_cast<uint8_t>((flags >> 3) & 3);
            m.retain = (flags & 0x20) != 0;
        }
        m.origin_client_id = *origin;
        r.qos = static_cast<uint8_t>(flags & 3);
        r.retain = (flags & 0x04) != 0;
        out.push_back(std::move(record));
    }
    return in.ok;
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
    // page_size only takes on a new file (before journal_mode writes its header).
    const std::string setup = "PRAGMA page_size=" + std::to_string(kPageSize) +
                              "; PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;";
    rc = db_.exec(setup.c_str());
    if (rc == SQLITE_OK) {
        const int64_t page_size = db_.query_int("PRAGMA page_size");
        const int64_t pages =
            page_size > 0 ? int64_t{kCheckpointPages} * kPageSize / page_size : 1000;
        rc = db_.exec(("PRAGMA wal_autocheckpoint=" + std::to_string(pages) + ";").c_str());
    }
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
        {&session_delete_[2],
         "DELETE FROM batch_gone WHERE batch IN (SELECT id FROM batches WHERE client_id = ?)"},
        {&session_delete_[3],
         "DELETE FROM batch_sent WHERE batch IN (SELECT id FROM batches WHERE client_id = ?)"},
        {&session_delete_[4], "DELETE FROM batches WHERE client_id = ?"},
        {&session_delete_[5], "DELETE FROM inbound_qos2 WHERE client_id = ?"},
        {&subscription_save_,
         "INSERT OR REPLACE INTO subscriptions (client_id, filter, qos, no_local, "
         "retain_as_published, retain_handling, identifier) VALUES (?,?,?,?,?,?,?)"},
        {&subscription_delete_, "DELETE FROM subscriptions WHERE client_id = ? AND filter = ?"},
        {&batch_write_,
         "INSERT INTO batches (id, client_id, created_at, records) VALUES (?,?,?,?)"},
        {&batch_delete_[0], "DELETE FROM batch_gone WHERE batch = ?"},
        {&batch_delete_[1], "DELETE FROM batch_sent WHERE batch = ?"},
        {&batch_delete_[2], "DELETE FROM batches WHERE id = ?"},
        {&gone_add_, "INSERT OR IGNORE INTO batch_gone (batch, idx) VALUES (?,?)"},
        {&sent_set_, "INSERT OR REPLACE INTO batch_sent (batch, idx, packet_id, released) "
                     "VALUES (?,?,?,?)"},
        {&sent_clear_, "DELETE FROM batch_sent WHERE batch = ? AND idx = ?"},
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
                          "DELETE FROM batches WHERE client_id NOT IN "
                          "(SELECT client_id FROM sessions);"
                          "DELETE FROM batch_gone WHERE batch NOT IN (SELECT id FROM batches);"
                          "DELETE FROM batch_sent WHERE batch NOT IN (SELECT id FROM batches);"
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
    // Rows of the version 2 messages table come first in their sessions' queues (they are
    // older than any batch); they are written again as batches below.
    st = db_.prepare("SELECT id, client_id, frame, expires_at, origin, qos, retain, packet_id, "
                     "released, created_at FROM messages ORDER BY id",
                     &rc);
    size_t message_count = 0;
    std::vector<std::pair<size_t, size_t>> legacy; // (session, message) positions
    while (st && (rc = st.step()) == SQLITE_ROW) {
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
        r.message = std::move(m);
        r.qos = static_cast<uint8_t>(st.column_int(5));
        r.retain = st.column_int(6) != 0;
        r.packet_id = static_cast<uint16_t>(st.column_int(7));
        r.released = st.column_int(8) != 0;
        std::vector<broker::RestoredMessage> &queue = sessions[it->second].messages;
        legacy.emplace_back(it->second, queue.size());
        queue.push_back(std::move(r));
        ++message_count;
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read messages", rc);
        return false;
    }

    // Batches in id order, which is the order their messages were queued in, less the
    // messages batch_gone says were delivered.
    std::unordered_set<uint64_t> gone;
    st = db_.prepare("SELECT batch, idx FROM batch_gone", &rc);
    while (st && (rc = st.step()) == SQLITE_ROW) {
        gone.insert(static_cast<uint64_t>(st.column_int(0)) << kBatchShift |
                    static_cast<uint64_t>(st.column_int(1)));
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read delivered messages", rc);
        return false;
    }
    std::unordered_map<uint64_t, std::pair<uint16_t, bool>> sent;
    st = db_.prepare("SELECT batch, idx, packet_id, released FROM batch_sent", &rc);
    while (st && (rc = st.step()) == SQLITE_ROW) {
        sent[static_cast<uint64_t>(st.column_int(0)) << kBatchShift |
             static_cast<uint64_t>(st.column_int(1))] = {static_cast<uint16_t>(st.column_int(2)),
                                                         st.column_int(3) != 0};
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read sent messages", rc);
        return false;
    }
    size_t unreadable_batches = 0;
    std::vector<uint64_t> expired;
    st = db_.prepare("SELECT id, client_id, created_at, records FROM batches ORDER BY id", &rc);
    while (st && (rc = st.step()) == SQLITE_ROW) {
        const uint64_t batch = static_cast<uint64_t>(st.column_int(0));
        next_batch_ = std::max(next_batch_, batch + 1);
        auto it = index.find(st.column_text(1));
        if (it == index.end()) {
            continue;
        }
        BatchState &state = batches_[batch];
        state.client_id = st.column_text(1);
        std::vector<BatchRecord> records;
        if (!read_batch(st.column_blob(3), st.column_int(2), uint64_t{1} << kBatchShift, records,
                        undecodable)) {
            ++unreadable_batches;
        }
        for (BatchRecord &record : records) {
            const uint64_t id = batch << kBatchShift | record.index;
            if (gone.contains(id)) {
                continue;
            }
            ++state.live;
            if (record.expires != 0 && record.expires <= now_wall) {
                // [MQTT-3.3.2-5]: gone like a delivered message, by the commit below.
                expired.push_back(id);
                continue;
            }
            record.message->created_ms = record.created - options_.wall_minus_loop_ms;
            record.message->expiry_ms = to_loop(record.expires);
            broker::RestoredMessage &r = record.restored;
            r.id = id;
            r.message = std::move(record.message);
            if (auto s = sent.find(id); s != sent.end()) {
                r.packet_id = s->second.first;
                r.released = s->second.second;
            }
            sessions[it->second].messages.push_back(std::move(r));
            ++message_count;
        }
        if (state.live == 0) {
            push(OpType::batch_delete).id = batch;
            batches_.erase(batch);
        }
    }
    if (rc != SQLITE_DONE) {
        fail("cannot read queued messages", rc);
        return false;
    }
    if (unreadable_batches != 0) {
        log_.warn("store %s: %zu batches of queued messages could not be read to the end; "
                  "what could be read was restored",
                  path().c_str(), unreadable_batches);
    }
    stats_.expired_at_load += expired.size();
    lazy_deletes_.insert(lazy_deletes_.end(), expired.begin(), expired.end());
    if (!legacy.empty()) {
        for (auto [session, position] : legacy) {
            broker::RestoredMessage &r = sessions[session].messages[position];
            r.id = add_message(sessions[session].client_id, r.message, r.qos, r.retain,
                               r.subscription_ids, {});
            if (r.packet_id != 0) {
                message_sent(r.id, r.packet_id, r.released);
            }
        }
        push(OpType::legacy_clear);
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
    // Expired messages, emptied batches and version 2 rows moved into batches.
    if ((!ops_.empty() || !lazy_deletes_.empty()) && !commit()) {
        return false;
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
    // Its batches go with it; messages it gets from now on start a batch of their own.
    open_batches_.erase(client_id);
    std::erase_if(batches_, [&](const auto &b) { return b.second.client_id == client_id; });
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

uint64_t Store::message_add(const std::string &client_id, const broker::Delivery &d,
                            std::string_view shared_group) {
    return add_message(client_id, d.message, d.qos, d.retain, d.subscription_ids, shared_group);
}

uint64_t Store::add_message(const std::string &client_id, const broker::MessagePtr &message,
                            uint8_t qos, bool retain, std::span<const uint32_t> subscription_ids,
                            std::string_view shared_group) {
    auto [open, fresh] = open_batches_.try_emplace(client_id, pending_batches_.size());
    if (!fresh) {
        const PendingBatch &b = pending_batches_[open->second];
        if (b.ops.size() >= kBatchMaxMessages || b.bytes >= kBatchMaxBytes) {
            open->second = pending_batches_.size();
            fresh = true;
        }
    }
    if (fresh) {
        PendingBatch &b = pending_batches_.emplace_back();
        b.id = next_batch_++;
        b.client_id = client_id;
        batches_[b.id].client_id = client_id;
        // Written where the batch's first message was reported, so it lands after any
        // earlier change of the same session (a session_delete before it, say).
        push(OpType::batch_write).a = static_cast<int64_t>(open->second);
        --stats_.changes; // not a change of its own
    }
    PendingBatch &b = pending_batches_[open->second];
    const uint64_t id = b.id << kBatchShift | b.ops.size();
    b.ops.push_back(ops_.size());
    b.bytes += message->topic.size() + message->payload.size() + 16;
    ++batches_[b.id].live;
    pending_adds_[id] = ops_.size();
    Op &op = push(OpType::message_add);
    op.key = client_id;
    op.id = id;
    op.message = message;
    op.qos = qos;
    op.retain = retain;
    op.subscription_ids.assign(subscription_ids.begin(), subscription_ids.end());
    op.key2 = shared_group;
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
        if (auto b = batches_.find(id >> kBatchShift); b != batches_.end() && b->second.live > 0) {
            --b->second.live;
        }
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
    case OpType::message_add:
        return true; // written by its batch's batch_write
    case OpType::batch_write:
        rc = write_batch(pending_batches_[static_cast<size_t>(op.a)]);
        if (rc == SQLITE_OK) {
            return true; // every message was acknowledged before the commit
        }
        break;
    case OpType::batch_delete:
        for (Statement &st : batch_delete_) {
            st.bind(1, static_cast<int64_t>(op.id));
            rc = st.run();
            if (rc != SQLITE_DONE) {
                break;
            }
        }
        break;
    case OpType::message_sent: {
        const auto batch = static_cast<int64_t>(op.id >> kBatchShift);
        const auto idx = static_cast<int64_t>(op.id & ((uint64_t{1} << kBatchShift) - 1));
        Statement &st = op.a != 0 ? sent_set_ : sent_clear_;
        st.bind(1, batch);
        st.bind(2, idx);
        if (op.a != 0) {
            st.bind(3, op.a);
            st.bind(4, op.b);
        }
        rc = st.run();
        break;
    }
    case OpType::message_delete:
        gone_add_.bind(1, static_cast<int64_t>(op.id >> kBatchShift));
        gone_add_.bind(2, static_cast<int64_t>(op.id & ((uint64_t{1} << kBatchShift) - 1)));
        rc = gone_add_.run();
        break;
    case OpType::legacy_clear:
        rc = db_.exec("DELETE FROM messages;");
        rc = rc == SQLITE_OK ? SQLITE_DONE : rc;
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
                      "DELETE FROM messages; DELETE FROM inbound_qos2; DELETE FROM batches;"
                      "DELETE FROM batch_gone; DELETE FROM batch_sent;");
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

int Store::write_batch(const PendingBatch &batch) {
    // The records first (interning strings as they come), then the header in front.
    std::unordered_map<std::string_view, uint64_t> index;
    std::vector<std::string_view> strings;
    auto intern = [&](std::string_view text) {
        auto [it, fresh] = index.try_emplace(text, strings.size());
        if (fresh) {
            strings.push_back(text);
        }
        return it->second;
    };
    std::vector<uint8_t> &records = records_;
    records.clear();
    std::deque<std::string> id_lists; // distinct subscription identifier lists, interned
    std::string list;                 // the current message's, encoded
    int64_t base = 0;
    size_t live = 0;
    for (size_t i : batch.ops) {
        const Op &op = ops_[i];
        if (op.cancelled) {
            records.push_back(kNoMessage);
            continue;
        }
        const broker::Message &m = *op.message;
        const int64_t created = m.created_ms + options_.wall_minus_loop_ms;
        if (live++ == 0) {
            base = created;
        }
        const int64_t expires = to_wall(m.expiry_ms);
        const bool whole = !m.properties.empty();
        const bool ids = !whole && !op.subscription_ids.empty();
        const uint8_t more = (whole ? kWholeFrame : 0) | (ids ? kSubscriptions : 0) |
                             (op.key2.empty() ? 0 : kSharedGroup);
        records.push_back(static_cast<uint8_t>(
            (op.qos & 3) | (op.retain ? 0x04 : 0) | ((m.qos & 3) << 3) | (m.retain ? 0x20 : 0) |
            (expires != 0 ? 0x40 : 0) | (more != 0 ? kMoreFlags : 0)));
        if (more != 0) {
            records.push_back(more);
        }
        if (!whole) {
            put_varint(records, intern(m.topic));
        }
        put_varint(records, intern(m.origin_client_id));
        if (ids) {
            list.clear();
            for (uint32_t id : op.subscription_ids) {
                put_varint(list, id);
            }
            // Kept for the strings table only the first time a batch meets it.
            auto known = index.find(list);
            put_varint(records,
                       known != index.end() ? known->second : intern(id_lists.emplace_back(list)));
        }
        if (!op.key2.empty()) {
            put_varint(records, intern(op.key2));
        }
        put_varint(records, zigzag(created - base));
        if (expires != 0) {
            put_varint(records, zigzag(expires - created));
        }
        if (whole) {
            encode_message(m, op.subscription_ids, scratch_);
            put_varint(records, scratch_.size());
            records.insert(records.end(), scratch_.begin(), scratch_.end());
        } else {
            put_varint(records, m.payload.size());
            records.insert(records.end(), m.payload.begin(), m.payload.end());
        }
    }
    if (live == 0) {
        batches_.erase(batch.id); // every message was acknowledged before this commit
        return SQLITE_OK;
    }
    std::vector<uint8_t> &blob = scratch_;
    blob.clear();
    put_varint(blob, kBatchFormat);
    put_varint(blob, strings.size());
    for (std::string_view text : strings) {
        put_varint(blob, text.size());
        blob.insert(blob.end(), text.begin(), text.end());
    }
    blob.insert(blob.end(), records.begin(), records.end());
    batch_write_.bind(1, static_cast<int64_t>(batch.id));
    batch_write_.bind_text(2, batch.client_id);
    batch_write_.bind(3, base);
    batch_write_.bind_blob(4, blob);
    int rc = batch_write_.run();
    // QoS 2 messages sent in the commit that queued them.
    for (size_t idx = 0; rc == SQLITE_DONE && idx < batch.ops.size(); ++idx) {
        const Op &op = ops_[batch.ops[idx]];
        if (!op.cancelled && op.a != 0) {
            sent_set_.bind(1, static_cast<int64_t>(batch.id));
            sent_set_.bind(2, static_cast<int64_t>(idx));
            sent_set_.bind(3, op.a);
            sent_set_.bind(4, op.b);
            rc = sent_set_.run();
        }
    }
    return rc;
}

void Store::settle_deletes() {
    // A message whose batch holds no other queued message takes the batch with it;
    // the others are recorded as gone from their batch.
    for (uint64_t id : lazy_deletes_) {
        auto it = batches_.find(id >> kBatchShift);
        if (it != batches_.end() && it->second.live > 0 && --it->second.live == 0) {
            push(OpType::batch_delete).id = it->first;
            --stats_.changes; // counted when it was reported
            batches_.erase(it);
        }
    }
    for (uint64_t id : lazy_deletes_) {
        if (batches_.contains(id >> kBatchShift)) {
            push(OpType::message_delete).id = id;
            --stats_.changes;
        }
    }
    lazy_deletes_.clear();
}

bool Store::commit() {
    if ((ops_.empty() && lazy_deletes_.empty()) || !db_.is_open()) {
        return true;
    }
    settle_deletes();
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
    pending_batches_.clear();
    open_batches_.clear();
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
    pending_batches_.clear();
    open_batches_.clear();
    batches_.clear();
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
    pending_adds_.clear();
    pending_batches_.clear();
    open_batches_.clear();
    batches_.clear();
    // Statements before the connection (sqlite3_close_v2 would wait for them anyway).
    for (Statement *st : {&begin_,
                          &commit_,
                          &rollback_,
                          &retained_set_,
                          &retained_clear_,
                          &session_save_,
                          &session_delete_[0],
                          &session_delete_[1],
                          &session_delete_[2],
                          &session_delete_[3],
                          &session_delete_[4],
                          &session_delete_[5],
                          &subscription_save_,
                          &subscription_delete_,
                          &batch_write_,
                          &batch_delete_[0],
                          &batch_delete_[1],
                          &batch_delete_[2],
                          &gone_add_,
                          &sent_set_,
                          &sent_clear_,
                          &qos2_add_,
                          &qos2_delete_}) {
        *st = Statement();
    }
    db_.close();
}

} // namespace ferrymq::store
