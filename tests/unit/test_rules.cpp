// SPDX-License-Identifier: Apache-2.0
// Bridge topic mapping: captures of '+' and '#' and the templates that use them.
#include "bridge/rules.hpp"
#include "config/config.hpp"

#include <doctest/doctest.h>

using ferrymq::bridge::check_template;
using ferrymq::bridge::map_topic;

TEST_CASE("rules: '+' levels map to {1}, {2}, a trailing '#' to {#}") {
    CHECK(map_topic("sensors/+/temp", "site42/{1}/temperature", "sensors/k1/temp") ==
          "site42/k1/temperature");
    CHECK(map_topic("sensors/#", "site42/sensors/{#}", "sensors/a/b/c") == "site42/sensors/a/b/c");
    CHECK(map_topic("a/+/b/+", "{2}/{1}", "a/x/b/y") == "y/x");
    CHECK(map_topic("a/+/#", "z/{1}/{#}", "a/x/p/q") == "z/x/p/q");
    // '#' also matches the parent level: {#} is then empty and its '/' goes.
    CHECK(map_topic("a/#", "b/{#}", "a") == "b");
    CHECK(map_topic("#", "up/{#}", "x/y") == "up/x/y");
    // No template: the topic stays.
    CHECK(map_topic("a/#", "", "a/b") == "a/b");
}

TEST_CASE("rules: templates may use only placeholders their filter provides") {
    CHECK_FALSE(check_template("a/+/+", "x/{1}/{2}"));
    CHECK_FALSE(check_template("a/#", "x/{#}"));
    CHECK_FALSE(check_template("a/b", ""));
    CHECK(check_template("a/+", "x/{2}").value_or("") ==
          "{2} in 'x/{2}' but the filter 'a/+' has only 1 '+' level(s)");
    CHECK(check_template("a/+", "x/{#}").value_or("").starts_with("{#} in 'x/{#}'"));
    CHECK(check_template("a/+", "x/{one}").value_or("").starts_with("unknown placeholder {one}"));
    CHECK(check_template("a/+", "x/{1").value_or("").starts_with("unclosed '{'"));
    CHECK(check_template("a/+", "x/+").value_or("").ends_with("contains a wildcard"));
}

TEST_CASE("config: bridges with rules, and their errors with line and column") {
    using ferrymq::config::load_config_string;
    const auto c = load_config_string(R"(bridges:
  - name: cloud
    addresses: ["broker.example:8883", "127.0.0.1:1883"]
    protocol: "3.1.1"
    window: 50
    queue: {max_messages: 1000}
    forward:
      - local: "sensors/+/temp"
        remote: "site42/{1}/temperature"
        qos: 1
        retain: clear
        add_user_properties:
          - gateway: gw1
    subscribe:
      - remote: "cmd/#"
        local: "local/cmd/{#}"
)",
                                      "t.yaml");
    REQUIRE(c.bridges.size() == 1);
    const auto &b = c.bridges[0];
    CHECK(b.name == "cloud");
    CHECK(b.client_id == "ferrymq-cloud");
    CHECK(b.addresses.size() == 2);
    CHECK(b.addresses[0].host == "broker.example");
    CHECK_FALSE(b.v5);
    CHECK(b.window == 50);
    CHECK(b.queue_max_messages == 1000);
    REQUIRE(b.forward.size() == 1);
    CHECK(b.forward[0].remote == "site42/{1}/temperature");
    CHECK(b.forward[0].line == 8);
    CHECK(b.forward[0].add_user_properties.size() == 1);
    REQUIRE(b.subscribe.size() == 1);
    CHECK(b.subscribe[0].local == "local/cmd/{#}");

    auto error_of = [](const char *yaml) {
        try {
            load_config_string(yaml, "t.yaml");
        } catch (const ferrymq::config::ConfigError &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error_of("bridges:\n  - name: x\n    address: 127.0.0.1:1883\n    forward:\n"
                   "      - local: a/+\n        remote: b/{2}\n") ==
          "t.yaml:6:17: {2} in 'b/{2}' but the filter 'a/+' has only 1 '+' level(s)");
    CHECK(error_of("bridges:\n  - name: x\n    forward:\n      - local: a\n") ==
          "t.yaml:2:5: bridge 'x' needs an address (HOST:PORT)");
    CHECK(error_of("bridges:\n  - name: x\n    address: 127.0.0.1:1883\n") ==
          "t.yaml:2:5: bridge 'x' has no forward or subscribe rule");
    CHECK(error_of("bridges:\n  - name: x\n    address: 127.0.0.1:1883\n    forward:\n"
                   "      - local: a/#/b\n") ==
          "t.yaml:5:16: 'a/#/b' is not a valid topic filter");
}

TEST_CASE("rules: unmap_topic inverts a mapping, for Response Topics across a bridge") {
    using ferrymq::bridge::unmap_topic;
    CHECK(unmap_topic("site42/replies/#", "replies/{#}", "replies/dev1") ==
          std::optional<std::string>("site42/replies/dev1"));
    CHECK(unmap_topic("site42/replies/#", "replies/{#}", "replies/a/b") ==
          std::optional<std::string>("site42/replies/a/b"));
    CHECK(unmap_topic("sensors/+/temp", "site42/{1}/temperature", "site42/k1/temperature") ==
          std::optional<std::string>("sensors/k1/temp"));
    CHECK(unmap_topic("a/+/b/+", "{2}/{1}", "y/x") == std::optional<std::string>("a/x/b/y"));
    // No template: the topic itself, when the filter matches it.
    CHECK(unmap_topic("r/#", "", "r/x") == std::optional<std::string>("r/x"));
    CHECK_FALSE(unmap_topic("r/#", "", "q/x"));
    // Not something the template produces.
    CHECK_FALSE(unmap_topic("site42/replies/#", "replies/{#}", "other/dev1"));
    // A level the template leaves open cannot be recovered.
    CHECK_FALSE(unmap_topic("a/+/+", "x/{1}", "x/p"));
    // Round trips.
    for (const char *topic : {"sensors/a/temp", "sensors/bb/temp"}) {
        const std::string up = map_topic("sensors/+/temp", "s/{1}/t", topic);
        CHECK(unmap_topic("sensors/+/temp", "s/{1}/t", up) == std::optional<std::string>(topic));
    }
}
