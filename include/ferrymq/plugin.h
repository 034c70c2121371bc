/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ferrymq plugin ABI: MQTT 5.0 enhanced-authentication methods (MQTT 5.0 spec 4.12) in a
 * shared object that ferrymq loads at start-up.
 *
 * A plugin is a shared object listed under the `plugins:` key of the configuration:
 *
 *     plugins:
 *       - path: /usr/lib/ferrymq/plugins/my_method.so
 *
 * ferrymq loads it with dlopen() and calls its entry point, FERRYMQ_AUTH_PLUGIN_ENTRY
 * ("ferrymq_auth_plugin"), once, passing FERRYMQ_AUTH_PLUGIN_ABI_VERSION. The entry point
 * returns a description of one authentication method (struct ferrymq_auth_method), or NULL
 * when it cannot serve that ABI version; ferrymq then refuses to start. From then on, a 5.0
 * CONNECT whose Authentication Method equals `method` is authenticated by the plugin:
 *
 *     CONNECT (method, data)   -> start()  -> CONTINUE: AUTH 0x18 (data) to the client
 *     AUTH 0x18 (data)         -> next()   -> CONTINUE again, or
 *                                             SUCCESS: CONNACK 0x00 (data)
 *                                             FAILURE: CONNACK reason_code, connection closed
 *     AUTH 0x19 (data), later  -> start() of a new exchange (re-authentication); SUCCESS
 *                                 answers AUTH 0x00, FAILURE ends the connection with
 *                                 DISCONNECT (reason_code if DISCONNECT allows it, else 0x87)
 *
 * Every exchange that start() began is ended by exactly one call to free_exchange(), with
 * the pointer start() returned: after SUCCESS or FAILURE, or when the connection closes in
 * the middle of the exchange.
 *
 * Threading and blocking: ferrymq runs one event loop on one thread, and every callback is
 * called on it. A callback must return quickly and must never block (no network or disk
 * I/O, no sleeping): while it runs, no other client is served.
 *
 * Memory: the broker copies what a callback returns before it calls the plugin again. A
 * step's `data` and `log_message` must stay valid until the next call for the same exchange
 * (next() or free_exchange()); keeping them in the exchange's own state is the usual way.
 * The broker never frees plugin memory, and the plugin never frees broker memory.
 *
 * The layout of these structures changes only together with
 * FERRYMQ_AUTH_PLUGIN_ABI_VERSION. Strings are UTF-8 without U+0000 (the broker has
 * validated them), NUL-terminated; Authentication Data is binary, with a length.
 */
#ifndef FERRYMQ_PLUGIN_H
#define FERRYMQ_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI described here. The entry point receives the broker's and a struct
 * ferrymq_auth_method carries the plugin's; they must be equal. */
#define FERRYMQ_AUTH_PLUGIN_ABI_VERSION 1u

/* The symbol ferrymq looks up in every plugin; its type is ferrymq_auth_plugin_entry. */
#define FERRYMQ_AUTH_PLUGIN_ENTRY "ferrymq_auth_plugin"

/* How a step of an exchange ended. */
enum ferrymq_auth_outcome {
    FERRYMQ_AUTH_CONTINUE = 0, /* send `data` in AUTH 0x18 and wait for the client's answer */
    FERRYMQ_AUTH_SUCCESS = 1,  /* authenticated: send `data` (if any) with CONNACK / AUTH 0x00 */
    FERRYMQ_AUTH_FAILURE = 2   /* not authenticated: refuse with `reason_code` */
};

/* What start() and next() fill in. The broker zeroes it before each call, so a plugin sets
 * only what it needs. */
struct ferrymq_auth_step {
    int outcome; /* an enum ferrymq_auth_outcome value; anything else counts as FAILURE */
    /* Authentication Data for the client (binary; NULL or length 0: none is sent). */
    const uint8_t *data;
    size_t data_len;
    /* On FAILURE: the CONNACK reason code, for example 0x86 (Bad User Name or Password),
     * 0x87 (Not authorized) or 0x8A (Banned). 0, or a code CONNACK does not allow for a
     * refusal, means 0x86. The client gets the code and the Reason String "authentication
     * failed", nothing more. */
    uint8_t reason_code;
    /* Optional: on FAILURE why (for the broker's log only, never sent to the client); on
     * SUCCESS who was authenticated (for the log). NUL-terminated, or NULL. */
    const char *log_message;
};

/* One authentication method, as the entry point describes it. The structure and the strings
 * it points to must stay valid until the plugin is unloaded (when the broker exits). */
struct ferrymq_auth_method {
    uint32_t abi_version; /* FERRYMQ_AUTH_PLUGIN_ABI_VERSION */
    /* The Authentication Method name clients send in CONNECT, compared byte for byte, for
     * example "ferrymq-example-echo". It must not be one another plugin or the broker
     * (SCRAM-SHA-256) already offers. */
    const char *method;
    void *method_data; /* passed to every start(); owned by the plugin */

    /* Begins an exchange: on CONNECT (client_id as the client sent it, possibly "" when
     * the broker will assign one) or on re-authentication (the session's client id).
     * username is NULL when CONNECT had no User Name. data is the Authentication Data
     * (possibly NULL with data_len 0). Returns the exchange's own state, passed to next()
     * and free_exchange(); NULL is fine for a method that keeps none. Required. */
    void *(*start)(void *method_data, const char *client_id, const char *username,
                   const uint8_t *data, size_t data_len, struct ferrymq_auth_step *step);

    /* Continues an exchange with the Authentication Data of the client's AUTH 0x18.
     * Required. */
    void (*next)(void *exchange, const uint8_t *data, size_t data_len,
                 struct ferrymq_auth_step *step);

    /* Ends an exchange; called exactly once per start(). May be NULL when start() keeps no
     * state. */
    void (*free_exchange)(void *exchange);
};

/* Marks the entry point as exported when a plugin is built with hidden visibility. */
#if defined(__GNUC__)
#define FERRYMQ_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define FERRYMQ_PLUGIN_EXPORT
#endif

/* The entry point: returns the method for `broker_abi_version`, or NULL if the plugin cannot
 * serve that version. Called once, on the loop thread, before any client connects. A plugin
 * defines it (the broker only looks it up, so declaring it here costs the broker nothing). */
FERRYMQ_PLUGIN_EXPORT const struct ferrymq_auth_method *
ferrymq_auth_plugin(uint32_t broker_abi_version);
typedef const struct ferrymq_auth_method *(*ferrymq_auth_plugin_entry)(uint32_t broker_abi_version);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FERRYMQ_PLUGIN_H */
