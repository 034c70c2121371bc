// SPDX-License-Identifier: Apache-2.0
// The enhanced-authentication plug-in point (spec 4.12) driven with a toy method,
// "ferrymq-test-echo", through in-memory links: CONNECT -> AUTH -> CONNACK, re-authentication,
// refusals, and the lifetime of each exchange.
#include "broker/authenticator.hpp"
#include "broker/broker.hpp"
#include "memory_link.hpp"
#include "silent_log.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace ferrymq;
using namespace ferrymq::mqtt;
using broker::AuthStep;

namespace {

constexpr const char *kEcho = "ferrymq-test-echo";

// What the toy method saw and how many of its exchanges are alive, shared with the test.
struct EchoLog {
    int alive = 0;
    std::vector<std::string> calls; // "start <client id> <user> <data>", "next <data>"
};

// The toy method: start() answers with the client's data reversed; next() succeeds, with
// "welcome <user>", when the client sends that challenge back followed by "!"; anything else
// fails with the reason the test chose. Data "instant" succeeds at once, without a round.
class EchoAuthenticator final : public broker::Authenticator {
  public:
    EchoAuthenticator(EchoLog &log, Reason failure) : log_(log), failure_(failure) { ++log_.alive; }
    ~EchoAuthenticator() override { --log_.alive; }

    AuthStep start(std::string_view client_id, const std::optional<std::string> &username,
                   std::string_view data) override {
        user_ = username.value_or("anonymous");
        log_.calls.push_back("start " + std::string(client_id) + " " + user_ + " " +
                             std::string(data));
        if (data == "instant") {
            return AuthStep::succeed();
        }
        challenge_ = std::string(data.rbegin(), data.rend());
        return AuthStep::challenge(challenge_);
    }
    AuthStep next(std::string_view data) override {
        log_.calls.push_back("next " + std::string(data));
        if (data != challenge_ + "!") {
            return AuthStep::fail("echo did not match", failure_);
        }
        return AuthStep::succeed("welcome " + user_);
    }
    std::string identity() const override { return user_; }

  private:
    EchoLog &log_;
    Reason failure_;
    std::string user_;
    std::string challenge_;
};

struct Fixture {
    Fixture() {
        settings.authenticators.add(
            kEcho, [this] { return std::make_unique<EchoAuthenticator>(echo, failure); });
    }
    ~Fixture() { broker.reset(); }

    broker::Broker &b() {
        if (!broker) {
            broker = std::make_unique<broker::Broker>(settings, log);
        }
        return *broker;
    }

    test::MemoryLink &open() {
        links.push_back(std::make_unique<test::MemoryLink>(links.size() + 1));
        b().on_open(*links.back());
        return *links.back();
    }

    // Sends a 5.0 CONNECT naming `method` with `data` (and user name "alice").
    void connect(test::MemoryLink &link, const std::string &method, const std::string &data,
                 const std::string &client_id = "c1") {
        Connect c;
        c.version = Version::v5;
        c.client_id = client_id;
        c.username = "alice";
        c.properties.authentication_method = method;
        c.properties.authentication_data = data;
        b().on_packet(link, c, now);
    }

    void auth(test::MemoryLink &link, Reason reason, const std::string &data,
              const std::string &method = kEcho) {
        Auth a;
        a.reason = reason;
        a.properties.authentication_method = method;
        a.properties.authentication_data = data;
        b().on_packet(link, a, now);
    }

    test::SilentLog log;
    EchoLog echo;
    Reason failure = Reason::bad_user_name_or_password;
    broker::BrokerSettings settings;
    std::unique_ptr<broker::Broker> broker;
    std::vector<std::unique_ptr<test::MemoryLink>> links;
    uint64_t now = 1000;
};

// The client's side of one echo round: the AUTH 0x18 it got, answered correctly.
void answer_challenge(Fixture &f, test::MemoryLink &link, const std::string &expected) {
    const Auth challenge = link.take_first<Auth>();
    CHECK(challenge.reason == Reason::continue_authentication);
    CHECK(challenge.properties.authentication_method == kEcho);
    REQUIRE(challenge.properties.authentication_data == expected);
    f.auth(link, Reason::continue_authentication, expected + "!");
}

} // namespace

TEST_CASE("authenticator: the registry offers each method once, by name") {
    broker::AuthenticatorRegistry r;
    CHECK(r.empty());
    CHECK(r.create("x") == nullptr);
    EchoLog log;
    auto factory = [&log] {
        return std::make_unique<EchoAuthenticator>(log, Reason::bad_user_name_or_password);
    };
    CHECK(r.add("b-method", factory));
    CHECK(r.add("a-method", factory));
    CHECK_FALSE(r.add("a-method", factory)); // taken
    CHECK_FALSE(r.add("", factory));
    CHECK_FALSE(r.add("c-method", nullptr));
    CHECK(r.offers("a-method"));
    CHECK_FALSE(r.offers("A-METHOD")); // names are case-sensitive, as on the wire
    CHECK(r.methods() == std::vector<std::string>{"a-method", "b-method"});
    broker::AuthenticatorPtr a = r.create("b-method");
    REQUIRE(a != nullptr);
    CHECK(log.alive == 1);
    a.reset();
    CHECK(log.alive == 0);
}

TEST_CASE("authenticator: [MQTT-4.12.0-2] CONNECT -> AUTH 0x18 -> AUTH 0x18 -> CONNACK with a "
          "registered method") {
    Fixture f;
    test::MemoryLink &link = f.open();
    f.connect(link, kEcho, "ping");
    answer_challenge(f, link, "gnip");
    const Connack ack = link.take_first<Connack>();
    CHECK(ack.reason == Reason::success);
    CHECK(ack.properties.authentication_method == kEcho);
    CHECK(ack.properties.authentication_data == "welcome alice");
    CHECK(f.b().connected(link));
    CHECK(f.echo.calls == std::vector<std::string>{"start c1 alice ping", "next gnip!"});
    CHECK(f.echo.alive == 0); // the exchange ended with the CONNACK
    f.b().on_packet(link, Pingreq{}, f.now);
    link.take_first<Pingresp>();
    CHECK_FALSE(link.closed());
}

TEST_CASE("authenticator: a method may succeed in one step") {
    Fixture f;
    test::MemoryLink &link = f.open();
    f.connect(link, kEcho, "instant");
    const Connack ack = link.take_first<Connack>();
    CHECK(ack.reason == Reason::success);
    CHECK(ack.properties.authentication_method == kEcho);
    CHECK_FALSE(ack.properties.authentication_data.has_value()); // the method sent none
    CHECK(f.b().connected(link));
}

TEST_CASE("authenticator: [MQTT-4.12.1-1] re-authentication runs a new exchange of the same "
          "method and keeps the connection") {
    Fixture f;
    test::MemoryLink &link = f.open();
    f.connect(link, kEcho, "one");
    answer_challenge(f, link, "eno");
    link.take_first<Connack>();

    f.auth(link, Reason::re_authenticate, "two");
    answer_challenge(f, link, "owt");
    const Auth done = link.take_first<Auth>();
    CHECK(done.reason == Reason::success);
    CHECK(done.properties.authentication_method == kEcho);
    CHECK(done.properties.authentication_data == "welcome alice");
    CHECK_FALSE(link.closed());
    CHECK(f.echo.alive == 0);
    // Re-authentication knows the session's client id and the CONNECT's user name.
    CHECK(f.echo.calls[2] == "start c1 alice two");

    // A wrong answer ends the connection: 0x86 has no place in DISCONNECT, so 0x87.
    f.auth(link, Reason::re_authenticate, "three");
    link.take_first<Auth>();
    f.auth(link, Reason::continue_authentication, "wrong");
    const Disconnect d = link.take_first<Disconnect>();
    CHECK(d.reason == Reason::not_authorized);
    CHECK(d.properties.reason_string == "authentication failed");
    CHECK(link.closed());
}

TEST_CASE("authenticator: a failed exchange refuses with the method's reason code and says "
          "nothing more") {
    Fixture f;
    SUBCASE("the default, 0x86") {}
    SUBCASE("Banned") {
        f.failure = Reason::banned;
    }
    SUBCASE("not a refusal: 0x86 instead") {
        f.failure = Reason::success;
    }
    SUBCASE("not a CONNACK code: 0x86 instead") {
        f.failure = Reason::topic_alias_invalid;
    }
    test::MemoryLink &link = f.open();
    f.connect(link, kEcho, "abc");
    link.take_first<Auth>();
    f.auth(link, Reason::continue_authentication, "cba?");
    const Connack ack = link.take_first<Connack>();
    CHECK(ack.reason ==
          (f.failure == Reason::banned ? Reason::banned : Reason::bad_user_name_or_password));
    // The log learns why; the client only that it failed.
    CHECK(ack.properties.reason_string == "authentication failed");
    CHECK(link.closed());
    CHECK_FALSE(f.b().connected(link));
}

TEST_CASE("authenticator: [MQTT-4.12.0-1] a method nobody registered gets CONNACK 0x8C") {
    Fixture f;
    SUBCASE("another name") {}
    SUBCASE("no methods at all") {
        f.settings.authenticators = {};
    }
    test::MemoryLink &link = f.open();
    f.connect(link, "SCRAM-SHA-256", "n,,n=alice,r=x");
    const Connack ack = link.take_first<Connack>();
    CHECK(ack.reason == Reason::bad_authentication_method);
    CHECK(link.closed());
    CHECK(f.echo.alive == 0);
}

TEST_CASE("authenticator: an exchange ends with its connection") {
    Fixture f;
    test::MemoryLink &link = f.open();
    f.connect(link, kEcho, "abc");
    link.take_first<Auth>();
    CHECK(f.echo.alive == 1);
    f.b().on_close(link, f.now);
    CHECK(f.echo.alive == 0);
}

TEST_CASE("authenticator: [MQTT-4.12.0-6] [MQTT-4.12.0-5] only AUTH of the same method may "
          "answer a challenge") {
    Fixture f;
    test::MemoryLink &link = f.open();
    f.connect(link, kEcho, "abc");
    link.take_first<Auth>();
    SUBCASE("another packet") {
        f.b().on_packet(link, Pingreq{}, f.now);
    }
    SUBCASE("another method") {
        f.auth(link, Reason::continue_authentication, "cba!", "SCRAM-SHA-256");
    }
    CHECK(link.closed());
    CHECK_FALSE(f.b().connected(link));
    for (const Packet &p : link.take()) {
        CHECK_FALSE(std::holds_alternative<Connack>(p)); // never accepted
    }
}
