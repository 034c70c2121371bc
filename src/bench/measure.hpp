// SPDX-License-Identifier: Apache-2.0
// What the load generator measures besides counting messages: a latency histogram, the
// broker's CPU time, resident memory and storage writes read from /proc, and the open-file
// limit that 10,000 client sockets need. Plain values and free functions; the only I/O is
// reading /proc.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace ferrymq::bench {

// A log-linear histogram of durations in nanoseconds: exact below 128 ns, then 64 buckets
// per power of two (under 1.6% error), up to 2^40 ns. Fixed size, so recording a sample
// never allocates, which matters at millions of samples per second.
class Histogram {
  public:
    void record(uint64_t ns);
    uint64_t count() const { return count_; }
    uint64_t max() const { return max_; }
    // The smallest recorded value v such that a fraction `q` (0..1) of samples is <= v,
    // returned as the middle of its bucket; 0 when empty.
    uint64_t percentile(double q) const;

  private:
    static constexpr unsigned kSubBits = 7; // 128 exact values before the first shift
    static constexpr unsigned kHalf = 1u << (kSubBits - 1);
    static constexpr unsigned kBuckets = 36 * kHalf; // shifts 0..34 cover values below 2^41
    static size_t index_of(uint64_t ns);
    static uint64_t middle_of(size_t index);

    std::array<uint64_t, kBuckets> counts_{};
    uint64_t count_ = 0;
    uint64_t max_ = 0;
};

// CPU seconds a process has used so far, split as the kernel accounts them. The split
// matters on loopback: the system part includes TCP delivery into the receiver's socket,
// which every broker pays per write() and no broker can make cheaper except by batching.
struct CpuTimes {
    double user = 0;   // seconds
    double system = 0; // seconds
    double total() const { return user + system; }
    CpuTimes operator-(const CpuTimes &o) const { return {user - o.user, system - o.system}; }
};

// The CPU times of process `pid` from /proc/PID/stat; empty if the process is gone or the
// file cannot be parsed.
std::optional<CpuTimes> process_cpu_times(int pid);

// Resident set size of a process in kilobytes (VmRSS in /proc/PID/status); empty if unknown.
std::optional<uint64_t> process_rss_kb(int pid);

// Bytes process `pid` has caused to be written to storage (write_bytes in /proc/PID/io);
// empty if the process is gone or the file cannot be read (another user's process). The
// kernel counts a page when the process dirties it in the page cache, so rewriting a page
// that is still waiting for writeback costs nothing more, while an fsync'ed page that is
// written again counts again: close to what the device receives, in 4 KiB units.
std::optional<uint64_t> process_write_bytes(int pid);

// CPU seconds this process has used (getrusage), to show when the generator is the limit.
double own_cpu_seconds();

// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft limit, so that a
// scenario can tell up front whether its sockets fit. `error` receives strerror on failure.
uint64_t raise_open_file_limit(std::string &error);

} // namespace ferrymq::bench
