// SPDX-License-Identifier: Apache-2.0
// The password file: one line per user with a salted PBKDF2-SHA512 hash of the password and,
// optionally, the user's SCRAM-SHA-256 keys, so one file feeds both plain CONNECT passwords
// and MQTT 5.0 enhanced authentication. Written by "ferrymq passwd", read once at start-up by
// app::Server. Pure computation and file I/O: no MQTT, no loop.
//
// Format (blank lines and lines starting with '#' are ignored):
//
//   USER:$pbkdf2-sha512$ITERATIONS$SALT$HASH[:$scram-sha-256$ITERATIONS$SALT$STOREDKEY$SERVERKEY]
//
// SALT, HASH, STOREDKEY and SERVERKEY are standard base64 (RFC 4648, with padding); HASH is
// the 64-byte PBKDF2-HMAC-SHA512 of the password; STOREDKEY and SERVERKEY are RFC 5802's.
// USER is any non-empty UTF-8 text without ':', '\n' or '\r'.
#pragma once

#include "auth/scram.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ferrymq::auth {

// Default PBKDF2-SHA512 rounds for a new hash. Chosen by measurement, not by habit: the broker
// checks passwords on its single loop thread, so every check stalls every client for its
// duration. 10000 rounds took ~15 ms on an idle 2-core x86 VM with mbedTLS 2.28 (100000
// took ~200-460 ms, far beyond the ~50 ms a CONNECT may cost); a Raspberry Pi 4 core is
// roughly 3x slower. A successful check is cached (see PasswordStore), so only new users and
// failures pay it, and failures are what the abuse ban limits. Raise it with
// "ferrymq passwd --iterations N" where the hardware allows.
inline constexpr uint32_t kDefaultPasswordIterations = 10'000;
inline constexpr uint32_t kMinPasswordIterations = 1'000;
inline constexpr uint32_t kMaxPasswordIterations = 10'000'000;

// One user's line.
struct PasswordEntry {
    std::string username;
    uint32_t iterations = 0;               // PBKDF2-SHA512 rounds
    std::string salt;                      // raw bytes (16 when written by ferrymq)
    std::string hash;                      // raw bytes, 64
    std::optional<ScramCredentials> scram; // absent: the user cannot use SCRAM-SHA-256
};

// A password file that cannot be read or parsed. what() is "FILE:LINE: message", or
// "FILE: message" when the error has no line.
class PasswordFileError : public std::runtime_error {
  public:
    PasswordFileError(const std::string &file, int line, const std::string &message);
    int line() const { return line_; } // 1-based, 0 when the error has no line

  private:
    int line_ = 0;
};

// Makes a new entry for `password` with a fresh random salt, and SCRAM-SHA-256 keys derived
// with `scram_iterations` rounds (0: no SCRAM keys).
PasswordEntry make_password_entry(std::string username, std::string_view password,
                                  uint32_t iterations, uint32_t scram_iterations);

// Whether `password` is the entry's: PBKDF2 with the entry's salt and rounds, then a
// constant-time comparison of the whole hash. Takes as long as the entry's rounds ask.
bool verify_password(const PasswordEntry &entry, std::string_view password);

// Whether a user name can be stored in a password file.
bool valid_password_username(std::string_view username);

// The entry's line, without the newline.
std::string format_password_entry(const PasswordEntry &entry);

// Parses a whole file; `name` stands for the file in errors. Throws PasswordFileError.
std::vector<PasswordEntry> parse_password_file(std::string_view text, const std::string &name);

// Reads and parses `path`. Throws PasswordFileError (also when it cannot be read).
std::vector<PasswordEntry> load_password_file(const std::string &path);

// Replaces `path` atomically with `entries`: a temporary file in the same directory, mode
// 0600 (plus the group and group read permission of the file it replaces), written and
// fsynced, then renamed over `path`. Throws PasswordFileError.
void write_password_file(const std::string &path, const std::vector<PasswordEntry> &entries);

// The users of a password file, as the broker asks about them: checked on the loop thread at
// each CONNECT with a username and password. Owned by app::Server for the broker's life.
class PasswordStore {
  public:
    explicit PasswordStore(std::vector<PasswordEntry> entries);

    // Whether `password` is `username`'s. An unknown user costs as much as a known one (a
    // dummy hash is checked) so timing does not tell which user names exist. A success is
    // remembered as an HMAC-SHA256 of the password under a key random per process, so a
    // client that reconnects with the same password costs microseconds, not a PBKDF2 run;
    // failures are never cached.
    bool check(std::string_view username, std::string_view password);
    // The SCRAM-SHA-256 keys of `username`, if the file has them.
    std::optional<ScramCredentials> scram(std::string_view username) const;
    size_t size() const { return users_.size(); }
    // Whether any user has SCRAM-SHA-256 keys.
    bool has_scram() const {
        for (const auto &[name, user] : users_) {
            if (user.entry.scram) {
                return true;
            }
        }
        return false;
    }
    // PBKDF2 runs done so far (cache misses), for tests and the log.
    uint64_t slow_checks() const { return slow_checks_; }

  private:
    struct User {
        PasswordEntry entry;
        std::optional<Digest> verified; // HMAC(key_, password) of the last success
    };
    Digest keyed_digest(std::string_view password) const;

    std::map<std::string, User, std::less<>> users_;
    PasswordEntry dummy_; // checked for unknown users
    Digest key_{};        // random, never leaves the process
    uint64_t slow_checks_ = 0;
};

} // namespace ferrymq::auth
