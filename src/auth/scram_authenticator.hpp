// SPDX-License-Identifier: Apache-2.0
// SCRAM-SHA-256 as a broker authentication method: the ScramServer exchange behind the
// broker::Authenticator interface, registered under the name "SCRAM-SHA-256".
#pragma once

#include "auth/scram.hpp"
#include "broker/authenticator.hpp"

namespace ferrymq::auth {

// One SCRAM-SHA-256 exchange: start() takes the client-first message, next() the
// client-final one. Made by the registry per CONNECT or re-authentication.
class ScramAuthenticator final : public broker::Authenticator {
  public:
    explicit ScramAuthenticator(ScramServer::Lookup lookup) : server_(std::move(lookup)) {}

    broker::AuthStep start(std::string_view client_id, const std::optional<std::string> &username,
                           std::string_view data) override;
    broker::AuthStep next(std::string_view data) override;
    std::string identity() const override { return server_.username(); }

  private:
    ScramServer server_;
};

// Offers SCRAM-SHA-256 in `registry`, with credentials from `lookup`.
bool add_scram_sha256(broker::AuthenticatorRegistry &registry, ScramServer::Lookup lookup);

} // namespace ferrymq::auth
