// SPDX-License-Identifier: Apache-2.0
#include "auth/plugin_authenticator.hpp"

#include <memory>

namespace ferrymq::auth {

namespace {

const uint8_t *bytes_of(std::string_view data) {
    return reinterpret_cast<const uint8_t *>(data.data());
}

} // namespace

PluginAuthenticator::~PluginAuthenticator() {
    if (started_ && method_.free_exchange != nullptr) {
        method_.free_exchange(exchange_);
    }
}

broker::AuthStep PluginAuthenticator::start(std::string_view client_id,
                                            const std::optional<std::string> &username,
                                            std::string_view data) {
    // The broker makes a new PluginAuthenticator per exchange, so start() runs once.
    const std::string id(client_id); // NUL-terminated for C
    ferrymq_auth_step step{};
    exchange_ =
        method_.start(method_.method_data, id.c_str(), username ? username->c_str() : nullptr,
                      bytes_of(data), data.size(), &step);
    started_ = true;
    return to_auth_step(step);
}

broker::AuthStep PluginAuthenticator::next(std::string_view data) {
    ferrymq_auth_step step{};
    method_.next(exchange_, bytes_of(data), data.size(), &step);
    return to_auth_step(step);
}

// Copies what the plugin returned: its buffers are only valid until the next call.
broker::AuthStep PluginAuthenticator::to_auth_step(const ferrymq_auth_step &step) {
    std::string data;
    if (step.data != nullptr && step.data_len != 0) {
        data.assign(reinterpret_cast<const char *>(step.data), step.data_len);
    }
    const std::string message = step.log_message != nullptr ? step.log_message : "";
    switch (step.outcome) {
    case FERRYMQ_AUTH_CONTINUE:
        return broker::AuthStep::challenge(std::move(data));
    case FERRYMQ_AUTH_SUCCESS:
        identity_ = message;
        return broker::AuthStep::succeed(std::move(data));
    default:
        break;
    }
    // The broker replaces a code CONNACK does not allow for a refusal by 0x86.
    const auto reason = step.reason_code == 0 ? mqtt::Reason::bad_user_name_or_password
                                              : static_cast<mqtt::Reason>(step.reason_code);
    return broker::AuthStep::fail(message.empty() ? "refused by the plugin" : message, reason);
}

std::string check_plugin_method(const ferrymq_auth_method *m) {
    if (m == nullptr) {
        return "the plugin offers no method for ABI version " +
               std::to_string(FERRYMQ_AUTH_PLUGIN_ABI_VERSION);
    }
    if (m->abi_version != FERRYMQ_AUTH_PLUGIN_ABI_VERSION) {
        return "the plugin was built for ABI version " + std::to_string(m->abi_version) +
               ", this broker has " + std::to_string(FERRYMQ_AUTH_PLUGIN_ABI_VERSION);
    }
    if (m->method == nullptr || *m->method == '\0') {
        return "the plugin's method has no name";
    }
    if (m->start == nullptr || m->next == nullptr) {
        return "the plugin's method lacks start() or next()";
    }
    return {};
}

bool add_plugin_method(broker::AuthenticatorRegistry &registry, const ferrymq_auth_method &method) {
    return registry.add(method.method,
                        [&method] { return std::make_unique<PluginAuthenticator>(method); });
}

} // namespace ferrymq::auth
