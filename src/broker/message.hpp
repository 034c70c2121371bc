// SPDX-License-Identifier: Apache-2.0
// The unit the broker routes: one immutable message shared by every subscriber it reaches,
// by every session queue that holds it and by the retained store. Per-subscriber details
// (packet id, QoS, DUP, subscription identifiers) are added only when it is encoded.
#pragma once

#include "mqtt/properties.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace ferrymq::broker {

struct Message {
    std::string topic;
    std::string payload;          // binary
    mqtt::Properties properties;  // message properties only: no alias, no subscription ids
    uint8_t qos = 0;              // QoS it was published with
    bool retain = false;          // retain flag as published
    uint64_t expiry_ms = 0;       // loop-clock deadline in ms, 0 = never expires
    int64_t created_ms = 0;       // loop-clock ms when the broker received it (negative:
                                  // before this run's clock began), for queue max_age
    std::string origin_client_id; // publisher, for No Local
};

using MessagePtr = std::shared_ptr<const Message>;

} // namespace ferrymq::broker
