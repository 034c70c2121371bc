// SPDX-License-Identifier: Apache-2.0
// The Topic Aliases the broker assigns to topics it sends one MQTT 5.0 client (spec
// 3.3.2.3.4). Aliases map in one direction per connection and die with it [MQTT-3.3.2-7], so
// the table is owned by the broker's per-connection state, created on the first PUBLISH sent
// to a client that accepts aliases and destroyed when the connection closes. When every
// alias is taken, the least recently used one is reassigned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferrymq::broker {

class TopicAliasTable {
  public:
    // Aliases 1..`capacity` may be used; `capacity` is at least 1.
    explicit TopicAliasTable(uint16_t capacity);
    TopicAliasTable(const TopicAliasTable &) = delete;
    TopicAliasTable &operator=(const TopicAliasTable &) = delete;

    // What to put in one outgoing PUBLISH.
    struct Assignment {
        uint16_t alias = 0; // 1..capacity
        bool known = false; // the client already maps `alias` to the topic: send it empty
    };

    // The alias for `topic`, which becomes the most recently used. A topic not in the table
    // takes a free alias or, when all are taken, the least recently used topic's alias; the
    // PUBLISH then carries the topic and the alias together, which (re)defines it.
    Assignment assign(std::string_view topic);

    // Undoes a new assignment whose PUBLISH was never sent (too large for the client): the
    // topic goes out in full the next time, and the alias is the first to be reused.
    void forget(uint16_t alias);

    uint16_t capacity() const { return capacity_; }
    size_t size() const { return by_topic_.size(); } // aliases in use

  private:
    static constexpr uint16_t kNone = 0xFFFF; // no slot; capacity <= 65535 keeps it unused

    // A transparent hash, so a string_view finds a std::string key without a copy.
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };

    // Alias `index + 1`, in a doubly linked list from the most to the least recently used.
    struct Slot {
        const std::string *topic = nullptr; // key in by_topic_ (node-stable); null when free
        uint16_t newer = kNone;
        uint16_t older = kNone;
    };

    void unlink(uint16_t index);
    void push_newest(uint16_t index);
    void push_oldest(uint16_t index);

    std::unordered_map<std::string, uint16_t, Hash, std::equal_to<>> by_topic_; // -> slot index
    std::vector<Slot> slots_; // grows up to capacity_, one per alias ever used
    uint16_t newest_ = kNone;
    uint16_t oldest_ = kNone;
    uint16_t capacity_;
};

} // namespace ferrymq::broker
