// SPDX-License-Identifier: Apache-2.0
#include "broker/authenticator.hpp"

namespace ferrymq::broker {

bool AuthenticatorRegistry::add(std::string method, Factory factory) {
    if (method.empty() || !factory) {
        return false;
    }
    return factories_.emplace(std::move(method), std::move(factory)).second;
}

AuthenticatorPtr AuthenticatorRegistry::create(std::string_view method) const {
    auto it = factories_.find(method);
    return it == factories_.end() ? nullptr : it->second();
}

std::vector<std::string> AuthenticatorRegistry::methods() const {
    std::vector<std::string> names;
    for (const auto &[name, factory] : factories_) {
        names.push_back(name);
    }
    return names;
}

} // namespace ferrymq::broker
