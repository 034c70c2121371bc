// SPDX-License-Identifier: Apache-2.0
// The C plugin ABI (include/ferrymq/plugin.h) behind broker::Authenticator, with a method
// defined here instead of loaded from a shared object: steps are copied, every exchange is
// freed exactly once, and a malformed method is refused before it is offered.
#include "auth/plugin_authenticator.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>

using namespace ferrymq;
using broker::AuthStep;

namespace {

// What the C callbacks saw; the method's method_data, so each test has its own.
struct Calls {
    int started = 0;
    int freed = 0;
    std::string client_id;
    bool had_username = false;
    std::string data;
};

// The exchange state: a buffer the plugin reuses between calls, so the adapter must copy.
struct State {
    Calls *calls;
    char buffer[32];
};

void *test_start(void *method_data, const char *client_id, const char *username,
                 const uint8_t *data, size_t len, ferrymq_auth_step *step) {
    auto *calls = static_cast<Calls *>(method_data);
    ++calls->started;
    calls->client_id = client_id;
    calls->had_username = username != nullptr;
    calls->data.assign(reinterpret_cast<const char *>(data), len);
    auto *state = new State{calls, {}};
    std::strcpy(state->buffer, "challenge");
    step->outcome = FERRYMQ_AUTH_CONTINUE;
    step->data = reinterpret_cast<const uint8_t *>(state->buffer);
    step->data_len = std::strlen(state->buffer);
    return state;
}

void test_next(void *exchange, const uint8_t *data, size_t len, ferrymq_auth_step *step) {
    auto *state = static_cast<State *>(exchange);
    std::strcpy(state->buffer, "overwritten");
    if (len == 2 && std::memcmp(data, "ok", 2) == 0) {
        step->outcome = FERRYMQ_AUTH_SUCCESS;
        step->log_message = "carol";
    } else if (len == 3 && std::memcmp(data, "ban", 3) == 0) {
        step->outcome = FERRYMQ_AUTH_FAILURE;
        step->reason_code = 0x8A;
        step->log_message = "banned";
    } else if (len == 5 && std::memcmp(data, "weird", 5) == 0) {
        step->outcome = 42; // not an outcome: counts as a failure
    } else {
        step->outcome = FERRYMQ_AUTH_FAILURE; // reason_code 0: the default
    }
}

void test_free(void *exchange) {
    auto *state = static_cast<State *>(exchange);
    ++state->calls->freed;
    delete state;
}

ferrymq_auth_method test_method(Calls &calls) {
    return {
        FERRYMQ_AUTH_PLUGIN_ABI_VERSION, "test-plugin", &calls, test_start, test_next, test_free};
}

} // namespace

TEST_CASE("plugin authenticator: steps are copied and every exchange is freed once") {
    Calls calls;
    const ferrymq_auth_method method = test_method(calls);
    {
        auth::PluginAuthenticator a(method);
        AuthStep first = a.start("c1", std::nullopt, std::string_view("\0x", 2));
        CHECK(first.outcome == AuthStep::Outcome::continue_authentication);
        CHECK(first.data == "challenge");
        CHECK(calls.client_id == "c1");
        CHECK_FALSE(calls.had_username);
        CHECK(calls.data == std::string("\0x", 2)); // binary data arrives whole
        AuthStep done = a.next("ok");
        CHECK(done.outcome == AuthStep::Outcome::success);
        CHECK(done.data.empty());
        CHECK(first.data == "challenge"); // a copy, not the plugin's reused buffer
        CHECK(a.identity() == "carol");
        CHECK(calls.freed == 0);
    }
    CHECK(calls.freed == 1);
    { auth::PluginAuthenticator never_started(method); }
    CHECK(calls.freed == 1); // nothing to free without start()
}

TEST_CASE("plugin authenticator: failures carry the plugin's reason code, 0x86 by default") {
    Calls calls;
    const ferrymq_auth_method method = test_method(calls);
    auto fail_with = [&method, &calls](const char *answer) {
        auth::PluginAuthenticator a(method);
        a.start("c1", std::string("u"), "x");
        CHECK(calls.had_username);
        return a.next(answer);
    };
    const AuthStep banned = fail_with("ban");
    CHECK(banned.outcome == AuthStep::Outcome::failure);
    CHECK(banned.reason == mqtt::Reason::banned);
    CHECK(banned.log_message == "banned");
    const AuthStep plain = fail_with("no");
    CHECK(plain.outcome == AuthStep::Outcome::failure);
    CHECK(plain.reason == mqtt::Reason::bad_user_name_or_password);
    CHECK_FALSE(plain.log_message.empty()); // the log still says who refused
    CHECK(fail_with("weird").outcome == AuthStep::Outcome::failure);
    CHECK(calls.started == 3);
    CHECK(calls.freed == 3);
}

TEST_CASE("plugin authenticator: a method is checked before it is offered") {
    Calls calls;
    ferrymq_auth_method m = test_method(calls);
    CHECK(auth::check_plugin_method(&m).empty());
    CHECK_FALSE(auth::check_plugin_method(nullptr).empty());
    m.abi_version = FERRYMQ_AUTH_PLUGIN_ABI_VERSION + 1;
    CHECK(auth::check_plugin_method(&m).find("ABI version") != std::string::npos);
    m = test_method(calls);
    m.method = "";
    CHECK_FALSE(auth::check_plugin_method(&m).empty());
    m = test_method(calls);
    m.next = nullptr;
    CHECK_FALSE(auth::check_plugin_method(&m).empty());
    m = test_method(calls);
    m.free_exchange = nullptr; // optional
    CHECK(auth::check_plugin_method(&m).empty());

    broker::AuthenticatorRegistry registry;
    const ferrymq_auth_method method = test_method(calls);
    CHECK(auth::add_plugin_method(registry, method));
    CHECK_FALSE(auth::add_plugin_method(registry, method)); // the name is taken
    CHECK(registry.offers("test-plugin"));
}
