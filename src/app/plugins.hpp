// SPDX-License-Identifier: Apache-2.0
// The shared objects listed under `plugins:` in the configuration (include/ferrymq/plugin.h).
// Owned by the Server, which loads them before it makes the Broker and destroys them after
// the Broker, whose authentication exchanges call into them until it is gone.
#pragma once

#include "broker/authenticator.hpp"

#include <string>
#include <vector>

namespace ferrymq::app {

class Plugins {
  public:
    Plugins() = default;
    ~Plugins(); // unloads every plugin, last loaded first
    Plugins(const Plugins &) = delete;
    Plugins &operator=(const Plugins &) = delete;

    // Loads the plugin at `path` and offers its authentication method in `registry`. On
    // failure returns false with `error` saying why (the file, a missing entry point, an ABI
    // mismatch, a method name already offered) and leaves nothing loaded.
    bool load_auth_method(const std::string &path, broker::AuthenticatorRegistry &registry,
                          std::string &error);

  private:
    std::vector<void *> handles_; // from dlopen(), in load order
};

} // namespace ferrymq::app
