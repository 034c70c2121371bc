// SPDX-License-Identifier: Apache-2.0
#include "auth/password_file.hpp"

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace ferrymq::auth {

namespace {

constexpr std::string_view kPbkdf2Tag = "$pbkdf2-sha512$";
constexpr std::string_view kScramTag = "$scram-sha-256$";
constexpr size_t kHashBytes = 64;
constexpr size_t kSaltBytes = 16;

std::string random_bytes(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
        const ssize_t r = ::getrandom(out.data() + got, n - got, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            throw std::runtime_error("getrandom failed: " + std::string(std::strerror(errno)));
        }
        got += static_cast<size_t>(r);
    }
    return out;
}

std::string pbkdf2_sha512(std::string_view password, std::string_view salt, uint32_t iterations) {
    std::string out(kHashBytes, '\0');
    auto *dst = reinterpret_cast<unsigned char *>(out.data());
    const auto *pw = reinterpret_cast<const unsigned char *>(password.data());
    const auto *s = reinterpret_cast<const unsigned char *>(salt.data());
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA512, pw, password.size(), s, salt.size(),
                                  iterations, static_cast<uint32_t>(out.size()), dst);
#else
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA512), 1);
    mbedtls_pkcs5_pbkdf2_hmac(&ctx, pw, password.size(), s, salt.size(), iterations,
                              static_cast<uint32_t>(out.size()), dst);
    mbedtls_md_free(&ctx);
#endif
    return out;
}

// Whole-length comparison whose time depends on the length only, never on where the
// bytes differ.
bool equal_constant_time(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    }
    return diff == 0;
}

// Splits "$tag$a$b$c" after the tag into its '$'-separated fields.
std::vector<std::string_view> fields_after(std::string_view text, std::string_view tag) {
    std::vector<std::string_view> out;
    text.remove_prefix(tag.size());
    for (;;) {
        const size_t dollar = text.find('$');
        out.push_back(text.substr(0, dollar));
        if (dollar == std::string_view::npos) {
            return out;
        }
        text.remove_prefix(dollar + 1);
    }
}

std::optional<uint32_t> parse_iterations(std::string_view text) {
    uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
        value < kMinPasswordIterations || value > kMaxPasswordIterations) {
        return std::nullopt;
    }
    return value;
}

std::string digest_b64(const Digest &d) {
    return base64_encode({reinterpret_cast<const char *>(d.data()), d.size()});
}

} // namespace

PasswordFileError::PasswordFileError(const std::string &file, int line, const std::string &message)
    : std::runtime_error(file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " +
                         message),
      line_(line) {}

bool valid_password_username(std::string_view username) {
    return !username.empty() && username.find_first_of(":\r\n") == std::string_view::npos;
}

PasswordEntry make_password_entry(std::string username, std::string_view password,
                                  uint32_t iterations, uint32_t scram_iterations) {
    PasswordEntry e;
    e.username = std::move(username);
    e.iterations = iterations;
    e.salt = random_bytes(kSaltBytes);
    e.hash = pbkdf2_sha512(password, e.salt, iterations);
    if (scram_iterations != 0) {
        e.scram = scram_derive(password, random_bytes(kSaltBytes), scram_iterations);
    }
    return e;
}

bool verify_password(const PasswordEntry &entry, std::string_view password) {
    return equal_constant_time(pbkdf2_sha512(password, entry.salt, entry.iterations), entry.hash);
}

std::string format_password_entry(const PasswordEntry &e) {
    std::string line = e.username + ":" + std::string(kPbkdf2Tag) + std::to_string(e.iterations) +
                       "$" + base64_encode(e.salt) + "$" + base64_encode(e.hash);
    if (e.scram) {
        line += ":" + std::string(kScramTag) + std::to_string(e.scram->iterations) + "$" +
                base64_encode(e.scram->salt) + "$" + digest_b64(e.scram->stored_key) + "$" +
                digest_b64(e.scram->server_key);
    }
    return line;
}

std::vector<PasswordEntry> parse_password_file(std::string_view text, const std::string &name) {
    std::vector<PasswordEntry> entries;
    std::map<std::string, int, std::less<>> seen; // user -> line
    int number = 0;
    while (!text.empty()) {
        ++number;
        const size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.empty() || line.front() == '#') {
            continue;
        }
        auto fail = [&](const std::string &why) { throw PasswordFileError(name, number, why); };
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            fail("expected USER:$pbkdf2-sha512$ITERATIONS$SALT$HASH");
        }
        PasswordEntry e;
        e.username = std::string(line.substr(0, colon));
        if (e.username.empty()) {
            fail("empty user name");
        }
        if (auto it = seen.find(e.username); it != seen.end()) {
            fail("duplicate user '" + e.username + "' (first on line " +
                 std::to_string(it->second) + ")");
        }
        std::string_view rest = line.substr(colon + 1);
        const size_t second = rest.find(':');
        const std::string_view hash_field = rest.substr(0, second);
        if (!hash_field.starts_with(kPbkdf2Tag)) {
            fail("unknown hash scheme for user '" + e.username + "'; expected $pbkdf2-sha512$");
        }
        const auto f = fields_after(hash_field, kPbkdf2Tag);
        if (f.size() != 3) {
            fail("expected $pbkdf2-sha512$ITERATIONS$SALT$HASH for user '" + e.username + "'");
        }
        const auto iterations = parse_iterations(f[0]);
        if (!iterations) {
            fail("iterations must be a number between " + std::to_string(kMinPasswordIterations) +
                 " and " + std::to_string(kMaxPasswordIterations));
        }
        e.iterations = *iterations;
        const auto salt = base64_decode(f[1]);
        const auto hash = base64_decode(f[2]);
        if (!salt || salt->empty()) {
            fail("the salt is not base64");
        }
        if (!hash || hash->size() != kHashBytes) {
            fail("the hash is not 64 bytes of base64");
        }
        e.salt = *salt;
        e.hash = *hash;
        if (second != std::string_view::npos) {
            const std::string_view scram = rest.substr(second + 1);
            if (!scram.starts_with(kScramTag)) {
                fail("unknown field after the hash; expected $scram-sha-256$");
            }
            const auto s = fields_after(scram, kScramTag);
            const auto s_iterations = s.size() == 4 ? parse_iterations(s[0]) : std::nullopt;
            const auto s_salt = s.size() == 4 ? base64_decode(s[1]) : std::nullopt;
            const auto stored = s.size() == 4 ? base64_decode(s[2]) : std::nullopt;
            const auto server = s.size() == 4 ? base64_decode(s[3]) : std::nullopt;
            if (!s_iterations || *s_iterations < 4096 || !s_salt || s_salt->empty() || !stored ||
                stored->size() != 32 || !server || server->size() != 32) {
                fail("expected $scram-sha-256$ITERATIONS(>=4096)$SALT$STOREDKEY$SERVERKEY");
            }
            ScramCredentials c;
            c.iterations = *s_iterations;
            c.salt = *s_salt;
            std::memcpy(c.stored_key.data(), stored->data(), 32);
            std::memcpy(c.server_key.data(), server->data(), 32);
            e.scram = c;
        }
        seen.emplace(e.username, number);
        entries.push_back(std::move(e));
    }
    return entries;
}

std::vector<PasswordEntry> load_password_file(const std::string &path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        throw PasswordFileError(path, 0, std::string("cannot read: ") + std::strerror(errno));
    }
    std::string text;
    char buffer[8192];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
            text.append(buffer, static_cast<size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            const int error = errno;
            ::close(fd);
            throw PasswordFileError(path, 0, std::string("cannot read: ") + std::strerror(error));
        }
    }
    ::close(fd);
    return parse_password_file(text, path);
}

void write_password_file(const std::string &path, const std::vector<PasswordEntry> &entries) {
    std::string text = "# ferrymq password file: USER:$pbkdf2-sha512$ITERATIONS$SALT$HASH"
                       "[:$scram-sha-256$...]. Edit with \"ferrymq passwd\".\n";
    for (const PasswordEntry &e : entries) {
        text += format_password_entry(e) + "\n";
    }
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    auto fail = [&](const char *step) {
        const int error = errno;
        ::unlink(tmp.c_str());
        throw PasswordFileError(path, 0, std::string(step) + ": " + std::strerror(error));
    };
    // O_EXCL: a leftover or planted file of that name is never written through.
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        const int error = errno;
        throw PasswordFileError(path, 0, "cannot create " + tmp + ": " + std::strerror(error));
    }
    // 0600 whatever the umask. A file being replaced passes on its group, and its group's
    // read permission, so that a file the administrator made readable by the service's
    // group (root:ferrymq 0640) stays readable after every change; never more than that.
    mode_t mode = 0600;
    struct stat old {};
    if (::stat(path.c_str(), &old) == 0) {
        if (::fchown(fd, static_cast<uid_t>(-1), old.st_gid) == 0) {
            mode |= old.st_mode & S_IRGRP;
        }
    }
    ::fchmod(fd, mode);
    size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            ::close(fd);
            fail("write");
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        ::close(fd);
        fail("fsync");
    }
    if (::close(fd) != 0) {
        fail("close");
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        fail("rename");
    }
}

PasswordStore::PasswordStore(std::vector<PasswordEntry> entries) {
    uint32_t most = kDefaultPasswordIterations;
    for (PasswordEntry &e : entries) {
        most = std::max(most, e.iterations);
        std::string name = e.username;
        users_.emplace(std::move(name), User{std::move(e), std::nullopt});
    }
    // The dummy costs as much as the dearest real entry, so an unknown user is not faster.
    dummy_ = PasswordEntry{"", most, std::string(kSaltBytes, 'x'), std::string(kHashBytes, 'x'),
                           std::nullopt};
    const std::string key = random_bytes(key_.size());
    std::memcpy(key_.data(), key.data(), key_.size());
}

Digest PasswordStore::keyed_digest(std::string_view password) const {
    Digest out{};
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key_.data(), key_.size(),
                    reinterpret_cast<const unsigned char *>(password.data()), password.size(),
                    out.data());
    return out;
}

bool PasswordStore::check(std::string_view username, std::string_view password) {
    auto it = users_.find(username);
    if (it == users_.end()) {
        ++slow_checks_;
        verify_password(dummy_, password);
        return false;
    }
    User &u = it->second;
    const Digest keyed = keyed_digest(password);
    const auto as_view = [](const Digest &d) {
        return std::string_view(reinterpret_cast<const char *>(d.data()), d.size());
    };
    if (u.verified && equal_constant_time(as_view(*u.verified), as_view(keyed))) {
        return true;
    }
    ++slow_checks_;
    if (!verify_password(u.entry, password)) {
        return false;
    }
    u.verified = keyed;
    return true;
}

std::optional<ScramCredentials> PasswordStore::scram(std::string_view username) const {
    auto it = users_.find(username);
    if (it == users_.end()) {
        return std::nullopt;
    }
    return it->second.entry.scram;
}

} // namespace ferrymq::auth
