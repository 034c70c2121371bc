// SPDX-License-Identifier: Apache-2.0
// What a connection has to write: encoded bytes, interleaved with references to payloads
// that live in shared broker messages. A large payload fanned out to many subscribers is
// never copied: each connection's write points at the one shared copy and keeps it alive
// until the write completes. Owned by one Connection.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace ferrymq::net {

class OutputBuffer {
  public:
    // Encoders append here.
    std::vector<uint8_t> &bytes() { return bytes_; }

    // Appends `data` by reference; `owner` keeps it alive until clear().
    void append_shared(std::shared_ptr<const void> owner, std::string_view data) {
        segments_.push_back({bytes_.size(), std::move(owner), data});
        shared_bytes_ += data.size();
    }

    size_t size() const { return bytes_.size() + shared_bytes_; }
    bool empty() const { return bytes_.empty() && segments_.empty(); }

    // Calls `f(std::span<const uint8_t>)` for each piece to write, in order.
    template <class F> void for_each(F &&f) const {
        size_t pos = 0;
        for (const Segment &s : segments_) {
            if (s.offset > pos) {
                f(std::span<const uint8_t>(bytes_.data() + pos, s.offset - pos));
            }
            f(std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(s.data.data()),
                                       s.data.size()));
            pos = s.offset;
        }
        if (bytes_.size() > pos) {
            f(std::span<const uint8_t>(bytes_.data() + pos, bytes_.size() - pos));
        }
    }

    // Fills `bufs` with the buffers to write, in order.
    void to_bufs(std::vector<uv_buf_t> &bufs) const {
        bufs.clear();
        for_each([&](std::span<const uint8_t> piece) {
            bufs.push_back(
                uv_buf_init(const_cast<char *>(reinterpret_cast<const char *>(piece.data())),
                            static_cast<unsigned>(piece.size())));
        });
    }

    // Empties the buffer, releasing shared payloads; keeps a small allocation for reuse.
    void clear(size_t keep_capacity) {
        bytes_.clear();
        if (bytes_.capacity() > keep_capacity) {
            bytes_.shrink_to_fit();
        }
        segments_.clear();
        shared_bytes_ = 0;
    }

    void swap(OutputBuffer &other) noexcept {
        bytes_.swap(other.bytes_);
        segments_.swap(other.segments_);
        std::swap(shared_bytes_, other.shared_bytes_);
    }

  private:
    struct Segment {
        size_t offset; // position in bytes_ the payload follows
        std::shared_ptr<const void> owner;
        std::string_view data;
    };

    std::vector<uint8_t> bytes_;
    std::vector<Segment> segments_;
    size_t shared_bytes_ = 0;
};

} // namespace ferrymq::net
