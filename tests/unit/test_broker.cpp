// SPDX-License-Identifier: Apache-2.0
// The broker core driven through in-memory links: no sockets, no loop. Each FakeLink
// decodes what the broker sends, so the real encoder is exercised too.
#include "broker/broker.hpp"
#include "memory_link.hpp"
#include "silent_log.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace ferrymq;
using namespace ferrymq::mqtt;
using broker::Broker;
using broker::BrokerSettings;

namespace {

using FakeLink = ferrymq::test::MemoryLink;

// One broker, a log that writes nowhere, and helpers to connect clients.
struct Fixture {

    ~Fixture() { broker.reset(); }

    test::SilentLog log;
    BrokerSettings settings;
    std::unique_ptr<Broker> broker;
    std::vector<std::unique_ptr<FakeLink>> links;
    uint64_t now = 1000;

    Broker &b() {
        if (!broker) {
            broker = std::make_unique<Broker>(settings, log);
        }
        return *broker;
    }

    FakeLink &connect(const std::string &client_id, Version v = Version::v311, bool clean = true,
                      std::optional<Will> will = std::nullopt, Properties props = {}) {
        links.push_back(std::make_unique<FakeLink>(links.size() + 1));
        FakeLink &link = *links.back();
        b().on_open(link);
        Connect c;
        c.version = v;
        c.client_id = client_id;
        c.clean_start = clean;
        c.will = std::move(will);
        c.properties = std::move(props);
        b().on_packet(link, c, now);
        // CONNACK comes first [MQTT-3.2.0-1]; what a resumed session resends stays queued.
        auto packets = link.take();
        REQUIRE(!packets.empty());
        REQUIRE(std::holds_alternative<Connack>(packets[0]));
        last_connack = std::get<Connack>(packets[0]);
        link.put_back(std::vector<Packet>(packets.begin() + 1, packets.end()));
        return link;
    }

    void subscribe(FakeLink &link, const std::string &filter, uint8_t qos, uint32_t id = 0,
                   bool no_local = false) {
        Subscribe s;
        s.packet_id = 1;
        s.subscriptions.push_back({filter, qos, no_local, false, RetainHandling::send});
        if (id != 0) {
            s.properties.subscription_identifiers.push_back(id);
        }
        b().on_packet(link, s, now);
    }

    void publish(FakeLink &link, const std::string &topic, const std::string &payload,
                 uint8_t qos = 0, bool retain = false, uint16_t packet_id = 0) {
        Publish p;
        p.topic = topic;
        p.payload = payload;
        p.qos = qos;
        p.retain = retain;
        p.packet_id = qos ? (packet_id ? packet_id : ++next_id) : 0;
        b().on_packet(link, p, now);
    }

    void close(FakeLink &link) { b().on_close(link, now); }

    Connack last_connack;
    uint16_t next_id = 0;
};

} // namespace

TEST_CASE("broker: a subscriber receives matching publishes, others do not") {
    Fixture f;
    FakeLink &sub = f.connect("sub");
    FakeLink &other = f.connect("other");
    FakeLink &pub = f.connect("pub");
    f.subscribe(sub, "sensors/+/temp", 1);
    f.subscribe(other, "alarms/#", 1);
    sub.take();
    other.take();
    f.publish(pub, "sensors/1/temp", "21.5");
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "sensors/1/temp");
    CHECK(got[0].payload == "21.5");
    CHECK(got[0].qos == 0);
    CHECK_FALSE(got[0].retain);
    CHECK(other.take_publishes().empty());
}

TEST_CASE("broker: [MQTT-3.3.4-2] overlapping subscriptions give one copy at the highest QoS "
          "with every subscription identifier") {
    Fixture f;
    FakeLink &sub = f.connect("sub", Version::v5);
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "a/#", 0, 7);
    f.subscribe(sub, "a/+", 1, 9);
    sub.take();
    f.publish(pub, "a/b", "x", 1);
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].qos == 1);
    CHECK(got[0].properties.subscription_identifiers == std::vector<uint32_t>{7, 9});
}

TEST_CASE("broker: [MQTT-3.8.3-3] No Local keeps a client's own messages from it") {
    Fixture f;
    FakeLink &c = f.connect("me", Version::v5);
    f.subscribe(c, "t", 0, 0, true);
    c.take();
    f.publish(c, "t", "mine");
    CHECK(c.take_publishes().empty());
}

TEST_CASE("broker: retained messages are set, replaced, deleted and sent on subscribe") {
    Fixture f;
    FakeLink &pub = f.connect("pub");
    f.publish(pub, "r/1", "first", 1, true);
    f.publish(pub, "r/1", "second", 1, true);
    f.publish(pub, "r/2", "gone", 1, true);
    f.publish(pub, "r/2", "", 1, true); // [MQTT-3.3.1-6] deletes
    CHECK(f.b().retained_count() == 1);
    FakeLink &sub = f.connect("sub");
    f.subscribe(sub, "r/#", 0);
    auto packets = sub.take();
    REQUIRE(packets.size() == 2);
    CHECK(std::holds_alternative<Suback>(packets[0])); // SUBACK before retained messages
    const Publish &p = std::get<Publish>(packets[1]);
    CHECK(p.topic == "r/1");
    CHECK(p.payload == "second");
    CHECK(p.retain);   // [MQTT-3.3.1-9]
    CHECK(p.qos == 0); // min(message, subscription)
}

TEST_CASE("broker: the QoS 1 window is bounded by max_inflight and refilled by PUBACK") {
    Fixture f;
    f.settings.max_inflight = 3;
    FakeLink &sub = f.connect("sub");
    FakeLink &pub = f.connect("pub");
    f.subscribe(sub, "q", 1);
    sub.take();
    for (int i = 0; i < 5; ++i) {
        f.publish(pub, "q", std::to_string(i), 1);
    }
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 3);
    CHECK(got[0].payload == "0");
    f.b().on_packet(sub, Puback{{got[0].packet_id, Reason::success, {}}}, f.now);
    auto more = sub.take_publishes();
    REQUIRE(more.size() == 1);
    CHECK(more[0].payload == "3");
}

TEST_CASE("broker: an offline persistent session queues QoS 1, drops QoS 0, and the oldest "
          "goes first when full") {
    Fixture f;
    f.settings.max_queued_messages = 3;
    FakeLink &sub = f.connect("sub", Version::v311, false);
    f.subscribe(sub, "q", 1);
    f.close(sub);
    FakeLink &pub = f.connect("pub");
    f.publish(pub, "q", "qos0", 0);
    for (int i = 0; i < 5; ++i) {
        f.publish(pub, "q", std::to_string(i), 1);
    }
    CHECK(f.b().stats().dropped_qos0_offline == 1);
    CHECK(f.b().stats().dropped_queue_full == 2);
    FakeLink &back = f.connect("sub", Version::v311, false);
    CHECK(f.last_connack.session_present);
    auto got = back.take_publishes();
    REQUIRE(got.size() == 3);
    CHECK(got[0].payload == "2");
    CHECK(got[2].payload == "4");
}

TEST_CASE("broker: [MQTT-4.4.0-1] unacknowledged messages are resent with DUP on reconnect") {
    Fixture f;
    FakeLink &sub = f.connect("sub", Version::v311, false);
    FakeLink &pub = f.connect("pub");
    f.subscribe(sub, "q", 1);
    sub.take();
    f.publish(pub, "q", "hello", 1);
    auto first = sub.take_publishes();
    REQUIRE(first.size() == 1);
    CHECK_FALSE(first[0].dup);
    f.close(sub);
    FakeLink &back = f.connect("sub", Version::v311, false);
    auto again = back.take_publishes();
    REQUIRE(again.size() == 1);
    CHECK(again[0].dup);
    CHECK(again[0].packet_id == first[0].packet_id);
}

TEST_CASE("broker: [MQTT-4.3.3-10] a resent QoS 2 PUBLISH is routed once") {
    Fixture f;
    FakeLink &sub = f.connect("sub");
    FakeLink &pub = f.connect("pub", Version::v311, false);
    f.subscribe(sub, "q", 2);
    sub.take();
    f.publish(pub, "q", "once", 2, false, 42);
    f.close(pub);
    FakeLink &again = f.connect("pub", Version::v311, false);
    f.publish(again, "q", "once", 2, false, 42);
    auto packets = again.take();
    REQUIRE(packets.size() == 1);
    CHECK(std::holds_alternative<Pubrec>(packets[0]));
    f.b().on_packet(again, Pubrel{{42, Reason::success, {}}}, f.now);
    auto done = again.take();
    REQUIRE(done.size() == 1);
    CHECK(std::get<Pubcomp>(done[0]).reason == Reason::success);
    CHECK(sub.take_publishes().size() == 1);
}

TEST_CASE("broker: wills are published on abnormal close, not after DISCONNECT") {
    Fixture f;
    FakeLink &watcher = f.connect("watcher");
    f.subscribe(watcher, "status/#", 1);
    watcher.take();
    Will w;
    w.topic = "status/a";
    w.payload = "offline";
    w.qos = 1;
    FakeLink &a = f.connect("a", Version::v311, true, w);
    f.close(a); // socket dropped
    auto got = watcher.take_publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "offline");

    w.topic = "status/b";
    FakeLink &b = f.connect("b", Version::v311, true, w);
    f.b().on_packet(b, Disconnect{}, f.now);
    CHECK(b.closed());
    f.close(b);
    CHECK(watcher.take_publishes().empty());
}

TEST_CASE("broker: [MQTT-3.1.4-3] a second connection takes over the client id") {
    Fixture f;
    FakeLink &old_link = f.connect("dup", Version::v5, false, std::nullopt, [] {
        Properties p;
        p.session_expiry_interval = 60;
        return p;
    }());
    f.subscribe(old_link, "t", 1);
    old_link.take();
    Properties p;
    p.session_expiry_interval = 60;
    FakeLink &new_link = f.connect("dup", Version::v5, false, std::nullopt, p);
    CHECK(f.last_connack.session_present);
    CHECK(old_link.closed());
    auto to_old = old_link.take();
    REQUIRE(to_old.size() == 1);
    CHECK(std::get<Disconnect>(to_old[0]).reason == Reason::session_taken_over);
    f.close(old_link); // the old socket's close must not detach the new owner
    FakeLink &pub = f.connect("pub");
    f.publish(pub, "t", "still subscribed", 1);
    CHECK(new_link.take_publishes().size() == 1);
}

TEST_CASE("broker: 5.0 session expiry frees the session after the interval") {
    Fixture f;
    Properties p;
    p.session_expiry_interval = 2;
    FakeLink &c = f.connect("s", Version::v5, false, std::nullopt, p);
    f.close(c);
    CHECK(f.b().session_count() == 1);
    f.b().tick(f.now + 1000);
    CHECK(f.b().session_count() == 1);
    f.b().tick(f.now + 2000);
    CHECK(f.b().session_count() == 0);
}

TEST_CASE("broker: 5.0 inbound topic aliases resolve, unknown ones are a protocol error") {
    Fixture f;
    FakeLink &sub = f.connect("sub", Version::v5);
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "long/topic/name", 0);
    sub.take();
    Publish p;
    p.topic = "long/topic/name";
    p.payload = "1";
    p.properties.topic_alias = 1;
    f.b().on_packet(pub, p, f.now);
    p.topic.clear();
    p.payload = "2";
    f.b().on_packet(pub, p, f.now);
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 2);
    CHECK(got[1].topic == "long/topic/name");
    CHECK_FALSE(got[1].properties.topic_alias.has_value()); // aliases are per connection
    p.properties.topic_alias = 2;                           // never set
    f.b().on_packet(pub, p, f.now);
    CHECK(pub.closed());
    auto sent = pub.take();
    REQUIRE(sent.size() == 1);
    CHECK(std::get<Disconnect>(sent[0]).reason == Reason::protocol_error);
}

// ==== MQTT 5.0 flow control and topic aliases ====

namespace {

Properties alias_max(uint16_t n) {
    Properties p;
    p.topic_alias_maximum = n;
    return p;
}

// Plays the client's side of outbound Topic Aliases: checks every alias against `max`
// [MQTT-3.3.2-11] and resolves empty topics, which must name an alias already defined.
struct AliasReader {
    uint16_t max;
    std::map<uint16_t, std::string> known;
    std::vector<std::string> topics(const std::vector<Publish> &got) {
        std::vector<std::string> out;
        for (const Publish &p : got) {
            if (!p.properties.topic_alias) {
                REQUIRE_FALSE(p.topic.empty());
                out.push_back(p.topic);
                continue;
            }
            const uint16_t a = *p.properties.topic_alias;
            REQUIRE(a >= 1);
            REQUIRE(a <= max);
            if (!p.topic.empty()) {
                known[a] = p.topic;
            }
            REQUIRE(known.count(a) == 1);
            out.push_back(known[a]);
        }
        return out;
    }
};

} // namespace

TEST_CASE("broker: [MQTT-3.3.2-11] outbound topic aliases: the topic once, then only the alias") {
    Fixture f;
    FakeLink &sub = f.connect("sub", Version::v5, true, std::nullopt, alias_max(5));
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "t/#", 1);
    sub.take();
    f.publish(pub, "t/long/topic/name", "1", 1);
    f.publish(pub, "t/long/topic/name", "2", 0);
    f.publish(pub, "t/other", "3", 0);
    f.publish(pub, "t/long/topic/name", "4", 0);
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 4);
    CHECK(got[0].topic == "t/long/topic/name");
    CHECK(got[0].properties.topic_alias == 1);
    CHECK(got[1].topic.empty());
    CHECK(got[1].properties.topic_alias == 1);
    CHECK(got[2].topic == "t/other");
    CHECK(got[2].properties.topic_alias == 2);
    CHECK(got[3].topic.empty());
    CHECK(got[3].properties.topic_alias == 1);
    AliasReader reader{5, {}};
    CHECK(reader.topics(got) == std::vector<std::string>{"t/long/topic/name", "t/long/topic/name",
                                                         "t/other", "t/long/topic/name"});
    CHECK(f.b().stats().topic_alias_hits == 2);
    CHECK(f.b().stats().topic_alias_bytes_saved == 2 * std::string("t/long/topic/name").size());
}

TEST_CASE("broker: [MQTT-3.1.2-26] outbound aliases stay within the client's maximum and the "
          "least recently used one is reassigned") {
    Fixture f;
    f.settings.outbound_topic_aliases = 10;
    FakeLink &sub = f.connect("sub", Version::v5, true, std::nullopt, alias_max(2));
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "#", 0);
    sub.take();
    const char *topics[] = {"a", "b", "a", "c", "b", "c", "a", "d", "d"};
    for (const char *t : topics) {
        f.publish(pub, t, "x");
    }
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 9);
    AliasReader reader{2, {}};
    CHECK(reader.topics(got) ==
          std::vector<std::string>{"a", "b", "a", "c", "b", "c", "a", "d", "d"});
    // a=1, b=2, a hit, c takes b's 2, b takes a's 1, c hit, a takes b's 1, d takes c's 2.
    std::vector<uint16_t> aliases;
    std::vector<bool> empty;
    for (const Publish &p : got) {
        aliases.push_back(p.properties.topic_alias.value_or(0));
        empty.push_back(p.topic.empty());
    }
    CHECK(aliases == std::vector<uint16_t>{1, 2, 1, 2, 1, 2, 1, 2, 2});
    CHECK(empty == std::vector<bool>{false, false, true, false, false, true, false, false, true});
}

TEST_CASE("broker: outbound aliases are capped by limits.outbound_topic_aliases") {
    Fixture f;
    f.settings.outbound_topic_aliases = 1;
    FakeLink &sub = f.connect("sub", Version::v5, true, std::nullopt, alias_max(100));
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "#", 0);
    sub.take();
    for (const char *t : {"a", "b", "b"}) {
        f.publish(pub, t, "x");
    }
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 3);
    AliasReader reader{1, {}};
    CHECK(reader.topics(got) == std::vector<std::string>{"a", "b", "b"});
    CHECK(got[2].topic.empty());
}

TEST_CASE("broker: [MQTT-3.1.2-27] no outbound aliases without a Topic Alias Maximum, for "
          "3.1.1, or when limits.outbound_topic_aliases is 0") {
    Fixture f;
    SUBCASE("5.0 without the property") {
        f.connect("sub", Version::v5);
    }
    SUBCASE("5.0 with 0") {
        f.connect("sub", Version::v5, true, std::nullopt, alias_max(0));
    }
    SUBCASE("3.1.1") {
        f.connect("sub", Version::v311);
    }
    SUBCASE("turned off by the broker") {
        f.settings.outbound_topic_aliases = 0;
        f.connect("sub", Version::v5, true, std::nullopt, alias_max(10));
    }
    FakeLink &sub = *f.links.back();
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "t", 0);
    sub.take();
    f.publish(pub, "t", "1");
    f.publish(pub, "t", "2");
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 2);
    for (const Publish &p : got) {
        CHECK(p.topic == "t");
        CHECK_FALSE(p.properties.topic_alias.has_value());
    }
    CHECK(f.b().stats().topic_alias_hits == 0);
}

TEST_CASE("broker: [MQTT-3.3.2-7] outbound aliases end with the connection; a publisher's "
          "alias is never forwarded") {
    Fixture f;
    Properties p = alias_max(3);
    p.session_expiry_interval = 60;
    FakeLink &sub = f.connect("sub", Version::v5, false, std::nullopt, p);
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "q", 1);
    sub.take();
    Publish in;
    in.topic = "q";
    in.payload = "1";
    in.qos = 1;
    in.packet_id = 1;
    in.properties.topic_alias = 7; // the publisher's own alias for "q"
    f.b().on_packet(pub, in, f.now);
    auto first = sub.take_publishes();
    REQUIRE(first.size() == 1);
    CHECK(first[0].topic == "q");
    CHECK(first[0].properties.topic_alias == 1); // ours, not the publisher's 7
    f.close(sub);
    in.topic.clear(); // by the publisher's alias only
    in.packet_id = 2;
    f.b().on_packet(pub, in, f.now);
    FakeLink &back = f.connect("sub", Version::v5, false, std::nullopt, p);
    auto again = back.take_publishes();
    // The unacknowledged first message and the queued second both name the topic again.
    REQUIRE(again.size() == 2);
    CHECK(again[0].topic == "q");
    CHECK(again[0].dup);
    CHECK(again[0].properties.topic_alias == 1);
    CHECK(again[1].topic.empty());
    CHECK(again[1].properties.topic_alias == 1);
}

TEST_CASE("broker: [MQTT-3.1.2-25] a message too large for the client does not leave an alias "
          "the client never learnt") {
    Fixture f;
    Properties p = alias_max(2);
    p.maximum_packet_size = 64;
    FakeLink &sub = f.connect("sub", Version::v5, true, std::nullopt, p);
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "big", 0);
    sub.take();
    f.publish(pub, "big", std::string(100, 'x')); // dropped
    f.publish(pub, "big", "small");
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 1);
    CHECK(got[0].topic == "big"); // still sent in full
    CHECK(got[0].properties.topic_alias == 1);
    CHECK(f.b().stats().dropped_too_large == 1);
}

TEST_CASE("broker: [MQTT-3.3.4-7] a 5.0 client with more QoS 2 PUBLISHes awaiting PUBREL than "
          "Receive Maximum gets DISCONNECT 0x93") {
    Fixture f;
    f.settings.receive_maximum = 2;
    FakeLink &pub = f.connect("pub", Version::v5);
    CHECK(f.last_connack.properties.receive_maximum == 2);
    f.publish(pub, "t", "1", 2, false, 1);
    f.publish(pub, "t", "2", 2, false, 2);
    f.publish(pub, "t", "2", 2, false, 2); // a resend of one in flight is not a new one
    f.b().on_packet(pub, Pubrel{{1, Reason::success, {}}}, f.now);
    f.publish(pub, "t", "3", 2, false, 3);  // one slot freed by PUBCOMP
    f.publish(pub, "t", "q1", 1, false, 4); // QoS 1 is acknowledged at once
    auto ok = pub.take();
    REQUIRE(ok.size() == 6);
    CHECK(std::get<Pubcomp>(ok[3]).reason == Reason::success);
    CHECK_FALSE(pub.closed());
    f.publish(pub, "t", "4", 2, false, 5);
    CHECK(pub.closed());
    auto sent = pub.take();
    REQUIRE(sent.size() == 1);
    CHECK(std::get<Disconnect>(sent[0]).reason == Reason::receive_maximum_exceeded);
}

TEST_CASE("broker: 3.1.1 has no Receive Maximum to enforce") {
    Fixture f;
    f.settings.receive_maximum = 1;
    FakeLink &pub = f.connect("pub", Version::v311);
    f.publish(pub, "t", "1", 2, false, 1);
    f.publish(pub, "t", "2", 2, false, 2);
    CHECK_FALSE(pub.closed());
    CHECK(pub.take().size() == 2);
}

TEST_CASE("broker: [MQTT-3.2.2-21] limits.server_keep_alive replaces a 5.0 client's keep-alive") {
    Fixture f;
    f.settings.server_keep_alive = 30;
    auto connect_with = [&](Version v, uint16_t keep_alive) -> FakeLink & {
        f.links.push_back(std::make_unique<FakeLink>(f.links.size() + 1));
        FakeLink &link = *f.links.back();
        f.b().on_open(link);
        Connect c;
        c.version = v;
        c.client_id = "ka" + std::to_string(f.links.size());
        c.keep_alive = keep_alive;
        f.b().on_packet(link, c, f.now);
        auto packets = link.take();
        REQUIRE(packets.size() == 1);
        f.last_connack = std::get<Connack>(packets[0]);
        return link;
    };
    FakeLink &longer = connect_with(Version::v5, 600);
    CHECK(f.last_connack.properties.server_keep_alive == 30);
    CHECK(longer.keep_alive() == 30);
    FakeLink &off = connect_with(Version::v5, 0);
    CHECK(f.last_connack.properties.server_keep_alive == 30);
    CHECK(off.keep_alive() == 30);
    // [MQTT-3.2.2-22]: without the property the client's value holds.
    FakeLink &same = connect_with(Version::v5, 30);
    CHECK_FALSE(f.last_connack.properties.server_keep_alive.has_value());
    CHECK(same.keep_alive() == 30);
    FakeLink &old = connect_with(Version::v311, 600); // 3.1.1 cannot be told
    CHECK(old.keep_alive() == 600);
    f.settings.server_keep_alive = 0;
    f.broker.reset();
    FakeLink &own = connect_with(Version::v5, 45);
    CHECK_FALSE(f.last_connack.properties.server_keep_alive.has_value());
    CHECK(own.keep_alive() == 45);
}

TEST_CASE("broker: limits.validate_utf8_payloads refuses a payload marked UTF-8 that is not "
          "(0x99)") {
    Fixture f;
    f.settings.validate_utf8_payloads = true;
    FakeLink &sub = f.connect("sub", Version::v5);
    FakeLink &pub = f.connect("pub", Version::v5);
    f.subscribe(sub, "u", 2);
    sub.take();
    auto publish = [&](const std::string &payload, uint8_t qos, uint16_t id,
                       std::optional<uint8_t> format) {
        Publish p;
        p.topic = "u";
        p.payload = payload;
        p.qos = qos;
        p.packet_id = id;
        p.retain = format == 1; // only the refused ones could replace the valid one
        p.properties.payload_format_indicator = format;
        f.b().on_packet(pub, p, f.now);
    };
    const std::string good = "grüße °C \xF0\x9F\x98\x80";
    const std::string bad = "\xC3\x28";
    publish(good, 1, 1, 1);           // valid: delivered, the indicator unaltered
    publish(bad, 1, 2, 0);            // marked binary: not checked
    publish(bad, 1, 3, std::nullopt); // unspecified: not checked
    publish(bad, 1, 4, 1);
    publish(bad, 2, 5, 1);
    auto acks = pub.take();
    REQUIRE(acks.size() == 5);
    CHECK(std::get<Puback>(acks[0]).reason == Reason::success);
    CHECK(std::get<Puback>(acks[3]).reason == Reason::payload_format_invalid);
    CHECK(std::get<Pubrec>(acks[4]).reason == Reason::payload_format_invalid);
    // A refused QoS 2 PUBLISH ends its flow: its id is not awaiting PUBREL.
    f.b().on_packet(pub, Pubrel{{5, Reason::success, {}}}, f.now);
    auto comp = pub.take();
    REQUIRE(comp.size() == 1);
    CHECK(std::get<Pubcomp>(comp[0]).reason == Reason::packet_identifier_not_found);
    auto got = sub.take_publishes();
    REQUIRE(got.size() == 3);
    CHECK(got[0].properties.payload_format_indicator == 1); // [MQTT-3.3.2-4]
    CHECK(got[1].payload == bad);
    CHECK(got[2].payload == bad);
    CHECK(f.b().stats().invalid_utf8_payloads == 2);
    CHECK_FALSE(pub.closed());
    FakeLink &late = f.connect("late", Version::v5);
    f.subscribe(late, "u", 0);
    auto retained = late.take_publishes();
    REQUIRE(retained.size() == 1);
    CHECK(retained[0].payload == good); // not replaced by a refused one
    publish(bad, 0, 0, 1);              // QoS 0 can only be refused by closing
    CHECK(pub.closed());
    auto sent = pub.take();
    REQUIRE(sent.size() == 1);
    CHECK(std::get<Disconnect>(sent[0]).reason == Reason::payload_format_invalid);
    CHECK(sub.take_publishes().empty());
}

TEST_CASE("broker: payloads marked UTF-8 are not checked by default") {
    Fixture f;
    FakeLink &pub = f.connect("pub", Version::v5);
    Publish p;
    p.topic = "u";
    p.payload = "\xFF";
    p.qos = 1;
    p.packet_id = 1;
    p.properties.payload_format_indicator = 1;
    f.b().on_packet(pub, p, f.now);
    auto acks = pub.take();
    REQUIRE(acks.size() == 1);
    CHECK(std::get<Puback>(acks[0]).reason == Reason::no_matching_subscribers);
}

TEST_CASE("broker: [MQTT-3.1.2-29] Reason Strings on refusals unless the client asked for no "
          "problem information, except on DISCONNECT") {
    Fixture f;
    auto sys_puback = [&f](FakeLink &link) {
        f.publish(link, "$SYS/x", "1", 1);
        auto acks = link.take();
        REQUIRE(acks.size() == 1);
        Puback ack = std::get<Puback>(acks[0]);
        CHECK(ack.reason == Reason::not_authorized);
        return ack;
    };
    FakeLink &chatty = f.connect("chatty", Version::v5);
    CHECK_FALSE(f.last_connack.properties.reason_string.has_value()); // success says nothing
    const Puback told = sys_puback(chatty);
    REQUIRE(told.properties.reason_string.has_value());
    CHECK(told.properties.reason_string->find("$SYS") != std::string::npos);

    Properties quiet_props;
    quiet_props.request_problem_information = 0;
    FakeLink &quiet = f.connect("quiet", Version::v5, true, std::nullopt, quiet_props);
    CHECK(sys_puback(quiet).properties.empty());
    Publish alias0;
    alias0.topic = "a";
    alias0.properties.topic_alias = 500; // above topic_alias_maximum
    f.b().on_packet(quiet, alias0, f.now);
    Disconnect d = quiet.take_first<Disconnect>();
    CHECK(d.reason == Reason::topic_alias_invalid);
    CHECK(d.properties.reason_string.has_value()); // DISCONNECT may always say why

    // [MQTT-3.4.2-2]: a Reason String that would break the Maximum Packet Size is left out.
    const uint32_t full = static_cast<uint32_t>(encode(told, Version::v5).size());
    Properties small_props;
    small_props.maximum_packet_size = full - 1;
    FakeLink &small = f.connect("small", Version::v5, true, std::nullopt, small_props);
    CHECK(sys_puback(small).properties.empty());
    small_props.maximum_packet_size = full;
    FakeLink &exact = f.connect("exact", Version::v5, true, std::nullopt, small_props);
    CHECK(sys_puback(exact).properties.reason_string == told.properties.reason_string);
}
