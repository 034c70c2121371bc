// SPDX-License-Identifier: Apache-2.0
// A util::Log that writes nowhere, for tests that build a broker or a store: it opens
// /dev/null for itself and closes it when it goes.
#pragma once

#include "util/log.hpp"

#include <cstdio>

namespace ferrymq::test {

// Opened before the Log base that writes to it, closed after it (base order).
struct NullFile {
    NullFile() : file(std::fopen("/dev/null", "w")) {}
    ~NullFile() { std::fclose(file); }
    NullFile(const NullFile &) = delete;
    NullFile &operator=(const NullFile &) = delete;
    std::FILE *file;
};

class SilentLog : private NullFile, public util::Log {
  public:
    SilentLog() : util::Log(util::LogLevel::error, NullFile::file) {}
};

} // namespace ferrymq::test
