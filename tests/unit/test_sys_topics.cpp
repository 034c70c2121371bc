// SPDX-License-Identifier: Apache-2.0
// Tests for src/broker/sys_topics: the $SYS (topic, value) list built from the counters.
#include "broker/sys_topics.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>

using namespace ferrymq;

namespace {

// The list as a map, so a test looks a topic up by name; a repeated topic fails here.
std::map<std::string, std::string> as_map(const broker::BrokerStats &stats,
                                          const broker::SysState &state) {
    std::map<std::string, std::string> out;
    // Not a structured binding: clang 14 cannot capture one in doctest's message lambda.
    for (const auto &entry : broker::sys_topics(stats, state)) {
        CHECK_MESSAGE(out.emplace(entry.first, entry.second).second,
                      "repeated topic " << entry.first);
    }
    return out;
}

} // namespace

TEST_CASE("sys topics: version, uptime, clients per version, sessions and retained") {
    broker::BrokerStats stats;
    broker::SysState state;
    state.version = "1.2.3";
    state.uptime_s = 42;
    state.connected = {1, 2, 3};
    state.sessions = 9;
    state.retained = 4;
    auto m = as_map(stats, state);
    CHECK(m["$SYS/broker/version"] == "1.2.3");
    CHECK(m["$SYS/broker/uptime"] == "42");
    CHECK(m["$SYS/broker/clients/connected"] == "6");
    CHECK(m["$SYS/broker/clients/connected/v3.1"] == "1");
    CHECK(m["$SYS/broker/clients/connected/v3.1.1"] == "2");
    CHECK(m["$SYS/broker/clients/connected/v5"] == "3");
    CHECK(m["$SYS/broker/sessions"] == "9");
    CHECK(m["$SYS/broker/retained/count"] == "4");
}

TEST_CASE("sys topics: every counter has a topic with its decimal value") {
    broker::BrokerStats st;
    st.messages_received = 1;
    st.messages_sent = 2;
    st.dropped_qos0_offline = 3;
    st.dropped_queue_full = 4;
    st.dropped_too_large = 5;
    st.dropped_expired = 6;
    st.protocol_errors = 7;
    st.shared_deliveries = 8;
    st.shared_redeliveries = 9;
    st.user_property_drops = 10;
    st.invalid_utf8_payloads = 11;
    st.topic_alias_hits = 12;
    st.topic_alias_bytes_saved = 13;
    st.dropped_sys_publish = 14;
    broker::SysState state;
    state.version = "0.1.0";
    auto m = as_map(st, state);
    CHECK(m["$SYS/broker/messages/received"] == "1");
    CHECK(m["$SYS/broker/messages/sent"] == "2");
    CHECK(m["$SYS/broker/messages/dropped/qos0_offline"] == "3");
    CHECK(m["$SYS/broker/messages/dropped/queue_full"] == "4");
    CHECK(m["$SYS/broker/messages/dropped/too_large"] == "5");
    CHECK(m["$SYS/broker/messages/dropped/expired"] == "6");
    CHECK(m["$SYS/broker/messages/expired"] == "6");
    CHECK(m["$SYS/broker/protocol_errors"] == "7");
    CHECK(m["$SYS/broker/shared/deliveries"] == "8");
    CHECK(m["$SYS/broker/shared/redeliveries"] == "9");
    CHECK(m["$SYS/broker/messages/user_property_drops"] == "10");
    CHECK(m["$SYS/broker/messages/dropped/invalid_utf8"] == "11");
    CHECK(m["$SYS/broker/topic_alias/hits"] == "12");
    CHECK(m["$SYS/broker/topic_alias/bytes_saved"] == "13");
    CHECK(m["$SYS/broker/messages/dropped/sys_publish"] == "14");
    for (const auto &[topic, value] : m) {
        CHECK(topic.starts_with("$SYS/broker/"));
        CHECK_FALSE(value.empty());
    }
}

TEST_CASE("sys topics: reason codes appear by value once sent, in two hex digits") {
    broker::BrokerStats st;
    auto none = as_map(st, broker::SysState{});
    for (const auto &[topic, value] : none) {
        CHECK(topic.find("reason_codes") == std::string::npos);
    }
    st.reasons_sent[0x87] = 2;
    st.reasons_sent[0x10] = 1;
    auto m = as_map(st, broker::SysState{});
    CHECK(m["$SYS/broker/reason_codes/sent/0x87"] == "2");
    CHECK(m["$SYS/broker/reason_codes/sent/0x10"] == "1");
    CHECK(m.size() == none.size() + 2);
}
