// SPDX-License-Identifier: Apache-2.0
// UTF-8 validation, the one implementation for the codec (every UTF-8 Encoded String in a
// packet) and the broker (payloads that declare themselves UTF-8). Pure functions.
#pragma once

#include <string_view>

namespace ferrymq::mqtt {

// Well-formed UTF-8 as the Unicode standard and RFC 3629 define it: no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF. U+0000 is allowed. This is what a
// payload with Payload Format Indicator 1 must be (spec 3.3.2.3.2).
bool well_formed_utf8(std::string_view s);

// A UTF-8 Encoded String (spec 1.5.4): well-formed [MQTT-1.5.4-1] and without U+0000
// [MQTT-1.5.4-2]. Non-characters such as U+FFFF are allowed [MQTT-1.5.4-3].
bool valid_utf8_string(std::string_view s);

} // namespace ferrymq::mqtt
