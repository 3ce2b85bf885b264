/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CDS Hooks 2.0 service (cds_hooks.h): its listener (core/listener.c, TLS through
 * libmicrohttpd when configured), the bearer JWT checks, the issuers' key sets (files, or URLs
 * fetched through the HTTP layer), the jti replay window, and the audit of every call. What the
 * cards say is decided in cds_hooks_cards.c.
 *
 * Operational logs name the service, the HTTP status and the reason of a refusal (iss and kid
 * at most): never a patient, a token or a request body. The audit trail has the rest.
 */
#include "painwatch/cds_hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <microhttpd.h>

#include "core/cds_hooks_int.h"
#include "core/listener.h"
#include "painwatch/audit.h"
#include "painwatch/check.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/http.h"
#include "painwatch/jwt.h"
#include "painwatch/limits.h"
#include "painwatch/log.h"
#include "painwatch/secret.h"

#define ISSUERS_MAX     16
#define JTI_LEN_MAX     256
#define CERT_MAX        (256 * 1024) /* a PEM certificate chain */
#define JWKS_RETRY_MS   60000 /* an unknown kid or a failed fetch asks again at most this often */
#define SERVICES_PREFIX "/cds-services"
#define URL_MAX         2048 /* service URL, iss (strings from the configuration) */

struct issuer {
    const char *iss;      /* borrowed from the configuration */
    const char *url;      /* jwks_url or NULL */
    struct pw_jwks *keys; /* NULL until loaded */
    char http_name[32];   /* the HTTP layer's server name for url */
    int64_t fetched_ms;   /* last fetch started */
};

struct pw_cds_hooks {
    struct pw_listener lst;
    uv_timer_t refresh;     /* jwks_url refresh */
    uv_timer_t refused_end; /* the end of a minute whose refused calls were not all audited */
    int open;               /* listener + timer + fetches in flight: freed at 0 */
    bool closing;
    struct pw_cds_hooks_opts opts;
    const struct pw_conf_cds_hooks *conf;
    struct pw_cds_env env;
    struct issuer issuers[ISSUERS_MAX];
    size_t n_issuers;
    json_t *jti; /* "iss\njti" -> exp (s): refused again until then */
    /* refused calls: audited one by one up to refused_audit_per_minute in each minute (from
     * the minute's first refusal), the rest counted and audited in one record at its end */
    int64_t refused_since;              /* ms: start of the current minute, 0: none */
    int64_t refused_n;                  /* refused calls in it */
    int64_t refused_401, refused_other; /* not audited one by one, by status */
    char *tls_cert;
    char *tls_key;
    size_t tls_key_len;
};

/* One connection's request body. */
struct upload {
    char *body;
    size_t len;
    bool too_big;
};

static int64_t now_ms(const struct pw_cds_hooks *c)
{
    struct timeval tv;

    if (c->opts.clock_ms) {
        return c->opts.clock_ms();
    }
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void release(struct pw_cds_hooks *c)
{
    if (--c->open > 0) {
        return;
    }
    for (size_t i = 0; i < c->n_issuers; i++) {
        pw_jwks_free(c->issuers[i].keys);
    }
    json_decref(c->jti);
    free(c->tls_cert);
    pw_secret_free(c->tls_key);
    free(c);
}

/* ---- responses ------------------------------------------------------------------------------ */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, char *body,
                               const char *type, bool auth_challenge)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (!body) {
        return MHD_NO;
    }
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (auth_challenge) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer error=\"invalid_token\"");
    }
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, json_t *doc)
{
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    return respond(conn, status, body, "application/json", false);
}

/* {"error": why}; @p why never holds patient data. */
static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status, const char *why)
{
    json_t *doc = json_pack("{s:s}", "error", why);
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    return respond(conn, status, body, "application/json", status == MHD_HTTP_UNAUTHORIZED);
}

/* ---- the bearer JWT ------------------------------------------------------------------------- */

static struct issuer *issuer_of(struct pw_cds_hooks *c, const char *iss)
{
    for (size_t i = 0; iss && i < c->n_issuers; i++) {
        if (strcmp(c->issuers[i].iss, iss) == 0) {
            return &c->issuers[i];
        }
    }
    return NULL;
}

static void jwks_fetch(struct pw_cds_hooks *c, struct issuer *is);

/* The claim iss, read before the signature is checked: only to choose whose keys check it. */
static char *unverified_iss(const char *token)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    unsigned char *raw = NULL;
    size_t n = 0;
    json_t *claims;
    char *iss = NULL;

    if (!dot2 || pw_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &raw, &n) < 0) {
        return NULL;
    }
    claims = json_loadb((const char *)raw, n, 0, NULL);
    free(raw);
    if (json_is_string(json_object_get(claims, "iss"))) {
        iss = strdup(json_string_value(json_object_get(claims, "iss")));
    }
    json_decref(claims);
    return iss;
}

/* aud: the service's endpoint (discovery's URL of this service) or the service base URL. */
static bool aud_ok(const struct pw_cds_hooks *c, const json_t *aud, const char *service)
{
    const char *base = c->conf->service_url;
    size_t bl = strlen(base);
    const json_t *v;
    size_t i;

    while (bl > 0 && base[bl - 1] == '/') {
        bl--;
    }
    if (json_is_string(aud)) {
        const char *a = json_string_value(aud);
        size_t al = strlen(a);
        char endpoint[URL_MAX];
        snprintf(endpoint, sizeof(endpoint), "%.*s%s/%s", (int)bl, base, SERVICES_PREFIX, service);
        while (al > 0 && a[al - 1] == '/') {
            al--;
        }
        return (al == bl && strncmp(a, base, bl) == 0) ||
               (al == strlen(endpoint) && strncmp(a, endpoint, al) == 0);
    }
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && aud_ok(c, v, service)) {
            return true;
        }
    }
    return false;
}

/* Forget token ids whose tokens have expired. */
static void jti_prune(struct pw_cds_hooks *c, int64_t now_s)
{
    const char *k;
    json_t *v;
    void *tmp;

    json_object_foreach_safe(c->jti, tmp, k, v)
    {
        if (json_integer_value(v) < now_s) {
            json_object_del(c->jti, k);
        }
    }
}

/*
 * The checks of CDS Hooks 2.0 section "Trusting CDS Clients". @return 0 with @p iss_out set;
 * PW_EAUTH (401, reason in @p why); PW_EAGAIN (503: the replay window is full); PW_ENOMEM.
 */
static int authorize(struct pw_cds_hooks *c, struct MHD_Connection *conn, const char *service,
                     char *iss_out, size_t iss_cap, char *why, size_t why_len)
{
    const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    int64_t now = now_ms(c) / 1000;
    int64_t skew = c->conf->clock_skew_ms / 1000;
    json_t *header = NULL;
    json_t *claims = NULL;
    struct issuer *is;
    const char *token;
    char *iss;
    char jkey[URL_MAX + JTI_LEN_MAX + 2];
    int rc;

    if (!authz || strncasecmp(authz, "Bearer ", 7) != 0 || !authz[7]) {
        snprintf(why, why_len, "no bearer token");
        return PW_EAUTH;
    }
    token = authz + 7;
    while (*token == ' ') {
        token++;
    }
    iss = unverified_iss(token);
    is = issuer_of(c, iss);
    free(iss);
    if (!is) {
        snprintf(why, why_len, "iss is not an allowed issuer");
        return PW_EAUTH;
    }
    if (!is->keys) {
        jwks_fetch(c, is);
        snprintf(why, why_len, "no keys for issuer %.80s yet", is->iss);
        return PW_EAUTH;
    }
    rc = pw_jwt_verify(token, is->keys, &header, &claims, why, why_len);
    if (rc == PW_EAUTH && strncmp(why, "no ", 3) == 0) {
        jwks_fetch(c, is); /* an unknown kid: the EHR may have rotated its keys */
    }
    if (rc < 0) {
        return rc;
    }
    const json_t *exp = json_object_get(claims, "exp");
    const json_t *iat = json_object_get(claims, "iat");
    const char *jti = json_string_value(json_object_get(claims, "jti"));
    rc = PW_EAUTH;
    if (!json_is_string(json_object_get(claims, "iss")) ||
        strcmp(json_string_value(json_object_get(claims, "iss")), is->iss) != 0) {
        snprintf(why, why_len, "iss is not an allowed issuer");
    } else if (!aud_ok(c, json_object_get(claims, "aud"), service)) {
        snprintf(why, why_len, "aud is not this service");
    } else if (!json_is_integer(exp) && !json_is_real(exp)) {
        snprintf(why, why_len, "no exp");
    } else if ((int64_t)json_number_value(exp) + skew < now) {
        snprintf(why, why_len, "token expired");
    } else if ((int64_t)json_number_value(exp) > now + c->conf->jti_window_ms / 1000 + skew) {
        snprintf(why, why_len, "exp further ahead than jti_window");
    } else if (iat && (!json_is_number(iat) || (int64_t)json_number_value(iat) > now + skew)) {
        snprintf(why, why_len, "iat in the future");
    } else if (!jti || !jti[0] || strlen(jti) > JTI_LEN_MAX) {
        snprintf(why, why_len, "no jti");
    } else {
        snprintf(jkey, sizeof(jkey), "%s\n%s", is->iss, jti);
        jti_prune(c, now - skew);
        if (json_object_get(c->jti, jkey)) {
            snprintf(why, why_len, "jti replayed");
        } else if (json_object_size(c->jti) >= PW_CDS_JTI_MAX) {
            snprintf(why, why_len, "replay window full");
            rc = PW_EAGAIN;
        } else if (json_object_set_new(
                       c->jti, jkey, json_integer((json_int_t)json_number_value(exp) + skew)) < 0) {
            rc = PW_ENOMEM;
        } else {
            snprintf(iss_out, iss_cap, "%s", is->iss);
            rc = 0;
        }
    }
    json_decref(header);
    json_decref(claims);
    return rc;
}

/* ---- key sets ------------------------------------------------------------------------------- */

static int jwks_load_file(struct issuer *is, const char *path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    char why[160] = "";
    int rc;

    if (!doc) {
        pw_log_err(CDS, "%s:%d: %s", path, jerr.line, jerr.text);
        return PW_ECONFIG;
    }
    rc = pw_jwks_parse(&is->keys, doc, why, sizeof(why));
    json_decref(doc);
    if (rc < 0) {
        pw_log_err(CDS, "%s: %s", path, why);
        return rc == PW_ENOMEM ? rc : PW_ECONFIG;
    }
    return 0;
}

struct fetch {
    struct pw_cds_hooks *c;
    struct issuer *is;
};

static void on_jwks(void *arg, int err, const struct pw_http_resp *resp)
{
    struct fetch *f = arg;
    struct pw_cds_hooks *c = f->c;
    struct pw_jwks *keys = NULL;
    json_t *doc = NULL;
    char why[160] = "";

    if (!c->closing) {
        doc = err == 0 && resp->status == 200 ? json_loadb(resp->body, resp->body_len, 0, NULL)
                                              : NULL;
        if (!doc) {
            pw_log_warn(CDS, "issuer %s: JWKS fetch failed (%s, HTTP %ld); keeping the keys held",
                        f->is->iss, err ? pw_strerror(err) : "not JSON", resp->status);
        } else if (pw_jwks_parse(&keys, doc, why, sizeof(why)) < 0) {
            pw_log_warn(CDS, "issuer %s: JWKS refused: %s; keeping the keys held", f->is->iss, why);
        } else {
            pw_jwks_free(f->is->keys);
            f->is->keys = keys;
            pw_log_info(CDS, "issuer %s: %zu keys loaded", f->is->iss, pw_jwks_count(keys));
        }
        json_decref(doc);
    }
    free(f);
    release(c);
}

/* Fetch @p is's key set unless a fetch started within JWKS_RETRY_MS. */
static void jwks_fetch(struct pw_cds_hooks *c, struct issuer *is)
{
    struct pw_http_req *req = NULL;
    struct fetch *f;
    int64_t now = now_ms(c);

    if (!is->url || !c->opts.http || c->closing ||
        (is->fetched_ms && now - is->fetched_ms < JWKS_RETRY_MS)) {
        return;
    }
    is->fetched_ms = now;
    f = malloc(sizeof(*f));
    if (!f || pw_http_req_new(&req, is->http_name, "GET", is->url) < 0 ||
        pw_http_req_add_header(req, "Accept: application/json") < 0) {
        pw_http_req_free(req);
        free(f);
        return;
    }
    f->c = c;
    f->is = is;
    c->open++;
    if (pw_http_submit_new(c->opts.http, req, on_jwks, f) < 0) {
        pw_log_warn(CDS, "issuer %s: cannot fetch its JWKS", is->iss);
        c->open--;
        free(f);
    }
}

static void on_refresh(uv_timer_t *t)
{
    struct pw_cds_hooks *c = container_of(t, struct pw_cds_hooks, refresh);

    for (size_t i = 0; i < c->n_issuers; i++) {
        c->issuers[i].fetched_ms = 0;
        jwks_fetch(c, &c->issuers[i]);
    }
}

static int issuers_init(struct pw_cds_hooks *c)
{
    const struct pw_conf_cds_hooks *cf = c->conf;

    for (size_t i = 0; i < cf->n_issuers && i < ISSUERS_MAX; i++) {
        struct issuer *is = &c->issuers[c->n_issuers++];
        is->iss = cf->issuers[i].iss;
        if (cf->issuers[i].jwks_file) {
            int rc = jwks_load_file(is, cf->issuers[i].jwks_file);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        is->url = cf->issuers[i].jwks_url;
        snprintf(is->http_name, sizeof(is->http_name), "cds-jwks-%zu", i);
        struct pw_http_server srv = {
            .name = is->http_name, .origin = is->url, .body_max = PW_CDS_JWKS_MAX};
        if (!c->opts.http || pw_http_server_add(c->opts.http, &srv) < 0) {
            pw_log_err(CDS, "issuer %s: jwks_url unusable", is->iss);
            return PW_ECONFIG;
        }
    }
    return 0;
}

/* ---- hook calls ------------------------------------------------------------------------------ */

/* The minute's refused calls that were counted, not audited one by one: one record. */
static int refused_summary(struct pw_cds_hooks *c)
{
    int64_t n = c->refused_401 + c->refused_other;
    char desc[160];
    int rc;

    if (n == 0) {
        return 0;
    }
    snprintf(desc, sizeof(desc),
             "%lld more CDS Hooks call(s) refused since %lld ms; audited as a count "
             "(refused_audit_per_minute)",
             (long long)n, (long long)c->refused_since);
    rc = pw_audit_event(
        c->opts.audit, "cds-hook", 'R', PW_AUDIT_MINOR, desc,
        json_pack("{s:{s:I,s:I,s:I,s:I}}", "painwatch", "refused_401", (json_int_t)c->refused_401,
                  "refused_other", (json_int_t)c->refused_other, "window_start_ms",
                  (json_int_t)c->refused_since, "window_end_ms", (json_int_t)now_ms(c)));
    if (rc == 0) {
        pw_log_warn(CDS, "%lld refused call(s) in a minute counted in one audit record",
                    (long long)n);
        c->refused_401 = c->refused_other = 0;
    }
    return rc;
}

static void on_refused_end(uv_timer_t *t)
{
    struct pw_cds_hooks *c = container_of(t, struct pw_cds_hooks, refused_end);

    if (refused_summary(c) < 0) {
        pw_log_err(CDS, "refused calls' count not audited: audit trail unavailable");
    }
    c->refused_since = 0;
    c->refused_n = 0;
}

/*
 * Whether this refused call is audited one by one (true), or only counted for the minute's
 * record (false): the first refused_audit_per_minute of each minute are.
 */
static bool refused_one_by_one(struct pw_cds_hooks *c, unsigned status)
{
    int64_t now = now_ms(c);

    if (c->refused_since == 0 || now - c->refused_since >= 60000) {
        if (c->refused_since != 0 && refused_summary(c) < 0) {
            pw_log_err(CDS, "refused calls' count not audited: audit trail unavailable");
        }
        c->refused_since = now;
        c->refused_n = 0;
    }
    if (++c->refused_n <= c->conf->refused_audit_per_minute) {
        return true;
    }
    if (c->refused_401 + c->refused_other == 0 && !c->closing) {
        int64_t left = c->refused_since + 60000 - now;
        uv_timer_start(&c->refused_end, on_refused_end, (uint64_t)(left > 0 ? left : 0), 0);
    }
    if (status == MHD_HTTP_UNAUTHORIZED) {
        c->refused_401++;
    } else {
        c->refused_other++;
    }
    return false;
}

static int audit_call(struct pw_cds_hooks *c, const char *service, const char *iss,
                      const json_t *req, const struct pw_cds_result *res, int status,
                      const char *why)
{
    const char *instance = json_string_value(json_object_get(req, "hookInstance"));
    json_t *rules = json_array();
    json_t *extra;
    int rc;

    for (size_t i = 0; res && rules && i < res->found.n; i++) {
        json_array_append_new(rules, json_string(res->found.v[i].rule));
    }
    extra = json_pack("{s:{s:s,s:s?,s:s?,s:i,s:s?,s:s,s:I,s:I,s:I,s:o}}", "painwatch", "service",
                      service, "hook_instance", instance, "iss", iss, "http_status", status,
                      "reason", why, "data", res && res->prefetch ? "store+prefetch" : "store",
                      "cards", (json_int_t)(res ? res->found.n : 0), "draft_orders",
                      (json_int_t)(res ? res->drafts : 0), "unchecked_drafts",
                      (json_int_t)(res ? res->unchecked : 0), "card_rules", rules);
    if (extra && res && res->patient[0]) {
        json_object_set_new(extra, "entity",
                            json_pack("[{s:s,s:s}]", "role", "patient", "what", res->patient));
    }
    rc = pw_audit_batch_begin(c->opts.audit);
    if (rc < 0) {
        json_decref(extra);
        return rc;
    }
    rc = pw_audit_event(
        c->opts.audit, "cds-hook", 'R', status == 200 ? PW_AUDIT_SUCCESS : PW_AUDIT_MINOR,
        status == 200 ? "CDS Hooks call answered" : "CDS Hooks call refused", extra);
    for (size_t i = 0; rc == 0 && res && i < res->found.n; i++) {
        rc = pw_audit_finding(c->opts.audit, "finding-carded", &res->found.v[i], instance);
    }
    if (rc < 0) {
        pw_audit_batch_abort(c->opts.audit);
        return rc;
    }
    return pw_audit_batch_commit(c->opts.audit);
}

static enum MHD_Result hook_call(struct pw_cds_hooks *c, struct MHD_Connection *conn,
                                 const char *service, struct upload *up)
{
    char why[200] = "";
    char iss[URL_MAX] = "";
    struct pw_cds_result res = {0};
    json_t *req = NULL;
    const char *hook;
    const char *want = strcmp(service, PW_CDS_ORDER_SIGN) == 0 ? "order-sign" : "patient-view";
    unsigned status;
    int rc;

    rc = authorize(c, conn, service, iss, sizeof(iss), why, sizeof(why));
    if (rc < 0) {
        status = rc == PW_EAUTH ? MHD_HTTP_UNAUTHORIZED : MHD_HTTP_SERVICE_UNAVAILABLE;
        pw_log_warn(CDS, "%s: %u: %s", service, status, rc == PW_ENOMEM ? "out of memory" : why);
        if (refused_one_by_one(c, status) &&
            audit_call(c, service, iss[0] ? iss : NULL, NULL, NULL, (int)status, why) < 0) {
            return respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "audit trail unavailable");
        }
        return respond_error(conn, status, status == MHD_HTTP_UNAUTHORIZED ? why : "busy");
    }
    if (up->too_big) {
        return respond_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request over its size cap");
    }
    req = up->body ? json_loadb(up->body, up->len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    hook = json_string_value(json_object_get(req, "hook"));
    if (!json_is_object(req) || !hook || strcmp(hook, want) != 0 ||
        !json_is_string(json_object_get(req, "hookInstance"))) {
        json_decref(req);
        pw_log_notice(CDS, "%s: 400: not a %s call", service, want);
        return respond_error(conn, MHD_HTTP_BAD_REQUEST,
                             "expected a JSON hook request with hook, hookInstance, context");
    }
    rc = pw_cds_evaluate(&c->env, service, req, now_ms(c) / 1000, &res, why, sizeof(why));
    status = rc == 0           ? MHD_HTTP_OK
             : rc == PW_EINVAL ? MHD_HTTP_BAD_REQUEST
                               : MHD_HTTP_INTERNAL_SERVER_ERROR;
    if (rc < 0 && rc != PW_EINVAL) {
        snprintf(why, sizeof(why), "evaluation failed: %s", pw_strerror(rc));
    }
    /* Audit before effect: no card leaves unless the call is in the trail. */
    if (audit_call(c, service, iss, req, rc == 0 ? &res : NULL, (int)status, rc ? why : NULL) < 0) {
        pw_log_err(CDS, "%s: 503: audit trail unavailable", service);
        pw_cds_result_cleanup(&res);
        json_decref(req);
        return respond_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "audit trail unavailable");
    }
    json_decref(req);
    pw_log_info(CDS, "%s: %u, %zu cards", service, status, res.found.n + res.unchecked);
    if (rc < 0) {
        pw_cds_result_cleanup(&res);
        return respond_error(conn, status, why);
    }
    json_t *doc = json_pack("{s:O}", "cards", res.cards);
    pw_cds_result_cleanup(&res);
    return respond_json(conn, MHD_HTTP_OK, doc);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct pw_cds_hooks *c = cls;
    struct upload *up = *con_cls;
    size_t plen = strlen(SERVICES_PREFIX);

    (void)version;
    if (!up) {
        up = calloc(1, sizeof(*up));
        *con_cls = up;
        return up ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->too_big || up->len + n > PW_CDS_BODY_MAX) {
            up->too_big = true;
            return MHD_YES;
        }
        char *grown = realloc(up->body, up->len + n + 1);
        if (!grown) {
            return MHD_NO;
        }
        memcpy(grown + up->len, upload_data, n);
        up->body = grown;
        up->len += n;
        up->body[up->len] = '\0';
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 && strcmp(url, "/healthz") == 0) {
        return respond(conn, MHD_HTTP_OK, strdup("ok\n"), "text/plain; charset=utf-8", false);
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 &&
        (strcmp(url, SERVICES_PREFIX) == 0 || strcmp(url, SERVICES_PREFIX "/") == 0)) {
        return respond_json(conn, MHD_HTTP_OK, pw_cds_discovery());
    }
    if (strncmp(url, SERVICES_PREFIX "/", plen + 1) == 0 &&
        (strcmp(url + plen + 1, PW_CDS_PATIENT_VIEW) == 0 ||
         strcmp(url + plen + 1, PW_CDS_ORDER_SIGN) == 0)) {
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
            return respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST a hook request");
        }
        return hook_call(c, conn, url + plen + 1, up);
    }
    return respond_error(conn, MHD_HTTP_NOT_FOUND, "no such service: see GET /cds-services");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct upload *up = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (up) {
        free(up->body);
        free(up);
        *con_cls = NULL;
    }
}

static enum pw_log_comp log_comp = PW_LOG_CDS; /* MHD's messages (pw_listener_mhd_log) */

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void on_listener_closed(struct pw_listener *l)
{
    release(container_of(l, struct pw_cds_hooks, lst));
}

static void on_timer_closed(uv_handle_t *h)
{
    release(h->data);
}

static int tls_load(struct pw_cds_hooks *c)
{
    size_t len = 0;
    FILE *f;

    if (!c->conf->tls_cert) {
        return 0;
    }
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        pw_log_err(CDS, "this libmicrohttpd has no TLS support: use the reverse proxy");
        return PW_ECONFIG;
    }
    f = fopen(c->conf->tls_cert, "r");
    if (f) {
        c->tls_cert = calloc(1, CERT_MAX + 1);
        len = c->tls_cert ? fread(c->tls_cert, 1, CERT_MAX, f) : 0;
        fclose(f);
    }
    if (!c->tls_cert || len == 0 || len == CERT_MAX) {
        pw_log_err(CDS, "%s: cannot read the certificate", c->conf->tls_cert);
        return PW_ECONFIG;
    }
    if (pw_secret_read(c->conf->tls_key, &c->tls_key, &c->tls_key_len) < 0) {
        pw_log_err(CDS, "tls_key: unusable (see the log line above)");
        return PW_ECONFIG;
    }
    return 0;
}

int pw_cds_hooks_new(struct pw_cds_hooks **out, const struct pw_cds_hooks_opts *opts)
{
    struct sockaddr_storage ss;
    bool v6 = false;
    struct pw_cds_hooks *c;
    struct MHD_Daemon *mhd;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    int rc;

    *out = NULL;
    if (!opts->conf || !opts->conf->service_url || !opts->audit || !opts->ev || !opts->store ||
        pw_listen_parse(opts->conf->listen, &ss, &v6) < 0) {
        pw_log_err(CDS, "cds_hooks: listen, service_url, the store and the audit trail are needed");
        return PW_ECONFIG;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return PW_ENOMEM;
    }
    c->opts = *opts;
    c->conf = opts->conf;
    c->env = (struct pw_cds_env){.store = opts->store,
                                 .ev = opts->ev,
                                 .synced = opts->synced,
                                 .synced_for = opts->synced_for,
                                 .synced_arg = opts->synced_arg,
                                 .rule_system = opts->rule_system,
                                 .horizon_s = opts->conf->order_sign_horizon_ms / 1000};
    c->jti = json_object();
    c->open = 1; /* until the handles are up */
    rc = c->jti ? issuers_init(c) : PW_ENOMEM;
    if (rc == 0) {
        rc = tls_load(c);
    }
    if (rc < 0) {
        release(c);
        return rc;
    }
    flags |= (v6 ? MHD_USE_IPv6 : 0) | (c->tls_key ? MHD_USE_TLS : 0);
    /* The logger goes first so that MHD never prints with its own logger. */
    mhd = c->tls_key
              ? MHD_start_daemon(flags, 0, NULL, NULL, on_request, c, MHD_OPTION_EXTERNAL_LOGGER,
                                 pw_listener_mhd_log, &log_comp, MHD_OPTION_NOTIFY_CONNECTION,
                                 pw_listener_notify, &c->lst, MHD_OPTION_NOTIFY_COMPLETED,
                                 on_completed, c, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)PW_CDS_CONN_MAX,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)PW_CDS_CONN_TIMEOUT_S,
                                 MHD_OPTION_HTTPS_MEM_CERT, c->tls_cert, MHD_OPTION_HTTPS_MEM_KEY,
                                 c->tls_key, MHD_OPTION_END)
              : MHD_start_daemon(flags, 0, NULL, NULL, on_request, c, MHD_OPTION_EXTERNAL_LOGGER,
                                 pw_listener_mhd_log, &log_comp, MHD_OPTION_NOTIFY_CONNECTION,
                                 pw_listener_notify, &c->lst, MHD_OPTION_NOTIFY_COMPLETED,
                                 on_completed, c, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)PW_CDS_CONN_MAX,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)PW_CDS_CONN_TIMEOUT_S,
                                 MHD_OPTION_END);
    if (!mhd) {
        pw_log_err(CDS,
                   "cannot listen on %s (address in use, not permitted, or TLS files "
                   "refused)",
                   c->conf->listen);
        release(c);
        return PW_EIO;
    }
    if (pw_listener_start(&c->lst, opts->loop, mhd, on_listener_closed) < 0) {
        release(c);
        return PW_EIO;
    }
    uv_timer_init(opts->loop, &c->refresh);
    c->refresh.data = c;
    uv_timer_init(opts->loop, &c->refused_end);
    c->refused_end.data = c;
    c->open = 3; /* the listener and the two timers */
    for (size_t i = 0; i < c->n_issuers; i++) {
        if (c->issuers[i].url) {
            uv_timer_start(&c->refresh, on_refresh, 0, (uint64_t)c->conf->jwks_refresh_ms);
            break;
        }
    }
    pw_log_info(CDS, "serving CDS Hooks on %s (port %u, %s)", c->conf->listen, c->lst.port,
                c->tls_key ? "TLS" : "plain HTTP on loopback");
    *out = c;
    return 0;
}

unsigned pw_cds_hooks_port(const struct pw_cds_hooks *cds)
{
    return cds->lst.port;
}

void pw_cds_hooks_close(struct pw_cds_hooks *cds)
{
    if (!cds) {
        return;
    }
    cds->closing = true;
    if (refused_summary(cds) < 0) { /* counted, not yet audited: now */
        pw_log_err(CDS, "refused calls' count not audited: audit trail unavailable");
    }
    pw_listener_close(&cds->lst);
    uv_close((uv_handle_t *)&cds->refresh, on_timer_closed);
    uv_close((uv_handle_t *)&cds->refused_end, on_timer_closed);
}
