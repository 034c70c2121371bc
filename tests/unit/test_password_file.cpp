// SPDX-License-Identifier: Apache-2.0
// The password file: hashing, verification, the line format and its errors, the store's
// cache, and the atomic write.
#include "auth/password_file.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

using namespace ferrymq::auth;

namespace {

// Few rounds keep the tests fast; the format and the check do not depend on the count.
constexpr uint32_t kRounds = 1000;

std::string error_of(std::string_view text) {
    try {
        parse_password_file(text, "pw");
    } catch (const PasswordFileError &e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("a password verifies against its own hash and no other") {
    const PasswordEntry e = make_password_entry("alice", "s3cret", kRounds, 0);
    CHECK(e.salt.size() == 16);
    CHECK(e.hash.size() == 64);
    CHECK(verify_password(e, "s3cret"));
    CHECK_FALSE(verify_password(e, "s3creT"));
    CHECK_FALSE(verify_password(e, ""));
    CHECK_FALSE(verify_password(e, "s3cret "));
    // A fresh salt each time: the same password never gives the same line.
    const PasswordEntry again = make_password_entry("alice", "s3cret", kRounds, 0);
    CHECK(again.salt != e.salt);
    CHECK(again.hash != e.hash);
}

TEST_CASE("PBKDF2-SHA512 matches a known vector") {
    // PBKDF2-HMAC-SHA512("password", "salt", 1000 rounds, 64 bytes) as Python's
    // hashlib.pbkdf2_hmac computes it: the hash is the standard construction.
    PasswordEntry e;
    e.username = "v";
    e.iterations = 1000;
    e.salt = "salt";
    e.hash = *base64_decode("r+bFUweFtsxrHGRTOEcxvV7kMu5Un9QvtmlXea2KHFv1neacSPd078QAfVKY+QM8"
                            "AkHVq2kwXntk7O642DTP7A==");
    REQUIRE(e.hash.size() == 64);
    CHECK(verify_password(e, "password"));
    CHECK_FALSE(verify_password(e, "Password"));
}

TEST_CASE("an entry survives formatting and parsing, SCRAM keys included") {
    const PasswordEntry e = make_password_entry("bob", "pw", kRounds, 4096);
    const std::string line = format_password_entry(e);
    CHECK(line.rfind("bob:$pbkdf2-sha512$1000$", 0) == 0);
    CHECK(line.find(":$scram-sha-256$4096$") != std::string::npos);
    const auto parsed = parse_password_file("# comment\n\n" + line + "\n", "pw");
    REQUIRE(parsed.size() == 1);
    CHECK(parsed[0].username == "bob");
    CHECK(parsed[0].iterations == kRounds);
    CHECK(parsed[0].salt == e.salt);
    CHECK(parsed[0].hash == e.hash);
    REQUIRE(parsed[0].scram.has_value());
    CHECK(parsed[0].scram->stored_key == e.scram->stored_key);
    CHECK(parsed[0].scram->server_key == e.scram->server_key);
    CHECK(verify_password(parsed[0], "pw"));
    // The SCRAM keys are those of the same password.
    const ScramCredentials derived = scram_derive("pw", e.scram->salt, 4096);
    CHECK(derived.stored_key == parsed[0].scram->stored_key);
}

TEST_CASE("password file errors name the line") {
    const std::string good = format_password_entry(make_password_entry("a", "x", kRounds, 0));
    CHECK(error_of("# c\nnocolon\n") == "pw:2: expected USER:$pbkdf2-sha512$ITERATIONS$SALT$HASH");
    CHECK(error_of(":$pbkdf2-sha512$1000$c2FsdA==$aGFzaA==\n") == "pw:1: empty user name");
    CHECK(error_of("u:$md5$x\n") == "pw:1: unknown hash scheme for user 'u'; expected "
                                    "$pbkdf2-sha512$");
    CHECK(error_of("u:$pbkdf2-sha512$1000$c2FsdA==\n") ==
          "pw:1: expected $pbkdf2-sha512$ITERATIONS$SALT$HASH for user 'u'");
    CHECK(error_of("\n\nu:$pbkdf2-sha512$12$c2FsdA==$aGFzaA==\n") ==
          "pw:3: iterations must be a number between 1000 and 10000000");
    CHECK(error_of("u:$pbkdf2-sha512$1000$c2FsdA==$aGFzaA==\n") ==
          "pw:1: the hash is not 64 bytes of base64");
    CHECK(error_of("u:$pbkdf2-sha512$1000$!!$aGFzaA==\n") == "pw:1: the salt is not base64");
    CHECK(error_of(good + "\n" + good + "\n") == "pw:2: duplicate user 'a' (first on line 1)");
    CHECK(error_of(good + ":junk\n") ==
          "pw:1: unknown field after the hash; expected $scram-sha-256$");
    CHECK(error_of(good + "\r\n").empty()); // CRLF files are read as well
}

TEST_CASE("the store checks users, hides unknown ones and caches successes only") {
    std::vector<PasswordEntry> entries;
    entries.push_back(make_password_entry("alice", "right", kRounds, 4096));
    entries.push_back(make_password_entry("carol", "other", kRounds, 0));
    PasswordStore store(std::move(entries));
    CHECK(store.size() == 2);
    CHECK_FALSE(store.check("alice", "wrong"));
    CHECK(store.slow_checks() == 1);
    CHECK_FALSE(store.check("alice", "wrong"));
    CHECK(store.slow_checks() == 2); // failures are never cached
    CHECK(store.check("alice", "right"));
    CHECK(store.slow_checks() == 3);
    CHECK(store.check("alice", "right"));
    CHECK(store.slow_checks() == 3); // the second success came from the cache
    CHECK_FALSE(store.check("alice", "wrong"));
    CHECK(store.slow_checks() == 4);
    CHECK_FALSE(store.check("mallory", "right"));
    CHECK(store.slow_checks() == 5); // an unknown user costs a PBKDF2 run too
    CHECK_FALSE(store.check("carol", "right"));
    CHECK(store.check("carol", "other"));
    CHECK(store.scram("alice").has_value());
    CHECK_FALSE(store.scram("carol").has_value());
    CHECK_FALSE(store.scram("mallory").has_value());
}

TEST_CASE("the file is written atomically with mode 0600 and read back") {
    char dir[] = "/tmp/ferrymq-pw-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    const std::string path = std::string(dir) + "/passwd";
    const mode_t old_umask = ::umask(0); // the mode must not depend on the umask
    std::vector<PasswordEntry> entries{make_password_entry("u1", "p1", kRounds, 0)};
    write_password_file(path, entries);
    ::umask(old_umask);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    const auto back = load_password_file(path);
    REQUIRE(back.size() == 1);
    CHECK(verify_password(back[0], "p1"));
    entries.push_back(make_password_entry("u2", "p2", kRounds, 0));
    write_password_file(path, entries);
    CHECK(load_password_file(path).size() == 2);
    // No temporary file is left behind.
    CHECK(::access((path + ".tmp." + std::to_string(::getpid())).c_str(), F_OK) != 0);
    ::unlink(path.c_str());
    ::rmdir(dir);
    try {
        load_password_file(path);
        FAIL("a missing file must throw");
    } catch (const PasswordFileError &e) {
        CHECK(std::string(e.what()).find("cannot read") != std::string::npos);
    }
}
