// SPDX-License-Identifier: Apache-2.0
#include "bench/measure.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ferrymq::bench {

size_t Histogram::index_of(uint64_t ns) {
    if (ns < (uint64_t{1} << kSubBits)) {
        return size_t(ns);
    }
    // The top kSubBits bits of the value select the bucket inside its power of two.
    const unsigned exponent = 63 - unsigned(std::countl_zero(ns));
    const unsigned shift = exponent - (kSubBits - 1);
    const size_t index = size_t(shift) * kHalf + size_t(ns >> shift);
    return index < kBuckets ? index : kBuckets - 1;
}

uint64_t Histogram::middle_of(size_t index) {
    if (index < (size_t{1} << kSubBits)) {
        return index;
    }
    const unsigned shift = unsigned(index / kHalf) - 1;
    const uint64_t mantissa = index - size_t(shift) * kHalf;
    const uint64_t low = mantissa << shift;
    return low + ((uint64_t{1} << shift) - 1) / 2;
}

void Histogram::record(uint64_t ns) {
    ++counts_[index_of(ns)];
    ++count_;
    if (ns > max_) {
        max_ = ns;
    }
}

uint64_t Histogram::percentile(double q) const {
    if (count_ == 0) {
        return 0;
    }
    // The rank is rounded up so that p100 is the largest sample's bucket, not past it.
    uint64_t rank = uint64_t(q * double(count_) + 0.999999);
    rank = rank == 0 ? 1 : rank;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
        seen += counts_[i];
        if (seen >= rank) {
            const uint64_t middle = middle_of(i);
            return middle < max_ ? middle : max_;
        }
    }
    return max_;
}

std::optional<CpuTimes> process_cpu_times(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(in, text)) {
        return std::nullopt;
    }
    // The command name (field 2) may contain spaces and parentheses; fields after the last
    // ')' are plain numbers, starting with field 3 (state). utime is field 14, stime 15,
    // both in clock ticks.
    const size_t paren = text.rfind(')');
    if (paren == std::string::npos) {
        return std::nullopt;
    }
    std::istringstream fields(text.substr(paren + 1));
    std::string field;
    unsigned long long utime = 0;
    for (int number = 3; number <= 15 && (fields >> field); ++number) {
        if (number == 14) {
            utime = std::stoull(field);
        } else if (number == 15) {
            const unsigned long long stime = std::stoull(field);
            const long ticks = sysconf(_SC_CLK_TCK);
            const double per_second = double(ticks > 0 ? ticks : 100);
            return CpuTimes{double(utime) / per_second, double(stime) / per_second};
        }
    }
    return std::nullopt;
}

std::optional<uint64_t> process_rss_kb(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stoull(line.substr(6)); // "VmRSS:\t  1234 kB"
        }
    }
    return std::nullopt;
}

std::optional<uint64_t> process_write_bytes(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/io");
    std::string line;
    while (std::getline(in, line)) {
        // "write_bytes: 1234"; "cancelled_write_bytes:" does not start with the same name.
        if (line.rfind("write_bytes:", 0) == 0) {
            return std::stoull(line.substr(12));
        }
    }
    return std::nullopt;
}

double own_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval &tv) { return double(tv.tv_sec) + double(tv.tv_usec) / 1e6; };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

uint64_t raise_open_file_limit(std::string &error) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        error = std::strerror(errno);
        return 0;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit wanted = limit;
        wanted.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &wanted) != 0) {
            error = std::strerror(errno);
            return limit.rlim_cur;
        }
        limit = wanted;
    }
    return limit.rlim_cur;
}

} // namespace ferrymq::bench
