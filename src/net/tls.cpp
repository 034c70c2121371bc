// SPDX-License-Identifier: Apache-2.0
#include "net/tls.hpp"

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace ferrymq::net {

namespace {

// mbedtls_strerror() as a string: "X509 - Certificate verification failed, ...".
std::string error_text(int rc) {
    char buf[200];
    mbedtls_strerror(rc, buf, sizeof buf);
    return buf;
}

// The reasons in a certificate verification result, one clause each, joined by "; ".
std::string verify_text(uint32_t flags) {
    char buf[512];
    if (mbedtls_x509_crt_verify_info(buf, sizeof buf, "", flags) < 0) {
        return "unknown reason";
    }
    std::string text;
    for (const char *p = buf; *p != '\0';) {
        const char *end = p;
        while (*end != '\0' && *end != '\n') {
            ++end;
        }
        if (end != p) {
            text.append(text.empty() ? "" : "; ").append(p, end);
        }
        p = *end == '\n' ? end + 1 : end;
    }
    return text.empty() ? "unknown reason" : text;
}

// The subject's first attribute with `oid`, e.g. the CN.
std::string name_attribute(const mbedtls_x509_name *name, const char *oid, size_t oid_len) {
    for (; name != nullptr; name = name->next) {
        if (name->oid.len == oid_len && std::memcmp(name->oid.p, oid, oid_len) == 0) {
            return std::string(reinterpret_cast<const char *>(name->val.p), name->val.len);
        }
    }
    return {};
}

std::string common_name(const mbedtls_x509_crt &crt) {
    return name_attribute(&crt.subject, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN));
}

// The first DNS name among the subjectAltNames, else the first e-mail address.
std::string first_san(const mbedtls_x509_crt &crt) {
    std::string email;
    for (const mbedtls_x509_sequence *s = &crt.subject_alt_names; s != nullptr && s->buf.p;
         s = s->next) {
        const int kind = s->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK;
        std::string value(reinterpret_cast<const char *>(s->buf.p), s->buf.len);
        if (kind == MBEDTLS_X509_SAN_DNS_NAME) {
            return value;
        }
        if (kind == MBEDTLS_X509_SAN_RFC822_NAME && email.empty()) {
            email = std::move(value);
        }
    }
    return email;
}

// A bridge with verify_hostname off still checks the chain and the dates: only a name
// mismatch is forgiven.
int ignore_name_mismatch(void *, mbedtls_x509_crt *, int, uint32_t *flags) {
    *flags &= ~static_cast<uint32_t>(MBEDTLS_X509_BADCERT_CN_MISMATCH);
    return 0;
}

// Resumable sessions a listener remembers (about 1 KiB each), and for how long.
constexpr int kSessionCacheEntries = 1000;
constexpr int kSessionCacheSeconds = 3600;

} // namespace

TlsContext::TlsContext(Role role, const config::TlsConfig &tls) : role_(role), settings_(tls) {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    mbedtls_ssl_config_init(&conf_);
    mbedtls_x509_crt_init(&ca_);
    mbedtls_x509_crt_init(&own_cert_);
    mbedtls_pk_init(&own_key_);
    mbedtls_ssl_cache_init(&cache_);
}

TlsContext::~TlsContext() {
    mbedtls_ssl_cache_free(&cache_);
    mbedtls_pk_free(&own_key_);
    mbedtls_x509_crt_free(&own_cert_);
    mbedtls_x509_crt_free(&ca_);
    mbedtls_ssl_config_free(&conf_);
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
}

std::shared_ptr<TlsContext> TlsContext::make(Role role, const config::TlsConfig &tls,
                                             std::string &error) {
    std::shared_ptr<TlsContext> context(new TlsContext(role, tls));
    if (!context->load(error)) {
        return nullptr;
    }
    return context;
}

bool TlsContext::load(std::string &error) {
    const config::TlsConfig &t = settings_;
    static const char kPersonal[] = "ferrymq";
    int rc = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_,
                                   reinterpret_cast<const unsigned char *>(kPersonal),
                                   sizeof kPersonal - 1);
    if (rc != 0) {
        error = "cannot seed the random generator: " + error_text(rc);
        return false;
    }
    rc = mbedtls_ssl_config_defaults(
        &conf_, role_ == Role::server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        error = "cannot configure TLS: " + error_text(rc);
        return false;
    }
    mbedtls_ssl_conf_rng(&conf_, mbedtls_ctr_drbg_random, &drbg_);
    // Key exchange groups, fastest first: mbedTLS 2.28 would otherwise offer the largest
    // curve (P-521) first, which costs a gateway several times the CPU per handshake.
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    static const uint16_t kGroups[] = {MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
                                       MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
                                       MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, 0};
    mbedtls_ssl_conf_groups(&conf_, kGroups);
#else
    static const mbedtls_ecp_group_id kCurves[] = {MBEDTLS_ECP_DP_CURVE25519,
                                                   MBEDTLS_ECP_DP_SECP256R1,
                                                   MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};
    mbedtls_ssl_conf_curves(&conf_, kCurves);
#endif
    // Debian's mbedTLS still enables TLS 1.0 and 1.1: 1.2 is the floor here.
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_ssl_conf_min_tls_version(&conf_, t.min_version == "1.3" ? MBEDTLS_SSL_VERSION_TLS1_3
                                                                    : MBEDTLS_SSL_VERSION_TLS1_2);
#else
    mbedtls_ssl_conf_min_version(&conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif

    std::string ca_file = t.ca_file;
    if (ca_file.empty() && role_ == Role::client && !t.insecure) {
        ca_file = kSystemCaFile;
    }
    if (!ca_file.empty()) {
        rc = mbedtls_x509_crt_parse_file(&ca_, ca_file.c_str());
        if (rc < 0) {
            error = "ca_file " + ca_file + ": " + error_text(rc);
            return false;
        }
        mbedtls_ssl_conf_ca_chain(&conf_, &ca_, nullptr);
    }
    if (!t.cert_file.empty()) {
        rc = mbedtls_x509_crt_parse_file(&own_cert_, t.cert_file.c_str());
        if (rc != 0) {
            error = "cert_file " + t.cert_file + ": " +
                    (rc > 0 ? "a certificate in it cannot be parsed" : error_text(rc));
            return false;
        }
        std::string password;
        if (!t.key_password_file.empty()) {
            std::ifstream in(t.key_password_file);
            if (!in || !std::getline(in, password)) {
                error = "key_password_file " + t.key_password_file + ": cannot read it";
                return false;
            }
            if (!password.empty() && password.back() == '\r') {
                password.pop_back();
            }
        }
        const char *pwd = t.key_password_file.empty() ? nullptr : password.c_str();
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
        rc = mbedtls_pk_parse_keyfile(&own_key_, t.key_file.c_str(), pwd, mbedtls_ctr_drbg_random,
                                      &drbg_);
#else
        rc = mbedtls_pk_parse_keyfile(&own_key_, t.key_file.c_str(), pwd);
#endif
        if (rc == MBEDTLS_ERR_PKCS5_FEATURE_UNAVAILABLE) {
            error = "key_file " + t.key_file +
                    ": its PKCS#8 encryption is not supported by "
                    "this mbedTLS; re-encrypt it as traditional PEM with AES-256, e.g. "
                    "'openssl ec -aes256' or 'openssl rsa -aes256 -traditional'";
            return false;
        }
        if (rc != 0) {
            error = "key_file " + t.key_file + ": " + error_text(rc);
            return false;
        }
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
        rc = mbedtls_pk_check_pair(&own_cert_.pk, &own_key_, mbedtls_ctr_drbg_random, &drbg_);
#else
        rc = mbedtls_pk_check_pair(&own_cert_.pk, &own_key_);
#endif
        if (rc != 0) {
            error = "key_file " + t.key_file + " does not match the certificate in " + t.cert_file;
            return false;
        }
        rc = mbedtls_ssl_conf_own_cert(&conf_, &own_cert_, &own_key_);
        if (rc != 0) {
            error = "cannot use the certificate: " + error_text(rc);
            return false;
        }
        char until[32];
        std::snprintf(until, sizeof until, "%04d-%02d-%02d", own_cert_.valid_to.year,
                      own_cert_.valid_to.mon, own_cert_.valid_to.day);
        summary_ = "certificate CN=" + common_name(own_cert_) + ", valid until " + until;
        if (mbedtls_x509_time_is_past(&own_cert_.valid_to)) {
            summary_ += " (EXPIRED: peers will refuse it)";
        }
    }

    if (role_ == Role::server) {
        // A device that reconnects within the hour resumes its session: no key exchange
        // and no signature, a fraction of a full handshake's CPU.
        mbedtls_ssl_cache_set_max_entries(&cache_, kSessionCacheEntries);
        mbedtls_ssl_cache_set_timeout(&cache_, kSessionCacheSeconds);
        mbedtls_ssl_conf_session_cache(&conf_, &cache_, mbedtls_ssl_cache_get,
                                       mbedtls_ssl_cache_set);
        using CC = config::TlsConfig::ClientCertificates;
        mbedtls_ssl_conf_authmode(
            &conf_, t.client_certificates == CC::required   ? MBEDTLS_SSL_VERIFY_REQUIRED
                    : t.client_certificates == CC::optional ? MBEDTLS_SSL_VERIFY_OPTIONAL
                                                            : MBEDTLS_SSL_VERIFY_NONE);
    } else {
        mbedtls_ssl_conf_authmode(&conf_, t.insecure ? MBEDTLS_SSL_VERIFY_NONE
                                                     : MBEDTLS_SSL_VERIFY_REQUIRED);
        if (!t.verify_hostname) {
            mbedtls_ssl_conf_verify(&conf_, ignore_name_mismatch, nullptr);
        }
        if (!t.alpn.empty()) {
            for (const std::string &p : settings_.alpn) {
                alpn_.push_back(p.c_str());
            }
            alpn_.push_back(nullptr);
            rc = mbedtls_ssl_conf_alpn_protocols(&conf_, alpn_.data());
            if (rc != 0) {
                error = "alpn: " + error_text(rc);
                return false;
            }
        }
    }
    if (!t.ciphers.empty()) {
        for (const std::string &name : t.ciphers) {
            const int id = mbedtls_ssl_get_ciphersuite_id(name.c_str());
            if (id == 0) {
                error = "unknown cipher suite " + name;
                return false;
            }
            ciphers_.push_back(id);
        }
        ciphers_.push_back(0);
        mbedtls_ssl_conf_ciphersuites(&conf_, ciphers_.data());
    }
    return true;
}

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, const std::string &server_name)
    : context_(std::move(context)) {
    mbedtls_ssl_init(&ssl_);
    int rc = mbedtls_ssl_setup(&ssl_, &context_->conf_);
    const std::string &name = server_name.empty() ? context_->settings().server_name : server_name;
    if (rc == 0 && context_->role() == TlsContext::Role::client && !name.empty()) {
        rc = mbedtls_ssl_set_hostname(&ssl_, name.c_str());
    }
    if (rc != 0) {
        error_ = "cannot set up TLS: " + error_text(rc);
    }
    mbedtls_ssl_set_bio(&ssl_, this, bio_send, bio_recv, nullptr);
}

TlsSession::~TlsSession() {
    mbedtls_ssl_free(&ssl_);
}

int TlsSession::bio_send(void *self, const unsigned char *data, size_t len) {
    auto *s = static_cast<TlsSession *>(self);
    s->out_.insert(s->out_.end(), data, data + len);
    return static_cast<int>(len);
}

int TlsSession::bio_recv(void *self, unsigned char *data, size_t len) {
    auto *s = static_cast<TlsSession *>(self);
    if (s->input_.empty()) {
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    const size_t n = std::min(len, s->input_.size());
    std::memcpy(data, s->input_.data(), n);
    s->input_ = s->input_.subspan(n);
    return static_cast<int>(n);
}

TlsSession::Status TlsSession::fail(int rc) {
    credentials_refused_ =
        rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE;
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        const char *whose = context_->role() == TlsContext::Role::server ? "client" : "server";
        error_ = std::string(whose) +
                 " certificate refused: " + verify_text(mbedtls_ssl_get_verify_result(&ssl_));
    } else if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE) {
        error_ = "the client sent no certificate and this listener requires one";
    } else {
        error_ = error_text(rc);
    }
    return Status::failed;
}

TlsSession::Status TlsSession::start() {
    if (!error_.empty()) {
        return Status::failed;
    }
    return handshake();
}

TlsSession::Status TlsSession::handshake() {
    const int rc = mbedtls_ssl_handshake(&ssl_);
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return Status::ok;
    }
    if (rc != 0) {
        return fail(rc);
    }
    established_ = true;
    // With client certificates optional the handshake succeeds whatever the certificate; one
    // that was sent must still be valid.
    if (context_->role() == TlsContext::Role::server && peer_presented_certificate() &&
        mbedtls_ssl_get_verify_result(&ssl_) != 0) {
        return fail(MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
    }
    return Status::ok;
}

TlsSession::Status TlsSession::receive(std::span<const uint8_t> ciphertext,
                                       std::span<const uint8_t> &plaintext) {
    // mbedTLS keeps a partial record in its own buffer, so all of `ciphertext` is taken.
    thread_local std::vector<uint8_t> plain;
    constexpr size_t kRecord = 16 * 1024;
    plain.clear();
    plaintext = {};
    if (!error_.empty()) {
        return Status::failed;
    }
    input_ = ciphertext;
    Status status = established_ ? Status::ok : handshake();
    while (status == Status::ok && established_) {
        const size_t used = plain.size();
        plain.resize(used + kRecord);
        const int rc = mbedtls_ssl_read(&ssl_, plain.data() + used, kRecord);
        plain.resize(used + static_cast<size_t>(std::max(rc, 0)));
        if (rc > 0) {
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
            break;
        }
        status = rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ? Status::closed : fail(rc);
    }
    input_ = {};
    plaintext = plain;
    return status;
}

TlsSession::Status TlsSession::send(std::span<const uint8_t> plaintext) {
    if (!error_.empty()) {
        return Status::failed;
    }
    while (!plaintext.empty()) {
        // The bio never blocks, so each call takes up to one record.
        const int rc = mbedtls_ssl_write(&ssl_, plaintext.data(), plaintext.size());
        if (rc < 0) {
            return fail(rc);
        }
        plaintext = plaintext.subspan(static_cast<size_t>(rc));
    }
    return Status::ok;
}

bool TlsSession::seal_into(std::vector<uint8_t> &plaintext, std::vector<uint8_t> &wire) {
    if (established_ && !plaintext.empty()) {
        send(plaintext);
        plaintext.clear();
    }
    wire.swap(out_);
    return !wire.empty();
}

void TlsSession::close_notify() {
    if (established_ && error_.empty()) {
        mbedtls_ssl_close_notify(&ssl_);
    }
}

std::string TlsSession::description() const {
    std::string text =
        std::string(mbedtls_ssl_get_version(&ssl_)) + " " + mbedtls_ssl_get_ciphersuite(&ssl_);
    if (const char *alpn = mbedtls_ssl_get_alpn_protocol(&ssl_)) {
        text.append(" ALPN ").append(alpn);
    }
    return text;
}

bool TlsSession::peer_presented_certificate() const {
    return mbedtls_ssl_get_peer_cert(&ssl_) != nullptr;
}

std::string TlsSession::peer_identity(config::TlsConfig::Identity which) const {
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&ssl_);
    if (crt == nullptr || mbedtls_ssl_get_verify_result(&ssl_) != 0) {
        return {};
    }
    switch (which) {
    case config::TlsConfig::Identity::cn:
        return common_name(*crt);
    case config::TlsConfig::Identity::san:
        return first_san(*crt);
    case config::TlsConfig::Identity::none:
        break;
    }
    return {};
}

} // namespace ferrymq::net
