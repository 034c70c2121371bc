// SPDX-License-Identifier: Apache-2.0
// Subscriptions indexed by topic level, so a publish visits only the branches its topic
// can match. Owned by the Broker; entries name sessions by pointer and are removed by the
// Broker before a session is destroyed.
#pragma once

#include "mqtt/packet.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferrymq::broker {

class Session;

// What a client asked for with one topic filter (spec 3.8.3.1).
struct SubscriptionOptions {
    uint8_t qos = 0; // granted maximum QoS
    bool no_local = false;
    bool retain_as_published = false;
    mqtt::RetainHandling retain_handling = mqtt::RetainHandling::send;
    uint32_t identifier = 0; // Subscription Identifier, 0 = none
    bool operator==(const SubscriptionOptions &) const = default;
};

class SubscriptionTree {
  public:
    // Adds or replaces the subscription of `session` to `filter`. Returns true when it
    // replaced an existing one.
    bool add(std::string_view filter, Session *session, const SubscriptionOptions &options);

    // Removes the subscription of `session` to `filter`; returns whether one existed.
    bool remove(std::string_view filter, Session *session);

    // Calls fn(Session*, const SubscriptionOptions&) for every subscription matching the
    // topic name `topic`, honouring the '$' rule [MQTT-4.7.2-1].
    template <class Fn> void match(std::string_view topic, Fn &&fn) const {
        match_level(root_, topic, 0, topic.empty() || topic[0] != '$', fn);
    }

    size_t size() const { return count_; }

  private:
    // Lets lookups take a string_view without building a std::string per topic level.
    struct LevelHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    struct Node {
        std::unordered_map<std::string, std::unique_ptr<Node>, LevelHash, std::equal_to<>> children;
        std::vector<std::pair<Session *, SubscriptionOptions>> subscribers;
        bool empty() const { return children.empty() && subscribers.empty(); }
    };

    template <class Fn>
    static void match_level(const Node &node, std::string_view topic, size_t pos, bool wildcards_ok,
                            Fn &fn) {
        // `pos` is the start of the current level in `topic`; npos means past the end.
        if (wildcards_ok) {
            if (auto it = node.children.find("#"); it != node.children.end()) {
                for (const auto &[s, o] : it->second->subscribers) {
                    fn(s, o);
                }
            }
        }
        if (pos == std::string_view::npos) {
            for (const auto &[s, o] : node.subscribers) {
                fn(s, o);
            }
            return;
        }
        const size_t slash = topic.find('/', pos);
        const std::string_view level = topic.substr(
            pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
        const size_t next = slash == std::string_view::npos ? std::string_view::npos : slash + 1;
        if (wildcards_ok) {
            if (auto it = node.children.find("+"); it != node.children.end()) {
                match_level(*it->second, topic, next, true, fn);
            }
        }
        if (auto it = node.children.find(level); it != node.children.end()) {
            match_level(*it->second, topic, next, true, fn);
        }
    }

    Node root_;
    size_t count_ = 0;
};

} // namespace ferrymq::broker
