/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An example enhanced-authentication plugin for ferrymq, in plain C against
 * include/ferrymq/plugin.h. Load it with
 *
 *     plugins:
 *       - path: /path/to/libferrymq_example_auth.so
 *
 * and connect with Authentication Method "ferrymq-example-echo". The method is a toy, not
 * security: it shows every part of the ABI in a few lines.
 *
 *   CONNECT data "abc"          -> AUTH 0x18 with the challenge "cba" (the data reversed)
 *   AUTH 0x18 data "cba"        -> CONNACK 0x00 with data "hello <user name>"
 *   AUTH 0x18 other data        -> CONNACK 0x87 Not authorized
 *   CONNECT with no data        -> CONNACK 0x86 Bad User Name or Password
 *   CONNECT by user "banned"    -> CONNACK 0x8A Banned, at once
 *
 * Re-authentication (AUTH 0x19) runs the same exchange again.
 */
#include <ferrymq/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHALLENGE_MAX 256

/* The state of one exchange: the challenge sent and the reply, which must outlive the call
 * that returns them (the broker copies them before it calls again). */
struct exchange {
    uint8_t challenge[CHALLENGE_MAX];
    size_t challenge_len;
    char reply[128];
    char user[64];
};

static void *example_start(void *method_data, const char *client_id, const char *username,
                           const uint8_t *data, size_t data_len, struct ferrymq_auth_step *step) {
    (void)method_data;
    (void)client_id;
    if (username != NULL && strcmp(username, "banned") == 0) {
        step->outcome = FERRYMQ_AUTH_FAILURE;
        step->reason_code = 0x8A; /* Banned */
        step->log_message = "user 'banned' is banned";
        return NULL;
    }
    if (data_len == 0 || data_len > CHALLENGE_MAX) {
        step->outcome = FERRYMQ_AUTH_FAILURE; /* reason_code 0: 0x86 */
        step->log_message = "no challenge seed, or one longer than 256 bytes";
        return NULL;
    }
    struct exchange *x = calloc(1, sizeof *x);
    if (x == NULL) {
        step->outcome = FERRYMQ_AUTH_FAILURE;
        step->reason_code = 0x80; /* Unspecified error */
        step->log_message = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < data_len; ++i) {
        x->challenge[i] = data[data_len - 1 - i];
    }
    x->challenge_len = data_len;
    snprintf(x->user, sizeof x->user, "%s", username != NULL ? username : "");
    step->outcome = FERRYMQ_AUTH_CONTINUE;
    step->data = x->challenge;
    step->data_len = x->challenge_len;
    return x;
}

static void example_next(void *exchange, const uint8_t *data, size_t data_len,
                         struct ferrymq_auth_step *step) {
    struct exchange *x = exchange;
    if (x == NULL || data_len != x->challenge_len || memcmp(data, x->challenge, data_len) != 0) {
        step->outcome = FERRYMQ_AUTH_FAILURE;
        step->reason_code = 0x87; /* Not authorized */
        step->log_message = "the answer is not the challenge";
        return;
    }
    int n = snprintf(x->reply, sizeof x->reply, "hello %s", x->user);
    step->outcome = FERRYMQ_AUTH_SUCCESS;
    step->data = (const uint8_t *)x->reply;
    step->data_len = n > 0 ? (size_t)n : 0;
    step->log_message = x->user;
}

static void example_free(void *exchange) {
    free(exchange);
}

static const struct ferrymq_auth_method example_method = {
    .abi_version = FERRYMQ_AUTH_PLUGIN_ABI_VERSION,
    .method = "ferrymq-example-echo",
    .method_data = NULL,
    .start = example_start,
    .next = example_next,
    .free_exchange = example_free,
};

/* The entry point ferrymq looks up (FERRYMQ_AUTH_PLUGIN_ENTRY), declared in the header. */
FERRYMQ_PLUGIN_EXPORT const struct ferrymq_auth_method *
ferrymq_auth_plugin(uint32_t broker_abi_version) {
    return broker_abi_version == FERRYMQ_AUTH_PLUGIN_ABI_VERSION ? &example_method : NULL;
}
