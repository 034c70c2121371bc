// SPDX-License-Identifier: Apache-2.0
#include "utf8.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ferrymq::mqtt {
namespace {

// The shared scanner; `allow_nul` is what tells a payload from an MQTT string.
bool scan_utf8(std::string_view s, bool allow_nul) {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        if (allow_nul) {
            // Payloads can be long and are mostly ASCII: skip eight ASCII bytes at a time.
            while (n - i >= 8) {
                uint64_t word;
                std::memcpy(&word, p + i, sizeof word);
                if ((word & 0x8080808080808080ull) != 0) {
                    break;
                }
                i += 8;
            }
            if (i == n) {
                break;
            }
        }
        const unsigned char c = p[i];
        if (c < 0x80) {
            if (c == 0 && !allow_nul) {
                return false;
            }
            ++i;
            continue;
        }
        size_t extra = 0;
        unsigned char lo = 0x80;
        unsigned char hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            if (c == 0xE0) {
                lo = 0xA0; // overlong
            } else if (c == 0xED) {
                hi = 0x9F; // U+D800..U+DFFF are surrogates
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            if (c == 0xF0) {
                lo = 0x90; // overlong
            } else if (c == 0xF4) {
                hi = 0x8F; // above U+10FFFF
            }
        } else {
            return false; // continuation byte, overlong lead (C0, C1) or F5..FF
        }
        if (n - i <= extra) {
            return false;
        }
        if (p[i + 1] < lo || p[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= extra; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += extra + 1;
    }
    return true;
}

} // namespace

bool well_formed_utf8(std::string_view s) {
    return scan_utf8(s, true);
}

bool valid_utf8_string(std::string_view s) {
    return scan_utf8(s, false);
}

} // namespace ferrymq::mqtt
