/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authorization core: the adapter registry, the token cache, the OAuth client_credentials
 * exchange shared by smart-backend and client-secret, and pw_auth_submit_new() (credentials,
 * renewal before expiry, one renewal and one retry after a 401).
 */
#include "painwatch/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/json_err.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/metrics.h"
#include "painwatch/secret.h"

/* Renew this long before the token expires (at most half its lifetime). */
#define RENEW_MARGIN_MS 60000u
/* An access token longer than this is refused (it is sent on every request). */
#define TOKEN_MAX 16384u
/* Token endpoint and discovery answers are small JSON documents. */
#define AUTH_BODY_MAX (256u * 1024u)

/*
 * Requests in flight outlive nothing: each holds a reference to this small object, and
 * pw_auth_free() clears `auth`, so a late completion knows not to touch a freed pw_auth.
 */
struct life {
    unsigned refs;
    struct pw_auth *auth;
};

/* One request sent through pw_auth_submit_new(), across its refresh wait and retry. */
struct attempt {
    struct attempt *next; /* waiter list */
    struct life *life;
    struct pw_http_req *spare; /* the request as the caller built it, for each send */
    pw_http_done_fn *done;
    void *arg;
    uint64_t gen;       /* credentials generation applied to the last send */
    bool after_refresh; /* sent right after a refresh: no valid token now means no token */
    bool retried;
};

/* A pw_auth_refresh() caller waiting for the shared refresh. */
struct listener {
    struct listener *next;
    pw_auth_done_fn *done;
    void *arg;
};

struct pw_auth {
    const struct pw_auth_ops *ops;
    struct pw_http *http;
    struct pw_auth_conf conf; /* strings owned, section referenced */
    void *ctx;
    const struct pw_auth_oauth *oauth; /* in ctx: pw_auth_oauth_use(); NULL: not OAuth */
    json_t *section;                   /* the reference to conf.section */
    struct life *life;
    char *token;
    uint64_t renew_at_ms; /* 0: no expiry known */
    uint64_t gen;         /* bumped whenever the credentials change */
    uint64_t refreshes;
    bool refreshing;
    struct attempt *w_head; /* waiting for the refresh in progress */
    struct attempt *w_tail;
    struct listener *listeners; /* pw_auth_refresh() callers sharing that refresh */
    char *token_url;
    char token_server[600]; /* pw_http server name of the current token endpoint */
};

/*
 * The registry: one line per auth adapter (conf_map.h, README "Adding an adapter"), in the order
 * `config describe` and the "type" error message show.
 */
#define AUTHS(X)             \
    X(pw_auth_none)          \
    X(pw_auth_bearer)        \
    X(pw_auth_client_secret) \
    X(pw_auth_smart_backend)

#define DECLARE(ops) extern const struct pw_auth_ops ops;
AUTHS(DECLARE)

struct pw_adapter_kind pw_auth_kind = {
    .name = "auth",
    .type_help = "how painwatch authenticates to this server",
    .adapters = {AUTHS(PW_ADAPTER_ENTRY)},
};

static uint64_t (*clock_fn)(void);

static uint64_t now_ms(void)
{
    struct timespec ts;

    if (clock_fn) {
        return clock_fn();
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void pw_auth_set_clock(uint64_t (*fn)(void))
{
    clock_fn = fn;
}

const struct pw_auth_conf *pw_auth_conf(const struct pw_auth *auth)
{
    return &auth->conf;
}

void *pw_auth_ctx(struct pw_auth *auth)
{
    return auth->ctx;
}

bool pw_auth_in_use(const struct pw_auth *auth)
{
    /* Every attempt and renewal holds a reference to `life`; the auth holds the first. */
    return auth && (auth->refreshing || auth->w_head || auth->listeners || auth->life->refs > 1);
}

uint64_t pw_auth_refreshes(const struct pw_auth *auth)
{
    return auth->refreshes;
}

/* ---- token cache ------------------------------------------------------------------------- */

void pw_auth_token_drop(struct pw_auth *auth)
{
    if (auth->token) {
        pw_secret_wipe(auth->token, strlen(auth->token));
        free(auth->token);
        auth->token = NULL;
    }
    auth->renew_at_ms = 0;
}

int pw_auth_token_set(struct pw_auth *auth, const char *token, long expires_in_s)
{
    char *copy = strdup(token);

    if (!copy) {
        return PW_ENOMEM;
    }
    pw_auth_token_drop(auth);
    auth->token = copy;
    if (expires_in_s > 0) {
        uint64_t life_ms = (uint64_t)expires_in_s * 1000u;
        uint64_t margin = life_ms / 2 < RENEW_MARGIN_MS ? life_ms / 2 : RENEW_MARGIN_MS;
        auth->renew_at_ms = now_ms() + life_ms - margin;
    }
    auth->gen++;
    return 0;
}

int pw_auth_bearer_apply(struct pw_auth *auth, struct pw_http_req *req)
{
    char *line;
    size_t n;
    int err;

    if (!auth->token || (auth->renew_at_ms && now_ms() >= auth->renew_at_ms)) {
        return PW_EAGAIN;
    }
    n = strlen(auth->token) + sizeof("Authorization: Bearer ");
    line = malloc(n);
    if (!line) {
        return PW_ENOMEM;
    }
    snprintf(line, n, "Authorization: Bearer %s", auth->token);
    err = pw_http_req_add_header(req, line);
    pw_secret_wipe(line, n);
    free(line);
    return err;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void life_put(struct life *l)
{
    if (l && --l->refs == 0) {
        free(l);
    }
}

static void conf_free(struct pw_auth_conf *c)
{
    const char **f[] = {&c->type,          &c->server, &c->fhir_base,
                        &c->token_ca_file, &c->scope,  &c->proxy};

    for (size_t i = 0; i < PW_ARRAY_SIZE(f); i++) {
        free((char *)(uintptr_t)*f[i]);
        *f[i] = NULL;
    }
    c->section = NULL; /* the reference is auth->section */
}

static int conf_copy(struct pw_auth_conf *d, const struct pw_auth_conf *s)
{
    const char *const *src[] = {&s->type,          &s->server, &s->fhir_base,
                                &s->token_ca_file, &s->scope,  &s->proxy};
    const char **dst[] = {&d->type,          &d->server, &d->fhir_base,
                          &d->token_ca_file, &d->scope,  &d->proxy};

    d->section = s->section;

    for (size_t i = 0; i < PW_ARRAY_SIZE(src); i++) {
        if (*src[i]) {
            *dst[i] = strdup(*src[i]);
            if (!*dst[i]) {
                return PW_ENOMEM;
            }
        }
    }
    return 0;
}

static int check_token_url(const struct pw_auth *auth, const char *url);

int pw_auth_new(struct pw_auth **out, struct pw_http *http, const struct pw_auth_conf *conf)
{
    const struct pw_adapter *adapter = NULL;
    const char *type;
    struct pw_auth *auth;
    void *ctx = NULL;
    char why[256];
    int err;

    if (!out || !http || !conf || !conf->server) {
        return PW_EINVAL;
    }
    type = conf->type ? conf->type : json_string_value(json_object_get(conf->section, "type"));
    type = type ? type : "none";
    if (!pw_adapter_find(&pw_auth_kind, type)) {
        pw_log_err(AUTH, "server %s: unknown auth type '%s'", conf->server, type);
        return PW_ECONFIG;
    }
    if (!pw_http_server_has(http, conf->server)) {
        pw_log_err(AUTH, "auth for unknown server %s", conf->server);
        return PW_ENOENT;
    }
    err = pw_adapter_instantiate(&pw_auth_kind, conf->section, type, &adapter, &ctx, why,
                                 sizeof(why));
    if (err) {
        if (err == PW_ECONFIG) {
            pw_log_err(AUTH, "server %s: %s", conf->server, why);
        }
        return err;
    }
    auth = calloc(1, sizeof(*auth));
    if (!auth) {
        free(ctx);
        return PW_ENOMEM;
    }
    auth->ops = pw_adapter_ops(adapter);
    auth->http = http;
    auth->ctx = ctx;
    auth->section = pw_conf_ref(conf->section);
    auth->life = calloc(1, sizeof(*auth->life));
    if (!auth->life) {
        err = PW_ENOMEM;
        goto fail;
    }
    auth->life->refs = 1;
    auth->life->auth = auth;
    err = conf_copy(&auth->conf, conf);
    if (err) {
        goto fail;
    }
    err = auth->ops->init(auth);
    if (err) {
        goto fail;
    }
    *out = auth;
    return 0;
fail:
    auth->ops = NULL; /* init failed: nothing for cleanup */
    pw_auth_free(auth);
    return err;
}

int pw_auth_oauth_use(struct pw_auth *auth, const struct pw_auth_oauth *oauth)
{
    if (!oauth->client_id) {
        pw_log_err(AUTH, "server %s: auth %s needs client_id", auth->conf.server,
                   auth->ops->adapter.name);
        return PW_ECONFIG;
    }
    /* A configured token endpoint is checked now: a bad one is a startup error. */
    if (oauth->token_url) {
        int err = check_token_url(auth, oauth->token_url);
        if (err) {
            return err;
        }
    }
    auth->oauth = oauth;
    return 0;
}

static void finish(struct attempt *a, int err, const struct pw_http_resp *resp);

void pw_auth_free(struct pw_auth *auth)
{
    if (!auth) {
        return;
    }
    if (auth->life) {
        auth->life->auth = NULL;
    }
    /* Waiters never reached pw_http: they are ours to cancel. */
    while (auth->w_head) {
        struct attempt *a = auth->w_head;
        auth->w_head = a->next;
        finish(a, PW_ECANCELED, NULL);
    }
    while (auth->listeners) {
        struct listener *l = auth->listeners;
        auth->listeners = l->next;
        l->done(l->arg, PW_ECANCELED);
        free(l);
    }
    if (auth->ops && auth->ops->cleanup) {
        auth->ops->cleanup(auth);
    }
    life_put(auth->life);
    pw_auth_token_drop(auth);
    free(auth->token_url);
    conf_free(&auth->conf);
    json_decref(auth->section);
    free(auth->ctx);
    free(auth);
}

/* ---- OAuth client_credentials ------------------------------------------------------------ */

int pw_auth_form_add(char **form, const char *name, const char *value)
{
    char *enc = pw_http_escape(value);
    size_t old = *form ? strlen(*form) : 0;
    size_t n;
    char *f;

    if (!enc) {
        return PW_ENOMEM;
    }
    n = old + strlen(name) + strlen(enc) + 3;
    /* Not realloc: the form may hold a secret already, and a moved block is left unwiped. */
    f = malloc(n);
    if (!f) {
        pw_secret_wipe(enc, strlen(enc));
        pw_http_escape_free(enc);
        return PW_ENOMEM;
    }
    if (old) {
        memcpy(f, *form, old);
    }
    snprintf(f + old, n - old, "%s%s=%s", old ? "&" : "", name, enc);
    pw_secret_wipe(enc, strlen(enc));
    pw_http_escape_free(enc);
    if (*form) {
        pw_secret_wipe(*form, old);
        free(*form);
    }
    *form = f;
    return 0;
}

/* Secrets go to the token endpoint: https, or plain http on loopback only (tests, sidecars). */
static int check_token_url(const struct pw_auth *auth, const char *url)
{
    char origin[512];

    if (pw_http_origin(url, origin, sizeof(origin)) != 0) {
        pw_log_err(AUTH, "server %s: token endpoint is not an absolute http(s) URL",
                   auth->conf.server);
        return PW_ECONFIG;
    }
    if (strncmp(origin, "https://", 8) == 0 || strncmp(origin, "http://127.0.0.1:", 17) == 0 ||
        strncmp(origin, "http://localhost:", 17) == 0 ||
        strncmp(origin, "http://[::1]:", 13) == 0) {
        return 0;
    }
    pw_log_err(AUTH, "server %s: token endpoint %s is not https; refusing to send credentials",
               auth->conf.server, origin);
    return PW_ECONFIG;
}

/*
 * Use @p url for token requests. The pw_http server is named after the FHIR server and the
 * token origin, so a token endpoint that moves (re-discovered) gets its own registration.
 */
static int set_token_url(struct pw_auth *auth, const char *url)
{
    char origin[256];
    struct pw_http_server srv = {
        .name = auth->token_server,
        .origin = url,
        .ca_file = auth->conf.token_ca_file,
        .max_concurrent = 1,
        .body_max = AUTH_BODY_MAX,
        .proxy = auth->conf.proxy,
    };
    int err = check_token_url(auth, url);

    if (!err) {
        err = pw_http_origin(url, origin, sizeof(origin));
    }
    if (err) {
        return err == PW_E2BIG ? PW_ECONFIG : err;
    }
    snprintf(auth->token_server, sizeof(auth->token_server), "%s~token~%s", auth->conf.server,
             origin);
    if (!pw_http_server_has(auth->http, auth->token_server)) {
        err = pw_http_server_add(auth->http, &srv);
        if (err) {
            return err;
        }
    }
    auth->token_url = strdup(url);
    return auth->token_url ? 0 : PW_ENOMEM;
}

struct oauth_op {
    struct life *life;
    pw_auth_form_fn *form;
    pw_auth_done_fn *done;
    void *arg;
};

static void op_end(struct oauth_op *op, int err)
{
    bool alive = op->life->auth != NULL;

    if (alive && err == PW_EAUTH) {
        pw_metric_inc(PW_M_AUTH_FAILURES, op->life->auth->conf.server, NULL);
    }
    life_put(op->life);
    if (alive) {
        op->done(op->arg, err);
    }
    free(op);
}

static int parse_token(struct pw_auth *auth, const struct pw_http_resp *resp)
{
    json_error_t jerr;
    json_t *doc = json_loadb(resp->body, resp->body_len, 0, &jerr);
    const char *tok = NULL;
    const char *type = NULL;
    json_int_t expires = 0;
    int err = PW_EAUTH;

    /* Nothing of the body reaches the log (issue 18): jansson's error text quotes the bytes
     * near the error (the start of an access token), and token_type is the server's choice. */
    if (!doc) {
        char why[160];
        pw_log_err(AUTH, "server %s: token response is not JSON (%s)", auth->conf.server,
                   pw_json_error_describe(&jerr, why, sizeof(why)));
        return PW_EAUTH;
    }
    if (json_unpack_ex(doc, &jerr, 0, "{s:s, s:s, s?I}", "access_token", &tok, "token_type", &type,
                       "expires_in", &expires) != 0) {
        pw_log_err(AUTH,
                   "server %s: token response lacks access_token or token_type as strings, or "
                   "expires_in as an integer",
                   auth->conf.server);
        goto out;
    }
    if (strcasecmp(type, "bearer") != 0) {
        pw_log_err(AUTH, "server %s: token_type is not bearer", auth->conf.server);
        goto out;
    }
    size_t n = strlen(tok);
    if (n == 0 || n > TOKEN_MAX || strpbrk(tok, " \t\r\n")) {
        pw_log_err(AUTH, "server %s: access_token empty, too long or not a token",
                   auth->conf.server);
        goto out;
    }
    err = pw_auth_token_set(auth, tok, expires > 0 && expires < 86400 * 366 ? (long)expires : 0);
    if (!err) {
        auth->refreshes++;
        pw_log_info(AUTH, "server %s: access token obtained (expires in %lds)", auth->conf.server,
                    (long)expires);
    }
out:
    /* The parsed copy of the token is ours until the decref: wiped first (issue 18). */
    if (tok) {
        pw_secret_wipe((char *)(uintptr_t)tok, strlen(tok));
    }
    json_decref(doc);
    return err;
}

/* @p code when it is a registered OAuth error code (RFC 6749 5.2), else a fixed text. */
static const char *oauth_error_code(const char *code)
{
    static const char *const known[] = {"invalid_request",        "invalid_client",
                                        "invalid_grant",          "unauthorized_client",
                                        "unsupported_grant_type", "invalid_scope"};

    if (!code) {
        return "no OAuth error code";
    }
    for (size_t i = 0; i < PW_ARRAY_SIZE(known); i++) {
        if (strcmp(code, known[i]) == 0) {
            return known[i];
        }
    }
    return "unregistered OAuth error code";
}

static void on_token(void *arg, int err, const struct pw_http_resp *resp)
{
    struct oauth_op *op = arg;
    struct pw_auth *auth = op->life->auth;

    if (!auth) {
        op_end(op, PW_ECANCELED);
        return;
    }
    /* A discovered endpoint that is unreachable or gone is discovered again next time. */
    if (!(auth->oauth && auth->oauth->token_url) &&
        (err == PW_EHTTP || err == PW_ETIMEDOUT || resp->status == 404 || resp->status == 410)) {
        free(auth->token_url);
        auth->token_url = NULL;
    }
    if (err) {
        pw_log_err(AUTH, "server %s: token request failed: %s (%s)", auth->conf.server,
                   pw_strerror(err), resp->error);
        op_end(op, err == PW_ECANCELED ? err : PW_EAUTH);
        return;
    }
    if (resp->status != 200) {
        /* The OAuth "error" code says why (invalid_client...): logged only when it is one of
         * RFC 6749's (5.2), never as whatever string the server chose. */
        json_t *doc = json_loadb(resp->body, resp->body_len, 0, NULL);
        const char *code = oauth_error_code(json_string_value(json_object_get(doc, "error")));
        pw_log_err(AUTH, "server %s: token endpoint answered %ld (%s)", auth->conf.server,
                   resp->status, code);
        json_decref(doc);
        op_end(op, PW_EAUTH);
        return;
    }
    op_end(op, parse_token(auth, resp));
}

static int request_token(struct pw_auth *auth, struct oauth_op *op)
{
    struct pw_http_req *req = NULL;
    char *form = NULL;
    int err;

    err = pw_http_req_new(&req, auth->token_server, "POST", auth->token_url);
    if (!err) {
        pw_http_req_set_sensitive(req); /* secret or assertion out, access token back */
        err = pw_auth_form_add(&form, "grant_type", "client_credentials");
    }
    const char *scope = auth->oauth->scope ? auth->oauth->scope : auth->conf.scope;
    if (!err && scope) {
        err = pw_auth_form_add(&form, "scope", scope);
    }
    if (!err) {
        err = op->form(auth, auth->token_url, req, &form);
    }
    if (!err) {
        err = pw_http_req_add_header(req, "Accept: application/json");
    }
    if (!err) {
        err = pw_http_req_set_body(req, form, strlen(form), "application/x-www-form-urlencoded");
    }
    if (form) {
        pw_secret_wipe(form, strlen(form));
        free(form);
    }
    if (err) {
        pw_http_req_free(req);
        return err;
    }
    return pw_http_submit_new(auth->http, req, on_token, op);
}

/* Same scheme, host and port (pw_http_origin's normal form: default ports, case). */
static bool same_origin(const char *a, const char *b)
{
    char oa[512];
    char ob[512];

    return a && b && pw_http_origin(a, oa, sizeof(oa)) == 0 &&
           pw_http_origin(b, ob, sizeof(ob)) == 0 && strcmp(oa, ob) == 0;
}

static void on_discovery(void *arg, int err, const struct pw_http_resp *resp)
{
    struct oauth_op *op = arg;
    struct pw_auth *auth = op->life->auth;
    json_t *doc = NULL;
    const char *url;

    if (!auth) {
        op_end(op, PW_ECANCELED);
        return;
    }
    if (err || resp->status != 200) {
        /* What failed: the transport's own words when no response came (never "HTTP 0"). */
        if (err) {
            pw_log_err(AUTH, "server %s: SMART configuration unavailable: %s (%s)",
                       auth->conf.server, pw_strerror(err),
                       resp->error && *resp->error ? resp->error : "no response");
        } else {
            pw_log_err(AUTH, "server %s: SMART configuration unavailable: HTTP %ld",
                       auth->conf.server, resp->status);
        }
        op_end(op, err == PW_ECANCELED ? err : PW_EAUTH);
        return;
    }
    doc = json_loadb(resp->body, resp->body_len, 0, NULL);
    url = json_string_value(json_object_get(doc, "token_endpoint"));
    if (!url) {
        pw_log_err(AUTH, "server %s: SMART configuration has no token_endpoint", auth->conf.server);
        err = PW_EAUTH;
    } else if (!same_origin(url, auth->conf.fhir_base)) {
        /* The FHIR server does not get to say where the secret goes (issue 18): only an
         * endpoint on its own origin is believed; anything else must be configured. */
        pw_log_err(AUTH,
                   "server %s: SMART configuration names a token endpoint outside the FHIR "
                   "server's origin; refusing to send credentials there (set auth.token_url if "
                   "the site's token endpoint really lives elsewhere)",
                   auth->conf.server);
        err = PW_EAUTH;
    } else {
        err = set_token_url(auth, url);
    }
    json_decref(doc);
    if (!err) {
        err = request_token(auth, op);
    }
    if (err) {
        op_end(op, err == PW_ECANCELED ? err : PW_EAUTH);
    }
}

static int discover(struct pw_auth *auth, struct oauth_op *op)
{
    struct pw_http_req *req = NULL;
    const char *base = auth->conf.fhir_base;
    size_t n;
    char *url;
    int err;

    if (!base) {
        pw_log_err(AUTH, "server %s: neither token_endpoint nor fhir_base is set",
                   auth->conf.server);
        return PW_ECONFIG;
    }
    n = strlen(base) + sizeof("/.well-known/smart-configuration");
    url = malloc(n);
    if (!url) {
        return PW_ENOMEM;
    }
    snprintf(url, n, "%s%s.well-known/smart-configuration", base,
             base[0] && base[strlen(base) - 1] == '/' ? "" : "/");
    err = pw_http_req_new(&req, auth->conf.server, "GET", url);
    free(url);
    if (!err) {
        err = pw_http_req_add_header(req, "Accept: application/json");
    }
    if (err) {
        pw_http_req_free(req);
        return err;
    }
    return pw_http_submit_new(auth->http, req, on_discovery, op);
}

int pw_auth_oauth_refresh(struct pw_auth *auth, pw_auth_form_fn *form, pw_auth_done_fn *done,
                          void *arg)
{
    struct oauth_op *op;
    int err;

    if (!auth->oauth) {
        return PW_EAUTH; /* the adapter never called pw_auth_oauth_use() */
    }
    if (!auth->token_url && auth->oauth->token_url) {
        err = set_token_url(auth, auth->oauth->token_url);
        if (err) {
            return err;
        }
    }
    op = calloc(1, sizeof(*op));
    if (!op) {
        return PW_ENOMEM;
    }
    op->life = auth->life;
    op->form = form;
    op->done = done;
    op->arg = arg;
    op->life->refs++;
    err = auth->token_url ? request_token(auth, op) : discover(auth, op);
    if (err) {
        life_put(op->life);
        free(op);
    }
    return err;
}

/* ---- submit with credentials ------------------------------------------------------------ */

static void attempt_free(struct attempt *a)
{
    life_put(a->life);
    pw_http_req_free(a->spare);
    free(a);
}

/* Call the caller back once. @p resp NULL: no response (credentials never obtained). */
static void finish(struct attempt *a, int err, const struct pw_http_resp *resp)
{
    struct pw_http_resp none = {
        .body = "",
        .url = pw_http_req_url(a->spare),
        .error = err == PW_ECANCELED ? "canceled" : "no credentials",
    };

    a->done(a->arg, err, resp ? resp : &none);
    attempt_free(a);
}

static void on_attempt_done(void *arg, int err, const struct pw_http_resp *resp);
static void on_refreshed(void *arg, int err);

static void enqueue(struct pw_auth *auth, struct attempt *a)
{
    a->next = NULL;
    if (auth->w_tail) {
        auth->w_tail->next = a;
    } else {
        auth->w_head = a;
    }
    auth->w_tail = a;
}

/*
 * Send @p a with the current credentials, or park it behind a refresh.
 * @return 0 (sent or parked) or an error; on error @p a is untouched (caller finishes it).
 */
static int send_attempt(struct pw_auth *auth, struct attempt *a)
{
    struct pw_http_req *req = NULL;
    int err;

    if (auth->refreshing) {
        enqueue(auth, a);
        return 0;
    }
    err = pw_http_req_dup(&req, a->spare);
    if (!err) {
        err = auth->ops->apply(auth, req);
    }
    if (err == PW_EAGAIN && auth->ops->refresh && !a->after_refresh) {
        pw_http_req_free(req);
        auth->refreshing = true;
        enqueue(auth, a);
        err = auth->ops->refresh(auth, on_refreshed, auth);
        if (err) {
            /* Nobody else can be waiting: refreshing was false until just now. */
            auth->refreshing = false;
            auth->w_head = auth->w_tail = NULL;
            return err == PW_ENOMEM ? err : PW_EAUTH;
        }
        return 0;
    }
    if (err) {
        pw_http_req_free(req);
        return err == PW_EAGAIN ? PW_EAUTH : err;
    }
    a->gen = auth->gen;
    a->after_refresh = false;
    return pw_http_submit_new(auth->http, req, on_attempt_done, a);
}

static void on_refreshed(void *arg, int err)
{
    struct pw_auth *auth = arg;
    struct attempt *list = auth->w_head;
    struct life *life = auth->life;

    struct listener *ls = auth->listeners;

    auth->refreshing = false;
    auth->w_head = auth->w_tail = NULL;
    auth->listeners = NULL;
    /* A caller's done callback may free the auth: hold the life object and check it. */
    life->refs++;
    while (ls) {
        struct listener *l = ls;
        ls = l->next;
        l->done(l->arg, !life->auth ? PW_ECANCELED : err);
        free(l);
    }
    while (list) {
        struct attempt *a = list;
        list = a->next;
        a->after_refresh = true;
        int e = !life->auth ? PW_ECANCELED : err ? err : send_attempt(auth, a);
        if (e) {
            finish(a, e == PW_ECANCELED ? e : PW_EAUTH, NULL);
        }
    }
    life_put(life);
}

static void on_attempt_done(void *arg, int err, const struct pw_http_resp *resp)
{
    struct attempt *a = arg;
    struct pw_auth *auth = a->life->auth;

    if (auth && !err && resp->status == 401) {
        pw_metric_inc(PW_M_AUTH_FAILURES, auth->conf.server, NULL);
    }
    if (!auth || err || resp->status != 401 || a->retried) {
        finish(a, err, resp);
        return;
    }
    /* A 401: renew once and retry once. Only the credentials this request carried are
     * invalidated: if another request renewed them meanwhile, retry with the new ones. */
    a->retried = true;
    if (a->gen == auth->gen) {
        auth->ops->invalidate(auth);
        if (!auth->ops->refresh && a->gen == auth->gen) {
            finish(a, 0, resp); /* nothing new to try */
            return;
        }
    }
    pw_log_notice(AUTH, "server %s: 401, renewing credentials and retrying once",
                  auth->conf.server);
    int e = send_attempt(auth, a);
    if (e) {
        finish(a, e, resp);
    }
}

int pw_auth_submit_new(struct pw_auth *auth, struct pw_http_req *req, pw_http_done_fn *done,
                       void *arg)
{
    struct attempt *a;
    int err;

    if (!auth || !req || !done) {
        pw_http_req_free(req);
        return PW_EINVAL;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        pw_http_req_free(req);
        return PW_ENOMEM;
    }
    a->life = auth->life;
    a->life->refs++;
    a->spare = req;
    a->done = done;
    a->arg = arg;
    err = send_attempt(auth, a);
    if (err) {
        attempt_free(a);
    }
    return err;
}

/* ---- direct access for callers that run their own 401 policy (the sync scheduler) ------- */

int pw_auth_apply(struct pw_auth *auth, struct pw_http_req *req)
{
    return auth->ops->apply(auth, req);
}

bool pw_auth_can_refresh(const struct pw_auth *auth)
{
    return auth->ops->refresh != NULL;
}

int pw_auth_refresh(struct pw_auth *auth, pw_auth_done_fn *done, void *arg)
{
    struct listener *l;

    if (!auth->ops->refresh) {
        return PW_EAUTH;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        return PW_ENOMEM;
    }
    l->done = done;
    l->arg = arg;
    /* One token request at a time: later callers share the one in flight. */
    if (!auth->refreshing) {
        int err = auth->ops->refresh(auth, on_refreshed, auth);
        if (err) {
            free(l);
            return err;
        }
        auth->refreshing = true;
    }
    l->next = auth->listeners;
    auth->listeners = l;
    return 0;
}

void pw_auth_invalidate(struct pw_auth *auth)
{
    if (auth->ops->invalidate) {
        auth->ops->invalidate(auth);
    }
}

const struct pw_auth_keys *pw_auth_keys_of(const char *type)
{
    const struct pw_adapter *a = pw_adapter_find(&pw_auth_kind, type);
    const struct pw_auth_ops *ops = a ? pw_adapter_ops(a) : NULL;

    return ops ? ops->keys : NULL;
}
