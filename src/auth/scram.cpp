// SPDX-License-Identifier: Apache-2.0
#include "auth/scram.hpp"

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/version.h>
#include <sys/random.h>

#include <cstring>
#include <vector>

namespace ferrymq::auth {
namespace {

const mbedtls_md_info_t *sha256_info() {
    return mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
}

Digest sha256(const Digest &in) {
    Digest out{};
    mbedtls_md(sha256_info(), in.data(), in.size(), out.data());
    return out;
}

Digest hmac(const uint8_t *key, size_t key_len, std::string_view msg) {
    Digest out{};
    mbedtls_md_hmac(sha256_info(), key, key_len, reinterpret_cast<const uint8_t *>(msg.data()),
                    msg.size(), out.data());
    return out;
}

Digest hmac(const Digest &key, std::string_view msg) {
    return hmac(key.data(), key.size(), msg);
}

Digest salted_password(std::string_view password, std::string_view salt, uint32_t iterations) {
    Digest out{};
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256,
                                  reinterpret_cast<const uint8_t *>(password.data()),
                                  password.size(), reinterpret_cast<const uint8_t *>(salt.data()),
                                  salt.size(), iterations, out.size(), out.data());
#else
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    mbedtls_md_setup(&ctx, sha256_info(), 1);
    mbedtls_pkcs5_pbkdf2_hmac(&ctx, reinterpret_cast<const uint8_t *>(password.data()),
                              password.size(), reinterpret_cast<const uint8_t *>(salt.data()),
                              salt.size(), iterations, static_cast<uint32_t>(out.size()),
                              out.data());
    mbedtls_md_free(&ctx);
#endif
    return out;
}

// Comparison whose time does not depend on where the inputs differ.
bool equal_constant_time(const Digest &a, const Digest &b) {
    uint8_t diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff |= static_cast<uint8_t>(a[i] ^ b[i]);
    }
    return diff == 0;
}

// The value of attribute `name` ("r", "s", ...) in a comma-separated SCRAM message.
std::optional<std::string_view> attribute(std::string_view msg, char name) {
    size_t pos = 0;
    while (pos <= msg.size()) {
        const size_t comma = msg.find(',', pos);
        const std::string_view part =
            msg.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        if (part.size() >= 2 && part[0] == name && part[1] == '=') {
            return part.substr(2);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        pos = comma + 1;
    }
    return std::nullopt;
}

// RFC 5802 §5.1: "=2C" and "=3D" stand for ',' and '='; any other '=' is invalid.
std::optional<std::string> decode_saslname(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '=') {
            out += s[i];
            continue;
        }
        if (s.substr(i, 3) == "=2C") {
            out += ',';
        } else if (s.substr(i, 3) == "=3D") {
            out += '=';
        } else {
            return std::nullopt;
        }
        i += 2;
    }
    return out;
}

std::string random_nonce() {
    uint8_t raw[18];
    if (getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
        // getrandom cannot fail for this size once the pool is initialised; keep going
        // with whatever was read rather than aborting an authentication.
    }
    return base64_encode({reinterpret_cast<const char *>(raw), sizeof raw});
}

ScramServer::Step fail(const char *why) {
    return {ScramServer::Outcome::failure, {}, why};
}

} // namespace

std::string base64_encode(std::string_view bytes) {
    size_t n = 0;
    mbedtls_base64_encode(nullptr, 0, &n, reinterpret_cast<const uint8_t *>(bytes.data()),
                          bytes.size());
    std::string out(n, '\0');
    mbedtls_base64_encode(reinterpret_cast<uint8_t *>(out.data()), out.size(), &n,
                          reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
    out.resize(n);
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    size_t n = 0;
    const auto *in = reinterpret_cast<const uint8_t *>(text.data());
    if (mbedtls_base64_decode(nullptr, 0, &n, in, text.size()) ==
        MBEDTLS_ERR_BASE64_INVALID_CHARACTER) {
        return std::nullopt;
    }
    std::string out(n, '\0');
    if (mbedtls_base64_decode(reinterpret_cast<uint8_t *>(out.data()), out.size(), &n, in,
                              text.size()) != 0) {
        return std::nullopt;
    }
    out.resize(n);
    return out;
}

ScramCredentials scram_derive(std::string_view password, std::string_view salt,
                              uint32_t iterations) {
    const Digest salted = salted_password(password, salt, iterations);
    ScramCredentials c;
    c.salt = std::string(salt);
    c.iterations = iterations;
    c.stored_key = sha256(hmac(salted, "Client Key"));
    c.server_key = hmac(salted, "Server Key");
    return c;
}

std::string scram_client_final(std::string_view password, std::string_view client_first_bare,
                               std::string_view server_first, std::string_view nonce) {
    const auto salt = base64_decode(attribute(server_first, 's').value_or(""));
    const uint32_t iterations =
        static_cast<uint32_t>(std::stoul(std::string(attribute(server_first, 'i').value_or("0"))));
    const Digest salted = salted_password(password, salt.value_or(""), iterations);
    const Digest client_key = hmac(salted, "Client Key");
    const Digest stored_key = sha256(client_key);
    const std::string without_proof = "c=biws,r=" + std::string(nonce);
    const std::string auth_message =
        std::string(client_first_bare) + "," + std::string(server_first) + "," + without_proof;
    const Digest signature = hmac(stored_key, auth_message);
    std::string proof(32, '\0');
    for (size_t i = 0; i < 32; ++i) {
        proof[i] = static_cast<char>(client_key[i] ^ signature[i]);
    }
    return without_proof + ",p=" + base64_encode(proof);
}

ScramServer::Step ScramServer::start(std::string_view client_first) {
    if (started_) {
        return fail("client-first message sent twice");
    }
    started_ = true;
    // gs2-header: no channel binding ("n,,") or "y,," (client supports it, we do not);
    // "p=" (binding required) is refused, as is an authzid.
    if (client_first.substr(0, 3) != "n,," && client_first.substr(0, 3) != "y,,") {
        return fail("unsupported GS2 header (channel binding or authzid)");
    }
    client_first_bare_ = std::string(client_first.substr(3));
    const auto user = attribute(client_first_bare_, 'n');
    const auto nonce = attribute(client_first_bare_, 'r');
    if (!user || !nonce || nonce->empty() || client_first_bare_.substr(0, 2) != "n=") {
        return fail("malformed client-first message");
    }
    const auto name = decode_saslname(*user);
    if (!name || name->empty()) {
        return fail("malformed user name");
    }
    username_ = *name;
    credentials_ = lookup_(username_);
    // An unknown user gets a believable challenge and fails at the proof, so the exchange
    // does not tell which user names exist (RFC 5802 §9 recommends this).
    ScramCredentials c = credentials_.value_or(scram_derive("", "unknown-user", 4096));
    nonce_ = std::string(*nonce) + random_nonce();
    server_first_ =
        "r=" + nonce_ + ",s=" + base64_encode(c.salt) + ",i=" + std::to_string(c.iterations);
    return {Outcome::challenge, server_first_, ""};
}

ScramServer::Step ScramServer::finish(std::string_view client_final) {
    if (!started_ || nonce_.empty()) {
        return fail("client-final message before client-first");
    }
    const auto binding = attribute(client_final, 'c');
    const auto nonce = attribute(client_final, 'r');
    const auto proof_b64 = attribute(client_final, 'p');
    const size_t proof_at = client_final.rfind(",p=");
    if (!binding || !nonce || !proof_b64 || proof_at == std::string_view::npos) {
        return fail("malformed client-final message");
    }
    if (*binding != "biws" && *binding != "eSws") { // base64 of "n,," and "y,,"
        return fail("channel binding does not match the GS2 header");
    }
    if (*nonce != nonce_) {
        return fail("nonce mismatch");
    }
    const auto proof = base64_decode(*proof_b64);
    if (!proof || proof->size() != 32) {
        return fail("malformed client proof");
    }
    if (!credentials_) {
        return fail("unknown user");
    }
    const std::string auth_message = client_first_bare_ + "," + server_first_ + "," +
                                     std::string(client_final.substr(0, proof_at));
    const Digest signature = hmac(credentials_->stored_key, auth_message);
    Digest client_key{};
    for (size_t i = 0; i < 32; ++i) {
        client_key[i] = static_cast<uint8_t>((*proof)[i]) ^ signature[i];
    }
    if (!equal_constant_time(sha256(client_key), credentials_->stored_key)) {
        return fail("wrong password");
    }
    const Digest server_signature = hmac(credentials_->server_key, auth_message);
    return {Outcome::success,
            "v=" + base64_encode({reinterpret_cast<const char *>(server_signature.data()),
                                  server_signature.size()}),
            ""};
}

} // namespace ferrymq::auth
