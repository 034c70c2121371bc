// SPDX-License-Identifier: Apache-2.0
// Access control rules: matching, covering, %u/%c, first match wins, default deny.
#include "broker/acl.hpp"

#include <doctest/doctest.h>

using namespace ferrymq::broker;

namespace {

std::vector<std::string> levels(std::string_view filter) {
    std::vector<std::string> out;
    size_t pos = 0;
    for (;;) {
        const size_t slash = filter.find('/', pos);
        out.emplace_back(filter.substr(pos, slash == std::string_view::npos ? slash : slash - pos));
        if (slash == std::string_view::npos) {
            return out;
        }
        pos = slash + 1;
    }
}

AclRule rule(std::string topic, uint8_t access, bool allow = true,
             std::optional<std::string> user = std::nullopt,
             std::optional<std::string> client = std::nullopt) {
    return AclRule{std::move(user), std::move(client), std::move(topic), access, allow};
}

constexpr uint8_t kBoth = kAclPublish | kAclSubscribe;

} // namespace

TEST_CASE("topic matching follows the spec's wildcard rules [MQTT-4.7.1-2] [MQTT-4.7.2-1]") {
    CHECK(acl_filter_matches(levels("a/b"), "a/b"));
    CHECK_FALSE(acl_filter_matches(levels("a/b"), "a/b/c"));
    CHECK_FALSE(acl_filter_matches(levels("a/b"), "a"));
    CHECK(acl_filter_matches(levels("a/+"), "a/x"));
    CHECK(acl_filter_matches(levels("a/+"), "a/"));
    CHECK_FALSE(acl_filter_matches(levels("a/+"), "a/x/y"));
    CHECK(acl_filter_matches(levels("a/#"), "a"));
    CHECK(acl_filter_matches(levels("a/#"), "a/x/y"));
    CHECK(acl_filter_matches(levels("#"), "x"));
    CHECK_FALSE(acl_filter_matches(levels("#"), "$SYS/x"));
    CHECK_FALSE(acl_filter_matches(levels("+/x"), "$SYS/x"));
    CHECK(acl_filter_matches(levels("$SYS/#"), "$SYS/broker/uptime"));
}

TEST_CASE("a rule covers a subscription only if it matches every topic the filter can") {
    CHECK(acl_filter_covers(levels("a/#"), "a/b"));
    CHECK(acl_filter_covers(levels("a/#"), "a/+/c"));
    CHECK(acl_filter_covers(levels("a/#"), "a/#"));
    CHECK(acl_filter_covers(levels("a/+"), "a/+"));
    CHECK(acl_filter_covers(levels("a/+"), "a/b"));
    CHECK_FALSE(acl_filter_covers(levels("a/+"), "a/#"));
    CHECK_FALSE(acl_filter_covers(levels("a/b"), "a/+"));
    CHECK_FALSE(acl_filter_covers(levels("a/b"), "#"));
    CHECK_FALSE(acl_filter_covers(levels("a/#"), "#"));
    CHECK(acl_filter_covers(levels("#"), "#"));
    CHECK_FALSE(acl_filter_covers(levels("#"), "$SYS/#"));
}

TEST_CASE("no rule matches: denied; first match wins") {
    AclRules rules(
        {rule("public/#", kBoth), rule("secret/#", kBoth, false), rule("#", kAclSubscribe)});
    const ClientAcl acl = rules.for_client(std::nullopt, "c1");
    CHECK(acl.may_publish("public/x"));
    CHECK_FALSE(acl.may_publish("secret/x"));
    CHECK_FALSE(acl.may_publish("other/x")); // default deny
    CHECK(acl.may_subscribe("public/#"));
    CHECK_FALSE(acl.may_subscribe("secret/+"));
    CHECK(acl.may_subscribe("#"));            // covered by the last rule ...
    CHECK_FALSE(acl.may_receive("secret/x")); // ... but secret topics are still not delivered
    CHECK(acl.may_receive("other/x"));

    // The same rules in another order decide differently.
    AclRules reversed({rule("#", kBoth), rule("secret/#", kBoth, false)});
    CHECK(reversed.for_client(std::nullopt, "c1").may_publish("secret/x"));
}

TEST_CASE("publish and subscribe access are separate") {
    AclRules rules({rule("in/#", kAclPublish), rule("out/#", kAclSubscribe)});
    const ClientAcl acl = rules.for_client(std::nullopt, "c");
    CHECK(acl.may_publish("in/1"));
    CHECK_FALSE(acl.may_receive("in/1"));
    CHECK_FALSE(acl.may_subscribe("in/1"));
    CHECK(acl.may_subscribe("out/1"));
    CHECK_FALSE(acl.may_publish("out/1"));
}

TEST_CASE("rules by username and client id apply only to that client") {
    AclRules rules(
        {rule("admin/#", kBoth, true, "root"), rule("dev/1/#", kBoth, true, {}, "dev1")});
    CHECK(rules.for_client(std::string("root"), "x").may_publish("admin/a"));
    CHECK_FALSE(rules.for_client(std::string("bob"), "x").may_publish("admin/a"));
    CHECK_FALSE(rules.for_client(std::nullopt, "x").may_publish("admin/a"));
    CHECK(rules.for_client(std::nullopt, "dev1").may_publish("dev/1/t"));
    CHECK_FALSE(rules.for_client(std::nullopt, "dev2").may_publish("dev/1/t"));
    CHECK(rules.for_client(std::string("root"), "x").rule_count() == 1);
}

TEST_CASE("%u and %c are replaced per client, never widening a pattern") {
    AclRules rules({rule("users/%u/#", kBoth), rule("devices/%c/in", kAclPublish),
                    rule("mixed/%u-%c", kAclPublish)});
    const ClientAcl alice = rules.for_client(std::string("alice"), "sensor-7");
    CHECK(alice.may_publish("users/alice/x"));
    CHECK_FALSE(alice.may_publish("users/bob/x"));
    CHECK(alice.may_subscribe("users/alice/#"));
    CHECK_FALSE(alice.may_subscribe("users/+/#"));
    CHECK(alice.may_publish("devices/sensor-7/in"));
    CHECK_FALSE(alice.may_publish("devices/sensor-8/in"));
    CHECK(alice.may_publish("mixed/alice-sensor-7"));
    // An anonymous client has no %u: those rules do not apply.
    const ClientAcl anon = rules.for_client(std::nullopt, "sensor-7");
    CHECK_FALSE(anon.may_publish("users//x"));
    CHECK(anon.may_publish("devices/sensor-7/in"));
    CHECK(anon.rule_count() == 1);
    // A name with a wildcard or a '/' would reach other clients' topics: no rule for it.
    CHECK_FALSE(rules.for_client(std::string("+"), "c").may_publish("users/bob/x"));
    CHECK_FALSE(rules.for_client(std::string("#"), "c").may_publish("users/bob/x"));
    CHECK_FALSE(rules.for_client(std::nullopt, "a/b").may_publish("devices/a/b/in"));
    CHECK(rules.for_client(std::string("a/b"), "c").rule_count() == 1);
}
