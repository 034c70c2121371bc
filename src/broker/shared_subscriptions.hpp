// SPDX-License-Identifier: Apache-2.0
// Shared subscriptions (spec 4.8.2): "$share/{group}/{filter}" makes a session a member of
// the group (group, filter), and each message matching the filter goes to exactly one
// member, chosen by the configured strategy. Groups are independent of each other and of
// ordinary subscriptions: a session gets one copy through its ordinary subscriptions (the
// SubscriptionTree's, merged) and one more from each group that chose it.
// Owned by the Broker for the life of the loop. Members name their sessions by pointer;
// the Broker removes a session's memberships before the session is destroyed, as it does
// for the SubscriptionTree. It chooses members and does no delivery itself.
#pragma once

#include "message.hpp"
#include "mqtt/topic.hpp"
#include "session.hpp"
#include "subscription_tree.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferrymq::broker {

// How a group picks the member for one message. Every strategy chooses among the members
// whose client is connected, and among all members only when none is.
enum class ShareStrategy {
    round_robin, // members in turn, in the order they joined
    random,      // uniformly at random
    sticky,      // one member until it leaves or goes offline, then another at random
    hash_client, // by the publisher's client id: one publisher's messages, one member
    hash_topic,  // by the topic name: one topic's messages, one member
};

// The member chosen for one message: where it goes and with which subscription options.
struct SharedChoice {
    Session *session = nullptr;
    const SubscriptionOptions *options = nullptr; // valid until the group next changes
    uint32_t group_id = 0;                        // for Delivery::shared_group
};

class SharedSubscriptions {
  public:
    // `seed` drives the random and sticky strategies, so tests can repeat a run.
    SharedSubscriptions(ShareStrategy strategy, uint64_t seed);

    // Adds `session` to the group (group, filter), or replaces its options when it is a
    // member already (it keeps its place in the rotation). Returns true when it replaced.
    bool add(std::string_view group, std::string_view filter, Session *session,
             const SubscriptionOptions &options);

    // Removes `session` from the group (group, filter); an emptied group is deleted.
    // Returns whether it was a member.
    bool remove(std::string_view group, std::string_view filter, Session *session);

    // Chooses one member of every group whose filter matches `message`'s topic and calls
    // fn(const SharedChoice&) for each. A group whose members are all offline still
    // chooses one (the Broker queues QoS 1/2 for it and drops QoS 0).
    template <class Fn> void match(const Message &message, Fn &&fn) {
        if (by_filter_.empty()) {
            return;
        }
        for (auto &[filter, groups] : by_filter_) {
            if (!mqtt::topic_matches(filter, message.topic)) {
                continue;
            }
            for (Group *g : groups) {
                const SharedChoice choice = choose(*g, message, nullptr, false);
                if (choice.session != nullptr) {
                    fn(choice);
                }
            }
        }
    }

    // Chooses a member of group `group_id` other than `leaving` for a message that member
    // will not receive (spec 4.8.2: the Server may send it to another member). With
    // `online_only`, only a member whose client is connected qualifies. Returns an empty
    // choice when the group is gone or has no such member.
    SharedChoice choose_other(uint32_t group_id, const Message &message, const Session *leaving,
                              bool online_only);

    // Whether a group whose filter matches `topic` has a member with a persistent session
    // that gets QoS 1/2: such a message would be stored.
    bool any_persistent_match(std::string_view topic) const;

    // The group's "group/filter" key, what the store keeps with a message the group chose;
    // empty when the group is gone.
    std::string_view key_of(uint32_t group_id) const;
    // The id of the group with that key, 0 when there is none.
    uint32_t id_of(const std::string &key) const;

    bool empty() const { return by_key_.empty(); }
    size_t group_count() const { return by_key_.size(); }
    // Members of the group (group, filter); 0 when there is no such group.
    size_t member_count(std::string_view group, std::string_view filter) const;

  private:
    struct Member {
        Session *session;
        SubscriptionOptions options;
        uint64_t id_hash; // of the client id, for the hash strategies
    };
    struct Group {
        uint32_t id;
        std::string key; // "group/filter"
        std::string filter;
        std::vector<Member> members; // in the order they joined
        size_t next = 0;             // round_robin: where the next search starts
        Session *sticky = nullptr;   // sticky: the current member, if still one
    };

    SharedChoice choose(Group &g, const Message &message, const Session *exclude, bool online_only);
    static std::string key(std::string_view group, std::string_view filter);

    ShareStrategy strategy_;
    std::mt19937_64 rng_;
    // Groups by "group/filter": a group name has no '/', so the key is unambiguous.
    std::unordered_map<std::string, std::unique_ptr<Group>> by_key_;
    std::unordered_map<uint32_t, Group *> by_id_;
    // Groups by filter, so a publish tests each distinct filter once. Publishes scan
    // every distinct shared filter: cheap for the tens of groups a broker typically has.
    std::map<std::string, std::vector<Group *>> by_filter_;
    uint32_t last_id_ = 0;
    std::vector<size_t> candidates_; // scratch for choose()
};

} // namespace ferrymq::broker
