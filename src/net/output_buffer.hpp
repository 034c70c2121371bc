// SPDX-License-Identifier: Apache-2.0
// What a connection has to write: encoded bytes, interleaved with references to payloads
// that live in shared broker messages. A large payload fanned out to many subscribers is
// never copied: each connection's write points at the one shared copy and keeps it alive
// until the write completes. Owned by one Connection.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
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

    // Fills `bufs` with the buffers to write, in order.
    void to_bufs(std::vector<uv_buf_t> &bufs) {
        bufs.clear();
        size_t pos = 0;
        for (const Segment &s : segments_) {
            if (s.offset > pos) {
                bufs.push_back(slice(pos, s.offset));
            }
            bufs.push_back(uv_buf_init(const_cast<char *>(s.data.data()),
                                       static_cast<unsigned>(s.data.size())));
            pos = s.offset;
        }
        if (bytes_.size() > pos) {
            bufs.push_back(slice(pos, bytes_.size()));
        }
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

    uv_buf_t slice(size_t from, size_t to) {
        return uv_buf_init(reinterpret_cast<char *>(bytes_.data() + from),
                           static_cast<unsigned>(to - from));
    }

    std::vector<uint8_t> bytes_;
    std::vector<Segment> segments_;
    size_t shared_bytes_ = 0;
};

} // namespace ferrymq::net
