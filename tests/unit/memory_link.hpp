// SPDX-License-Identifier: Apache-2.0
// An in-memory broker::Link for unit tests of the broker core: it decodes everything the
// broker sends (so the real encoder is exercised too) and keeps the packets for the test.
#pragma once

#include "broker/link.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ferrymq::test {

class MemoryLink final : public broker::Link {
  public:
    explicit MemoryLink(uint64_t id) : id_(id) {}
    uint64_t id() const override { return id_; }
    const broker::ListenerPolicy &policy() const override { return policy_; }
    void send(const mqtt::Packet &packet) override { record(mqtt::encode(packet, version_)); }
    bool send_publish(const mqtt::PublishRef &publish, const broker::MessagePtr &) override {
        std::vector<uint8_t> bytes;
        mqtt::encode_publish(publish, version_, bytes);
        if (bytes.size() > max_outgoing_) {
            return false;
        }
        record(bytes);
        return true;
    }
    size_t pending_bytes() const override { return pending_; }
    void set_version(mqtt::Version v) override { version_ = v; }
    void set_keep_alive(uint16_t seconds) override { keep_alive_ = seconds; }
    void set_max_outgoing_packet(uint32_t bytes) override { max_outgoing_ = bytes; }
    void close() override { closed_ = true; }

    // Packets received so far, removed from the link.
    std::vector<mqtt::Packet> take() { return std::exchange(received_, {}); }
    // Takes the first packet received, which must be a `P`, and keeps the rest.
    template <class P> P take_first() {
        REQUIRE(!received_.empty());
        REQUIRE(std::holds_alternative<P>(received_.front()));
        P first = std::get<P>(std::move(received_.front()));
        received_.erase(received_.begin());
        return first;
    }
    // The PUBLISHes among the packets received so far (all of them are removed).
    std::vector<mqtt::Publish> take_publishes() {
        std::vector<mqtt::Publish> out;
        for (mqtt::Packet &p : take()) {
            if (auto *pub = std::get_if<mqtt::Publish>(&p)) {
                out.push_back(std::move(*pub));
            }
        }
        return out;
    }
    std::vector<std::string> payloads() {
        std::vector<std::string> out;
        for (const mqtt::Publish &p : take_publishes()) {
            out.push_back(p.payload);
        }
        return out;
    }
    void put_back(std::vector<mqtt::Packet> packets) { received_ = std::move(packets); }
    bool closed() const { return closed_; }
    uint16_t keep_alive() const { return keep_alive_; }

    broker::ListenerPolicy policy_; // what the test's listener allows
    size_t pending_ = 0;            // what pending_bytes() reports

  private:
    void record(const std::vector<uint8_t> &bytes) {
        mqtt::Result<mqtt::Packet> r = mqtt::decode(bytes, version_);
        REQUIRE_MESSAGE(r.ok(), "broker sent undecodable bytes: " << r.error().what);
        received_.push_back(std::move(r.value()));
    }
    uint64_t id_;
    mqtt::Version version_ = mqtt::Version::v311;
    uint32_t max_outgoing_ = UINT32_MAX;
    uint16_t keep_alive_ = 0;
    bool closed_ = false;
    std::vector<mqtt::Packet> received_;
};

} // namespace ferrymq::test
