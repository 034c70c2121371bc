// SPDX-License-Identifier: Apache-2.0
// Writes the seed corpus for fuzz_decode: one file per packet type and version, each a
// version byte followed by an encoded packet. Run: build/tests/make_seeds tests/fuzz/corpus
#include "mqtt/codec.hpp"

#include <cstdio>
#include <string>

using namespace ferrymq::mqtt;

namespace {

Properties message_properties() {
    Properties p;
    p.payload_format_indicator = 1;
    p.message_expiry_interval = 60;
    p.content_type = "application/json";
    p.response_topic = "reply/gw1";
    p.correlation_data = std::string("\x01\x02\x03", 3);
    p.user_properties = {{"k", "v"}, {"k", "v2"}};
    return p;
}

std::vector<Packet> samples(Version v) {
    const bool v5 = v == Version::v5;
    std::vector<Packet> out;
    Connect c;
    c.version = v;
    c.clean_start = true;
    c.keep_alive = 30;
    c.client_id = "sensor-1";
    c.username = "user";
    c.password = "secret";
    Will w;
    w.topic = "status/sensor-1";
    w.payload = "offline";
    w.qos = 1;
    w.retain = true;
    if (v5) {
        w.properties = message_properties();
        w.properties.will_delay_interval = 5;
        c.properties.session_expiry_interval = 3600;
        c.properties.receive_maximum = 20;
        c.properties.maximum_packet_size = 65536;
        c.properties.topic_alias_maximum = 10;
        c.properties.request_response_information = 1;
        c.properties.authentication_method = "SCRAM-SHA-256";
        c.properties.authentication_data = "n,,n=user,r=abc";
    }
    c.will = w;
    out.emplace_back(c);
    Connack ca;
    ca.session_present = true;
    if (v5) {
        ca.properties.assigned_client_identifier = "auto-1";
        ca.properties.maximum_qos = 1;
        ca.properties.topic_alias_maximum = 10;
        ca.properties.server_keep_alive = 60;
    }
    out.emplace_back(ca);
    Publish p;
    p.qos = 1;
    p.packet_id = 7;
    p.topic = "sensors/1/temp";
    p.payload = "21.5";
    if (v5) {
        p.properties = message_properties();
        p.properties.topic_alias = 3;
        p.properties.subscription_identifiers = {1, 300};
    }
    out.emplace_back(p);
    Puback pa;
    pa.packet_id = 7;
    if (v5) {
        pa.reason = Reason::no_matching_subscribers;
        pa.properties.reason_string = "nobody";
    }
    out.emplace_back(pa);
    out.emplace_back(Pubrec{{8, Reason::success, {}}});
    out.emplace_back(Pubrel{{8, Reason::success, {}}});
    out.emplace_back(Pubcomp{{8, Reason::success, {}}});
    Subscribe s;
    s.packet_id = 9;
    s.subscriptions = {{"sensors/+/temp", 1, false, false, RetainHandling::send},
                       {"$share/g/alarms/#", 2, false, v5, RetainHandling::send}};
    if (v5) {
        s.subscriptions[0].no_local = true;
        s.subscriptions[0].retain_handling = RetainHandling::send_if_new;
        s.properties.subscription_identifiers = {42};
    }
    out.emplace_back(s);
    out.emplace_back(Suback{9, {}, {Reason::granted_qos1, Reason::unspecified_error}});
    out.emplace_back(Unsubscribe{10, {}, {"sensors/+/temp"}});
    Unsuback ua{10, {}, {}};
    if (v5) {
        ua.reasons = {Reason::success};
    }
    out.emplace_back(ua);
    out.emplace_back(Pingreq{});
    out.emplace_back(Pingresp{});
    Disconnect d;
    if (v5) {
        d.reason = Reason::disconnect_with_will;
        d.properties.session_expiry_interval = 0;
    }
    out.emplace_back(d);
    if (v5) {
        Auth a;
        a.reason = Reason::continue_authentication;
        a.properties.authentication_method = "SCRAM-SHA-256";
        a.properties.authentication_data = "r=abc,s=salt,i=4096";
        out.emplace_back(a);
    }
    return out;
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    const std::pair<Version, uint8_t> versions[] = {
        {Version::v31, 0}, {Version::v311, 1}, {Version::v5, 2}};
    for (const auto &[version, selector] : versions) {
        std::vector<uint8_t> stream{selector};
        for (const Packet &packet : samples(version)) {
            std::vector<uint8_t> bytes{selector};
            encode(packet, version, bytes);
            encode(packet, version, stream);
            const std::string name = dir + "/v" + std::to_string(int(version)) + "_" +
                                     std::string(packet_type_name(packet_type(packet)));
            FILE *f = std::fopen(name.c_str(), "wb");
            if (f == nullptr) {
                std::perror(name.c_str());
                return 1;
            }
            std::fwrite(bytes.data(), 1, bytes.size(), f);
            std::fclose(f);
        }
        const std::string name = dir + "/v" + std::to_string(int(version)) + "_stream";
        FILE *f = std::fopen(name.c_str(), "wb");
        if (f == nullptr) {
            std::perror(name.c_str());
            return 1;
        }
        std::fwrite(stream.data(), 1, stream.size(), f);
        std::fclose(f);
    }
    return 0;
}
