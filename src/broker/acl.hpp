// SPDX-License-Identifier: Apache-2.0
// Access control: who may publish to and receive from which topics. The configured rules
// (AclRules) are shared by every client; at CONNECT each client gets its own ClientAcl with
// only the rules that apply to it, "%u" and "%c" already replaced and every filter split into
// levels, so a check per PUBLISH, SUBSCRIBE or delivery walks a few levels and builds no
// strings. Owned by the Broker (AclRules in BrokerSettings, ClientAcl per connection).
//
// Semantics: the first rule that matches decides (allow or deny); a topic no rule matches is
// denied. "subscribe" access also governs delivery: a message is written to a client only if
// its topic is readable for that client, whichever subscription matched it (a retained
// message, a will, a message queued before the rules changed). A SUBSCRIBE is granted when
// the first rule whose filter covers the whole subscription filter allows it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferrymq::broker {

// Bits of AclRule::access.
inline constexpr uint8_t kAclPublish = 1;
inline constexpr uint8_t kAclSubscribe = 2;

struct AclRule {
    std::optional<std::string> username;  // only this (authenticated) user; absent: anyone
    std::optional<std::string> client_id; // only this client id; absent: anyone
    std::string topic;                    // filter; "%u" username, "%c" client id
    uint8_t access = kAclPublish | kAclSubscribe;
    bool allow = true;
};

// One client's rules, compiled at CONNECT; lives as long as its connection.
class ClientAcl {
  public:
    // May the client publish on `topic`?
    bool may_publish(std::string_view topic) const { return decide(topic, kAclPublish); }
    // May the client subscribe to `filter` (a shared subscription's filter without the
    // "$share/GROUP/" part)? The first subscribe rule whose filter covers every topic the
    // filter can match decides.
    bool may_subscribe(std::string_view filter) const;
    // May a message on `topic` be written to the client (read access)?
    bool may_receive(std::string_view topic) const { return decide(topic, kAclSubscribe); }
    size_t rule_count() const { return rules_.size(); }

  private:
    friend class AclRules;
    struct Compiled {
        std::vector<std::string> levels; // the filter split at '/'
        uint8_t access = 0;
        bool allow = false;
    };
    bool decide(std::string_view topic, uint8_t access) const;

    std::vector<Compiled> rules_; // the rules that apply to this client, in order
};

// The configured rules, in order. Empty: no access control at all.
class AclRules {
  public:
    AclRules() = default;
    explicit AclRules(std::vector<AclRule> rules) : rules_(std::move(rules)) {}
    bool empty() const { return rules_.empty(); }
    size_t size() const { return rules_.size(); }
    // The rules for one client. `username` is the authenticated user name (absent for an
    // anonymous client or one whose name nobody checked): rules naming a user, or using
    // "%u", do not apply to it. A rule whose "%u" or "%c" value holds '/', '+' or '#' does
    // not apply either, so no name can widen a pattern beyond its own level.
    ClientAcl for_client(const std::optional<std::string> &username,
                         std::string_view client_id) const;

  private:
    std::vector<AclRule> rules_;
};

// Topic name / filter matching over pre-split filter levels (spec 4.7), exposed for tests.
bool acl_filter_matches(const std::vector<std::string> &levels, std::string_view topic);
// Whether every topic `filter` matches is matched by `levels` as well.
bool acl_filter_covers(const std::vector<std::string> &levels, std::string_view filter);

} // namespace ferrymq::broker
