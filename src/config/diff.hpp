// SPDX-License-Identifier: Apache-2.0
// What changes between two configurations: used by a reload (SIGHUP) to decide what to
// touch and to log it, and by "check-config --diff" to show it beforehand. Entries written
// on other lines of the file but otherwise identical are the same.
#pragma once

#include "config/config.hpp"

#include <string>
#include <vector>

namespace ferrymq::config {

struct Change {
    std::string what;           // "bridge aws: changed (reconnects)"
    bool needs_restart = false; // a reload does not apply it
};

// Every difference from `running` to `next`, listeners and bridges one entry each.
std::vector<Change> diff(const Config &running, const Config &next);

// The same definition, whatever lines it was written on.
bool same_listener(const ListenerConfig &a, const ListenerConfig &b);
bool same_bridge(const BridgeConfig &a, const BridgeConfig &b);

} // namespace ferrymq::config
