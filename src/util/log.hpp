// SPDX-License-Identifier: Apache-2.0
// Line-oriented logging to stderr. There is no global logger: main() creates one Log and
// passes it by reference to whatever needs to report, so two brokers can share a test
// process and a test can point a Log at its own stream.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <optional>
#include <string_view>

namespace ferrymq::util {

// Severity, most severe first: a Log at level L writes every message at L or above it.
enum class LogLevel : unsigned char { error, warn, info, debug, trace };

// Parses the lower-case name used in the config file and on the command line ("info").
std::optional<LogLevel> parse_log_level(std::string_view name);

// The lower-case name of `level`, the inverse of parse_log_level().
std::string_view log_level_name(LogLevel level);

// How a line looks. `plain` (a terminal, a file, the tests):
// "2024-05-01T12:34:56.789Z info  listening on 127.0.0.1:1883". `journal` (stderr connected
// to systemd's journal, which adds its own timestamp): "<6>listening on 127.0.0.1:1883", the
// level as the syslog priority prefix journald turns into the entry's priority.
enum class LogStyle : unsigned char { plain, journal };

// `journal` when `out` is the stream systemd connected to the journal: $JOURNAL_STREAM
// names its device and inode ("DEV:INODE"); anything else, including stderr redirected to a
// file by the unit, is `plain`.
LogStyle detect_log_style(std::FILE *out);

// The syslog priority of `level`: error 3, warn 4, info 6, debug and trace 7.
int syslog_priority(LogLevel level);

// Writes one line per message in the chosen LogStyle.
// Owned by main() and outlives everything that holds a reference to it. It is used from the
// loop thread only, so it has no lock; each line still goes out in a single write so that
// lines from several processes sharing one stderr do not interleave.
class Log {
  public:
    explicit Log(LogLevel level = LogLevel::info, std::FILE *out = stderr,
                 LogStyle style = LogStyle::plain)
        : level_(level), out_(out), style_(style) {}

    Log(const Log &) = delete;
    Log &operator=(const Log &) = delete;

    LogLevel level() const { return level_; }
    void set_level(LogLevel level) { level_ = level; }

    // Lets a caller skip building expensive arguments for a message that would be dropped.
    bool enabled(LogLevel level) const { return level <= level_; }

    void error(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void warn(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void info(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void debug(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void trace(const char *fmt, ...) __attribute__((format(printf, 2, 3)));

    // The va_list form behind the five methods above, for wrappers that add a prefix.
    void write(LogLevel level, const char *fmt, va_list args) __attribute__((format(printf, 3, 0)));

  private:
    LogLevel level_;
    std::FILE *out_;
    LogStyle style_;
};

} // namespace ferrymq::util
