// SPDX-License-Identifier: Apache-2.0
// TLS as a transport under a stream (mbedTLS 2.28; 3.x where present). A TlsContext holds
// what every connection of one listener or one bridge shares: certificates, keys, the CA
// chain and the random generator. A TlsSession is one connection's TLS state; it never
// touches a socket: the owner hands it the ciphertext it read and writes the ciphertext it
// produces, so the same code serves server connections, bridge uplinks and bench clients,
// and the MQTT layers above see plaintext only.
#pragma once

#include "config/config.hpp"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/x509_crt.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ferrymq::net {

// Where a bridge finds the system's CAs when its tls block names no ca_file.
inline constexpr const char *kSystemCaFile = "/etc/ssl/certs/ca-certificates.crt";

class TlsContext {
  public:
    enum class Role : uint8_t { server, client };

    // Reads the files `tls` names and builds the shared configuration. Returns null with a
    // one-line reason in `error` ("cert_file /x: ...") when something cannot be used.
    static std::shared_ptr<TlsContext> make(Role role, const config::TlsConfig &tls,
                                            std::string &error);
    ~TlsContext();
    TlsContext(const TlsContext &) = delete;
    TlsContext &operator=(const TlsContext &) = delete;

    Role role() const { return role_; }
    const config::TlsConfig &settings() const { return settings_; }
    // One line for the log: "certificate CN=gw1, valid until 2027-11-25".
    const std::string &summary() const { return summary_; }

  private:
    friend class TlsSession;
    TlsContext(Role role, const config::TlsConfig &tls);
    bool load(std::string &error);

    Role role_;
    config::TlsConfig settings_;
    mbedtls_entropy_context entropy_;
    mbedtls_ctr_drbg_context drbg_;
    mbedtls_ssl_config conf_;
    mbedtls_x509_crt ca_;
    mbedtls_x509_crt own_cert_;
    mbedtls_pk_context own_key_;
    mbedtls_ssl_cache_context cache_; // server: sessions clients may resume
    std::vector<int> ciphers_;        // zero-terminated, kept alive for conf_
    std::vector<const char *> alpn_;  // null-terminated, points into settings_.alpn
    std::string summary_;
};

class TlsSession {
  public:
    enum class Status : uint8_t {
        ok,     // nothing wrong (more input may be needed)
        closed, // the peer ended TLS with close_notify
        failed, // handshake or record error; error() says what
    };

    // `server_name` (client role): sent as SNI and, unless verify_hostname is off, the name
    // the server's certificate must carry; empty: the context's settings().server_name.
    TlsSession(std::shared_ptr<const TlsContext> context, const std::string &server_name = {});
    ~TlsSession();
    TlsSession(const TlsSession &) = delete;
    TlsSession &operator=(const TlsSession &) = delete;

    // Client role: produces the ClientHello (in output()).
    Status start();
    // Takes ciphertext read from the socket, advances the handshake and decrypts what it
    // can. The plaintext is returned; it stays valid until the next receive() on any session
    // (one scratch buffer per thread).
    Status receive(std::span<const uint8_t> ciphertext, std::span<const uint8_t> &plaintext);
    // Encrypts `plaintext` into output(). Only once established().
    Status send(std::span<const uint8_t> plaintext);
    // For stream owners that write one vector at a time: encrypts `plaintext` (once
    // established; it is left empty) and moves all pending ciphertext into `wire`, which
    // must be empty. Returns whether `wire` now has bytes to write.
    bool seal_into(std::vector<uint8_t> &plaintext, std::vector<uint8_t> &wire);
    // Queues a close_notify alert (after whatever was sent before).
    void close_notify();

    // Ciphertext to write to the socket, in order; the owner takes it (swap or clear).
    std::vector<uint8_t> &output() { return out_; }
    const std::vector<uint8_t> &output() const { return out_; }
    bool established() const { return established_; }
    const TlsContext &context() const { return *context_; }
    const std::string &error() const { return error_; }
    // "TLSv1.2 TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", plus the ALPN protocol if any.
    std::string description() const;
    // The peer certificate's subject CN or first DNS subjectAltName; empty without one.
    std::string peer_identity(config::TlsConfig::Identity which) const;
    bool peer_presented_certificate() const;
    // The failure was about the peer's credentials (its certificate, or none where one is
    // required) rather than the protocol.
    bool credentials_refused() const { return credentials_refused_; }

  private:
    static int bio_send(void *self, const unsigned char *data, size_t len);
    static int bio_recv(void *self, unsigned char *data, size_t len);
    Status handshake();
    Status fail(int rc);

    std::shared_ptr<const TlsContext> context_;
    mbedtls_ssl_context ssl_;
    std::vector<uint8_t> out_;
    std::span<const uint8_t> input_; // what bio_recv reads from during receive()
    bool established_ = false;
    bool credentials_refused_ = false;
    std::string error_;
};

} // namespace ferrymq::net
