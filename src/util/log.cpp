// SPDX-License-Identifier: Apache-2.0
#include "util/log.hpp"

#include <sys/stat.h>

#include <array>
#include <cstdlib>
#include <ctime>
#include <string>

namespace ferrymq::util {

namespace {

constexpr std::array<std::string_view, 5> kLevelNames = {"error", "warn", "info", "debug", "trace"};

// Room for most messages; a longer one is formatted a second time into a heap string.
constexpr size_t kStackMessageSize = 512;

// Appends the current UTC time as "2024-05-01T12:34:56.789Z" so that lines from hosts in
// different time zones sort and compare directly.
void append_timestamp(std::string &line) {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    tm utc{};
    gmtime_r(&now.tv_sec, &utc);
    char text[40];
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(text + n, sizeof text - n, ".%03ldZ", now.tv_nsec / 1'000'000);
    line += text;
}

// Appends `message` with control characters escaped, so that text that came from a client
// (a client id, a topic) cannot forge extra log lines or move the terminal cursor.
void append_escaped(std::string &line, std::string_view message) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : message) {
        auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte != 0x7f) {
            line += c;
        } else if (c == '\n') {
            line += "\\n";
        } else if (c == '\t') {
            line += "\\t";
        } else {
            line += "\\x";
            line += kHex[byte >> 4];
            line += kHex[byte & 0xf];
        }
    }
}

} // namespace

std::optional<LogLevel> parse_log_level(std::string_view name) {
    for (size_t i = 0; i < kLevelNames.size(); ++i) {
        if (kLevelNames[i] == name) {
            return static_cast<LogLevel>(i);
        }
    }
    return std::nullopt;
}

LogStyle detect_log_style(std::FILE *out) {
    const char *stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) {
        return LogStyle::plain;
    }
    unsigned long long device = 0;
    unsigned long long inode = 0;
    struct stat info {};
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2 ||
        ::fstat(fileno(out), &info) != 0) {
        return LogStyle::plain;
    }
    return info.st_dev == device && info.st_ino == inode ? LogStyle::journal : LogStyle::plain;
}

int syslog_priority(LogLevel level) {
    switch (level) {
    case LogLevel::error:
        return 3;
    case LogLevel::warn:
        return 4;
    case LogLevel::info:
        return 6;
    case LogLevel::debug:
    case LogLevel::trace:
        return 7;
    }
    return 6;
}

std::string_view log_level_name(LogLevel level) {
    auto index = static_cast<size_t>(level);
    return index < kLevelNames.size() ? kLevelNames[index] : "?";
}

void Log::write(LogLevel level, const char *fmt, va_list args) {
    if (!enabled(level)) {
        return;
    }
    char stack_buffer[kStackMessageSize];
    va_list copy;
    va_copy(copy, args);
    int length = vsnprintf(stack_buffer, sizeof stack_buffer, fmt, copy);
    va_end(copy);
    std::string heap_buffer;
    std::string_view message;
    if (length < 0) {
        message = "(unformattable log message)";
    } else if (static_cast<size_t>(length) < sizeof stack_buffer) {
        message = std::string_view(stack_buffer, static_cast<size_t>(length));
    } else {
        heap_buffer.resize(static_cast<size_t>(length) + 1);
        vsnprintf(heap_buffer.data(), heap_buffer.size(), fmt, args);
        heap_buffer.resize(static_cast<size_t>(length));
        message = heap_buffer;
    }

    std::string line;
    line.reserve(32 + message.size());
    if (style_ == LogStyle::journal) {
        line += '<';
        line += static_cast<char>('0' + syslog_priority(level));
        line += '>';
    } else {
        append_timestamp(line);
        line += ' ';
        std::string_view name = log_level_name(level);
        line += name;
        // Pads the level to five characters so that messages start in one column.
        line.append(6 - name.size(), ' ');
    }
    append_escaped(line, message);
    line += '\n';
    fwrite(line.data(), 1, line.size(), out_);
    fflush(out_);
}

// Each method checks enabled() first so that a dropped message costs one comparison.
void Log::error(const char *fmt, ...) {
    if (!enabled(LogLevel::error)) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    write(LogLevel::error, fmt, args);
    va_end(args);
}

void Log::warn(const char *fmt, ...) {
    if (!enabled(LogLevel::warn)) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    write(LogLevel::warn, fmt, args);
    va_end(args);
}

void Log::info(const char *fmt, ...) {
    if (!enabled(LogLevel::info)) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    write(LogLevel::info, fmt, args);
    va_end(args);
}

void Log::debug(const char *fmt, ...) {
    if (!enabled(LogLevel::debug)) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    write(LogLevel::debug, fmt, args);
    va_end(args);
}

void Log::trace(const char *fmt, ...) {
    if (!enabled(LogLevel::trace)) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    write(LogLevel::trace, fmt, args);
    va_end(args);
}

} // namespace ferrymq::util
