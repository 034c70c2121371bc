// SPDX-License-Identifier: Apache-2.0
// SCRAM-SHA-256 against the RFC 7677 example, and full server exchanges.
#include "auth/scram.hpp"

#include <doctest/doctest.h>

using namespace ferrymq::auth;

namespace {

// RFC 7677 section 3: user "user", password "pencil".
constexpr std::string_view kClientFirstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

ScramServer server_for(const std::string &user, const std::string &password) {
    const ScramCredentials creds = scram_derive(password, "0123456789abcdef", 4096);
    return ScramServer([user, creds](std::string_view name) -> std::optional<ScramCredentials> {
        if (name == user) {
            return creds;
        }
        return std::nullopt;
    });
}

// Runs a whole exchange as a client with `password` would.
ScramServer::Step exchange(ScramServer &server, const std::string &user,
                           const std::string &password) {
    const std::string bare = "n=" + user + ",r=clientnonce123";
    ScramServer::Step first = server.start("n,," + bare);
    REQUIRE(first.outcome == ScramServer::Outcome::challenge);
    const std::string nonce = first.data.substr(2, first.data.find(',') - 2);
    CHECK(nonce.rfind("clientnonce123", 0) == 0); // server nonce extends the client's
    return server.finish(scram_client_final(password, bare, first.data, nonce));
}

} // namespace

TEST_CASE("scram: the RFC 7677 client proof") {
    const std::string nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    CHECK(scram_client_final("pencil", kClientFirstBare, kServerFirst, nonce) == kClientFinal);
}

TEST_CASE("scram: base64 round trip and rejection") {
    CHECK(base64_encode("n,,") == "biws");
    CHECK(base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==").value().size() == 16);
    CHECK_FALSE(base64_decode("not base64!").has_value());
}

TEST_CASE("scram: a server exchange succeeds with the right password") {
    ScramServer server = server_for("alice", "s3cret");
    ScramServer::Step last = exchange(server, "alice", "s3cret");
    CHECK(last.outcome == ScramServer::Outcome::success);
    CHECK(last.data.rfind("v=", 0) == 0);
    CHECK(server.username() == "alice");
}

TEST_CASE("scram: a wrong password, an unknown user and a replayed nonce fail") {
    {
        ScramServer server = server_for("alice", "s3cret");
        CHECK(exchange(server, "alice", "wrong").outcome == ScramServer::Outcome::failure);
    }
    {
        ScramServer server = server_for("alice", "s3cret");
        // The unknown user still gets a challenge, then fails at the proof.
        CHECK(exchange(server, "mallory", "s3cret").outcome == ScramServer::Outcome::failure);
    }
    {
        ScramServer server = server_for("alice", "s3cret");
        REQUIRE(server.start("n,,n=alice,r=abc").outcome == ScramServer::Outcome::challenge);
        CHECK(server.finish("c=biws,r=abcWRONG,p=" + base64_encode(std::string(32, 'x'))).outcome ==
              ScramServer::Outcome::failure);
    }
}

TEST_CASE("scram: malformed messages fail without a challenge") {
    ScramServer a = server_for("alice", "s3cret");
    CHECK(a.start("p=tls-unique,,n=alice,r=abc").outcome == ScramServer::Outcome::failure);
    ScramServer b = server_for("alice", "s3cret");
    CHECK(b.start("n,,r=abc").outcome == ScramServer::Outcome::failure);
    ScramServer c = server_for("alice", "s3cret");
    CHECK(c.finish("c=biws,r=abc,p=xyz").outcome == ScramServer::Outcome::failure);
    ScramServer d = server_for("alice", "s3cret");
    CHECK(d.start("n,,n=al=ice,r=abc").outcome == ScramServer::Outcome::failure);
}
