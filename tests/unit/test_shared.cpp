// SPDX-License-Identifier: Apache-2.0
// Shared subscriptions (spec 4.8.2): the member choice of SharedSubscriptions on its own,
// then the Broker with in-memory links: one member per message, hand-over when a member
// leaves, no retained messages, the enabled switch.
#include "broker/broker.hpp"
#include "broker/shared_subscriptions.hpp"
#include "memory_link.hpp"
#include "silent_log.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace ferrymq;
using namespace ferrymq::mqtt;
using broker::Broker;
using broker::BrokerSettings;
using broker::Message;
using broker::Session;
using broker::SharedChoice;
using broker::SharedSubscriptions;
using broker::ShareStrategy;
using broker::SubscriptionOptions;

namespace {

// ==== SharedSubscriptions alone ====

// Sessions for the index tests; link_id != 0 means "online".
struct Members {
    std::vector<std::unique_ptr<Session>> sessions;
    Session *add(const std::string &id, bool online = true) {
        sessions.push_back(std::make_unique<Session>(id));
        sessions.back()->link_id = online ? sessions.size() : 0;
        return sessions.back().get();
    }
};

Message message(const std::string &topic, const std::string &publisher = "pub") {
    Message m;
    m.topic = topic;
    m.qos = 1;
    m.origin_client_id = publisher;
    return m;
}

// The member chosen for each group matching `m` (client ids, in match order).
std::vector<std::string> chosen(SharedSubscriptions &shared, const Message &m) {
    std::vector<std::string> out;
    shared.match(m, [&](const SharedChoice &c) { out.push_back(c.session->client_id()); });
    return out;
}

// The single member chosen for `m`; fails the test unless exactly one group matched.
std::string one(SharedSubscriptions &shared, const Message &m) {
    auto got = chosen(shared, m);
    REQUIRE(got.size() == 1);
    return got[0];
}

} // namespace

TEST_CASE("shared: groups are keyed by (group, filter) and deleted with their last member") {
    SharedSubscriptions shared(ShareStrategy::round_robin, 1);
    Members m;
    Session *a = m.add("a");
    Session *b = m.add("b");
    CHECK(shared.empty());
    CHECK_FALSE(shared.add("g", "t/#", a, {}));
    CHECK_FALSE(shared.add("g", "t/#", b, {}));
    CHECK_FALSE(shared.add("g", "t/+", a, {})); // same group name, other filter: another group
    CHECK_FALSE(shared.add("h", "t/#", a, {})); // same filter, other group name
    CHECK(shared.group_count() == 3);
    CHECK(shared.member_count("g", "t/#") == 2);
    SubscriptionOptions q2;
    q2.qos = 2;
    CHECK(shared.add("g", "t/#", a, q2)); // a second SUBSCRIBE replaces the options
    CHECK(shared.member_count("g", "t/#") == 2);
    CHECK_FALSE(shared.remove("g", "t/#", m.add("stranger")));
    CHECK(shared.remove("g", "t/#", a));
    CHECK_FALSE(shared.remove("g", "t/#", a));
    CHECK(shared.remove("g", "t/#", b));
    CHECK(shared.member_count("g", "t/#") == 0);
    CHECK(shared.group_count() == 2);
    CHECK(chosen(shared, message("t/x")) == std::vector<std::string>{"a", "a"});
    CHECK(chosen(shared, message("t/x/y")) == std::vector<std::string>{"a"});
}

TEST_CASE("shared: each matching group chooses one member; '$' topics follow [MQTT-4.7.2-1]") {
    SharedSubscriptions shared(ShareStrategy::round_robin, 1);
    Members m;
    shared.add("g", "#", m.add("a"), {});
    shared.add("g", "#", m.add("b"), {});
    shared.add("s", "$SYS/#", m.add("c"), {});
    CHECK(chosen(shared, message("x")).size() == 1);
    CHECK(chosen(shared, message("$SYS/load")) == std::vector<std::string>{"c"});
    CHECK(chosen(shared, message("$other")).empty());
}

TEST_CASE("shared: round_robin takes online members in turn, exactly") {
    SharedSubscriptions shared(ShareStrategy::round_robin, 1);
    Members m;
    for (const char *id : {"a", "b", "c"}) {
        shared.add("g", "t", m.add(id), {});
    }
    std::map<std::string, int> count;
    std::string order;
    for (int i = 0; i < 9; ++i) {
        const std::string id = one(shared, message("t"));
        ++count[id];
        order += id;
    }
    CHECK(order == "abcabcabc");
    CHECK(count == std::map<std::string, int>{{"a", 3}, {"b", 3}, {"c", 3}});

    SUBCASE("an offline member is skipped while others are online") {
        m.sessions[1]->link_id = 0;
        order.clear();
        for (int i = 0; i < 4; ++i) {
            order += one(shared, message("t"));
        }
        CHECK(order == "acac");
    }
    SUBCASE("with every member offline one is still chosen, in turn") {
        for (auto &s : m.sessions) {
            s->link_id = 0;
        }
        order.clear();
        for (int i = 0; i < 3; ++i) {
            order += one(shared, message("t"));
        }
        CHECK(order == "abc");
    }
    SUBCASE("a member leaving keeps the turn of the others") {
        one(shared, message("t")); // a; b is next
        shared.remove("g", "t", m.sessions[0].get());
        order.clear();
        for (int i = 0; i < 4; ++i) {
            order += one(shared, message("t"));
        }
        CHECK(order == "bcbc");
    }
}

TEST_CASE("shared: random picks only online members and reaches all of them") {
    SharedSubscriptions shared(ShareStrategy::random, 42);
    Members m;
    for (const char *id : {"a", "b", "c", "d"}) {
        shared.add("g", "t", m.add(id), {});
    }
    m.sessions[3]->link_id = 0; // d is offline
    std::map<std::string, int> count;
    for (int i = 0; i < 600; ++i) {
        ++count[one(shared, message("t"))];
    }
    CHECK(count.count("d") == 0);
    REQUIRE(count.size() == 3);
    for (const auto &entry : count) {
        CHECK_MESSAGE(entry.second > 120, entry.first, " got ", entry.second, " of 600"); // ~200
    }
}

TEST_CASE("shared: sticky keeps one member until it goes offline or leaves") {
    SharedSubscriptions shared(ShareStrategy::sticky, 7);
    Members m;
    for (const char *id : {"a", "b", "c"}) {
        shared.add("g", "t", m.add(id), {});
    }
    const std::string first = one(shared, message("t"));
    for (int i = 0; i < 20; ++i) {
        REQUIRE(one(shared, message("t", "p" + std::to_string(i))) == first);
    }
    Session *first_session = nullptr;
    for (auto &s : m.sessions) {
        if (s->client_id() == first) {
            first_session = s.get();
        }
    }
    first_session->link_id = 0;
    const std::string second = one(shared, message("t"));
    CHECK(second != first);
    for (int i = 0; i < 20; ++i) {
        REQUIRE(one(shared, message("t")) == second);
    }
    // The first member coming back does not take the group back from the second.
    first_session->link_id = 99;
    CHECK(one(shared, message("t")) == second);
}

TEST_CASE("shared: hash_client sends one publisher's messages to one member; a member leaving "
          "moves only its own publishers") {
    SharedSubscriptions shared(ShareStrategy::hash_client, 1);
    Members m;
    for (const char *id : {"a", "b", "c", "d"}) {
        shared.add("g", "t/#", m.add(id), {});
    }
    std::map<std::string, std::string> owner; // publisher -> member
    for (int p = 0; p < 200; ++p) {
        const std::string pub = "publisher-" + std::to_string(p);
        owner[pub] = one(shared, message("t/" + std::to_string(p % 7), pub));
        for (int i = 0; i < 3; ++i) {
            REQUIRE(one(shared, message("t/other", pub)) == owner[pub]);
        }
    }
    std::map<std::string, int> load;
    for (const auto &[pub, member] : owner) {
        ++load[member];
    }
    CHECK(load.size() == 4);
    shared.remove("g", "t/#", m.sessions[0].get()); // "a" leaves
    for (const auto &entry : owner) { // (doctest macros cannot use structured bindings)
        const std::string now = one(shared, message("t", entry.first));
        if (entry.second == "a") {
            CHECK(now != "a");
        } else {
            CHECK(now == entry.second);
        }
    }
}

TEST_CASE("shared: hash_topic sends one topic's messages to one member") {
    SharedSubscriptions shared(ShareStrategy::hash_topic, 1);
    Members m;
    for (const char *id : {"a", "b", "c"}) {
        shared.add("g", "t/#", m.add(id), {});
    }
    std::set<std::string> used;
    for (int t = 0; t < 60; ++t) {
        const std::string topic = "t/" + std::to_string(t);
        const std::string member = one(shared, message(topic, "p1"));
        used.insert(member);
        for (const char *pub : {"p2", "p3"}) {
            REQUIRE(one(shared, message(topic, pub)) == member);
        }
    }
    CHECK(used.size() == 3);
}

TEST_CASE("shared: choose_other skips the leaving member and honours online_only") {
    SharedSubscriptions shared(ShareStrategy::round_robin, 1);
    Members m;
    Session *a = m.add("a");
    Session *b = m.add("b", false);
    shared.add("g", "t", a, {});
    shared.add("g", "t", b, {});
    uint32_t id = 0;
    shared.match(message("t"), [&](const SharedChoice &c) { id = c.group_id; });
    REQUIRE(id != 0);
    CHECK(shared.choose_other(id, message("t"), a, true).session == nullptr); // b is offline
    CHECK(shared.choose_other(id, message("t"), a, false).session == b);
    b->link_id = 5;
    CHECK(shared.choose_other(id, message("t"), a, true).session == b);
    CHECK(shared.choose_other(id + 1000, message("t"), a, false).session == nullptr);
    shared.remove("g", "t", a);
    shared.remove("g", "t", b);
    CHECK(shared.choose_other(id, message("t"), a, false).session == nullptr); // group gone
}

// ==== The Broker with shared subscriptions ====

namespace {

using ferrymq::test::MemoryLink;

struct Fixture {
    Fixture() { settings.random_seed = 1; }
    ~Fixture() { broker.reset(); }

    test::SilentLog log;
    BrokerSettings settings;
    std::unique_ptr<Broker> broker;
    std::vector<std::unique_ptr<MemoryLink>> links;
    uint64_t now = 1000;
    Connack last_connack;
    uint16_t next_id = 0;

    Broker &b() {
        if (!broker) {
            broker = std::make_unique<Broker>(settings, log);
        }
        return *broker;
    }

    // Connects `client_id`; a persistent session (3.1.1 Clean Session 0, 5.0 expiry 300 s)
    // unless `clean`. What follows CONNACK stays on the link.
    MemoryLink &connect(const std::string &client_id, Version v = Version::v311,
                        bool clean = true) {
        links.push_back(std::make_unique<MemoryLink>(links.size() + 1));
        MemoryLink &link = *links.back();
        b().on_open(link);
        Connect c;
        c.version = v;
        c.client_id = client_id;
        c.clean_start = clean;
        if (v == Version::v5 && !clean) {
            c.properties.session_expiry_interval = 300;
        }
        b().on_packet(link, c, now);
        last_connack = link.take_first<Connack>();
        return link;
    }

    // Subscribes and returns the SUBACK's reason codes; what follows stays on the link.
    std::vector<Reason> subscribe(MemoryLink &link, const std::string &filter, uint8_t qos,
                                  uint32_t id = 0) {
        Subscribe s;
        s.packet_id = 1;
        s.subscriptions.push_back({filter, qos, false, false, RetainHandling::send});
        if (id != 0) {
            s.properties.subscription_identifiers.push_back(id);
        }
        b().on_packet(link, s, now);
        return link.take_first<Suback>().reasons;
    }

    void publish(MemoryLink &link, const std::string &topic, const std::string &payload,
                 uint8_t qos = 1, bool retain = false) {
        Publish p;
        p.topic = topic;
        p.payload = payload;
        p.qos = qos;
        p.retain = retain;
        p.packet_id = qos ? ++next_id : 0;
        b().on_packet(link, p, now);
    }

    void ack(MemoryLink &link, const Publish &p) {
        b().on_packet(link, Puback{{p.packet_id, Reason::success, {}}}, now);
    }

    void close(MemoryLink &link) { b().on_close(link, now); }
};

} // namespace

TEST_CASE("broker shared: CONNACK advertises Shared Subscription Available") {
    Fixture f;
    f.connect("c", Version::v5);
    CHECK(f.last_connack.properties.shared_subscription_available == 1);
    Fixture off;
    off.settings.shared_subscriptions = false;
    off.connect("c", Version::v5);
    CHECK(off.last_connack.properties.shared_subscription_available == 0);
}

TEST_CASE("broker shared: when disabled, SUBSCRIBE $share/... gets 0x9E (5.0) or 0x80 (3.1.1)") {
    Fixture f;
    f.settings.shared_subscriptions = false;
    MemoryLink &v5 = f.connect("v5", Version::v5);
    CHECK(f.subscribe(v5, "$share/g/t", 1) ==
          std::vector<Reason>{Reason::shared_subscriptions_not_supported});
    MemoryLink &v311 = f.connect("v311");
    CHECK(f.subscribe(v311, "$share/g/t", 1) == std::vector<Reason>{Reason::unspecified_error});
    MemoryLink &pub = f.connect("pub", Version::v5);
    f.publish(pub, "t", "x");
    auto ack = pub.take();
    REQUIRE(ack.size() == 1);
    CHECK(std::get<Puback>(ack[0]).reason == Reason::no_matching_subscribers);
}

TEST_CASE("broker shared: each message goes to exactly one member, in turn (3.1.1 and 5.0)") {
    for (Version v : {Version::v311, Version::v5}) {
        CAPTURE(int(v));
        Fixture f;
        std::vector<MemoryLink *> members;
        for (const char *id : {"m1", "m2", "m3"}) {
            members.push_back(&f.connect(id, v));
            CHECK(f.subscribe(*members.back(), "$share/work/jobs/+", 1) ==
                  std::vector<Reason>{Reason::granted_qos1});
        }
        MemoryLink &pub = f.connect("pub", v);
        for (int i = 0; i < 12; ++i) {
            f.publish(pub, "jobs/" + std::to_string(i % 2), std::to_string(i));
        }
        std::set<std::string> all;
        for (size_t k = 0; k < members.size(); ++k) {
            auto got = members[k]->payloads();
            CHECK(got.size() == 4);
            for (size_t j = 0; j < got.size(); ++j) {
                CHECK(got[j] == std::to_string(k + 3 * j));
                all.insert(got[j]);
            }
        }
        CHECK(all.size() == 12);
        CHECK(f.b().stats().shared_deliveries == 12);
    }
}

TEST_CASE("broker shared: a normal and a shared subscription each get a copy with their own "
          "subscription identifier; groups are independent") {
    Fixture f;
    MemoryLink &a = f.connect("a", Version::v5);
    f.subscribe(a, "t/#", 0, 1);
    f.subscribe(a, "$share/g1/t/+", 1, 2);
    f.subscribe(a, "$share/g2/t/x", 1, 3);
    MemoryLink &pub = f.connect("pub", Version::v5);
    f.publish(pub, "t/x", "m");
    auto got = a.take_publishes();
    REQUIRE(got.size() == 3);
    std::multiset<std::pair<uint8_t, std::vector<uint32_t>>> seen;
    for (const Publish &p : got) {
        seen.insert({p.qos, p.properties.subscription_identifiers});
    }
    CHECK(seen ==
          std::multiset<std::pair<uint8_t, std::vector<uint32_t>>>{{0, {1}}, {1, {2}}, {1, {3}}});
}

TEST_CASE("broker shared: no retained messages on a shared subscription (spec 4.8.2)") {
    Fixture f;
    MemoryLink &pub = f.connect("pub");
    f.publish(pub, "r/1", "kept", 1, true);
    MemoryLink &m = f.connect("m", Version::v5);
    f.subscribe(m, "$share/g/r/#", 1);
    CHECK(m.take().empty());
    f.subscribe(m, "r/#", 1); // an ordinary subscription still gets it
    CHECK(m.payloads() == std::vector<std::string>{"kept"});
}

TEST_CASE("broker shared: UNSUBSCRIBE and a session's end remove the membership") {
    Fixture f;
    MemoryLink &a = f.connect("a", Version::v5);
    MemoryLink &b = f.connect("b", Version::v5);
    f.subscribe(a, "$share/g/t", 1);
    f.subscribe(b, "$share/g/t", 1);
    Unsubscribe u;
    u.packet_id = 9;
    u.filters = {"$share/g/t", "$share/other/t"};
    f.b().on_packet(a, u, f.now);
    auto unsuback = a.take();
    REQUIRE(unsuback.size() == 1);
    CHECK(std::get<Unsuback>(unsuback[0]).reasons ==
          std::vector<Reason>{Reason::success, Reason::no_subscription_existed});
    MemoryLink &pub = f.connect("pub", Version::v5);
    for (int i = 0; i < 3; ++i) {
        f.publish(pub, "t", std::to_string(i));
    }
    CHECK(a.take_publishes().empty());
    CHECK(b.payloads().size() == 3);
    f.close(b); // clean session: ends with the connection
    pub.take();
    f.publish(pub, "t", "nobody");
    auto ack = pub.take();
    REQUIRE(ack.size() == 1);
    CHECK(std::get<Puback>(ack[0]).reason == Reason::no_matching_subscribers);
}

TEST_CASE("broker shared: a member that disconnects hands its unacknowledged QoS 1 and queued "
          "messages to an online member") {
    Fixture f;
    f.settings.max_inflight = 2;
    MemoryLink &a = f.connect("a", Version::v311, false);
    MemoryLink &b = f.connect("b", Version::v311, false);
    f.subscribe(a, "$share/g/t", 1);
    f.subscribe(b, "$share/g/t", 1);
    MemoryLink &pub = f.connect("pub");
    for (int i = 0; i < 8; ++i) {
        f.publish(pub, "t", std::to_string(i));
    }
    // a and b each have 2 in flight (0,2 and 1,3) and 2 queued (4,6 and 5,7).
    auto to_a = a.take_publishes();
    auto to_b = b.take_publishes();
    REQUIRE(to_a.size() == 2);
    REQUIRE(to_b.size() == 2);
    f.ack(a, to_a[0]); // "0" is done; "4" fills the window
    REQUIRE(a.payloads() == std::vector<std::string>{"4"});
    f.close(a);
    CHECK(f.b().stats().shared_redeliveries == 3); // "2" (in flight), "4" (in flight), "6"
    // b's window is full: the handed-over messages queue behind its own.
    for (const Publish &p : to_b) {
        f.ack(b, p);
    }
    std::vector<std::string> got;
    for (int round = 0; round < 4; ++round) {
        for (const Publish &p : b.take_publishes()) {
            CHECK_FALSE(p.dup); // a new delivery to b, not a resend
            got.push_back(p.payload);
            f.ack(b, p);
        }
    }
    CHECK(got == std::vector<std::string>{"5", "7", "2", "4", "6"});
    // a's session lives on without them.
    MemoryLink &back = f.connect("a", Version::v311, false);
    CHECK(f.last_connack.session_present);
    CHECK(back.take_publishes().empty());
}

TEST_CASE("broker shared: [MQTT-4.8.2-4] a QoS 2 message already sent stays with its member") {
    Fixture f;
    MemoryLink &a = f.connect("a", Version::v5, false);
    MemoryLink &b = f.connect("b", Version::v5, false);
    f.subscribe(a, "$share/g/t", 2);
    f.subscribe(b, "$share/g/t", 2);
    MemoryLink &pub = f.connect("pub", Version::v5);
    f.publish(pub, "t", "q2", 2);
    auto first = a.take_publishes();
    REQUIRE(first.size() == 1);
    f.close(a);
    CHECK(b.take_publishes().empty());
    MemoryLink &back = f.connect("a", Version::v5, false);
    auto again = back.take_publishes();
    REQUIRE(again.size() == 1);
    CHECK(again[0].dup);
    CHECK(again[0].packet_id == first[0].packet_id);
}

TEST_CASE("broker shared: with every member offline a QoS 1 message waits for one of them, "
          "QoS 0 is dropped") {
    Fixture f;
    MemoryLink &a = f.connect("a", Version::v311, false);
    MemoryLink &b = f.connect("b", Version::v311, false);
    f.subscribe(a, "$share/g/t", 1);
    f.subscribe(b, "$share/g/t", 1);
    f.close(a);
    f.close(b);
    MemoryLink &pub = f.connect("pub");
    f.publish(pub, "t", "q1", 1);
    f.publish(pub, "t", "q0", 0);
    CHECK(f.b().stats().dropped_qos0_offline == 1);
    auto got_a = f.connect("a", Version::v311, false).payloads();
    auto got_b = f.connect("b", Version::v311, false).payloads();
    CHECK(got_a.size() + got_b.size() == 1);
}

TEST_CASE("broker shared: while no other member is online the messages stay; when the "
          "session ends they go to any other member") {
    Fixture f;
    MemoryLink &a = f.connect("a", Version::v5, false);
    MemoryLink &b = f.connect("b", Version::v5, false);
    f.subscribe(a, "$share/g/t", 1);
    f.subscribe(b, "$share/g/t", 1);
    f.close(b);
    MemoryLink &pub = f.connect("pub", Version::v5);
    f.publish(pub, "t", "x");
    REQUIRE(a.payloads() == std::vector<std::string>{"x"});
    f.close(a); // b is offline: "x" stays with a
    CHECK(f.b().stats().shared_redeliveries == 0);
    // a comes back with Clean Start: its old session ends, "x" goes to b's session.
    MemoryLink &a2 = f.connect("a", Version::v5, true);
    CHECK_FALSE(f.last_connack.session_present);
    CHECK(a2.take_publishes().empty());
    CHECK(f.b().stats().shared_redeliveries == 1);
    CHECK(f.connect("b", Version::v5, false).payloads() == std::vector<std::string>{"x"});
}
