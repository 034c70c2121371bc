// SPDX-License-Identifier: Apache-2.0
// Topic names, topic filters, shared subscriptions and matching (spec 4.7, 4.8.2). The
// examples of spec sections 4.7.1.2, 4.7.1.3 and 4.7.2 appear here verbatim.
#include "mqtt/topic.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using namespace ferrymq::mqtt;

namespace {

// Checks one (filter, name, expected) row and names it on failure.
void expect_match(std::string_view filter, std::string_view name, bool expected) {
    CHECK_MESSAGE(topic_matches(filter, name) == expected, "filter \"", std::string(filter),
                  "\" vs name \"", std::string(name), "\": expected ",
                  std::string(expected ? "match" : "no match"));
}

} // namespace

TEST_CASE("[MQTT-4.7.3-1] valid_topic_name") {
    for (std::string_view name :
         {"a", "/", "//", "a/b", "/finance", "sport/tennis/player1", "$SYS/broker/uptime", " ",
          "a b/c", "a/", "ACCOUNTS", "\xF0\x9F\x98\x80/\xEF\xBF\xBF"}) {
        CHECK_MESSAGE(valid_topic_name(name), "\"", std::string(name), "\" should be valid");
    }
    SUBCASE("[MQTT-4.7.3-1] a topic name is at least one character") {
        CHECK_FALSE(valid_topic_name(""));
    }
    SUBCASE("[MQTT-3.3.2-2] no wildcards in a topic name") {
        for (std::string_view name :
             {"+", "#", "a/+", "a/#", "+/a", "a+", "a#b", "sport/tennis/#", "a/b/c+", "$SYS/#"}) {
            CHECK_MESSAGE(!valid_topic_name(name), "\"", std::string(name), "\" should be invalid");
        }
    }
}

TEST_CASE("[MQTT-4.7.1-1] [MQTT-4.7.1-2] valid_topic_filter") {
    SUBCASE("valid filters") {
        for (std::string_view f : {"#",
                                   "+",
                                   "a",
                                   "/",
                                   "a/#",
                                   "+/+",
                                   "/+",
                                   "+/",
                                   "a/+/b",
                                   "+/tennis/#",
                                   "sport/tennis/player1/#",
                                   "sport/+/player1",
                                   "sport/tennis/+",
                                   "+/+/+",
                                   "a//b",
                                   "/#",
                                   "$SYS/#",
                                   "$SYS/+",
                                   "a/+/#",
                                   "\xF0\x9F\x98\x80/+"}) {
            CHECK_MESSAGE(valid_topic_filter(f), "\"", std::string(f), "\" should be valid");
        }
    }
    SUBCASE("[MQTT-4.7.1-1] '#' alone and last") {
        for (std::string_view f : {"sport/tennis#", "sport/tennis/#/ranking", "a#", "#a", "##",
                                   "#/", "#/a", "a/#/", "a/#/b", "+#", "#+", "a/b#"}) {
            CHECK_MESSAGE(!valid_topic_filter(f), "\"", std::string(f), "\" should be invalid");
        }
    }
    SUBCASE("[MQTT-4.7.1-2] '+' occupies a whole level") {
        for (std::string_view f : {"sport+", "a/b+", "+a", "a/+b/c", "++", "a/++", "+/a+"}) {
            CHECK_MESSAGE(!valid_topic_filter(f), "\"", std::string(f), "\" should be invalid");
        }
    }
    SUBCASE("[MQTT-4.7.3-1] a filter is at least one character") {
        CHECK_FALSE(valid_topic_filter(""));
    }
}

TEST_CASE("[MQTT-4.8.2-1] [MQTT-4.8.2-2] check_filter") {
    SUBCASE("ordinary filters are not shared") {
        for (std::string_view f : {"a/b", "#", "+/x", "$SYS/#", "$sharex/g/a", "$SHARE/g/a",
                                   "share/g/a", "a/$share/g/b"}) {
            auto c = check_filter(f);
            CHECK_MESSAGE(c.reason == Reason::success, "\"", std::string(f), "\"");
            CHECK_MESSAGE(!c.shared.has_value(), "\"", std::string(f), "\"");
        }
    }
    SUBCASE("invalid ordinary filters") {
        for (std::string_view f : {"", "a/#/b", "a#", "a/b+"}) {
            auto c = check_filter(f);
            CHECK_MESSAGE(c.reason == Reason::topic_filter_invalid, "\"", std::string(f), "\"");
        }
    }
    SUBCASE("$share/g/# is a shared subscription to #") {
        auto c = check_filter("$share/g/#");
        CHECK(c.reason == Reason::success);
        REQUIRE(c.shared.has_value());
        CHECK(c.shared->group == "g");
        CHECK(c.shared->filter == "#");
    }
    SUBCASE("$share/g/a/+/b keeps the whole filter after the group") {
        auto c = check_filter("$share/g/a/+/b");
        CHECK(c.reason == Reason::success);
        REQUIRE(c.shared.has_value());
        CHECK(c.shared->group == "g");
        CHECK(c.shared->filter == "a/+/b");
    }
    SUBCASE("spec 4.8.2 examples") {
        auto c = check_filter("$share/consumer1/sport/tennis/+");
        CHECK(c.reason == Reason::success);
        REQUIRE(c.shared.has_value());
        CHECK(c.shared->group == "consumer1");
        CHECK(c.shared->filter == "sport/tennis/+");

        c = check_filter("$share/consumer2/sport/tennis/+");
        REQUIRE(c.shared.has_value());
        CHECK(c.shared->group == "consumer2");

        c = check_filter("$share/g//finance");
        CHECK(c.reason == Reason::success);
        REQUIRE(c.shared.has_value());
        CHECK(c.shared->filter == "/finance");

        c = check_filter("$share/group-1/$SYS/#");
        CHECK(c.reason == Reason::success);
        REQUIRE(c.shared.has_value());
        CHECK(c.shared->group == "group-1");
        CHECK(c.shared->filter == "$SYS/#");
    }
    SUBCASE("[MQTT-4.8.2-1] share name at least one character, followed by a filter") {
        for (std::string_view f :
             {"$share/grp", "$share/grp/", "$share//a", "$share/", "$share//"}) {
            auto c = check_filter(f);
            CHECK_MESSAGE(c.reason == Reason::topic_filter_invalid, "\"", std::string(f), "\"");
        }
    }
    SUBCASE("[MQTT-4.8.2-2] share name without '+' or '#'") {
        for (std::string_view f :
             {"$share/g+/a", "$share/g#/a", "$share/+/a", "$share/#/a", "$share/#"}) {
            auto c = check_filter(f);
            CHECK_MESSAGE(c.reason == Reason::topic_filter_invalid, "\"", std::string(f), "\"");
        }
    }
    SUBCASE("the filter after the group follows the ordinary rules") {
        for (std::string_view f : {"$share/g/a/#/b", "$share/g/a#", "$share/g/a+"}) {
            auto c = check_filter(f);
            CHECK_MESSAGE(c.reason == Reason::topic_filter_invalid, "\"", std::string(f), "\"");
        }
    }
}

TEST_CASE("topic_matches: exact names") {
    expect_match("a/b", "a/b", true);
    expect_match("a/b", "a/b/c", false);
    expect_match("a/b/c", "a/b", false);
    expect_match("a", "b", false);
    expect_match("/", "/", true);
    expect_match("a//b", "a//b", true);
    expect_match("a//b", "a/b", false);
}

TEST_CASE("[MQTT-4.7.3-4] topic_matches is case sensitive and does no normalization") {
    expect_match("ACCOUNTS", "Accounts", false);
    expect_match("Accounts", "ACCOUNTS", false);
    expect_match("a/B", "a/b", false);
    expect_match("sport/+", "SPORT/tennis", false);
    expect_match("caf\xC3\xA9", "cafe\xCC\x81", false); // NFC vs NFD are different names
    expect_match("a b", "a b", true);
    expect_match("a b", "a  b", false);
}

TEST_CASE("topic_matches: trailing and leading slashes are levels") {
    expect_match("a/", "a", false);
    expect_match("a", "a/", false);
    expect_match("/a", "a", false);
    expect_match("a", "/a", false);
    expect_match("a/", "a/", true); // a filter ending in an empty level
    expect_match("a//", "a//", true);
    expect_match("+/", "a/", true);
    expect_match("+/", "a", false);
    expect_match("a/", "a/b", false);
    expect_match("a/+", "a/", true); // the empty level after the slash
    expect_match("a/#", "a/", true);
    expect_match("+/a", "/a", true);
    expect_match("+", "/", false);
    expect_match("+/+", "/", true);
    expect_match("#", "/", true);
}

TEST_CASE("[MQTT-4.7.1-2] topic_matches: single-level wildcard") {
    // Spec 4.7.1.3 examples.
    expect_match("sport/tennis/+", "sport/tennis/player1", true);
    expect_match("sport/tennis/+", "sport/tennis/player2", true);
    expect_match("sport/tennis/+", "sport/tennis/player1/ranking", false);
    expect_match("sport/+", "sport", false);
    expect_match("sport/+", "sport/", true);
    expect_match("+/+", "/finance", true);
    expect_match("/+", "/finance", true);
    expect_match("+", "/finance", false);
    // Empty levels are levels.
    expect_match("a/+/b", "a//b", true);
    expect_match("a/+/b", "a/x/b", true);
    expect_match("a/+/b", "a/x/y/b", false);
    expect_match("a/+/b", "a/b", false);
    expect_match("+", "a", true);
    expect_match("+", "a/b", false);
    expect_match("+/+/+", "a/b/c", true);
    expect_match("+/+/+", "a/b", false);
    expect_match("sport/+/player1", "sport/tennis/player1", true);
    expect_match("sport/+/player1", "sport/tennis/player2", false);
}

TEST_CASE("[MQTT-4.7.1-1] topic_matches: multi-level wildcard") {
    // Spec 4.7.1.2 examples.
    expect_match("sport/tennis/player1/#", "sport/tennis/player1", true);
    expect_match("sport/tennis/player1/#", "sport/tennis/player1/ranking", true);
    expect_match("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true);
    expect_match("sport/tennis/player1/#", "sport/tennis/player2", false);
    expect_match("sport/tennis/player1/#", "sport/tennis", false);
    expect_match("sport/#", "sport", true); // '#' includes the parent level
    expect_match("a/#", "a", true);
    expect_match("a/#", "a/b/c", true);
    expect_match("a/#", "ab", false);
    expect_match("a/#", "b/a", false);
    expect_match("+/tennis/#", "sport/tennis/player1", true);
    expect_match("+/tennis/#", "sport/tennis", true);
    expect_match("+/tennis/#", "sport/golf", false);
    expect_match("a/+/#", "a/b", true);
    expect_match("a/+/#", "a/b/c/d", true);
    expect_match("a/+/#", "a", false);
    expect_match("/#", "/a", true);
    expect_match("/#", "a", false);
    // '#' alone matches every name that does not start with '$'.
    for (std::string_view name : {"a", "/", "a/b/c", "sport/tennis/player1", "//", "x$"}) {
        expect_match("#", name, true);
    }
}

TEST_CASE("[MQTT-4.7.2-1] topic_matches: names starting with '$'") {
    expect_match("#", "$SYS", false);
    expect_match("#", "$SYS/x", false);
    expect_match("#", "$SYS/monitor/Clients", false);
    expect_match("+", "$SYS", false);
    expect_match("+/x", "$SYS/x", false);
    expect_match("+/monitor/Clients", "$SYS/monitor/Clients", false);
    expect_match("+/#", "$SYS/x", false);
    expect_match("$SYS/#", "$SYS/x", true);
    expect_match("$SYS/#", "$SYS/monitor/Clients", true);
    expect_match("$SYS/#", "$SYS", true);
    expect_match("$SYS/+", "$SYS/x", true);
    expect_match("$SYS/+", "$SYS/x/y", false);
    expect_match("$SYS/monitor/+", "$SYS/monitor/Clients", true);
    expect_match("$SYS", "$SYS", true);
    expect_match("$SYS/#", "$SYSTEM/x", false);
    expect_match("$sys/#", "$SYS/x", false);
    // Only the first character counts: a '$' later in the name is ordinary.
    expect_match("+/$x", "a/$x", true);
    expect_match("a/+", "a/$x", true);
    expect_match("a/#", "a/$x/y", true);
}
