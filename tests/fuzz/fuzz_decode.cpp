// SPDX-License-Identifier: Apache-2.0
// libFuzzer target over the decoder. The first input byte picks the protocol version and
// the frame-header size limit; the rest is a byte stream split into frames as the network
// layer would. Anything that decodes must re-encode and decode to an equal packet.
#include "mqtt/codec.hpp"

#include <cstdio>
#include <cstdlib>

using namespace ferrymq::mqtt;

namespace {

void check_round_trip(const Packet &packet, Version version) {
    // A CONNECT carries its own version; every other packet uses the connection's.
    const Version v =
        std::holds_alternative<Connect>(packet) ? std::get<Connect>(packet).version : version;
    const std::vector<uint8_t> bytes = encode(packet, v);
    const FrameHeader h = parse_frame_header(bytes, kMaxRemainingLength + 5);
    if (h.status != FrameHeader::Status::ok || h.total_length() != bytes.size()) {
        std::fprintf(stderr, "re-encoded frame has an inconsistent header\n");
        std::abort();
    }
    Result<Packet> again = decode(bytes, v);
    if (!again.ok()) {
        std::fprintf(stderr, "re-encoded %s does not decode: %s\n",
                     std::string(packet_type_name(packet_type(packet))).c_str(),
                     again.error().what);
        std::abort();
    }
    if (!(again.value() == packet)) {
        std::fprintf(stderr, "round trip changed a %s\n",
                     std::string(packet_type_name(packet_type(packet))).c_str());
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    static constexpr Version kVersions[] = {Version::v31, Version::v311, Version::v5};
    const Version version = kVersions[(data[0] & 0x0F) % 3];
    const uint32_t max_packet_size = (data[0] & 0x80) ? 64 : kMaxRemainingLength + 5;
    std::span<const uint8_t> rest(data + 1, size - 1);
    while (!rest.empty()) {
        const FrameHeader h = parse_frame_header(rest, max_packet_size);
        if (h.status != FrameHeader::Status::ok || h.total_length() > rest.size()) {
            break;
        }
        Result<Packet> r = decode(rest.first(h.total_length()), version);
        if (r.ok()) {
            check_round_trip(r.value(), version);
        }
        rest = rest.subspan(h.total_length());
    }
    return 0;
}
