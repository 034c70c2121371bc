// SPDX-License-Identifier: Apache-2.0
// The malformed-packet corpus: complete frames the codec must reject, each with the exact
// reason code it must give. Defined in test_malformed.cpp; shared with the integration
// tests, which dump it (FERRYMQ_DUMP_MALFORMED) and send every frame over a socket.
#pragma once

#include "mqtt/codec.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ferrymq::test {

// One malformed input. Whole-frame cases are given to `decode(bytes, version)`;
// `header_only` cases are refused by the fixed-header parser alone, and are given to
// `parse_frame_header(bytes, kMalformedMaxPacketSize)` (their body is never present).
struct MalformedCase {
    const char *name;               // spec id ("[MQTT-1.5.4-1]") and what is wrong
    ferrymq::mqtt::Version version; // version the connection negotiated (CONNECT reads its own)
    std::vector<uint8_t> bytes;     // the frame, fixed header included
    ferrymq::mqtt::Reason reason;   // the reason code decode must fail with
    bool header_only;               // true: check with parse_frame_header instead of decode
};

// Maximum packet size the header-only cases are checked against. The oversize cases claim
// a remaining length of at least 2 MiB, so any smaller broker limit refuses them too.
inline constexpr uint32_t kMalformedMaxPacketSize = 1024 * 1024;

// The whole table, built once.
const std::vector<MalformedCase> &malformed_cases();

// Writes the table as JSON lines {"name", "version" (3|4|5), "hex", "reason", "header_only"}
// to `path`. Returns false when the file cannot be written. No doctest dependency.
bool dump_malformed_cases(const std::string &path);

} // namespace ferrymq::test
