// SPDX-License-Identifier: Apache-2.0
// SCRAM-SHA-256 (RFC 5802, RFC 7677), the server side of the exchange that MQTT 5.0
// enhanced authentication carries in CONNECT/AUTH packets. Pure computation over mbedTLS
// primitives: no I/O, no knowledge of MQTT; the broker feeds it the Authentication Data.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace ferrymq::auth {

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";

using Digest = std::array<uint8_t, 32>;

// What a password store keeps for one user: never the password itself (RFC 5802 §3).
struct ScramCredentials {
    std::string salt;        // raw bytes
    uint32_t iterations = 0; // PBKDF2 rounds
    Digest stored_key{};     // H(ClientKey)
    Digest server_key{};     // HMAC(SaltedPassword, "Server Key")
};

// Derives the stored credentials from a password (also what a password file writes).
ScramCredentials scram_derive(std::string_view password, std::string_view salt,
                              uint32_t iterations);

// The client's proof for the given exchange, for tests and for clients built on ferrymq.
std::string scram_client_final(std::string_view password, std::string_view client_first_bare,
                               std::string_view server_first, std::string_view nonce);

// One authentication exchange on the server side. Created per attempt; start() with the
// client-first message, then finish() with the client-final message.
class ScramServer {
  public:
    using Lookup = std::function<std::optional<ScramCredentials>(std::string_view user)>;

    enum class Outcome : uint8_t { challenge, success, failure };
    struct Step {
        Outcome outcome = Outcome::failure;
        std::string data;       // server-first or server-final message to send
        const char *error = ""; // why, on failure (for logs; never sent to the client)
    };

    explicit ScramServer(Lookup lookup) : lookup_(std::move(lookup)) {}

    // Takes "n,,n=user,r=nonce" and answers with "r=nonce+server,s=salt,i=iterations".
    Step start(std::string_view client_first);
    // Takes "c=biws,r=nonce,p=proof"; on success answers "v=signature".
    Step finish(std::string_view client_final);

    // The authenticated user, once start() found it.
    const std::string &username() const { return username_; }

  private:
    Lookup lookup_;
    std::optional<ScramCredentials> credentials_;
    std::string username_;
    std::string client_first_bare_;
    std::string server_first_;
    std::string nonce_;
    bool started_ = false;
};

// Base64 (RFC 4648) helpers over mbedTLS, shared with the password file.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

} // namespace ferrymq::auth
