/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authorization toward one FHIR server: adapters (smart-backend, client-secret, bearer, none)
 * behind one ops table each, and pw_auth_submit_new(), which sends a request with credentials,
 * renews them when they are missing or about to expire, and on a 401 renews once and retries
 * once. Tokens and secrets are never logged.
 */
#ifndef PAINWATCH_AUTH_H
#define PAINWATCH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "painwatch/conf_map.h"
#include "painwatch/http.h"

struct pw_auth;

/**
 * Settings of one authorization: what core knows of the server, and the adapter's own config
 * object. Strings are copied; the section is referenced.
 */
struct pw_auth_conf {
    const char *type;      /* NULL: the section's "type"; neither: "none" */
    const char *server;    /* pw_http server name of the FHIR server these credentials are for */
    const char *fhir_base; /* discovery reads <fhir_base>/.well-known/smart-configuration */
    const char *token_ca_file; /* CA bundle for the token endpoint; NULL: system store */
    /* scope an OAuth adapter requests when its section sets none (core derives it from the
     * server's resources), e.g. "system/Observation.rs system/MedicationRequest.rs"; may be NULL */
    const char *scope;
    /* the FHIR server's proxy setting, used for its token endpoint too; NULL: direct */
    const char *proxy;
    /*
     * The adapter's config object, servers[].auth: {"type": ..., its keys (its config_map)}, e.g.
     * {"type": "bearer", "token_file": "/etc/painwatch/token"}. Borrowed; the auth keeps a
     * reference (the adapter's context borrows strings from it). NULL: no keys.
     */
    const json_t *section;
};

/**
 * The OAuth client settings smart-backend and client-secret share: the first member of their
 * context, declared in their config_map by PW_AUTH_OAUTH_FIELDS, handed to core by
 * pw_auth_oauth_use() in their init. Borrowed from the section.
 */
struct pw_auth_oauth {
    const char *token_url; /* NULL: discovered from .well-known/smart-configuration */
    const char *client_id;
    const char *scope; /* NULL: pw_auth_conf's scope */
};

/** The config_map rows of struct pw_auth_oauth, first member of the context type @p ctx_type. */
#define PW_AUTH_OAUTH_FIELDS(ctx_type)                                                      \
    {.name = "token_url",                                                                   \
     .type = PW_CONF_STRING,                                                                \
     .offset = offsetof(ctx_type, oauth.token_url),                                         \
     .help = "token endpoint; unset: discovered from .well-known/smart-configuration and "  \
             "used only on base_url's origin"},                                             \
        {.name = "client_id",                                                               \
         .type = PW_CONF_STRING,                                                            \
         .flags = PW_CONF_F_REQUIRED,                                                       \
         .offset = offsetof(ctx_type, oauth.client_id),                                     \
         .help = "the registered client id"},                                               \
    {                                                                                       \
        .name = "scope", .type = PW_CONF_STRING, .offset = offsetof(ctx_type, oauth.scope), \
        .help = "scopes requested with client_credentials; unset: derived from resources "  \
                "(read Patient, Group, each synced type and Flag; write Flag)"              \
    }

/**
 * For OAuth adapters' init: use @p oauth (in the adapter's context) for pw_auth_oauth_refresh().
 * A configured token endpoint is checked now, so a bad one is a startup error.
 * @return 0 or PW_ECONFIG (no client_id, token endpoint not https nor loopback http).
 */
int pw_auth_oauth_use(struct pw_auth *auth, const struct pw_auth_oauth *oauth);

/** Completion of a refresh: 0, or PW_EAUTH / PW_EHTTP / PW_ETIMEDOUT ... */
typedef void pw_auth_done_fn(void *arg, int err);

/** An adapter. Exported as `const struct pw_auth_ops pw_auth_<name>`. */
struct pw_auth_ops {
    /* Must stay first. Name (the config "type"), config_map, ctx_size: auth.c callocs auth->ctx
     * of this size and fills it from the config_map before init (conf_map.h). */
    struct pw_adapter adapter;
    /** Validate the conf, read keys and secrets. No network. */
    int (*init)(struct pw_auth *auth);
    /** Decorate @p req from cached state. PW_EAGAIN: no valid credentials, refresh first. */
    int (*apply)(struct pw_auth *auth, struct pw_http_req *req);
    /** Obtain new credentials over the network: @p done runs exactly once, never
     *  synchronously, unless this returns an error. NULL: nothing to renew. */
    int (*refresh)(struct pw_auth *auth, pw_auth_done_fn *done, void *arg);
    /** The server answered 401 to the current credentials: drop (or re-read) them. */
    void (*invalidate)(struct pw_auth *auth);
    /** Release what init acquired; auth.c frees ctx. May be NULL. */
    void (*cleanup)(struct pw_auth *auth);
    /** issue 20 (r20): what the tools show or publish of the section (auth test, jwks); NULL:
     *  nothing. */
    const struct pw_auth_keys *keys;
};

/**
 * Which keys of an auth adapter's section hold what the tools need (`painwatch auth test`
 * prints who asked for a token and where; `painwatch jwks` publishes the public half of a
 * signing key). NULL members: the adapter has no such key.
 */
struct pw_auth_keys {
    const char *client_id;  /* the client's registered id */
    const char *token_url;  /* the token endpoint (unset: discovered) */
    const char *token_file; /* a token sent as is */
    const char *key_file;   /* the private key whose public half the EHR registers (JWKS) */
    const char *kid;        /* its key id */
    const char *alg;        /* its algorithm (optional: derived from the key) */
};

/** The keys the adapter @p type ("smart-backend", ...) declares, or NULL. */
const struct pw_auth_keys *pw_auth_keys_of(const char *type);

/**
 * The auth registry: smart-backend, client-secret, bearer, none (daemon/core/auth.c: one line per
 * adapter, which also declares its ops; pw_adapter_register() for adapters outside the tree).
 */
extern struct pw_adapter_kind pw_auth_kind;

/**
 * Create an authorization for @p conf on @p http (borrowed: must outlive the auth; the FHIR
 * server must be registered). Reads keys and secrets now, so a bad file is a startup error.
 * Caller owns; free with pw_auth_free(). @return 0, PW_ECONFIG, PW_ESECRET, PW_ENOENT,
 * PW_ENOMEM.
 */
int pw_auth_new(struct pw_auth **out, struct pw_http *http, const struct pw_auth_conf *conf);

/**
 * Free. Call before pw_http_free(): requests still waiting for credentials are called back
 * with PW_ECANCELED; requests already handed to pw_http are canceled by pw_http_free(), whose
 * callbacks no longer touch @p auth. NULL is a no-op.
 */
void pw_auth_free(struct pw_auth *auth);

/**
 * Submit @p req with credentials: pw_http_submit_new()'s contract (takes ownership of @p req
 * on every path; on 0 @p done runs exactly once, never synchronously; on error never).
 * When no valid token is cached (none yet, or within the renewal margin of its expiry) one
 * refresh runs first, shared by all requests waiting for it. On a 401 the token is
 * invalidated, renewed once and the request retried once; a second 401 is handed to @p done.
 * err is PW_EAUTH when credentials could not be obtained.
 */
int pw_auth_submit_new(struct pw_auth *auth, struct pw_http_req *req, pw_http_done_fn *done,
                       void *arg);

/*
 * Direct access to the adapter, for callers with their own 401 policy (the sync scheduler:
 * pw_sync_auth). Same contracts as the ops slots; pw_auth_refresh() is PW_EAUTH for adapters
 * with nothing to renew (pw_auth_can_refresh() false: bearer, none). Concurrent
 * pw_auth_refresh() calls (and pw_auth_submit_new() renewals) share one token request; each
 * caller's @p done runs once, never synchronously, with PW_ECANCELED from pw_auth_free().
 */
int pw_auth_apply(struct pw_auth *auth, struct pw_http_req *req);
bool pw_auth_can_refresh(const struct pw_auth *auth);
int pw_auth_refresh(struct pw_auth *auth, pw_auth_done_fn *done, void *arg);
void pw_auth_invalidate(struct pw_auth *auth);

/**
 * Whether requests or a renewal sent through @p auth are still in flight (a reload keeps a
 * replaced auth until this is false, then frees it). NULL: false.
 */
bool pw_auth_in_use(const struct pw_auth *auth);

/** Tokens obtained since creation (metrics, tests). */
uint64_t pw_auth_refreshes(const struct pw_auth *auth);

/** Clock used for token expiry, in ms; NULL restores the monotonic clock (tests). */
void pw_auth_set_clock(uint64_t (*now_ms)(void));

/* ---- for adapters ------------------------------------------------------------------------ */

/** The copied configuration (the section is the auth's reference). Borrowed: valid until
 *  pw_auth_free(). */
const struct pw_auth_conf *pw_auth_conf(const struct pw_auth *auth);

/** The adapter's context (ctx_size bytes, zeroed and filled from its config_map before init). */
void *pw_auth_ctx(struct pw_auth *auth);

/** Add "Authorization: Bearer <cached token>" to @p req, or PW_EAGAIN when there is no token
 *  or it expires within the renewal margin. */
int pw_auth_bearer_apply(struct pw_auth *auth, struct pw_http_req *req);

/** Cache @p token (copied) valid for @p expires_in_s seconds (<= 0: until invalidated). */
int pw_auth_token_set(struct pw_auth *auth, const char *token, long expires_in_s);

/** Forget the cached token (wiped). */
void pw_auth_token_drop(struct pw_auth *auth);

/**
 * Decorate the token request for an OAuth client_credentials grant: append form fields to
 * @p form (already "grant_type=client_credentials[&scope=...]") and/or headers to @p req.
 * @p aud is the token endpoint URL.
 */
typedef int pw_auth_form_fn(struct pw_auth *auth, const char *aud, struct pw_http_req *req,
                            char **form);

/**
 * The OAuth client_credentials dance shared by smart-backend and client-secret: discover the
 * token endpoint (once), POST the grant decorated by @p form, cache the token. Same contract
 * as pw_auth_ops.refresh.
 */
int pw_auth_oauth_refresh(struct pw_auth *auth, pw_auth_form_fn *form, pw_auth_done_fn *done,
                          void *arg);

/** Append "&name=<url-encoded value>" to the heap string *@p form. */
int pw_auth_form_add(char **form, const char *name, const char *value);

#endif
