/* SPDX-License-Identifier: Apache-2.0 */
/* SMART Backend Services against a loopback token endpoint that verifies the client assertion
 * with OpenSSL: RS384 and ES384, discovery, token reuse, renewal before expiry, 401 handling. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <uv.h>

#include "painwatch/auth.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/metrics.h"
#include "painwatch/secret.h"
#include "support/loop.h"
#include "support/pwtest.h"
#include "support/responder.h"
#include "support/token_endpoint.h"

#define N_RES 8

struct result {
    int calls;
    int err;
    long status;
};

struct fx {
    uv_loop_t loop;
    struct pw_http *http;
    struct pw_auth *auth;
    struct pwt_responder *fhir;
    struct pwt_responder *tok;
    struct pwt_token_endpoint *te;
    EVP_PKEY *key;
    char *dir;
    char key_file[512];
    char fhir_base[256];
    char token_url[256];
    struct result res[N_RES];
    int pending;
    json_t *sec; /* the auth section smart_conf() built */
};

static uint64_t fake_now;
/* Keys are generated once per run. The RSA key comes from the openssl tool, a child process
 * valgrind does not trace: RSA generation under valgrind takes minutes. */
static EVP_PKEY *rsa_key;
static EVP_PKEY *ec_key;
static EVP_PKEY *ec_other;

static EVP_PKEY *rsa_from_tool(void)
{
    char *dir = pwt_mkdtemp();
    char cmd[1024];
    char path[512];
    EVP_PKEY *k = NULL;

    snprintf(path, sizeof(path), "%s/rsa.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '%s' 2>/dev/null",
             path);
    if (system(cmd) == 0) {
        FILE *f = fopen(path, "r");
        if (f) {
            k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
            fclose(f);
        }
    }
    pwt_rmtree(dir);
    free(dir);
    return k;
}

static int group_setup(void **state)
{
    (void)state;
    rsa_key = rsa_from_tool();
    ec_key = EVP_EC_gen("P-384");
    ec_other = EVP_EC_gen("P-384");
    return rsa_key && ec_key && ec_other ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ec_other);
    return 0;
}

static uint64_t fake_clock(void)
{
    return fake_now;
}

static void on_done(void *arg, int err, const struct pw_http_resp *resp)
{
    struct result *r = arg;

    r->calls++;
    r->err = err;
    r->status = resp->status;
}

static struct fx *g;

static void on_done_counted(void *arg, int err, const struct pw_http_resp *resp)
{
    on_done(arg, err, resp);
    g->pending--;
}

/* Write @p key as PEM, mode 0600, and point the fixture at it. */
static void write_key(struct fx *fx, EVP_PKEY *key, const char *name)
{
    snprintf(fx->key_file, sizeof(fx->key_file), "%s/%s", fx->dir, name);
    FILE *f = fopen(fx->key_file, "w");
    assert_non_null(f);
    assert_int_equal(chmod(fx->key_file, 0600), 0);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static int setup_alg(void **state, const char *alg)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    g = fx;
    fake_now = 1000000;
    pw_auth_set_clock(fake_clock);
    fx->dir = pwt_mkdtemp();
    fx->key = strcmp(alg, "RS384") == 0 ? rsa_key : ec_key;
    assert_non_null(fx->key);
    EVP_PKEY_up_ref(fx->key);
    write_key(fx, fx->key, "client.key");
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(pw_http_new(&fx->http, &fx->loop), 0);
    fx->fhir = pwt_responder_start(NULL);
    /* Discovery is only believed on the FHIR server's own origin (issue 18): the token endpoint
     * is served there; `tok` is another origin, reached only through a configured token_url. */
    fx->tok = pwt_responder_start(NULL);
    snprintf(fx->fhir_base, sizeof(fx->fhir_base), "%s/fhir", pwt_responder_url(fx->fhir));
    snprintf(fx->token_url, sizeof(fx->token_url), "%s/oauth2/token", pwt_responder_url(fx->fhir));
    fx->te = pwt_token_endpoint_new(&(struct pwt_te_conf){
        .mode = PWT_TE_JWT,
        .client_id = "painwatch-test",
        .aud = fx->token_url,
        .pub = fx->key,
        .alg = alg,
        .kid = "key-1",
        .scope = "system/Observation.rs system/MedicationRequest.rs",
    });
    char disco[512];
    snprintf(disco, sizeof(disco), "{\"token_endpoint\":\"%s\",\"capabilities\":[]}",
             fx->token_url);
    pwt_responder_add(fx->fhir, &(struct pwt_rule){.path = "/fhir/.well-known/smart-configuration",
                                                   .headers = "Content-Type: application/json\n",
                                                   .body = disco});
    pwt_responder_add(fx->fhir, &(struct pwt_rule){.method = "POST",
                                                   .path = "/oauth2/token",
                                                   .handler = pwt_token_endpoint_handler,
                                                   .handler_arg = fx->te});
    struct pw_http_server s = {.name = "ehr", .origin = fx->fhir_base};
    assert_int_equal(pw_http_server_add(fx->http, &s), 0);
    *state = fx;
    return 0;
}

static int setup_rs(void **state)
{
    return setup_alg(state, "RS384");
}

static int setup_es(void **state)
{
    return setup_alg(state, "ES384");
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    pw_auth_free(fx->auth);
    pw_http_free(fx->http);
    pwt_loop_close(&fx->loop);
    pwt_responder_stop(fx->fhir);
    pwt_responder_stop(fx->tok);
    pwt_token_endpoint_free(fx->te);
    EVP_PKEY_free(fx->key);
    pwt_rmtree(fx->dir);
    free(fx->dir);
    pw_auth_set_clock(NULL);
    json_decref(fx->sec);
    free(fx);
    g = NULL;
    return 0;
}

/* Set (or with NULL remove) a key of the auth section smart_conf() built. */
static void set(struct fx *fx, const char *key, const char *value)
{
    if (value) {
        assert_int_equal(json_object_set_new(fx->sec, key, json_string(value)), 0);
    } else {
        json_object_del(fx->sec, key);
    }
}

static struct pw_auth_conf smart_conf(struct fx *fx, const char *alg)
{
    json_decref(fx->sec);
    fx->sec = json_pack("{s:s, s:s, s:s, s:s}", "client_id", "painwatch-test", "scope",
                        "system/Observation.rs system/MedicationRequest.rs", "private_key_file",
                        fx->key_file, "kid", "key-1");
    assert_non_null(fx->sec);
    set(fx, "alg", alg);
    return (struct pw_auth_conf){
        .type = "smart-backend",
        .server = "ehr",
        .fhir_base = fx->fhir_base,
        .section = fx->sec,
    };
}

static void submit(struct fx *fx, const char *path, struct result *r)
{
    char url[512];
    struct pw_http_req *req = NULL;

    snprintf(url, sizeof(url), "%s%s", pwt_responder_url(fx->fhir), path);
    assert_int_equal(pw_http_req_new(&req, "ehr", "GET", url), 0);
    assert_int_equal(pw_auth_submit_new(fx->auth, req, on_done_counted, r), 0);
    assert_int_equal(r->calls, 0); /* never synchronous */
    fx->pending++;
}

static void run(struct fx *fx)
{
    while (fx->pending > 0) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

static void protect(struct fx *fx, const char *path)
{
    pwt_responder_add(fx->fhir, &(struct pwt_rule){
                                    .path = path,
                                    .handler = pwt_token_endpoint_protected,
                                    .handler_arg = fx->te,
                                });
}

/* Discovery once, one shared token for concurrent requests, verified assertion. */
static void check_first_token(struct fx *fx, const char *alg)
{
    struct pw_auth_conf c = smart_conf(fx, alg);

    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    protect(fx, "/fhir/Observation");
    for (int i = 0; i < 3; i++) {
        submit(fx, "/fhir/Observation", &fx->res[i]);
    }
    run(fx);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->res[i].calls, 1);
        assert_int_equal(fx->res[i].err, 0);
        assert_int_equal(fx->res[i].status, 200);
    }
    assert_string_equal(pwt_token_endpoint_last_error(fx->te), "");
    assert_int_equal(pwt_token_endpoint_rejected(fx->te), 0);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 1);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/.well-known/smart-configuration"),
                     1);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/Observation"), 3);
    assert_int_equal(pw_auth_refreshes(fx->auth), 1);
    /* The token request carried no bearer token and no FHIR request carried the assertion. */
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/oauth2/token"), 1);
    for (size_t i = 0; i < pwt_responder_count(fx->fhir); i++) {
        const struct pwt_request *q = pwt_responder_request(fx->fhir, i);
        if (strcmp(q->path, "/oauth2/token") == 0) {
            assert_string_equal(pwt_request_header(q, "Accept"), "application/json");
        }
        if (strcmp(q->path, "/fhir/Observation") == 0) {
            assert_string_equal(pwt_request_header(q, "Authorization"), "Bearer tok-1");
        } else {
            assert_null(pwt_request_header(q, "Authorization"));
        }
    }
}

static void test_rs384_token(void **state)
{
    check_first_token(*state, "RS384");
}

static void test_es384_token(void **state)
{
    check_first_token(*state, NULL); /* alg chosen from the EC P-384 key */
}

/* A 401 that a renewal fixes: exactly one renewal, one retry; a fresh jti each time. */
static void test_401_renewed_once(void **state)
{
    struct fx *fx = *state;

    check_first_token(fx, "ES384");
    pwt_token_endpoint_revoke_all(fx->te);
    submit(fx, "/fhir/Observation", &fx->res[4]);
    run(fx);
    assert_int_equal(fx->res[4].calls, 1);
    assert_int_equal(fx->res[4].err, 0);
    assert_int_equal(fx->res[4].status, 200);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 2);
    assert_int_equal(pwt_token_endpoint_rejected(fx->te), 0); /* jti not replayed */
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/Observation"), 3 + 2);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/oauth2/token"), 2);
    size_t last = pwt_responder_count(fx->fhir) - 1;
    assert_string_equal(pwt_request_header(pwt_responder_request(fx->fhir, last), "Authorization"),
                        "Bearer tok-2");
}

/* A 401 that renewal does not fix reaches the caller after one renewal and one retry. */
static void test_401_persistent_stops_after_one_retry(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, NULL);

    pw_metrics_reset();
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    pwt_responder_add(fx->fhir, &(struct pwt_rule){.path = "/fhir/Patient", .status = 401});
    submit(fx, "/fhir/Patient", &fx->res[0]);
    run(fx);
    assert_true(pw_metric_get(PW_M_AUTH_FAILURES, "ehr", NULL) == 2.0); /* both 401s */
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 401);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/Patient"), 2);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 2);
}

/* The very first token is refused with a 401: still exactly one renewal and one retry. */
static void test_401_on_first_token(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, NULL);

    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    pwt_responder_add(fx->fhir,
                      &(struct pwt_rule){.path = "/fhir/Condition", .status = 401, .times = 1});
    protect(fx, "/fhir/Condition");
    submit(fx, "/fhir/Condition", &fx->res[0]);
    run(fx);
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 200);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 2);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/Condition"), 2);
}

/* A discovered token endpoint that is gone (404) is discovered again on the next refresh. */
static void test_token_endpoint_rediscovered(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, NULL);
    char disco[512];

    pwt_responder_clear_rules(fx->fhir);
    pwt_responder_add(fx->fhir, &(struct pwt_rule){.method = "POST",
                                                   .path = "/oauth2/token",
                                                   .handler = pwt_token_endpoint_handler,
                                                   .handler_arg = fx->te});
    snprintf(disco, sizeof(disco), "{\"token_endpoint\":\"%s/gone\"}", pwt_responder_url(fx->fhir));
    pwt_responder_add(fx->fhir, &(struct pwt_rule){.path = "/fhir/.well-known/smart-configuration",
                                                   .times = 1,
                                                   .body = disco});
    snprintf(disco, sizeof(disco), "{\"token_endpoint\":\"%s\"}", fx->token_url);
    pwt_responder_add(fx->fhir, &(struct pwt_rule){.path = "/fhir/.well-known/smart-configuration",
                                                   .body = disco});
    protect(fx, "/fhir/Observation");
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    submit(fx, "/fhir/Observation", &fx->res[0]);
    run(fx);
    assert_int_equal(fx->res[0].err, PW_EAUTH);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/gone"), 1);
    submit(fx, "/fhir/Observation", &fx->res[1]);
    run(fx);
    assert_int_equal(fx->res[1].err, 0);
    assert_int_equal(fx->res[1].status, 200);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/.well-known/smart-configuration"),
                     2);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 1);
}

/* The cached token is renewed before it expires, without a 401 first. */
static void test_renewed_before_expiry(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, NULL);

    set(fx, "token_url", fx->token_url); /* configured: no discovery */
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    protect(fx, "/fhir/Observation");
    submit(fx, "/fhir/Observation", &fx->res[0]);
    run(fx);
    fake_now += 200 * 1000; /* 100 s left of 300: outside the 60 s margin, token reused */
    submit(fx, "/fhir/Observation", &fx->res[1]);
    run(fx);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 1);
    fake_now += 50 * 1000; /* 50 s left: inside the margin, renewed before sending */
    submit(fx, "/fhir/Observation", &fx->res[2]);
    run(fx);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx->res[i].status, 200);
    }
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 2);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/Observation"), 3); /* no 401 */
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/.well-known/smart-configuration"),
                     0);
}

/* A token endpoint that rejects the assertion: PW_EAUTH, and no FHIR request goes out. */
static void test_rejected_assertion(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, NULL);

    set(fx, "kid", "not-the-registered-key");
    pw_metrics_reset();
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    protect(fx, "/fhir/Observation");
    submit(fx, "/fhir/Observation", &fx->res[0]);
    run(fx);
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, PW_EAUTH);
    assert_int_equal(pwt_token_endpoint_rejected(fx->te), 1);
    assert_string_equal(pwt_token_endpoint_last_error(fx->te), "wrong kid");
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/Observation"), 0);

    /* Right kid, but signed by a key the server does not know: the signature check fails. */
    pw_auth_free(fx->auth);
    fx->auth = NULL;
    write_key(fx, ec_other, "other.key");
    c = smart_conf(fx, NULL);
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    submit(fx, "/fhir/Observation", &fx->res[1]);
    run(fx);
    assert_int_equal(fx->res[1].err, PW_EAUTH);
    assert_int_equal(pwt_token_endpoint_rejected(fx->te), 2);
    assert_string_equal(pwt_token_endpoint_last_error(fx->te), "signature does not verify");
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 0);
    /* Each refused token request shows on /metrics for the server. */
    assert_true(pw_metric_get(PW_M_AUTH_FAILURES, "ehr", NULL) == 2.0);
}

static void test_key_checks(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, "RS384");

    /* An EC key configured as RS384 is a configuration error. */
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ECONFIG);
    set(fx, "alg", NULL);
    /* A world-readable private key is refused. */
    assert_int_equal(chmod(fx->key_file, 0644), 0);
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ESECRET);
    assert_int_equal(chmod(fx->key_file, 0600), 0);
    /* A P-256 key is not ES384. */
    EVP_PKEY *p256 = EVP_EC_gen("P-256");
    write_key(fx, p256, "p256.key");
    EVP_PKEY_free(p256);
    set(fx, "private_key_file", fx->key_file);
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ECONFIG);
    /* A token endpoint over plain http off loopback is refused at startup. */
    c = smart_conf(fx, NULL);
    set(fx, "token_url", "http://auth.example.org/token");
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ECONFIG);
    set(fx, "token_url", NULL);
    set(fx, "kid", NULL);
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ECONFIG);
    assert_null(fx->auth);
}

static int refresh_calls[3];
static int refresh_err[3];

static void on_refresh(void *arg, int err)
{
    int *i = arg;

    refresh_calls[*i]++;
    refresh_err[*i] = err;
    g->pending--;
}

/* pw_auth_refresh() callers share one token request; a pending one is canceled by free. */
static void test_refresh_is_shared(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, NULL);
    static int idx[3] = {0, 1, 2};

    memset(refresh_calls, 0, sizeof(refresh_calls));
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    assert_true(pw_auth_can_refresh(fx->auth));
    assert_int_equal(pw_auth_refresh(fx->auth, on_refresh, &idx[0]), 0);
    assert_int_equal(pw_auth_refresh(fx->auth, on_refresh, &idx[1]), 0);
    assert_int_equal(refresh_calls[0] + refresh_calls[1], 0); /* never synchronous */
    fx->pending = 2;
    run(fx);
    assert_int_equal(refresh_calls[0], 1);
    assert_int_equal(refresh_calls[1], 1);
    assert_int_equal(refresh_err[0], 0);
    assert_int_equal(refresh_err[1], 0);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 1);
    struct pw_http_req *req = NULL;
    assert_int_equal(pw_http_req_new(&req, "ehr", "GET", fx->fhir_base), 0);
    assert_int_equal(pw_auth_apply(fx->auth, req), 0);
    pw_http_req_free(req);

    assert_int_equal(pw_auth_refresh(fx->auth, on_refresh, &idx[2]), 0);
    pw_auth_free(fx->auth);
    fx->auth = NULL;
    assert_int_equal(refresh_calls[2], 1);
    assert_int_equal(refresh_err[2], PW_ECANCELED);
}

/* Freeing the auth while a token request is in flight cancels the waiting request once. */
static void test_free_while_refreshing(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, NULL);

    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    submit(fx, "/fhir/Observation", &fx->res[0]);
    pw_auth_free(fx->auth);
    fx->auth = NULL;
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, PW_ECANCELED);
    fx->pending = 0;
}

/*
 * Issue 18, finding 1: a discovery document naming a token endpoint on another origin gets no
 * client assertion (refused, PW_EAUTH, nothing sent there); the same endpoint configured as
 * token_url by the operator is used.
 */
static void test_discovered_endpoint_elsewhere_refused(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = smart_conf(fx, NULL);
    char disco[512];
    char elsewhere[256];

    snprintf(elsewhere, sizeof(elsewhere), "%s/oauth2/token", pwt_responder_url(fx->tok));
    pwt_responder_add(fx->tok, &(struct pwt_rule){.method = "POST",
                                                  .path = "/oauth2/token",
                                                  .handler = pwt_token_endpoint_handler,
                                                  .handler_arg = fx->te});
    pwt_responder_clear_rules(fx->fhir);
    snprintf(disco, sizeof(disco), "{\"token_endpoint\":\"%s\"}", elsewhere);
    pwt_responder_add(fx->fhir, &(struct pwt_rule){.path = "/fhir/.well-known/smart-configuration",
                                                   .body = disco});
    protect(fx, "/fhir/Observation");
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    for (int i = 0; i < 2; i++) { /* refused again after rediscovery */
        submit(fx, "/fhir/Observation", &fx->res[i]);
        run(fx);
        assert_int_equal(fx->res[i].err, PW_EAUTH);
    }
    assert_int_equal(pwt_responder_count(fx->tok), 0);
    assert_int_equal(pwt_responder_count_path(fx->fhir, "/fhir/Observation"), 0);
    pw_auth_free(fx->auth);
    fx->auth = NULL;

    /* Set by the operator: another origin is fine. The assertion names that endpoint. */
    pwt_responder_clear_rules(fx->fhir);
    pwt_responder_clear_rules(fx->tok);
    pwt_token_endpoint_free(fx->te);
    fx->te = pwt_token_endpoint_new(&(struct pwt_te_conf){.mode = PWT_TE_JWT,
                                                          .client_id = "painwatch-test",
                                                          .aud = elsewhere,
                                                          .pub = fx->key,
                                                          .alg = "RS384",
                                                          .kid = "key-1"});
    pwt_responder_add(fx->tok, &(struct pwt_rule){.method = "POST",
                                                  .path = "/oauth2/token",
                                                  .handler = pwt_token_endpoint_handler,
                                                  .handler_arg = fx->te});
    protect(fx, "/fhir/Observation");
    set(fx, "token_url", elsewhere);
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    submit(fx, "/fhir/Observation", &fx->res[2]);
    run(fx);
    assert_string_equal(pwt_token_endpoint_last_error(fx->te), "");
    assert_int_equal(fx->res[2].err, 0);
    assert_int_equal(fx->res[2].status, 200);
    assert_int_equal(pwt_responder_count_path(fx->tok, "/oauth2/token"), 1);
}

/* Issue 18, finding 8: the wipe hook's view of every wiped buffer. */
static char *g_wiped[512];
static size_t g_nwiped;

static void record_wipe(const void *p, size_t n)
{
    if (g_nwiped < sizeof(g_wiped) / sizeof(g_wiped[0])) {
        char *c = malloc(n + 1);
        assert_non_null(c);
        memcpy(c, p, n);
        c[n] = '\0';
        g_wiped[g_nwiped++] = c;
    }
}

static size_t wiped_count(const char *text)
{
    size_t n = 0;

    for (size_t i = 0; i < g_nwiped; i++) {
        n += strcmp(g_wiped[i], text) == 0;
    }
    return n;
}

static bool wiped(const char *text)
{
    return wiped_count(text) > 0;
}

/*
 * The signed assertion, the form carrying it and the access token parsed from the answer are
 * all wiped before they are freed (the request and response buffers are http.c's, tested
 * there).
 */
static void test_assertion_and_token_wiped(void **state)
{
    struct fx *fx = *state;
    char jwt[4096] = "";

    pw_secret_set_wipe_hook(record_wipe);
    check_first_token(fx, "RS384");
    pw_secret_set_wipe_hook(NULL);
    for (size_t i = 0; i < pwt_responder_count(fx->fhir); i++) {
        const struct pwt_request *q = pwt_responder_request(fx->fhir, i);
        const char *a = strstr(q->body, "client_assertion=");
        if (strcmp(q->path, "/oauth2/token") == 0 && a) {
            snprintf(jwt, sizeof(jwt), "%.*s", (int)strcspn(a + 17, "&"), a + 17);
            assert_true(wiped(q->body)); /* the form, as built */
        }
    }
    assert_int_equal(strncmp(jwt, "eyJ", 3), 0);
    /* The signed assertion and its URL-encoded copy for the form (the same text: base64url
     * needs no escaping). */
    assert_int_equal(wiped_count(jwt), 2);
    assert_true(wiped("tok-1")); /* the token in the parsed answer */
    assert_true(wiped("Authorization: Bearer tok-1"));
    for (size_t i = 0; i < g_nwiped; i++) {
        free(g_wiped[i]);
    }
    g_nwiped = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rs384_token, setup_rs, teardown),
        cmocka_unit_test_setup_teardown(test_es384_token, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_401_renewed_once, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_401_persistent_stops_after_one_retry, setup_rs,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_401_on_first_token, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_token_endpoint_rediscovered, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_renewed_before_expiry, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_rejected_assertion, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_key_checks, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_refreshing, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_is_shared, setup_es, teardown),
        cmocka_unit_test_setup_teardown(test_discovered_endpoint_elsewhere_refused, setup_rs,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_assertion_and_token_wiped, setup_rs, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
