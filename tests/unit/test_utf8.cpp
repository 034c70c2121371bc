// SPDX-License-Identifier: Apache-2.0
// Tests for src/mqtt/utf8: the one validator behind every UTF-8 string the codec reads and
// the broker's check of payloads marked UTF-8 (Payload Format Indicator 1).
#include "mqtt/utf8.hpp"

#include <doctest/doctest.h>

#include <string>

using ferrymq::mqtt::valid_utf8_string;
using ferrymq::mqtt::well_formed_utf8;

TEST_CASE("utf8: [MQTT-1.5.4-3] well-formed sequences at every boundary are accepted") {
    const std::string cases[] = {
        "",                 // empty
        "plain ascii text", // longer than the 8-byte ASCII skip
        "\x7F",             // U+007F
        "\xC2\x80",         // U+0080
        "\xDF\xBF",         // U+07FF
        "\xE0\xA0\x80",     // U+0800
        "\xED\x9F\xBF",     // U+D7FF, just below the surrogates
        "\xEE\x80\x80",     // U+E000, just above them
        "\xEF\xBF\xBF",     // U+FFFF, a non-character
        "\xF0\x90\x80\x80", // U+10000
        "\xF4\x8F\xBF\xBF", // U+10FFFF
        "temperature \xC2\xB0"
        "C: 21.5 \xF0\x9F\x98\x80 and more ASCII after it",
    };
    for (const std::string &s : cases) {
        INFO("case ", s);
        CHECK(well_formed_utf8(s));
        CHECK(valid_utf8_string(s));
    }
}

TEST_CASE("utf8: malformed sequences are refused by both") {
    const std::string cases[] = {
        "\x80",             // lone continuation byte
        "\xC0\x80",         // overlong U+0000
        "\xC1\xBF",         // overlong
        "\xE0\x9F\xBF",     // overlong three-byte form
        "\xF0\x8F\xBF\xBF", // overlong four-byte form
        "\xED\xA0\x80",     // U+D800 [MQTT-1.5.4-1]
        "\xED\xBF\xBF",     // U+DFFF
        "\xF4\x90\x80\x80", // above U+10FFFF
        "\xF5\x80\x80\x80", // F5 lead
        "\xFF",             // never valid
        "\xC2",             // truncated at the end
        "\xE2\x82",         // truncated at the end
        "abc\xE2\x28\xA1",  // bad continuation
        "0123456789abcdef\x80"
        "0123",                 // after an 8-byte ASCII run
        "01234567\xF0\x9F\x98", // truncated after an ASCII run
    };
    for (const std::string &s : cases) {
        INFO("case ", s);
        CHECK_FALSE(well_formed_utf8(s));
        CHECK_FALSE(valid_utf8_string(s));
    }
}

TEST_CASE("utf8: [MQTT-1.5.4-2] U+0000 is refused in strings, allowed in payloads") {
    const std::string nul("a\0b", 3);
    const std::string long_nul("0123456789\0abcdefgh", 19);
    CHECK(well_formed_utf8(nul));
    CHECK(well_formed_utf8(long_nul));
    CHECK_FALSE(valid_utf8_string(nul));
    CHECK_FALSE(valid_utf8_string(long_nul));
}
