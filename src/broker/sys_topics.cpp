// SPDX-License-Identifier: Apache-2.0
#include "sys_topics.hpp"

#include <cstdio>

namespace ferrymq::broker {

std::vector<std::pair<std::string, std::string>> sys_topics(const BrokerStats &st,
                                                            const SysState &state) {
    std::vector<std::pair<std::string, std::string>> out;
    auto add = [&](std::string topic, uint64_t value) {
        out.emplace_back(std::move(topic), std::to_string(value));
    };
    const uint64_t connected = state.connected[0] + state.connected[1] + state.connected[2];
    out.emplace_back("$SYS/broker/version", std::string(state.version));
    add("$SYS/broker/uptime", state.uptime_s);
    add("$SYS/broker/clients/connected", connected);
    add("$SYS/broker/clients/connected/v3.1", state.connected[size_t(SysVersion::v31)]);
    add("$SYS/broker/clients/connected/v3.1.1", state.connected[size_t(SysVersion::v311)]);
    add("$SYS/broker/clients/connected/v5", state.connected[size_t(SysVersion::v5)]);
    add("$SYS/broker/sessions", state.sessions);
    add("$SYS/broker/retained/count", state.retained);
    add("$SYS/broker/messages/received", st.messages_received);
    add("$SYS/broker/messages/sent", st.messages_sent);
    add("$SYS/broker/messages/dropped/qos0_offline", st.dropped_qos0_offline);
    add("$SYS/broker/messages/dropped/queue_full", st.dropped_queue_full);
    add("$SYS/broker/messages/dropped/too_large", st.dropped_too_large);
    add("$SYS/broker/messages/dropped/expired", st.dropped_expired);
    add("$SYS/broker/messages/dropped/invalid_utf8", st.invalid_utf8_payloads);
    add("$SYS/broker/messages/dropped/sys_publish", st.dropped_sys_publish);
    add("$SYS/broker/messages/expired", st.dropped_expired);
    add("$SYS/broker/messages/user_property_drops", st.user_property_drops);
    add("$SYS/broker/protocol_errors", st.protocol_errors);
    add("$SYS/broker/auth/failures", st.auth_failures);
    add("$SYS/broker/acl/denied/publish", st.acl_denied_publish);
    add("$SYS/broker/acl/denied/subscribe", st.acl_denied_subscribe);
    add("$SYS/broker/acl/denied/deliveries", st.acl_denied_deliveries);
    add("$SYS/broker/topic_alias/hits", st.topic_alias_hits);
    add("$SYS/broker/topic_alias/bytes_saved", st.topic_alias_bytes_saved);
    add("$SYS/broker/shared/deliveries", st.shared_deliveries);
    add("$SYS/broker/shared/redeliveries", st.shared_redeliveries);
    add("$SYS/broker/loop/longest_turn_us", st.longest_loop_turn_us);
    if (state.store != nullptr) {
        add("$SYS/broker/store/commits", state.store->commits);
        add("$SYS/broker/store/failed_commits", state.store->failed_commits);
        add("$SYS/broker/store/size_bytes", state.store->size_bytes);
        add("$SYS/broker/store/longest_commit_us", state.store->longest_commit_us);
        add("$SYS/broker/store/degraded", state.store->degraded ? 1 : 0);
        add("$SYS/broker/messages/refused/store_full", st.refused_store_full);
        add("$SYS/broker/messages/dropped/store_full", st.dropped_store_full);
    }
    for (size_t code = 0; code < st.reasons_sent.size(); ++code) {
        if (st.reasons_sent[code] != 0) {
            char topic[40];
            std::snprintf(topic, sizeof topic, "$SYS/broker/reason_codes/sent/0x%02X",
                          unsigned(code));
            add(topic, st.reasons_sent[code]);
        }
    }
    return out;
}

} // namespace ferrymq::broker
