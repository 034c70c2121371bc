// SPDX-License-Identifier: Apache-2.0
#include "config/diff.hpp"

namespace ferrymq::config {

namespace {

// Copies without the line numbers, which say where an entry was written, not what it is.
ListenerConfig unlined(ListenerConfig l) {
    l.line = 0;
    if (l.tls) {
        l.tls->line = 0;
    }
    return l;
}

BridgeConfig unlined(BridgeConfig b) {
    b.line = 0;
    if (b.tls) {
        b.tls->line = 0;
    }
    for (ForwardRule &r : b.forward) {
        r.line = 0;
    }
    for (SubscribeRule &r : b.subscribe) {
        r.line = 0;
    }
    return b;
}

std::vector<AclRuleConfig> unlined(std::vector<AclRuleConfig> rules) {
    for (AclRuleConfig &r : rules) {
        r.line = 0;
    }
    return rules;
}

const char *level_name(util::LogLevel level) {
    static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
    return names[static_cast<int>(level)];
}

} // namespace

bool same_listener(const ListenerConfig &a, const ListenerConfig &b) {
    return unlined(a) == unlined(b);
}

bool same_bridge(const BridgeConfig &a, const BridgeConfig &b) {
    return unlined(a) == unlined(b);
}

std::vector<Change> diff(const Config &running, const Config &next) {
    std::vector<Change> out;
    auto note = [&](std::string what, bool restart = false) {
        out.push_back({std::move(what), restart});
    };
    for (const ListenerConfig &n : next.listeners) {
        const std::string address = format_endpoint(n.host, n.port);
        const ListenerConfig *old = nullptr;
        for (const ListenerConfig &r : running.listeners) {
            if (r.host == n.host && r.port == n.port) {
                old = &r;
            }
        }
        if (old == nullptr) {
            note("listener " + address + ": added");
        } else if (!same_listener(*old, n)) {
            note("listener " + address + ": changed (new connections get the new settings)");
        }
    }
    for (const ListenerConfig &r : running.listeners) {
        bool kept = false;
        for (const ListenerConfig &n : next.listeners) {
            kept = kept || (r.host == n.host && r.port == n.port);
        }
        if (!kept) {
            note("listener " + format_endpoint(r.host, r.port) +
                 ": removed (its connected clients stay)");
        }
    }
    for (const BridgeConfig &n : next.bridges) {
        const BridgeConfig *old = nullptr;
        for (const BridgeConfig &r : running.bridges) {
            if (r.name == n.name) {
                old = &r;
            }
        }
        if (old == nullptr) {
            note("bridge " + n.name + ": added");
        } else if (!same_bridge(*old, n)) {
            note("bridge " + n.name + ": changed (reconnects, keeps its queue)");
        }
    }
    for (const BridgeConfig &r : running.bridges) {
        bool kept = false;
        for (const BridgeConfig &n : next.bridges) {
            kept = kept || r.name == n.name;
        }
        if (!kept) {
            note("bridge " + r.name + ": removed (its queue stays on disk for " +
                 std::to_string(next.storage.removed_bridge_retention) + " s)");
        }
    }
    if (unlined(running.acl) != unlined(next.acl)) {
        note("acl: changed (" + std::to_string(running.acl.size()) + " -> " +
             std::to_string(next.acl.size()) + " rules, applied to connected clients too)");
    }
    if (running.log_level != next.log_level) {
        note(std::string("log.level: ") + level_name(running.log_level) + " -> " +
             level_name(next.log_level));
    }
    auto section = [&](bool same, const char *name) {
        if (!same) {
            note(std::string(name) + ": changed");
        }
    };
    section(running.authentication == next.authentication, "authentication");
    section(running.limits == next.limits, "limits");
    section(running.shared_subscriptions == next.shared_subscriptions, "shared_subscriptions");
    section(running.request_response == next.request_response, "request_response");
    section(running.redirect == next.redirect, "redirect");
    section(running.sys == next.sys, "sys");
    section(running.abuse == next.abuse, "abuse");
    StorageConfig storage = next.storage;
    storage.removed_bridge_retention = running.storage.removed_bridge_retention;
    if (running.data_dir != next.data_dir) {
        note("data_dir: " + running.data_dir + " -> " + next.data_dir, true);
    }
    if (!(running.storage == storage)) {
        note("storage: changed", true);
    }
    if (running.storage.removed_bridge_retention != next.storage.removed_bridge_retention) {
        note("storage.removed_bridge_retention: changed");
    }
    if (running.plugins != next.plugins) {
        note("plugins: changed", true);
    }
    return out;
}

} // namespace ferrymq::config
