// SPDX-License-Identifier: Apache-2.0
// Micro-benchmark (not a test): ns per packet to decode and encode a QoS 1 PUBLISH with a
// 64-byte payload, in MQTT 3.1.1 and in 5.0 with two user properties.
// Run: build/tests/bench_codec [iterations]
#include "mqtt/codec.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace ferrymq::mqtt;

namespace {

// Keeps the optimiser from discarding a computed value.
template <class T> void keep(T const &value) {
    asm volatile("" : : "r,m"(value) : "memory");
}

double ns_per_op(long iterations, auto &&fn) {
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < iterations; ++i) {
        fn();
    }
    const auto end = std::chrono::steady_clock::now();
    return std::chrono::duration<double, std::nano>(end - start).count() / double(iterations);
}

void run(const char *label, const Publish &publish, Version version, long iterations) {
    const std::vector<uint8_t> frame = encode(Packet{publish}, version);
    std::vector<uint8_t> out;
    out.reserve(256);
    // Warm up caches and the allocator before timing.
    ns_per_op(iterations / 10 + 1, [&] { keep(decode(frame, version).ok()); });
    const double dec = ns_per_op(iterations, [&] {
        Result<Packet> r = decode(frame, version);
        if (!r.ok()) {
            std::abort();
        }
        keep(r.value());
    });
    const Packet packet{publish};
    const double enc = ns_per_op(iterations, [&] {
        out.clear();
        encode(packet, version, out);
        keep(out.data());
    });
    std::printf("%-34s frame %3zu bytes  decode %7.1f ns/packet  encode %7.1f ns/packet\n", label,
                frame.size(), dec, enc);
}

} // namespace

int main(int argc, char **argv) {
    const long iterations = argc > 1 ? std::atol(argv[1]) : 2'000'000;
    Publish p;
    p.qos = 1;
    p.packet_id = 4242;
    p.topic = "site42/sensors/temp";
    p.payload = std::string(64, 'x');
    run("PUBLISH QoS 1, 64 B, MQTT 3.1.1", p, Version::v311, iterations);
    p.properties.user_properties = {{"gateway", "gw-0042"}, {"unit", "celsius"}};
    run("PUBLISH QoS 1, 64 B, MQTT 5.0 +2 UP", p, Version::v5, iterations);
    return 0;
}
