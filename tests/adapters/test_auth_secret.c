/* SPDX-License-Identifier: Apache-2.0 */
/* client-secret (basic, post), bearer from a file, none, and the secret-file rules
 * (world-readable refused, systemd $CREDENTIALS_DIRECTORY). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <uv.h>

#include "painwatch/auth.h"
#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/log.h"
#include "painwatch/secret.h"
#include "support/loop.h"
#include "support/pwtest.h"
#include "support/responder.h"
#include "support/token_endpoint.h"

struct result {
    int calls;
    int err;
    long status;
};

struct fx {
    uv_loop_t loop;
    struct pw_http *http;
    struct pw_auth *auth;
    struct pwt_responder *srv;
    struct pwt_token_endpoint *te;
    char *dir;
    char token_url[256];
    struct result res[4];
    int pending;
};

static struct fx *g;

static void on_done(void *arg, int err, const struct pw_http_resp *resp)
{
    struct result *r = arg;

    r->calls++;
    r->err = err;
    r->status = resp->status;
    g->pending--;
}

static void write_secret(struct fx *fx, const char *name, const char *content, mode_t mode,
                         char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", fx->dir, name);
    pwt_write_file(path, content);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    g = fx;
    unsetenv("CREDENTIALS_DIRECTORY");
    fx->dir = pwt_mkdtemp();
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(pw_http_new(&fx->http, &fx->loop), 0);
    fx->srv = pwt_responder_start(NULL);
    snprintf(fx->token_url, sizeof(fx->token_url), "%s/token", pwt_responder_url(fx->srv));
    struct pw_http_server s = {.name = "ehr", .origin = pwt_responder_url(fx->srv)};
    assert_int_equal(pw_http_server_add(fx->http, &s), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    pw_auth_free(fx->auth);
    pw_http_free(fx->http);
    pwt_loop_close(&fx->loop);
    pwt_responder_stop(fx->srv);
    pwt_token_endpoint_free(fx->te);
    pwt_rmtree(fx->dir);
    free(fx->dir);
    unsetenv("CREDENTIALS_DIRECTORY");
    free(fx);
    g = NULL;
    return 0;
}

static void get(struct fx *fx, const char *path, struct result *r)
{
    char url[512];
    struct pw_http_req *req = NULL;

    snprintf(url, sizeof(url), "%s%s", pwt_responder_url(fx->srv), path);
    assert_int_equal(pw_http_req_new(&req, "ehr", "GET", url), 0);
    assert_int_equal(pw_auth_submit_new(fx->auth, req, on_done, r), 0);
    assert_int_equal(r->calls, 0);
    fx->pending++;
    while (fx->pending > 0) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

static void client_secret(struct fx *fx, enum pwt_te_mode mode, const char *method)
{
    char secret_file[512];
    /* Characters that must be URL-encoded inside Basic (RFC 6749 2.3.1) and the form. */
    const char *secret = "s3cr:et/+&=%";

    write_secret(fx, "client.secret", secret, 0600, secret_file, sizeof(secret_file));
    fx->te = pwt_token_endpoint_new(&(struct pwt_te_conf){
        .mode = mode, .client_id = "pw client", .aud = fx->token_url, .secret = secret});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.method = "POST",
                                                  .path = "/token",
                                                  .handler = pwt_token_endpoint_handler,
                                                  .handler_arg = fx->te});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/Observation",
                                                  .handler = pwt_token_endpoint_protected,
                                                  .handler_arg = fx->te});
    json_t *sec = json_pack("{s:s, s:s, s:s}", "token_url", fx->token_url, "client_id", "pw client",
                            "client_secret_file", secret_file);
    if (method) {
        json_object_set_new(sec, "client_secret_method", json_string(method));
    }
    struct pw_auth_conf c = {.type = "client-secret", .server = "ehr", .section = sec};
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    json_decref(sec); /* the auth keeps its own reference */
    get(fx, "/Observation", &fx->res[0]);
    get(fx, "/Observation", &fx->res[1]);
    assert_string_equal(pwt_token_endpoint_last_error(fx->te), "");
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 200);
    assert_int_equal(fx->res[1].status, 200);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 1); /* cached */
    assert_int_equal(pwt_token_endpoint_rejected(fx->te), 0);
}

static void test_client_secret_basic(void **state)
{
    client_secret(*state, PWT_TE_BASIC, NULL); /* basic is the default */
}

static void test_client_secret_post(void **state)
{
    struct fx *fx = *state;

    client_secret(fx, PWT_TE_POST, "post");
    /* The secret travels only to the token endpoint, never with FHIR requests. */
    for (size_t i = 0; i < pwt_responder_count(fx->srv); i++) {
        const struct pwt_request *q = pwt_responder_request(fx->srv, i);
        if (strcmp(q->path, "/Observation") == 0) {
            assert_string_equal(pwt_request_header(q, "Authorization"), "Bearer tok-1");
            assert_null(strstr(q->query, "secret"));
        }
    }
}

static void test_client_secret_wrong_method(void **state)
{
    struct fx *fx = *state;
    char secret_file[512];

    write_secret(fx, "client.secret", "x", 0600, secret_file, sizeof(secret_file));
    json_t *sec = json_pack("{s:s, s:s, s:s, s:s}", "token_url", fx->token_url, "client_id", "id",
                            "client_secret_file", secret_file, "client_secret_method", "jwt");
    struct pw_auth_conf c = {.type = "client-secret", .server = "ehr", .section = sec};
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ECONFIG);
    json_object_set_new(sec, "client_secret_method", json_string("post"));
    c.type = "kerberos";
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ECONFIG);
    c.type = "client-secret";
    c.server = "unknown";
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ENOENT);
    json_decref(sec);
}

/* Accepts only the token "new" (the test rotates the file to it). */
static void only_new(void *arg, const struct pwt_request *req, struct pwt_reply *rep)
{
    const char *a = pwt_request_header(req, "Authorization");

    (void)arg;
    rep->status = a && strcmp(a, "Bearer new") == 0 ? 200 : 401;
}

static void test_bearer_from_file(void **state)
{
    struct fx *fx = *state;
    char tok_file[512];

    write_secret(fx, "bearer.token", "old\n", 0600, tok_file, sizeof(tok_file));
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/Patient", .handler = only_new});
    json_t *sec = json_pack("{s:s}", "token_file", tok_file);
    struct pw_auth_conf c = {.type = "bearer", .server = "ehr", .section = sec};
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    json_decref(sec);
    /* 401 with an unchanged file: nothing new to try, the 401 goes to the caller. */
    get(fx, "/Patient", &fx->res[0]);
    assert_int_equal(fx->res[0].status, 401);
    assert_int_equal(pwt_responder_count(fx->srv), 1);
    assert_string_equal(pwt_request_header(pwt_responder_request(fx->srv, 0), "Authorization"),
                        "Bearer old");
    /* Rotated file: the 401 re-reads it and retries once with the new token. */
    write_secret(fx, "bearer.token", "new\n", 0600, tok_file, sizeof(tok_file));
    get(fx, "/Patient", &fx->res[1]);
    assert_int_equal(fx->res[1].err, 0);
    assert_int_equal(fx->res[1].status, 200);
    assert_int_equal(pwt_responder_count(fx->srv), 3);
    assert_string_equal(pwt_request_header(pwt_responder_request(fx->srv, 2), "Authorization"),
                        "Bearer new");
}

static void test_none_sends_no_credentials(void **state)
{
    struct fx *fx = *state;
    struct pw_auth_conf c = {.type = "none", .server = "ehr"};

    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/metadata", .body = "{}"});
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    get(fx, "/metadata", &fx->res[0]);
    assert_int_equal(fx->res[0].status, 200);
    assert_null(pwt_request_header(pwt_responder_request(fx->srv, 0), "Authorization"));
}

static void test_secret_files(void **state)
{
    struct fx *fx = *state;
    char path[512];
    char *s = NULL;
    size_t len = 0;

    /* World-readable: refused with an error naming the file. */
    write_secret(fx, "open.token", "abc", 0644, path, sizeof(path));
    assert_int_equal(pw_secret_read(path, &s, &len), PW_ESECRET);
    json_t *sec = json_pack("{s:s}", "token_file", path);
    struct pw_auth_conf c = {.type = "bearer", .server = "ehr", .section = sec};
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), PW_ESECRET);
    /* Missing, empty, over the cap. */
    snprintf(path, sizeof(path), "%s/missing", fx->dir);
    assert_int_equal(pw_secret_read(path, &s, &len), PW_ENOENT);
    write_secret(fx, "empty", "\n", 0600, path, sizeof(path));
    assert_int_equal(pw_secret_read(path, &s, &len), PW_ESECRET);
    char *big = malloc(70000);
    assert_non_null(big);
    memset(big, 'x', 69999);
    big[69999] = '\0';
    write_secret(fx, "big", big, 0600, path, sizeof(path));
    free(big);
    assert_int_equal(pw_secret_read(path, &s, &len), PW_E2BIG);

    /* systemd credentials: a relative name resolves under $CREDENTIALS_DIRECTORY. */
    write_secret(fx, "ehr-token", "tok\n", 0400, path, sizeof(path));
    assert_int_equal(setenv("CREDENTIALS_DIRECTORY", fx->dir, 1), 0);
    assert_int_equal(pw_secret_read("ehr-token", &s, &len), 0);
    assert_string_equal(s, "tok");
    assert_int_equal(len, 3);
    pw_secret_free(s);
    assert_int_equal(pw_secret_read("../etc/passwd", &s, &len), PW_EINVAL);
    json_object_set_new(sec, "token_file", json_string("ehr-token"));
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    json_decref(sec);
}

/*
 * Issue 18, finding 1: with no token_url the endpoint is discovered, and the secret goes only to
 * one on the FHIR server's own origin. A discovery document naming another origin gets nothing,
 * however often discovery is redone; one on the same origin works.
 */
static void test_client_secret_discovery_origin(void **state)
{
    struct fx *fx = *state;
    char secret_file[512];
    char disco[512];
    const char *secret = "discovery-secret";
    struct pwt_responder *evil = pwt_responder_start(NULL);

    write_secret(fx, "client.secret", secret, 0600, secret_file, sizeof(secret_file));
    fx->te = pwt_token_endpoint_new(&(struct pwt_te_conf){
        .mode = PWT_TE_BASIC, .client_id = "pw", .aud = fx->token_url, .secret = secret});
    pwt_responder_add(
        evil, &(struct pwt_rule){.handler = pwt_token_endpoint_handler, .handler_arg = fx->te});
    snprintf(disco, sizeof(disco), "{\"token_endpoint\":\"%s/token\"}", pwt_responder_url(evil));
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/fhir/.well-known/smart-configuration",
                                                  .times = 2,
                                                  .body = disco});
    snprintf(disco, sizeof(disco), "{\"token_endpoint\":\"%s\"}", fx->token_url);
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/fhir/.well-known/smart-configuration",
                                                  .body = disco});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.method = "POST",
                                                  .path = "/token",
                                                  .handler = pwt_token_endpoint_handler,
                                                  .handler_arg = fx->te});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/Observation",
                                                  .handler = pwt_token_endpoint_protected,
                                                  .handler_arg = fx->te});
    char base[256];
    snprintf(base, sizeof(base), "%s/fhir", pwt_responder_url(fx->srv));
    json_t *sec = json_pack("{s:s, s:s}", "client_id", "pw", "client_secret_file", secret_file);
    struct pw_auth_conf c = {
        .type = "client-secret", .server = "ehr", .fhir_base = base, .section = sec};
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    json_decref(sec);
    get(fx, "/Observation", &fx->res[0]);
    get(fx, "/Observation", &fx->res[1]);
    assert_int_equal(fx->res[0].err, PW_EAUTH);
    assert_int_equal(fx->res[1].err, PW_EAUTH);
    assert_int_equal(pwt_responder_count(evil), 0);
    assert_int_equal(pwt_responder_count_path(fx->srv, "/Observation"), 0);
    /* The third discovery names the FHIR server's own origin: the secret goes there. */
    get(fx, "/Observation", &fx->res[2]);
    assert_int_equal(fx->res[2].err, 0);
    assert_int_equal(fx->res[2].status, 200);
    assert_int_equal(pwt_token_endpoint_issued(fx->te), 1);
    assert_int_equal(pwt_responder_count(evil), 0);
    pwt_responder_stop(evil);
}

/*
 * Issue 18, finding 10: nothing the token endpoint sends reaches the log: not the bytes jansson
 * quotes near a parse error (the start of a token), not token_type, not an unregistered OAuth
 * error code.
 */
static void test_token_errors_log_no_server_bytes(void **state)
{
    struct fx *fx = *state;
    char secret_file[512];
    char *log = NULL;
    size_t log_len = 0;
    FILE *f = open_memstream(&log, &log_len);
    const char *bodies[] = {
        "{\"access_token\":\"POISON-tok-SECRET", /* truncated */
        "{\"access_token\":POISON-tok-SECRET}",
        "{\"access_token\":\"t\",\"token_type\":\"POISON-type\"}",
        "{\"access_token\":7,\"token_type\":\"POISON-type\"}",
    };

    assert_non_null(f);
    write_secret(fx, "client.secret", "s", 0600, secret_file, sizeof(secret_file));
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        pwt_responder_add(fx->srv, &(struct pwt_rule){.method = "POST",
                                                      .path = "/token",
                                                      .times = 1,
                                                      .headers = "Content-Type: application/json\n",
                                                      .body = bodies[i]});
    }
    pwt_responder_add(fx->srv, &(struct pwt_rule){.method = "POST",
                                                  .path = "/token",
                                                  .times = 1,
                                                  .status = 400,
                                                  .body = "{\"error\":\"POISON-code\"}"});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.method = "POST",
                                                  .path = "/token",
                                                  .status = 401,
                                                  .body = "{\"error\":\"invalid_client\"}"});
    json_t *sec = json_pack("{s:s, s:s, s:s}", "token_url", fx->token_url, "client_id", "pw",
                            "client_secret_file", secret_file);
    struct pw_auth_conf c = {.type = "client-secret", .server = "ehr", .section = sec};
    assert_int_equal(pw_auth_new(&fx->auth, fx->http, &c), 0);
    json_decref(sec);
    pw_log_set_output(f, false);
    for (int i = 0; i < 6; i++) {
        struct result r = {0};
        get(fx, "/Observation", &r);
        assert_int_equal(r.err, PW_EAUTH);
    }
    pw_log_set_output(stderr, false);
    fclose(f);
    fprintf(stderr, "%s", log);
    assert_int_equal(pwt_responder_count_path(fx->srv, "/token"), 6);
    assert_null(strstr(log, "POISON"));
    assert_non_null(strstr(log, "token response is not JSON (line 1, column"));
    assert_non_null(strstr(log, "token_type is not bearer"));
    assert_non_null(strstr(log, "answered 400 (unregistered OAuth error code)"));
    assert_non_null(strstr(log, "answered 401 (invalid_client)"));
    free(log);
}

/* Issue 18, finding 8: painwatchd makes itself non-dumpable before it reads a secret. */
static void test_process_not_dumpable(void **state)
{
    (void)state;
    assert_int_equal(prctl(PR_SET_DUMPABLE, 1L, 0L, 0L, 0L), 0);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0L, 0L, 0L, 0L), 1);
    assert_int_equal(pw_secret_protect_process(), 0);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0L, 0L, 0L, 0L), 0);
    /* The rest of this test binary (and its leak check) runs as before. */
    assert_int_equal(prctl(PR_SET_DUMPABLE, 1L, 0L, 0L, 0L), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_secret_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_secret_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_secret_wrong_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_from_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_none_sends_no_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_secret_discovery_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_errors_log_no_server_bytes, setup, teardown),
        cmocka_unit_test(test_process_not_dumpable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
