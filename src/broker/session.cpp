// SPDX-License-Identifier: Apache-2.0
#include "session.hpp"

namespace ferrymq::broker {

uint16_t Session::next_packet_id() {
    // Inflight is bounded far below 65535, so this finds a free id quickly.
    do {
        last_packet_id_ = static_cast<uint16_t>(last_packet_id_ + 1);
        if (last_packet_id_ == 0) {
            last_packet_id_ = 1;
        }
    } while (inflight.contains(last_packet_id_));
    return last_packet_id_;
}

} // namespace ferrymq::broker
