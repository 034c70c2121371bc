// SPDX-License-Identifier: Apache-2.0
// The MQTT codec: bytes <-> packets for 3.1, 3.1.1 and 5.0. Pure functions: no I/O, no
// logging, no globals, no exceptions. Every rejection carries the reason code the 5.0 spec
// names for it, and a short static description for logs and tests.
#pragma once

#include "packet.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace ferrymq::mqtt {

// Why bytes were rejected: the 5.0 reason code and a static description.
struct Error {
    Reason reason = Reason::malformed_packet;
    const char *what = "";
};

// Either a value or an Error. Small on purpose: the codec never throws.
template <class T> class Result {
  public:
    Result(T value) : value_(std::move(value)) {}
    Result(Error error) : error_(error), ok_(false) {}
    // Constructs the value in place from `args`.
    template <class... Args>
    explicit Result(std::in_place_t, Args &&...args) : value_(std::forward<Args>(args)...) {}
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    T &value() { return value_; }
    const T &value() const { return value_; }
    T &operator*() { return value_; }
    T *operator->() { return &value_; }
    const Error &error() const { return error_; }
    // Turns a result that was being filled in place into a failure.
    void fail(Error error) {
        error_ = error;
        ok_ = false;
    }

  private:
    T value_{};
    Error error_{};
    bool ok_ = true;
};

// Largest remaining length a 4-byte variable byte integer can hold (spec 1.5.5).
inline constexpr uint32_t kMaxRemainingLength = 268'435'455;

// The fixed header of the next packet in a read buffer (spec 2.1). `status` says whether a
// whole fixed header was present and whether the packet is acceptable at all.
struct FrameHeader {
    enum class Status : uint8_t { need_more, ok, error };
    Status status = Status::need_more;
    uint8_t first_byte = 0;        // type << 4 | flags
    uint32_t remaining_length = 0; // bytes after the fixed header
    uint8_t header_length = 0;     // 2..5
    Error error{};                 // set when status == error

    PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
    size_t total_length() const { return size_t{header_length} + remaining_length; }
};

// Reads the fixed header at the start of `bytes`. A packet whose total size exceeds
// `max_packet_size` is refused here with 0x95, before its body is buffered; a remaining
// length of more than 4 bytes is malformed (0x81). Needs at most 5 bytes.
FrameHeader parse_frame_header(std::span<const uint8_t> bytes, uint32_t max_packet_size);

// Decodes exactly one whole packet (fixed header included). `version` is the version the
// connection negotiated; CONNECT ignores it and reads its own protocol level.
Result<Packet> decode(std::span<const uint8_t> frame, Version version);

// Appends the encoding of `packet` for `version` to `out`. Properties are written for 5.0
// only. The packet is trusted to be valid (the broker builds it); encoding is minimal.
void encode(const Packet &packet, Version version, std::vector<uint8_t> &out);

// An outgoing PUBLISH whose topic, payload and properties live elsewhere (in a shared
// broker message), so fan-out encodes each subscriber's copy without building a Publish.
struct PublishRef {
    std::string_view topic;
    std::string_view payload;
    const Properties *properties = nullptr;     // message properties, may be null
    std::span<const uint32_t> subscription_ids; // this subscriber's, added to the properties
    std::optional<uint32_t> message_expiry;     // replaces the property when set (seconds left)
    std::optional<uint16_t> topic_alias;        // outgoing alias, 5.0 only
    uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    uint16_t packet_id = 0;
};

// Appends the encoding of `ref` for `version` to `out`. With `include_payload` false, only
// the bytes before the payload are written (the remaining length still counts it), so the
// caller can send the payload from where it already is.
void encode_publish(const PublishRef &ref, Version version, std::vector<uint8_t> &out,
                    bool include_payload = true);

// The protocol level a CONNECT frame asks for, read without validating the rest, so a
// refusal can be answered in the client's own version. Empty if it cannot be told.
std::optional<Version> peek_connect_version(std::span<const uint8_t> frame);

// Convenience: the encoding as a fresh vector.
std::vector<uint8_t> encode(const Packet &packet, Version version);

// Variable byte integer helpers (spec 1.5.5), shared by the frame parser and tests.
size_t vbi_size(uint32_t value);
void put_vbi(std::vector<uint8_t> &out, uint32_t value);

} // namespace ferrymq::mqtt
