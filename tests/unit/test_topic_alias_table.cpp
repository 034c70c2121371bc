// SPDX-License-Identifier: Apache-2.0
// Tests for src/broker/topic_alias_table: the outbound Topic Alias LRU of one connection.
#include "broker/topic_alias_table.hpp"

#include <doctest/doctest.h>

#include <string>

using ferrymq::broker::TopicAliasTable;

namespace {

// An assignment as a short string, so a failing CHECK prints both sides: "1 new", "2 known".
std::string show(TopicAliasTable::Assignment a) {
    return std::to_string(a.alias) + (a.known ? " known" : " new");
}

} // namespace

TEST_CASE("topic aliases: a topic gets an alias on first use and keeps it") {
    TopicAliasTable t(3);
    CHECK(show(t.assign("a/long/topic")) == "1 new");
    CHECK(show(t.assign("b")) == "2 new");
    CHECK(show(t.assign("a/long/topic")) == "1 known");
    CHECK(show(t.assign("b")) == "2 known");
    CHECK(t.size() == 2);
    CHECK(t.capacity() == 3);
}

TEST_CASE("topic aliases: when full, the least recently used alias is reassigned") {
    TopicAliasTable t(2);
    CHECK(show(t.assign("a")) == "1 new");
    CHECK(show(t.assign("b")) == "2 new");
    CHECK(show(t.assign("a")) == "1 known"); // b is now the least recently used
    CHECK(show(t.assign("c")) == "2 new");   // takes b's alias
    CHECK(show(t.assign("b")) == "1 new");   // a was the least recently used
    CHECK(show(t.assign("c")) == "2 known");
    CHECK(show(t.assign("a")) == "1 new");
    CHECK(t.size() == 2);
}

TEST_CASE("topic aliases: one alias is reassigned on every new topic") {
    TopicAliasTable t(1);
    CHECK(show(t.assign("a")) == "1 new");
    CHECK(show(t.assign("a")) == "1 known");
    CHECK(show(t.assign("b")) == "1 new");
    CHECK(show(t.assign("a")) == "1 new");
    CHECK(t.size() == 1);
}

TEST_CASE("topic aliases: a forgotten assignment is sent in full again and its alias reused "
          "first") {
    TopicAliasTable t(3);
    CHECK(show(t.assign("a")) == "1 new");
    CHECK(show(t.assign("b")) == "2 new");
    t.forget(2);
    CHECK(t.size() == 1);
    CHECK(show(t.assign("c")) == "2 new"); // the free alias before a fresh one
    CHECK(show(t.assign("b")) == "3 new");
    CHECK(show(t.assign("d")) == "1 new"); // full again: a is the least recently used
    t.forget(0);                           // not an alias: ignored
    t.forget(3);
    t.forget(3); // twice: ignored
    CHECK(show(t.assign("b")) == "3 new");
    CHECK(t.size() == 3);
}

TEST_CASE("topic aliases: the largest table cycles through every alias") {
    TopicAliasTable t(65535);
    for (unsigned i = 1; i <= 65535; ++i) {
        REQUIRE(show(t.assign("t/" + std::to_string(i))) == std::to_string(i) + " new");
    }
    CHECK(show(t.assign("t/1")) == "1 known");
    CHECK(show(t.assign("t/new")) == "2 new"); // t/2 was the least recently used
    CHECK(t.size() == 65535);
}
