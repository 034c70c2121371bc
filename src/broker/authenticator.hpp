// SPDX-License-Identifier: Apache-2.0
// The broker's plug-in point for MQTT 5.0 enhanced authentication (spec 4.12). An
// authentication method (SCRAM-SHA-256 in src/auth/, a C plugin loaded from a shared object,
// a toy one in a unit test) implements Authenticator; the app registers each method by its
// Authentication Method name in an AuthenticatorRegistry that the Broker gets through
// BrokerSettings. The broker carries the AUTH packets and decides nothing about credentials.
#pragma once

#include "mqtt/reason.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferrymq::broker {

// What an authentication method answers to one step of an exchange.
struct AuthStep {
    enum class Outcome : uint8_t {
        continue_authentication, // AUTH 0x18 with `data`; the client's next AUTH goes to next()
        success,                 // CONNACK 0x00 (AUTH 0x00 when re-authenticating) with `data`
        failure,                 // CONNACK `reason` (DISCONNECT when re-authenticating)
    };
    Outcome outcome = Outcome::failure;
    std::string data; // Authentication Data for the client (binary; empty: none is sent)
    // On failure: the CONNACK reason code, 0x80 or above. A failed re-authentication ends
    // with DISCONNECT carrying it when DISCONNECT allows the code, else 0x87 Not authorized.
    mqtt::Reason reason = mqtt::Reason::bad_user_name_or_password;
    // On failure: why, for the broker's log only. The client is told "authentication failed"
    // and nothing more, so it cannot tell an unknown user from a wrong password.
    std::string log_message;

    static AuthStep challenge(std::string data) {
        return {Outcome::continue_authentication, std::move(data), {}, {}};
    }
    static AuthStep succeed(std::string data = {}) {
        return {Outcome::success, std::move(data), {}, {}};
    }
    static AuthStep fail(std::string log_message,
                         mqtt::Reason reason = mqtt::Reason::bad_user_name_or_password) {
        return {Outcome::failure, {}, reason, std::move(log_message)};
    }
};

// One exchange of one method on one connection. The registry makes one when a CONNECT names
// the method and another for each re-authentication; the broker owns it until the exchange
// ends or the connection closes. Every call comes from the loop thread and must not block.
class Authenticator {
  public:
    virtual ~Authenticator() = default;
    // The first step, with the Authentication Data of the CONNECT (or of the AUTH 0x19 that
    // asks for re-authentication). `client_id` is the one CONNECT sent (possibly empty, to be
    // assigned) or, when re-authenticating, the session's.
    virtual AuthStep start(std::string_view client_id, const std::optional<std::string> &username,
                           std::string_view data) = 0;
    // Every later step, with the Authentication Data of the client's AUTH 0x18.
    virtual AuthStep next(std::string_view data) = 0;
    // Who the exchange authenticated, for the log once it succeeded; empty if not known.
    virtual std::string identity() const { return {}; }
};

using AuthenticatorPtr = std::unique_ptr<Authenticator>;

// The enhanced-authentication methods a broker offers, by Authentication Method name. Filled
// by the app before the Broker is made; the Broker keeps its own copy for its whole life.
class AuthenticatorRegistry {
  public:
    using Factory = std::function<AuthenticatorPtr()>;

    // Offers `method`, made by `factory` for each exchange. False (and nothing changes) if
    // the name is empty or already taken.
    bool add(std::string method, Factory factory);
    // A new exchange of `method`; null when the method is not offered (CONNACK 0x8C).
    AuthenticatorPtr create(std::string_view method) const;
    bool offers(std::string_view method) const { return factories_.count(method) != 0; }
    bool empty() const { return factories_.empty(); }
    // The names offered, in order, for the start-up log.
    std::vector<std::string> methods() const;

  private:
    std::map<std::string, Factory, std::less<>> factories_;
};

} // namespace ferrymq::broker
