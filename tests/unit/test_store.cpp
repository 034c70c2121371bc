// SPDX-License-Identifier: Apache-2.0
// The SQLite store on a real database file in a temporary directory: what the broker
// reports is written in one transaction per commit and read back by a new broker, and
// acknowledgements wait for the commit that holds their message.
#include "broker/broker.hpp"
#include "memory_link.hpp"
#include "silent_log.hpp"
#include "store/store.hpp"

#include <doctest/doctest.h>

#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

using namespace ferrymq;
using namespace ferrymq::mqtt;
using broker::Broker;
using broker::BrokerSettings;
using test::MemoryLink;

namespace {

// A fresh directory under /tmp, removed with everything in it at the end of the test.
struct TempDir {
    TempDir() {
        char name[] = "/tmp/ferrymq-store-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path = name;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string path;
};

// A broker over a store in `dir`. restart() throws both away (as a kill would: the last
// commit is what survives) and builds new ones on the same directory.
struct Fixture {
    Fixture() { start(); }
    ~Fixture() {
        broker.reset();
        store.reset();
    }

    void start() {
        store = std::make_unique<store::Store>(log);
        store::StoreOptions options;
        options.dir = dir.path;
        options.max_size = max_size;
        REQUIRE(store->open(options));
        std::vector<broker::MessagePtr> retained;
        std::vector<broker::RestoredSession> sessions;
        REQUIRE(store->load(retained, sessions, now));
        broker = std::make_unique<Broker>(settings, log);
        broker->set_persistence(store.get());
        broker->restore(std::move(retained), std::move(sessions), now);
        commit();
    }

    // Without commit(): the changes since the last commit are lost, as after kill -9.
    void restart(bool commit_first = true) {
        if (commit_first) {
            commit();
        }
        stop();
        start();
    }

    // Throws broker and store away (uncommitted changes with them), which releases the
    // database's exclusive lock for a test that reads or edits the file itself.
    void stop() {
        links.clear();
        broker.reset();
        store.reset();
    }

    void commit() {
        store->commit();
        broker->on_committed();
    }

    MemoryLink &connect(const std::string &client_id, Version v = Version::v5, bool clean = true,
                        uint32_t expiry = 0, std::optional<Will> will = std::nullopt) {
        links.push_back(std::make_unique<MemoryLink>(next_link++));
        MemoryLink &link = *links.back();
        broker->on_open(link);
        Connect c;
        c.version = v;
        c.client_id = client_id;
        c.clean_start = clean;
        c.will = std::move(will);
        if (v == Version::v5 && expiry != 0) {
            c.properties.session_expiry_interval = expiry;
        }
        broker->on_packet(link, c, now);
        auto packets = link.take();
        REQUIRE(!packets.empty());
        REQUIRE(std::holds_alternative<Connack>(packets[0]));
        connack = std::get<Connack>(packets[0]);
        link.put_back(std::vector<Packet>(packets.begin() + 1, packets.end()));
        return link;
    }

    void subscribe(MemoryLink &link, const std::string &filter, uint8_t qos, uint32_t id = 0) {
        Subscribe s;
        s.packet_id = 1;
        s.subscriptions.push_back({filter, qos, false, true, RetainHandling::send_if_new});
        if (id != 0) {
            s.properties.subscription_identifiers.push_back(id);
        }
        broker->on_packet(link, s, now);
        // The SUBACK goes; retained messages it brought stay for the test.
        std::vector<Packet> kept;
        for (Packet &p : link.take()) {
            if (!std::holds_alternative<Suback>(p)) {
                kept.push_back(std::move(p));
            }
        }
        link.put_back(std::move(kept));
    }

    void publish(MemoryLink &link, const std::string &topic, const std::string &payload,
                 uint8_t qos, bool retain = false, Properties props = {}) {
        Publish p;
        p.topic = topic;
        p.payload = payload;
        p.qos = qos;
        p.retain = retain;
        p.packet_id = qos ? ++next_packet : 0;
        p.properties = std::move(props);
        broker->on_packet(link, p, now);
    }

    void close(MemoryLink &link) { broker->on_close(link, now); }

    // A persistent session (expiry 3600 s) subscribed to `filter`, then disconnected, so
    // what matches from now on is queued (and stored) for it.
    void leave_subscribed(const std::string &client_id, const std::string &filter, uint8_t qos,
                          uint32_t id = 0) {
        MemoryLink &link = connect(client_id, Version::v5, false, 3600);
        subscribe(link, filter, qos, id);
        close(link);
    }

    test::SilentLog log;
    TempDir dir;
    BrokerSettings settings;
    uint64_t max_size = 0;
    std::unique_ptr<store::Store> store;
    std::unique_ptr<Broker> broker;
    std::vector<std::unique_ptr<MemoryLink>> links;
    uint64_t next_link = 1;
    uint16_t next_packet = 0;
    uint64_t now = 1'000'000;
    Connack connack;
};

} // namespace

TEST_CASE("store: an offline persistent session, its subscription and queue survive a restart") {
    Fixture f;
    f.leave_subscribed("sub", "s/#", 1, 7);
    MemoryLink &pub = f.connect("pub");
    Properties props;
    props.user_properties = {{"k", "1"}, {"k", "2"}, {"a", "b"}};
    props.content_type = "text/plain";
    f.publish(pub, "s/1", "one", 1, false, props);
    f.publish(pub, "s/2", "two", 1);
    f.restart();
    CHECK(f.broker->session_count() == 1);
    MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
    CHECK(f.connack.session_present);
    auto got = back.take_publishes();
    REQUIRE(got.size() == 2);
    CHECK(got[0].topic == "s/1");
    CHECK(got[0].payload == "one");
    CHECK(got[0].qos == 1);
    CHECK(got[0].properties.user_properties == props.user_properties); // order, duplicates
    CHECK(got[0].properties.content_type == "text/plain");
    CHECK(got[0].properties.subscription_identifiers == std::vector<uint32_t>{7});
    CHECK(got[1].payload == "two");
    // The subscription came back too: a new message reaches the session.
    MemoryLink &pub2 = f.connect("pub2");
    f.publish(pub2, "s/3", "three", 1);
    auto more = back.take_publishes();
    REQUIRE(more.size() == 1);
    CHECK(more[0].payload == "three");
}

TEST_CASE("store: [MQTT-3.3.1-5] retained messages survive a restart, deleted ones stay deleted") {
    Fixture f;
    MemoryLink &pub = f.connect("pub");
    f.publish(pub, "r/1", "kept", 1, true);
    f.publish(pub, "r/2", "gone", 1, true);
    f.publish(pub, "r/2", "", 1, true);
    f.restart();
    CHECK(f.broker->retained_count() == 1);
    MemoryLink &sub = f.connect("sub");
    f.subscribe(sub, "r/#", 1);
    f.commit();
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "r/1");
    CHECK(got[0].retain);
}

TEST_CASE("store: a PUBACK for a message stored for a persistent session waits for the commit") {
    Fixture f;
    f.leave_subscribed("sub", "q", 1);
    MemoryLink &pub = f.connect("pub");
    f.publish(pub, "q", "durable", 1);
    f.publish(pub, "nobody", "not stored", 1); // no durable change, but ordered behind
    CHECK(pub.take().empty());
    CHECK(f.broker->deferred_ack_count() == 2);
    f.commit();
    auto acks = pub.take();
    REQUIRE(acks.size() == 2);
    // [MQTT-4.6.0-2]: PUBACKs in the order of the PUBLISHes.
    CHECK(std::get<Puback>(acks[0]).packet_id == 1);
    CHECK(std::get<Puback>(acks[1]).packet_id == 2);
    CHECK(std::get<Puback>(acks[1]).reason == Reason::no_matching_subscribers);
    // With nothing durable pending, acks go out at once.
    f.publish(pub, "nobody", "x", 1);
    CHECK(pub.take().size() == 1);
}

TEST_CASE("store: changes lost before their commit are the only ones lost (kill -9)") {
    Fixture f;
    f.leave_subscribed("sub", "q", 1);
    MemoryLink &pub = f.connect("pub");
    f.publish(pub, "q", "committed", 1);
    f.commit();
    CHECK(pub.take().size() == 1); // acknowledged after its commit
    f.publish(pub, "q", "not committed", 1);
    CHECK(pub.take().empty()); // never acknowledged: the publisher still has it
    f.restart(false);
    MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
    auto got = back.take_publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "committed");
}

TEST_CASE("store: [MQTT-4.4.0-1] in-flight messages come back with their packet ids, PUBREL "
          "state and DUP") {
    Fixture f;
    MemoryLink &sub = f.connect("sub", Version::v5, false, 3600);
    f.subscribe(sub, "q", 2);
    MemoryLink &pub = f.connect("pub");
    f.publish(pub, "q", "qos2-a", 2);
    f.publish(pub, "q", "qos2-b", 2);
    auto sent = sub.take_publishes();
    REQUIRE(sent.size() == 2);
    // The first reached PUBREC (so PUBREL was sent); the second awaits its PUBREC.
    f.broker->on_packet(sub, Pubrec{{sent[0].packet_id, Reason::success, {}}}, f.now);
    f.restart();
    MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
    auto packets = back.take();
    REQUIRE(packets.size() == 2);
    CHECK(std::get<Pubrel>(packets[0]).packet_id == sent[0].packet_id);
    const auto &again = std::get<Publish>(packets[1]);
    CHECK(again.packet_id == sent[1].packet_id);
    CHECK(again.dup);
    CHECK(again.payload == "qos2-b");
    // Completing the flows removes them from the store.
    f.broker->on_packet(back, Pubcomp{{sent[0].packet_id, Reason::success, {}}}, f.now);
    f.broker->on_packet(back, Pubrec{{sent[1].packet_id, Reason::success, {}}}, f.now);
    f.broker->on_packet(back, Pubcomp{{sent[1].packet_id, Reason::success, {}}}, f.now);
    f.restart();
    MemoryLink &third = f.connect("sub", Version::v5, false, 3600);
    CHECK(f.connack.session_present);
    CHECK(third.take().empty());
}

TEST_CASE("store: [MQTT-4.3.3-10] an inbound QoS 2 packet id survives: the resent PUBLISH is "
          "not routed twice") {
    Fixture f;
    f.leave_subscribed("sub", "q", 2);
    MemoryLink &pub = f.connect("pub", Version::v5, false, 3600);
    f.publish(pub, "q", "exactly once", 2);
    const uint16_t id = f.next_packet;
    f.commit();
    REQUIRE(pub.take().size() == 1); // PUBREC
    f.restart();
    MemoryLink &pub2 = f.connect("pub", Version::v5, false, 3600);
    // The publisher did not see PUBREC in time and resends with DUP, then releases.
    Publish p;
    p.topic = "q";
    p.payload = "exactly once";
    p.qos = 2;
    p.dup = true;
    p.packet_id = id;
    f.broker->on_packet(pub2, p, f.now);
    f.broker->on_packet(pub2, Pubrel{{id, Reason::success, {}}}, f.now);
    f.commit();
    auto acks = pub2.take();
    REQUIRE(acks.size() == 2);
    CHECK(std::get<Pubcomp>(acks[1]).reason == Reason::success);
    MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
    CHECK(back.take_publishes().size() == 1);
}

TEST_CASE("store: session expiry and will survive a restart; an expired session is gone") {
    Fixture f;
    Will will;
    will.topic = "wills/a";
    will.payload = "a left";
    will.qos = 1;
    will.properties.will_delay_interval = 30;
    MemoryLink &a = f.connect("a", Version::v5, false, 60, will);
    f.close(a); // will due in 30 s, session ends in 60 s
    MemoryLink &b = f.connect("b", Version::v5, false, 10);
    f.close(b);
    f.restart();
    CHECK(f.broker->session_count() == 2);
    MemoryLink &watcher = f.connect("watcher");
    f.subscribe(watcher, "wills/#", 1);
    f.now += 11'000;
    f.broker->tick(f.now);                 // b expired
    CHECK(f.broker->session_count() == 2); // a and watcher
    CHECK(watcher.take_publishes().empty());
    f.now += 20'000;
    f.broker->tick(f.now); // a's will is due
    auto wills = watcher.take_publishes();
    REQUIRE(wills.size() == 1);
    CHECK(wills[0].payload == "a left");
    f.restart();
    CHECK(f.broker->session_count() == 1); // a, without its will
    MemoryLink &watcher2 = f.connect("watcher2");
    f.subscribe(watcher2, "wills/#", 1);
    f.now += 100'000;
    f.broker->tick(f.now);
    CHECK(watcher2.take_publishes().empty());
}

TEST_CASE("store: [MQTT-3.3.2-5] messages that expired while the broker was down are not sent") {
    Fixture f;
    f.leave_subscribed("sub", "q", 1);
    MemoryLink &pub = f.connect("pub");
    Properties short_life;
    short_life.message_expiry_interval = 1;
    Properties long_life;
    long_life.message_expiry_interval = 3600;
    f.publish(pub, "q", "short", 1, false, short_life);
    f.publish(pub, "q", "long", 1, false, long_life);
    f.commit();
    // The store converts deadlines to wall-clock time; a restart 2 s later in wall time
    // is a restart whose loop clock is 2 s further on for the same wall-clock offset.
    f.now += 2'000;
    f.restart();
    CHECK(f.store->stats().expired_at_load == 1);
    MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
    auto got = back.take_publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "long");
    REQUIRE(got[0].properties.message_expiry_interval);
    CHECK(*got[0].properties.message_expiry_interval <= 3598); // [MQTT-3.3.2-6] time left
}

TEST_CASE("store: one commit per batch; a message acknowledged before its commit is never "
          "written") {
    Fixture f;
    MemoryLink &sub = f.connect("sub", Version::v5, false, 3600);
    f.subscribe(sub, "q", 1);
    f.commit();
    const uint64_t commits = f.store->stats().commits;
    const uint64_t rows = f.store->stats().rows_written;
    MemoryLink &pub = f.connect("pub");
    for (int i = 0; i < 100; ++i) {
        f.publish(pub, "q", std::to_string(i), 1);
    }
    size_t delivered = 0;
    for (auto got = sub.take_publishes(); !got.empty(); got = sub.take_publishes()) {
        delivered += got.size();
        for (const Publish &p : got) {
            f.broker->on_packet(sub, Puback{{p.packet_id, Reason::success, {}}}, f.now);
        }
    }
    CHECK(delivered == 100);
    f.commit();
    CHECK(f.store->stats().commits == commits + 1);
    CHECK(f.store->stats().rows_written == rows); // added, sent and acknowledged in one batch
    CHECK(pub.take().size() == 100);
}

TEST_CASE("store: a clean start or an expiry of 0 removes the stored session") {
    Fixture f;
    f.leave_subscribed("a", "x", 1);
    f.connect("a", Version::v5, true, 0); // clean start, no expiry: ends at disconnect
    f.restart();
    CHECK(f.broker->session_count() == 0);
    MemoryLink &b = f.connect("b", Version::v311, false); // 3.1.1 persistent: kept
    f.subscribe(b, "x", 1);
    f.restart();
    CHECK(f.broker->session_count() == 1);
}

TEST_CASE("store: with max_size reached a PUBLISH bound for a persistent session gets 0x97") {
    Fixture f;
    f.max_size = 1; // full as soon as anything is in it
    f.restart();
    f.leave_subscribed("sub", "q", 1);
    f.commit();
    REQUIRE(f.store->full());
    MemoryLink &pub = f.connect("pub");
    f.publish(pub, "q", "refused", 1);
    auto acks = pub.take();
    REQUIRE(acks.size() == 1);
    CHECK(std::get<Puback>(acks[0]).reason == Reason::quota_exceeded);
    CHECK(f.broker->stats().refused_store_full == 1);
    f.publish(pub, "elsewhere", "fine", 1); // not bound for the store: accepted
    CHECK(std::get<Puback>(pub.take().at(0)).reason == Reason::no_matching_subscribers);
}

TEST_CASE("store: with max_size reached and drop_oldest, the oldest queued message makes room") {
    Fixture f;
    f.max_size = 1;
    f.settings.store_full_refuses = false;
    f.restart();
    f.leave_subscribed("sub", "q", 1);
    MemoryLink &pub = f.connect("pub");
    f.publish(pub, "q", "1", 1);
    f.publish(pub, "q", "2", 1);
    f.commit();
    f.publish(pub, "q", "3", 1);
    f.commit();
    // The store stays full, so each new message displaced the one queued before it.
    CHECK(f.broker->stats().dropped_store_full == 2);
    f.restart();
    MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
    std::vector<std::string> payloads = back.payloads();
    CHECK(payloads == std::vector<std::string>{"3"});
}

TEST_CASE("store: a damaged database file is moved aside and a new one created") {
    TempDir dir;
    {
        std::ofstream out(dir.path + "/ferrymq.db", std::ios::binary);
        out << std::string(8192, 'x');
    }
    test::SilentLog log;
    {
        store::Store s(log);
        store::StoreOptions options;
        options.dir = dir.path;
        REQUIRE(s.open(options));
        std::vector<broker::MessagePtr> retained;
        std::vector<broker::RestoredSession> sessions;
        CHECK(s.load(retained, sessions, 1000));
        CHECK(sessions.empty());
    }
    size_t moved = 0;
    for (const auto &entry : std::filesystem::directory_iterator(dir.path)) {
        moved += entry.path().filename().string().starts_with("ferrymq.db.corrupt-") ? 1 : 0;
    }
    CHECK(moved == 1);
}

TEST_CASE("store: a second store on the same directory is refused while the first is open") {
    TempDir dir;
    test::SilentLog log;
    store::StoreOptions options;
    options.dir = dir.path;
    {
        store::Store first(log);
        REQUIRE(first.open(options));
        store::Store second(log);
        CHECK_FALSE(second.open(options));
    }
    store::Store third(log);
    CHECK(third.open(options));
}

TEST_CASE("store: a schema newer than this build is refused, not overwritten") {
    TempDir dir;
    {
        sqlite3 *db = nullptr;
        REQUIRE(sqlite3_open((dir.path + "/ferrymq.db").c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    test::SilentLog log;
    store::Store s(log);
    store::StoreOptions options;
    options.dir = dir.path;
    CHECK_FALSE(s.open(options));
}

namespace {

int64_t query_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    const int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

} // namespace

TEST_CASE("store: a version 1 database is migrated, and its queued messages kept") {
    Fixture f;
    f.stop();
    std::filesystem::remove(f.dir.path + "/ferrymq.db");
    std::filesystem::remove(f.dir.path + "/ferrymq.db-wal");
    {
        // What version 1 wrote: a persistent session "sub" subscribed to q, with two
        // messages queued (one row each), the second already sent as QoS 2 packet id 7.
        sqlite3 *db = nullptr;
        REQUIRE(sqlite3_open((f.dir.path + "/ferrymq.db").c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(
                    db,
                    "CREATE TABLE retained (topic TEXT PRIMARY KEY, frame BLOB NOT NULL,"
                    "  expires_at INTEGER NOT NULL, origin TEXT NOT NULL);"
                    "CREATE TABLE sessions (client_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                    "  expiry_interval INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
                    "  online INTEGER NOT NULL, will BLOB, will_delay INTEGER NOT NULL,"
                    "  will_at INTEGER NOT NULL);"
                    "CREATE TABLE subscriptions (client_id TEXT NOT NULL, filter TEXT NOT NULL,"
                    "  qos INTEGER NOT NULL, no_local INTEGER NOT NULL,"
                    "  retain_as_published INTEGER NOT NULL, retain_handling INTEGER NOT NULL,"
                    "  identifier INTEGER NOT NULL, PRIMARY KEY (client_id, filter)) WITHOUT ROWID;"
                    "CREATE TABLE messages (id INTEGER PRIMARY KEY, client_id TEXT NOT NULL,"
                    "  frame BLOB NOT NULL, expires_at INTEGER NOT NULL, origin TEXT NOT NULL,"
                    "  qos INTEGER NOT NULL, retain INTEGER NOT NULL, packet_id INTEGER NOT NULL,"
                    "  released INTEGER NOT NULL);"
                    "CREATE TABLE inbound_qos2 (client_id TEXT NOT NULL, packet_id INTEGER NOT "
                    "  NULL, PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;"
                    "INSERT INTO sessions VALUES ('sub', 5, 3600, 0, 0, NULL, 0, 0);"
                    "INSERT INTO subscriptions VALUES ('sub', 'q', 2, 0, 0, 0, 0);"
                    "PRAGMA user_version=1;",
                    nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_stmt *st = nullptr;
        REQUIRE(sqlite3_prepare_v2(
                    db, "INSERT INTO messages VALUES (?, 'sub', ?, 0, 'pub', ?, 0, ?, 0)", -1, &st,
                    nullptr) == SQLITE_OK);
        for (int i = 1; i <= 2; ++i) {
            Publish p;
            p.topic = "q";
            p.payload = "from v1 #" + std::to_string(i);
            p.qos = static_cast<uint8_t>(i);
            p.packet_id = 1;
            const std::vector<uint8_t> frame = encode(Packet(p), Version::v5);
            sqlite3_bind_int(st, 1, i);
            sqlite3_bind_blob(st, 2, frame.data(), static_cast<int>(frame.size()), SQLITE_STATIC);
            sqlite3_bind_int(st, 3, i);
            sqlite3_bind_int(st, 4, i == 2 ? 7 : 0);
            REQUIRE(sqlite3_step(st) == SQLITE_DONE);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    f.start();
    // Restarted again, so what is read back is what the migration wrote as batches.
    f.restart();
    MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
    auto got = back.take_publishes();
    REQUIRE(got.size() == 2);
    // [MQTT-4.4.0-1] the one in flight is resent first, with its packet id and DUP.
    CHECK(got[0].payload == "from v1 #2");
    CHECK(got[0].qos == 2);
    CHECK(got[0].dup);
    CHECK(got[0].packet_id == 7);
    CHECK(got[1].payload == "from v1 #1");
    CHECK(got[1].qos == 1);
    CHECK_FALSE(got[1].dup);
    // The store holds the exclusive lock: read the file once it is closed.
    f.stop();
    sqlite3 *db = nullptr;
    REQUIRE(sqlite3_open((f.dir.path + "/ferrymq.db").c_str(), &db) == SQLITE_OK);
    CHECK(query_int(db, "PRAGMA user_version") == 3);
    CHECK(query_int(db, "SELECT count(*) FROM messages") == 0);
    CHECK(query_int(db, "SELECT count(*) FROM batches") == 1);
    sqlite3_close(db);
    f.start(); // the fixture's destructor expects a running store
}

TEST_CASE("store: queued messages share a batch row; delivered ones stay gone across restarts, "
          "the row goes with the last of them") {
    Fixture f;
    f.leave_subscribed("sub", "b/#", 1);
    f.leave_subscribed("other", "b/#", 1);
    MemoryLink &pub = f.connect("pub");
    for (int i = 0; i < 10; ++i) {
        // Two topics, the second with an expiry: both record forms in one batch.
        Properties props;
        if (i % 2 == 1) {
            props.message_expiry_interval = 3600;
        }
        f.publish(pub, i % 2 == 0 ? "b/even" : "b/odd", std::to_string(i), 1, false, props);
    }
    f.restart();
    {
        MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
        auto got = back.take_publishes();
        REQUIRE(got.size() == 10);
        for (int i = 0; i < 10; ++i) {
            CHECK(got[i].payload == std::to_string(i));
            CHECK(got[i].topic == (i % 2 == 0 ? "b/even" : "b/odd"));
        }
        // Acknowledge 0-3 and 6: the batch still holds 4, 5, 7, 8, 9.
        for (int i : {0, 1, 2, 3, 6}) {
            f.broker->on_packet(back, Puback{{got[i].packet_id, Reason::success, {}}}, f.now);
        }
    }
    f.restart();
    {
        MemoryLink &back = f.connect("sub", Version::v5, false, 3600);
        auto got = back.take_publishes();
        std::vector<std::string> payloads;
        for (const Publish &p : got) {
            payloads.push_back(p.payload);
            f.broker->on_packet(back, Puback{{p.packet_id, Reason::success, {}}}, f.now);
        }
        CHECK(payloads == std::vector<std::string>{"4", "5", "7", "8", "9"});
        REQUIRE(got.size() == 5);
        REQUIRE(got[1].properties.message_expiry_interval);
        CHECK(*got[1].properties.message_expiry_interval <= 3600);
    }
    // "other" still holds all ten: its own batch row.
    f.restart();
    {
        MemoryLink &back = f.connect("other", Version::v5, false, 3600);
        CHECK(back.take_publishes().size() == 10);
        f.close(back);
        // A clean start ends the session: its rows go.
        f.connect("other", Version::v5, true, 0);
    }
    f.commit();
    f.stop();
    sqlite3 *db = nullptr;
    REQUIRE(sqlite3_open((f.dir.path + "/ferrymq.db").c_str(), &db) == SQLITE_OK);
    CHECK(query_int(db, "SELECT count(*) FROM batches") == 0);
    CHECK(query_int(db, "SELECT count(*) FROM batch_gone") == 0);
    CHECK(query_int(db, "SELECT count(*) FROM batch_sent") == 0);
    CHECK(query_int(db, "PRAGMA page_size") == 1024);
    sqlite3_close(db);
    f.start();
}

TEST_CASE("store: a damaged batch row restores what can be read, never more, and never crashes") {
    Fixture f;
    f.leave_subscribed("sub", "d/#", 1, 9); // a subscription identifier: the record's list form
    MemoryLink &pub = f.connect("pub");
    Properties props;
    props.content_type = "text/plain"; // a property: the record's whole-frame form
    f.publish(pub, "d/1", "first", 1);
    f.publish(pub, "d/2", "second", 1, false, props);
    f.publish(pub, "d/3", "third", 1);
    f.commit();
    f.stop();
    const std::string path = f.dir.path + "/ferrymq.db";
    std::vector<uint8_t> blob;
    int64_t batch_id = 0;
    {
        sqlite3 *db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        sqlite3_stmt *st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, "SELECT records, id FROM batches", -1, &st, nullptr) ==
                SQLITE_OK);
        REQUIRE(sqlite3_step(st) == SQLITE_ROW);
        const auto *p = static_cast<const uint8_t *>(sqlite3_column_blob(st, 0));
        blob.assign(p, p + sqlite3_column_bytes(st, 0));
        batch_id = sqlite3_column_int64(st, 1);
        CHECK(sqlite3_step(st) == SQLITE_DONE); // the three messages share one row
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    const std::vector<std::string> all = {"first", "second", "third"};
    // Every prefix of the blob, and the blob with each byte flipped in turn.
    std::vector<std::vector<uint8_t>> damaged;
    for (size_t n = 0; n < blob.size(); ++n) {
        damaged.emplace_back(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(n));
    }
    for (size_t i = 0; i < blob.size(); ++i) {
        damaged.push_back(blob);
        damaged.back()[i] ^= 0xA5;
    }
    size_t prefixes = 0;
    for (size_t k = 0; k < damaged.size(); ++k) {
        CAPTURE(k);
        {
            sqlite3 *db = nullptr;
            REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
            sqlite3_stmt *st = nullptr;
            REQUIRE(sqlite3_prepare_v2(db, "UPDATE batches SET records = ?", -1, &st, nullptr) ==
                    SQLITE_OK);
            if (damaged[k].empty()) {
                sqlite3_bind_zeroblob(st, 1, 0);
            } else {
                sqlite3_bind_blob(st, 1, damaged[k].data(), static_cast<int>(damaged[k].size()),
                                  SQLITE_STATIC);
            }
            REQUIRE(sqlite3_step(st) == SQLITE_DONE);
            sqlite3_finalize(st);
            sqlite3_close(db);
        }
        store::Store s(f.log);
        store::StoreOptions options;
        options.dir = f.dir.path;
        REQUIRE(s.open(options));
        std::vector<broker::MessagePtr> retained;
        std::vector<broker::RestoredSession> sessions;
        REQUIRE(s.load(retained, sessions, f.now));
        REQUIRE(sessions.size() == 1);
        const auto &queue = sessions[0].messages;
        CHECK(queue.size() <= 3);
        if (k < blob.size()) {
            // A cut blob gives back whole records from its front, in order.
            for (size_t i = 0; i < queue.size(); ++i) {
                CHECK(queue[i].message->payload == all[i]);
            }
            prefixes += queue.size();
        }
        s.close();
        // A load that found nothing readable deleted the row: put it back for the next case.
        sqlite3 *db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        const std::string again =
            "INSERT OR IGNORE INTO batches (id, client_id, created_at, records) VALUES (" +
            std::to_string(batch_id) + ", 'sub', 0, x'00'); DELETE FROM batch_gone;";
        REQUIRE(sqlite3_exec(db, again.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    CHECK(prefixes > 0); // some cuts fall after whole records
    f.start();
}

TEST_CASE("store: a queued message keeps its shared subscription group across a restart: when "
          "its session ends, another member gets it (spec 4.8.2)") {
    Fixture f;
    for (const char *id : {"a", "b"}) {
        f.leave_subscribed(id, "$share/g/t", 1);
    }
    MemoryLink &pub = f.connect("pub");
    for (int i = 0; i < 4; ++i) {
        f.publish(pub, "t", std::to_string(i), 1);
    }
    f.restart();
    // "a" comes back with a clean start: its old session ends, and what the group had
    // queued for it goes to "b" instead of ending with it.
    f.connect("a", Version::v5, true, 0);
    MemoryLink &b = f.connect("b", Version::v5, false, 3600);
    std::vector<std::string> got;
    for (const Publish &p : b.take_publishes()) {
        got.push_back(p.payload);
    }
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<std::string>{"0", "1", "2", "3"});
}
