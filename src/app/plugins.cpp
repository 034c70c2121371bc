// SPDX-License-Identifier: Apache-2.0
#include "app/plugins.hpp"

#include "auth/plugin_authenticator.hpp"

#include <dlfcn.h>

namespace ferrymq::app {

Plugins::~Plugins() {
    for (auto it = handles_.rbegin(); it != handles_.rend(); ++it) {
        ::dlclose(*it);
    }
}

bool Plugins::load_auth_method(const std::string &path, broker::AuthenticatorRegistry &registry,
                               std::string &error) {
    // RTLD_NOW: a plugin with an unresolved symbol fails here, at start-up, not on the first
    // CONNECT. RTLD_LOCAL: two plugins may define the same names.
    void *handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char *why = ::dlerror();
        error = why != nullptr ? why : "cannot load";
        return false;
    }
    auto entry =
        reinterpret_cast<ferrymq_auth_plugin_entry>(::dlsym(handle, FERRYMQ_AUTH_PLUGIN_ENTRY));
    if (entry == nullptr) {
        error = "no " FERRYMQ_AUTH_PLUGIN_ENTRY "() entry point";
        ::dlclose(handle);
        return false;
    }
    const ferrymq_auth_method *method = entry(FERRYMQ_AUTH_PLUGIN_ABI_VERSION);
    error = auth::check_plugin_method(method);
    if (error.empty() && !auth::add_plugin_method(registry, *method)) {
        error = "authentication method '" + std::string(method->method) + "' is already offered";
    }
    if (!error.empty()) {
        ::dlclose(handle);
        return false;
    }
    handles_.push_back(handle);
    return true;
}

} // namespace ferrymq::app
