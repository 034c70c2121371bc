// SPDX-License-Identifier: Apache-2.0
#include "topic_alias_table.hpp"

#include <cstdlib>

namespace ferrymq::broker {

TopicAliasTable::TopicAliasTable(uint16_t capacity) : capacity_(capacity) {
    if (capacity == 0) {
        std::abort(); // the broker creates a table only for a client that accepts aliases
    }
}

TopicAliasTable::Assignment TopicAliasTable::assign(std::string_view topic) {
    if (auto it = by_topic_.find(topic); it != by_topic_.end()) {
        const uint16_t index = it->second;
        unlink(index);
        push_newest(index);
        return {static_cast<uint16_t>(index + 1), true};
    }
    uint16_t index;
    if (oldest_ != kNone && slots_[oldest_].topic == nullptr) {
        index = oldest_; // a forgotten alias
        unlink(index);
    } else if (slots_.size() < capacity_) {
        index = static_cast<uint16_t>(slots_.size());
        slots_.emplace_back();
    } else {
        index = oldest_; // full: the least recently used alias is reassigned
        unlink(index);
        by_topic_.erase(by_topic_.find(*slots_[index].topic));
    }
    const auto it = by_topic_.emplace(std::string(topic), index).first;
    slots_[index].topic = &it->first;
    push_newest(index);
    return {static_cast<uint16_t>(index + 1), false};
}

void TopicAliasTable::forget(uint16_t alias) {
    const size_t index = size_t{alias} - 1;
    if (alias == 0 || index >= slots_.size() || slots_[index].topic == nullptr) {
        return;
    }
    by_topic_.erase(by_topic_.find(*slots_[index].topic));
    slots_[index].topic = nullptr;
    unlink(static_cast<uint16_t>(index));
    push_oldest(static_cast<uint16_t>(index));
}

void TopicAliasTable::unlink(uint16_t index) {
    Slot &s = slots_[index];
    (s.newer == kNone ? newest_ : slots_[s.newer].older) = s.older;
    (s.older == kNone ? oldest_ : slots_[s.older].newer) = s.newer;
    s.newer = s.older = kNone;
}

void TopicAliasTable::push_newest(uint16_t index) {
    Slot &s = slots_[index];
    s.newer = kNone;
    s.older = newest_;
    (newest_ == kNone ? oldest_ : slots_[newest_].newer) = index;
    newest_ = index;
}

void TopicAliasTable::push_oldest(uint16_t index) {
    Slot &s = slots_[index];
    s.older = kNone;
    s.newer = oldest_;
    (oldest_ == kNone ? newest_ : slots_[oldest_].older) = index;
    oldest_ = index;
}

} // namespace ferrymq::broker
