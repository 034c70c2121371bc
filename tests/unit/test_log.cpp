// SPDX-License-Identifier: Apache-2.0
// util::Log's two line styles, and how it recognises the journal from $JOURNAL_STREAM.
#include "util/log.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <string>

using namespace ferrymq::util;

namespace {

// Everything written to `file` so far.
std::string contents(std::FILE *file) {
    std::fflush(file);
    std::rewind(file);
    std::string text;
    char buffer[256];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
        text.append(buffer, n);
    }
    return text;
}

} // namespace

TEST_CASE("log: plain lines carry a UTC timestamp and the level name") {
    std::FILE *file = std::tmpfile();
    REQUIRE(file != nullptr);
    {
        Log log(LogLevel::info, file);
        log.info("listening on %s", "127.0.0.1:1883");
        log.debug("not written");
    }
    const std::string text = contents(file);
    CHECK(std::regex_match(
        text,
        std::regex(
            R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info  listening on 127\.0\.0\.1:1883\n)")));
    std::fclose(file);
}

TEST_CASE("log: journal lines start with the syslog priority and have no timestamp") {
    std::FILE *file = std::tmpfile();
    REQUIRE(file != nullptr);
    {
        Log log(LogLevel::trace, file, LogStyle::journal);
        log.error("e");
        log.warn("w");
        log.info("i\nforged");
        log.debug("d");
        log.trace("t");
    }
    CHECK(contents(file) == "<3>e\n<4>w\n<6>i\\nforged\n<7>d\n<7>t\n");
    std::fclose(file);
}

TEST_CASE("log: JOURNAL_STREAM must name the very stream written to") {
    std::FILE *file = std::tmpfile();
    REQUIRE(file != nullptr);
    struct stat info {};
    REQUIRE(::fstat(fileno(file), &info) == 0);
    const std::string mine = std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
    const std::string other = std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino + 1);

    ::unsetenv("JOURNAL_STREAM");
    CHECK(detect_log_style(file) == LogStyle::plain);
    ::setenv("JOURNAL_STREAM", mine.c_str(), 1);
    CHECK(detect_log_style(file) == LogStyle::journal);
    // Inherited by a process whose stderr was redirected elsewhere: not the journal.
    ::setenv("JOURNAL_STREAM", other.c_str(), 1);
    CHECK(detect_log_style(file) == LogStyle::plain);
    ::setenv("JOURNAL_STREAM", "garbage", 1);
    CHECK(detect_log_style(file) == LogStyle::plain);
    ::unsetenv("JOURNAL_STREAM");
    std::fclose(file);
}

TEST_CASE("log: syslog priorities") {
    CHECK(syslog_priority(LogLevel::error) == 3);
    CHECK(syslog_priority(LogLevel::warn) == 4);
    CHECK(syslog_priority(LogLevel::info) == 6);
    CHECK(syslog_priority(LogLevel::debug) == 7);
    CHECK(syslog_priority(LogLevel::trace) == 7);
}
