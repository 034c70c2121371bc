// SPDX-License-Identifier: Apache-2.0
#include "subscription_tree.hpp"

#include <algorithm>

namespace ferrymq::broker {

bool SubscriptionTree::add(std::string_view filter, Session *session,
                           const SubscriptionOptions &options) {
    Node *node = &root_;
    size_t pos = 0;
    while (true) {
        const size_t slash = filter.find('/', pos);
        const std::string level(filter.substr(
            pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
        auto &child = node->children[level];
        if (!child) {
            child = std::make_unique<Node>();
        }
        node = child.get();
        if (slash == std::string_view::npos) {
            break;
        }
        pos = slash + 1;
    }
    for (auto &entry : node->subscribers) {
        if (entry.first == session) {
            entry.second = options;
            return true;
        }
    }
    node->subscribers.emplace_back(session, options);
    ++count_;
    return false;
}

bool SubscriptionTree::remove(std::string_view filter, Session *session) {
    // Walk down remembering the path, so emptied nodes can be pruned on the way back.
    std::vector<std::pair<Node *, std::string>> path;
    Node *node = &root_;
    size_t pos = 0;
    while (true) {
        const size_t slash = filter.find('/', pos);
        std::string level(filter.substr(
            pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
        auto it = node->children.find(level);
        if (it == node->children.end()) {
            return false;
        }
        path.emplace_back(node, std::move(level));
        node = it->second.get();
        if (slash == std::string_view::npos) {
            break;
        }
        pos = slash + 1;
    }
    auto &subs = node->subscribers;
    auto it = std::find_if(subs.begin(), subs.end(),
                           [session](const auto &e) { return e.first == session; });
    if (it == subs.end()) {
        return false;
    }
    subs.erase(it);
    --count_;
    for (auto p = path.rbegin(); p != path.rend(); ++p) {
        auto child = p->first->children.find(p->second);
        if (!child->second->empty()) {
            break;
        }
        p->first->children.erase(child);
    }
    return true;
}

} // namespace ferrymq::broker
