// SPDX-License-Identifier: Apache-2.0
// net::TlsSession with no sockets: a client and a server session hand each other their
// ciphertext in memory. Handshake, data both ways (whole and byte by byte), close_notify,
// peer identities, and the refusals a gateway must explain (wrong name, missing client
// certificate).
#include "net/tls.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ferrymq;
using Status = net::TlsSession::Status;

namespace {

std::string cert_path(const char *name) {
    return std::string(FERRYMQ_SOURCE_DIR) + "/tests/unit/tls/" + name;
}

std::shared_ptr<const net::TlsContext>
server_context(config::TlsConfig::ClientCertificates client_certs =
                   config::TlsConfig::ClientCertificates::none) {
    config::TlsConfig t;
    t.cert_file = cert_path("server.crt");
    t.key_file = cert_path("server.key");
    t.ca_file = cert_path("ca.crt");
    t.client_certificates = client_certs;
    std::string error;
    auto context = net::TlsContext::make(net::TlsContext::Role::server, t, error);
    REQUIRE_MESSAGE(context, error);
    return context;
}

std::shared_ptr<const net::TlsContext> client_context(bool with_certificate = false) {
    config::TlsConfig t;
    t.ca_file = cert_path("ca.crt");
    if (with_certificate) {
        t.cert_file = cert_path("client.crt");
        t.key_file = cert_path("client.key");
    }
    std::string error;
    auto context = net::TlsContext::make(net::TlsContext::Role::client, t, error);
    REQUIRE_MESSAGE(context, error);
    return context;
}

// Moves ciphertext between two sessions until neither has anything to send. Plaintext each
// side receives is appended to its string. `chunk` cuts the ciphertext into pieces that size.
struct Pair {
    net::TlsSession client;
    net::TlsSession server;
    std::string to_client;
    std::string to_server;
    Status client_status = Status::ok;
    Status server_status = Status::ok;

    Pair(std::shared_ptr<const net::TlsContext> c, std::shared_ptr<const net::TlsContext> s,
         const std::string &name = "localhost")
        : client(std::move(c), name), server(std::move(s)) {}

    static Status deliver(net::TlsSession &from, net::TlsSession &to, std::string &plain,
                          size_t chunk) {
        std::vector<uint8_t> wire;
        wire.swap(from.output());
        Status status = Status::ok;
        for (size_t at = 0; at < wire.size() && status == Status::ok; at += chunk) {
            std::span<const uint8_t> out;
            status = to.receive(
                std::span<const uint8_t>(wire).subspan(at, std::min(chunk, wire.size() - at)), out);
            plain.append(out.begin(), out.end());
        }
        return status;
    }

    void pump(size_t chunk = SIZE_MAX) {
        for (int round = 0; round < 20; ++round) {
            if (client.output().empty() && server.output().empty()) {
                return;
            }
            if (!client.output().empty() && server_status == Status::ok) {
                server_status = deliver(client, server, to_server, chunk);
            }
            if (!server.output().empty() && client_status == Status::ok) {
                client_status = deliver(server, client, to_client, chunk);
            }
            if (server_status != Status::ok && client_status != Status::ok) {
                return;
            }
        }
    }

    void handshake(size_t chunk = SIZE_MAX) {
        REQUIRE(client.start() == Status::ok);
        pump(chunk);
    }
};

std::span<const uint8_t> bytes(const std::string &s) {
    return {reinterpret_cast<const uint8_t *>(s.data()), s.size()};
}

} // namespace

TEST_CASE("TLS: handshake, data both ways, close_notify") {
    Pair p(client_context(), server_context());
    p.handshake();
    REQUIRE(p.client.established());
    REQUIRE(p.server.established());
    CHECK(p.client.description().starts_with("TLSv1.2 "));
    CHECK_FALSE(p.server.peer_presented_certificate());

    REQUIRE(p.client.send(bytes("CONNECT")) == Status::ok);
    p.pump();
    CHECK(p.to_server == "CONNECT");
    const std::string big(100'000, 'x'); // several records
    REQUIRE(p.server.send(bytes(big)) == Status::ok);
    p.pump();
    CHECK(p.to_client == big);

    p.client.close_notify();
    std::vector<uint8_t> wire;
    wire.swap(p.client.output());
    std::span<const uint8_t> plain;
    CHECK(p.server.receive(wire, plain) == Status::closed);
}

TEST_CASE("TLS: records arriving one byte at a time") {
    Pair p(client_context(), server_context());
    p.handshake(1);
    REQUIRE(p.server.established());
    REQUIRE(p.client.send(bytes("split into single bytes")) == Status::ok);
    p.pump(1);
    CHECK(p.to_server == "split into single bytes");
}

TEST_CASE("TLS: seal_into encrypts the plaintext and hands over all ciphertext") {
    Pair p(client_context(), server_context());
    p.handshake();
    std::vector<uint8_t> plain = {'a', 'b', 'c'};
    std::vector<uint8_t> wire;
    CHECK(p.client.seal_into(plain, wire));
    CHECK(plain.empty());
    CHECK(p.client.output().empty());
    std::span<const uint8_t> out;
    REQUIRE(p.server.receive(wire, out) == Status::ok);
    CHECK(std::string(out.begin(), out.end()) == "abc");
    std::vector<uint8_t> nothing;
    std::vector<uint8_t> wire2;
    CHECK_FALSE(p.client.seal_into(nothing, wire2));
}

TEST_CASE("TLS: the client certificate's CN or SAN identifies the client") {
    Pair p(client_context(true), server_context(config::TlsConfig::ClientCertificates::required));
    p.handshake();
    REQUIRE(p.server.established());
    CHECK(p.server.peer_identity(config::TlsConfig::Identity::cn) == "device-7");
    CHECK(p.server.peer_identity(config::TlsConfig::Identity::san) == "device-7.example");
    CHECK(p.server.peer_identity(config::TlsConfig::Identity::none).empty());
}

TEST_CASE("TLS: a required client certificate that is missing is refused as credentials") {
    Pair p(client_context(false), server_context(config::TlsConfig::ClientCertificates::required));
    p.handshake();
    CHECK(p.server_status == Status::failed);
    CHECK(p.server.credentials_refused());
    CHECK(p.server.error().find("no certificate") != std::string::npos);
}

TEST_CASE("TLS: a server certificate for another name is refused with the reason") {
    Pair p(client_context(), server_context(), "gateway.example");
    p.handshake();
    CHECK(p.client_status == Status::failed);
    CHECK(p.client.error().find("server certificate refused") != std::string::npos);
    CHECK(p.client.error().find("Common Name") != std::string::npos);
}

TEST_CASE("TLS: contexts report unusable files with the key that names them") {
    config::TlsConfig t;
    t.cert_file = cert_path("server.crt");
    t.key_file = cert_path("client.key"); // a key, but not the certificate's
    std::string error;
    CHECK_FALSE(net::TlsContext::make(net::TlsContext::Role::server, t, error));
    CHECK(error.find("does not match the certificate") != std::string::npos);
    t.key_file = cert_path("server.key");
    t.cert_file = cert_path("README.md");
    CHECK_FALSE(net::TlsContext::make(net::TlsContext::Role::server, t, error));
    CHECK(error.starts_with("cert_file "));
}
