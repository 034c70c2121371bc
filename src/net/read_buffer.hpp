// SPDX-License-Identifier: Apache-2.0
// Where a stream's incoming bytes wait to be cut into MQTT frames. While nothing is pending,
// reads land in one buffer shared by every stream on the loop (libuv reads one socket at a
// time), so an idle connection holds no read memory; only bytes left over (a partial
// frame, or frames a paused stream has not taken yet) are copied into the stream's own
// buffer. Owned by one stream: a server Connection or a bench Client.
#pragma once

#include <uv.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace ferrymq::net {

class ReadBuffer {
  public:
    // Size of the shared buffer and of each growth step of the stream's own buffer.
    static constexpr size_t kChunk = 64 * 1024;

    // Answers libuv's allocation callback: the shared buffer when nothing is pending,
    // else room after the pending bytes.
    void alloc(std::vector<uint8_t> &shared, uv_buf_t *buf) {
        if (end_ == 0) {
            buf->base = reinterpret_cast<char *>(shared.data());
            buf->len = shared.size();
            return;
        }
        if (own_.size() - end_ < kChunk) {
            own_.resize(end_ + kChunk);
        }
        buf->base = reinterpret_cast<char *>(own_.data() + end_);
        buf->len = kChunk;
    }

    // Takes `nread` bytes libuv read into the buffer alloc() gave. `consume(span)` takes
    // whole frames from the front and returns how many bytes it used; the rest is kept.
    template <class Consume> void on_read(const uv_buf_t *buf, size_t nread, Consume &&consume) {
        const auto *base = reinterpret_cast<const uint8_t *>(buf->base);
        if (end_ == 0) {
            push(std::span<const uint8_t>(base, nread), consume);
            return;
        }
        end_ += nread;
        drop(consume(std::span<const uint8_t>(own_.data(), end_)));
    }

    // Takes bytes that arrived elsewhere, like on_read(): a TLS stream reads ciphertext into
    // the buffer alloc() gave, lets its TlsSession copy it (receive()), and pushes the
    // plaintext here, so the ciphertext is never needed again when this moves bytes.
    template <class Consume> void push(std::span<const uint8_t> bytes, Consume &&consume) {
        if (end_ == 0) {
            const size_t used = consume(bytes);
            if (used < bytes.size()) {
                own_.assign(bytes.begin() + static_cast<ptrdiff_t>(used), bytes.end());
                end_ = own_.size();
            }
            return;
        }
        own_.resize(end_);
        own_.insert(own_.end(), bytes.begin(), bytes.end());
        end_ = own_.size();
        drop(consume(std::span<const uint8_t>(own_.data(), end_)));
    }

    // Offers the kept bytes again, for a stream that resumes after a pause.
    template <class Consume> void replay(Consume &&consume) {
        if (end_ != 0) {
            drop(consume(std::span<const uint8_t>(own_.data(), end_)));
        }
    }

    // Makes room for a frame of `total` bytes known to be coming.
    void reserve(size_t total) { own_.reserve(total); }

  private:
    void drop(size_t used) {
        if (used >= end_) {
            end_ = 0;
            own_.clear();
            own_.shrink_to_fit();
        } else if (used > 0) {
            std::memmove(own_.data(), own_.data() + used, end_ - used);
            end_ -= used;
        }
    }

    std::vector<uint8_t> own_; // [0, end_) pending bytes
    size_t end_ = 0;
};

} // namespace ferrymq::net
