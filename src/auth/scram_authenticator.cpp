// SPDX-License-Identifier: Apache-2.0
#include "auth/scram_authenticator.hpp"

namespace ferrymq::auth {

namespace {

broker::AuthStep to_auth_step(ScramServer::Step &&step) {
    switch (step.outcome) {
    case ScramServer::Outcome::challenge:
        return broker::AuthStep::challenge(std::move(step.data));
    case ScramServer::Outcome::success:
        return broker::AuthStep::succeed(std::move(step.data));
    case ScramServer::Outcome::failure:
        break;
    }
    return broker::AuthStep::fail(step.error);
}

} // namespace

// The SCRAM user name travels inside the client-first message, so the MQTT user name and
// client id play no part: RFC 7677 binds the exchange to its own messages.
broker::AuthStep ScramAuthenticator::start(std::string_view, const std::optional<std::string> &,
                                           std::string_view data) {
    return to_auth_step(server_.start(data));
}

broker::AuthStep ScramAuthenticator::next(std::string_view data) {
    return to_auth_step(server_.finish(data));
}

bool add_scram_sha256(broker::AuthenticatorRegistry &registry, ScramServer::Lookup lookup) {
    return registry.add(std::string(kScramSha256), [lookup = std::move(lookup)] {
        return std::make_unique<ScramAuthenticator>(lookup);
    });
}

} // namespace ferrymq::auth
