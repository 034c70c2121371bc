// SPDX-License-Identifier: Apache-2.0
// An authentication method from a C plugin (include/ferrymq/plugin.h) behind the
// broker::Authenticator interface. No dlopen here: app/ loads the shared object and hands
// over the method it describes, so tests can pass a method defined in the test itself.
#pragma once

#include "broker/authenticator.hpp"

#include <ferrymq/plugin.h>

#include <string>

namespace ferrymq::auth {

// One exchange of a plugin's method: start() calls the plugin's start(), next() its next(),
// and the destructor its free_exchange(), so an exchange is freed exactly once however it
// ends. `method` belongs to the plugin and outlives every exchange.
class PluginAuthenticator final : public broker::Authenticator {
  public:
    explicit PluginAuthenticator(const ferrymq_auth_method &method) : method_(method) {}
    ~PluginAuthenticator() override;
    PluginAuthenticator(const PluginAuthenticator &) = delete;
    PluginAuthenticator &operator=(const PluginAuthenticator &) = delete;

    broker::AuthStep start(std::string_view client_id, const std::optional<std::string> &username,
                           std::string_view data) override;
    broker::AuthStep next(std::string_view data) override;
    std::string identity() const override { return identity_; }

  private:
    broker::AuthStep to_auth_step(const ferrymq_auth_step &step);

    const ferrymq_auth_method &method_;
    void *exchange_ = nullptr; // what the plugin's start() returned
    bool started_ = false;     // start() ran, so free_exchange() is owed
    std::string identity_;     // the log_message of a successful step
};

// Why `method` cannot be used (wrong ABI version, no name, a required callback missing), or
// an empty string when it can.
std::string check_plugin_method(const ferrymq_auth_method *method);

// Offers a checked plugin method in `registry` under its own name; false if the name is
// taken.
bool add_plugin_method(broker::AuthenticatorRegistry &registry, const ferrymq_auth_method &method);

} // namespace ferrymq::auth
