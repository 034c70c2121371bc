// SPDX-License-Identifier: Apache-2.0
// The broker core driven through in-memory links: no sockets, no loop. Each FakeLink
// decodes what the broker sends, so the real encoder is exercised too.
#include "broker/broker.hpp"

#include <doctest/doctest.h>

#include <cstdio>

using namespace ferrymq;
using namespace ferrymq::mqtt;
using broker::Broker;
using broker::BrokerSettings;

namespace {

class FakeLink final : public broker::Link {
  public:
    explicit FakeLink(uint64_t id) : id_(id) {}
    uint64_t id() const override { return id_; }
    const broker::ListenerPolicy &policy() const override { return policy_; }
    broker::ListenerPolicy policy_;
    void send(const Packet &packet) override {
        std::vector<uint8_t> bytes = encode(packet, version_);
        record(bytes);
    }
    bool send_publish(const PublishRef &publish, const broker::MessagePtr &) override {
        std::vector<uint8_t> bytes;
        encode_publish(publish, version_, bytes);
        if (bytes.size() > max_outgoing_) {
            return false;
        }
        record(bytes);
        return true;
    }
    size_t pending_bytes() const override { return pending_; }
    void set_version(Version v) override { version_ = v; }
    void set_keep_alive(uint16_t seconds) override { keep_alive_ = seconds; }
    void set_max_outgoing_packet(uint32_t bytes) override { max_outgoing_ = bytes; }
    void close() override { closed_ = true; }

    // Packets received so far, removed from the link.
    std::vector<Packet> take() { return std::exchange(received_, {}); }
    std::vector<Publish> take_publishes() {
        std::vector<Publish> out;
        for (Packet &p : take()) {
            if (auto *pub = std::get_if<Publish>(&p)) {
                out.push_back(std::move(*pub));
            }
        }
        return out;
    }
    void put_back(std::vector<Packet> packets) { received_ = std::move(packets); }
    bool closed() const { return closed_; }
    size_t pending_ = 0;

  private:
    void record(const std::vector<uint8_t> &bytes) {
        Result<Packet> r = decode(bytes, version_);
        REQUIRE_MESSAGE(r.ok(), "broker sent undecodable bytes: " << r.error().what);
        received_.push_back(std::move(r.value()));
    }
    uint64_t id_;
    Version version_ = Version::v311;
    uint32_t max_outgoing_ = UINT32_MAX;
    uint16_t keep_alive_ = 0;
    bool closed_ = false;
    std::vector<Packet> received_;
};

// One broker, a log that writes nowhere, and helpers to connect clients.
struct Fixture {
    Fixture() : log_file(std::fopen("/dev/null", "w")), log(util::LogLevel::error, log_file) {}
    ~Fixture() {
        broker.reset();
        std::fclose(log_file);
    }

    std::FILE *log_file;
    util::Log log;
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
