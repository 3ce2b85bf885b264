/* SPDX-License-Identifier: Apache-2.0 */
/* http.c against the loopback responder: statuses, timeouts (P1), caps, gzip, redirects,
 * per-server concurrency, cancellation, TLS verification and mTLS. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uv.h>

#include "painwatch/err.h"
#include "painwatch/http.h"
#include "painwatch/limits.h"
#include "painwatch/secret.h"
#include "support/loop.h"
#include "support/pwtest.h"
#include "support/responder.h"

#define MAX_RESULTS 16

struct result {
    int calls;
    int err;
    long status;
    char *body;
    size_t body_len;
    char *ctype;
    char *url;
    char error[256];
    int resubmit_err; /* for the cancel test: what a submit from inside the callback returned */
};

struct fx {
    uv_loop_t loop;
    struct pw_http *http;
    struct pwt_responder *srv;
    struct result res[MAX_RESULTS];
    int pending;
    bool in_submit;
    bool sync_callback;
    bool resubmit;
};

static void on_done(void *arg, int err, const struct pw_http_resp *resp)
{
    struct result *r = arg;

    r->calls++;
    r->err = err;
    r->status = resp->status;
    r->body = malloc(resp->body_len + 1);
    assert_non_null(r->body);
    memcpy(r->body, resp->body, resp->body_len + 1);
    r->body_len = resp->body_len;
    const char *ct = pw_http_resp_header(resp, "content-type");
    r->ctype = ct ? strdup(ct) : NULL;
    r->url = strdup(resp->url);
    snprintf(r->error, sizeof(r->error), "%s", resp->error);
}

static struct fx *g_fx; /* the callback below needs the fixture; tests run one at a time */

static void on_done_counted(void *arg, int err, const struct pw_http_resp *resp)
{
    if (g_fx->in_submit) {
        g_fx->sync_callback = true;
    }
    on_done(arg, err, resp);
    g_fx->pending--;
    if (g_fx->resubmit) {
        struct pw_http_req *req = NULL;
        struct result *r = arg;
        assert_int_equal(pw_http_req_new(&req, "ehr", "GET", "http://127.0.0.1:1/x"), 0);
        r->resubmit_err = pw_http_submit_new(g_fx->http, req, on_done_counted, r);
    }
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(pw_http_new(&fx->http, &fx->loop), 0);
    fx->srv = pwt_responder_start(NULL);
    g_fx = fx;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    pw_http_free(fx->http);
    pwt_loop_close(&fx->loop);
    pwt_responder_stop(fx->srv);
    for (int i = 0; i < MAX_RESULTS; i++) {
        free(fx->res[i].body);
        free(fx->res[i].ctype);
        free(fx->res[i].url);
    }
    free(fx);
    g_fx = NULL;
    return 0;
}

static void add_server(struct fx *fx, const char *name, const char *origin, unsigned max,
                       long timeout_ms, size_t body_max)
{
    struct pw_http_server s = {
        .name = name,
        .origin = origin,
        .max_concurrent = max,
        .timeout_ms = timeout_ms,
        .body_max = body_max,
    };
    assert_int_equal(pw_http_server_add(fx->http, &s), 0);
}

/* Submit GET @p path on the responder through server "ehr"; the callback must not have run
 * when submit returns. */
static void submit_get(struct fx *fx, const char *base, const char *path, const char *hdr,
                       struct result *r)
{
    char url[512];
    struct pw_http_req *req = NULL;

    snprintf(url, sizeof(url), "%s%s", base, path);
    assert_int_equal(pw_http_req_new(&req, "ehr", "GET", url), 0);
    if (hdr) {
        assert_int_equal(pw_http_req_add_header(req, hdr), 0);
    }
    fx->in_submit = true;
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, r), 0);
    fx->in_submit = false;
    assert_int_equal(r->calls, 0);
    fx->pending++;
}

static void run_until_done(struct fx *fx)
{
    while (fx->pending > 0) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_false(fx->sync_callback);
}

static void test_get_200(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);

    pwt_responder_add(fx->srv, &(struct pwt_rule){.method = "GET",
                                                  .path = "/fhir/Patient/1",
                                                  .body = "{\"resourceType\":\"Patient\"}"});
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/fhir/Patient/1", NULL, &fx->res[0]);
    submit_get(fx, base, "/fhir/Patient/1?_lastUpdated=gt2026-01-01T00:00:00%2B01:00", NULL,
               &fx->res[1]);
    run_until_done(fx);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fx->res[i].calls, 1);
        assert_int_equal(fx->res[i].err, 0);
        assert_int_equal(fx->res[i].status, 200);
        assert_string_equal(fx->res[i].body, "{\"resourceType\":\"Patient\"}");
        assert_string_equal(fx->res[i].ctype, "application/fhir+json");
    }
    assert_int_equal(pwt_responder_count(fx->srv), 2);
    const struct pwt_request *rq = pwt_responder_request(fx->srv, 0);
    assert_string_equal(rq->method, "GET");
    assert_string_equal(rq->path, "/fhir/Patient/1");
    const struct pwt_request *rq1 = pwt_responder_request(fx->srv, 1);
    const struct pwt_request *with_q = strchr(rq->raw_uri, '?') ? rq : rq1;
    assert_string_equal(with_q->raw_uri,
                        "/fhir/Patient/1?_lastUpdated=gt2026-01-01T00:00:00%2B01:00");
    assert_string_equal(with_q->query, "_lastUpdated=gt2026-01-01T00:00:00+01:00");
    assert_string_equal(pwt_request_header(rq, "Accept"), "application/fhir+json");
    assert_non_null(strstr(pwt_request_header(rq, "Accept-Encoding"), "gzip"));
    assert_null(pwt_request_header(rq, "Expect"));
    assert_int_equal(strncmp(pwt_request_header(rq, "User-Agent"), "painwatch/", 10), 0);
    assert_int_equal(pw_http_stats_get(fx->http)->requests, 2);
    assert_int_equal(pw_http_stats_get(fx->http)->in_flight, 0);
}

static void test_keepalive_reuses_connection(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);

    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/a", .body = "{}"});
    add_server(fx, "ehr", base, 1, 0, 0);
    for (int i = 0; i < 3; i++) {
        submit_get(fx, base, "/a", NULL, &fx->res[i]);
        run_until_done(fx); /* one after the other: each may reuse the idle connection */
        assert_int_equal(fx->res[i].status, 200);
    }
    assert_int_equal(pw_http_stats_get(fx->http)->requests, 3);
    assert_int_equal(pw_http_stats_get(fx->http)->connects, 1);
}

static void test_500_is_a_response(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);

    pwt_responder_add(fx->srv,
                      &(struct pwt_rule){.path = "/x", .status = 500, .body = "{\"oops\":1}"});
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/x", NULL, &fx->res[0]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 500);
    assert_string_equal(fx->res[0].body, "{\"oops\":1}");
}

/*
 * P1 regression (STYLE.md 3.3): the transfer ends on a timer tick (CURLOPT_TIMEOUT_MS against
 * a server that never answers), when curl reports running == 0. The completion must still be
 * drained and called back with PW_ETIMEDOUT, and nothing may leak.
 */
static void test_p1_timeout_on_timer_tick_completes(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);

    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/silent", .never_answer = true});
    add_server(fx, "ehr", base, 0, 300, 0);
    submit_get(fx, base, "/silent", NULL, &fx->res[0]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, PW_ETIMEDOUT);
    assert_int_equal(fx->res[0].status, 0);
    assert_int_equal(pwt_responder_count_path(fx->srv, "/silent"), 1);
    assert_int_equal(pw_http_stats_get(fx->http)->timeouts, 1);
    assert_int_equal(pw_http_stats_get(fx->http)->in_flight, 0);
}

static void test_reset_mid_body(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    char big[20000];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pwt_responder_add(fx->srv,
                      &(struct pwt_rule){.path = "/cut", .body = big, .close_mid_body = true});
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/cut", NULL, &fx->res[0]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, PW_EHTTP);
    assert_int_equal(fx->res[0].body_len, 0); /* no partial body handed out */
    assert_true(strlen(fx->res[0].error) > 0);
}

static void test_body_over_cap(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    char big[5000];

    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/big", .body = big});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/small", .body = "{}"});
    add_server(fx, "ehr", base, 0, 0, 1000);
    submit_get(fx, base, "/big", NULL, &fx->res[0]);
    submit_get(fx, base, "/small", NULL, &fx->res[1]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].err, PW_E2BIG);
    assert_int_equal(fx->res[0].body_len, 0);
    assert_int_equal(fx->res[1].err, 0);
    assert_string_equal(fx->res[1].body, "{}");
}

/* gzip the string @p s with the gzip tool into a heap buffer. */
static char *gzip_of(const char *s, size_t *len)
{
    char *dir = pwt_mkdtemp();
    char in[512];
    char out[512];
    char cmd[1200];

    snprintf(in, sizeof(in), "%s/body", dir);
    snprintf(out, sizeof(out), "%s/body.gz", dir);
    pwt_write_file(in, s);
    snprintf(cmd, sizeof(cmd), "gzip -n -c '%s' > '%s'", in, out);
    assert_int_equal(system(cmd), 0);
    char *gz = pwt_read_file(out, len);
    pwt_rmtree(dir);
    free(dir);
    return gz;
}

static void test_gzip_response(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    char plain[4000];
    size_t gzlen = 0;

    for (size_t i = 0; i < sizeof(plain) - 1; i++) {
        plain[i] = (char)('a' + i % 7);
    }
    plain[sizeof(plain) - 1] = '\0';
    char *gz = gzip_of(plain, &gzlen);
    assert_true(gzlen < sizeof(plain) / 2);
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/gz",
                                                  .headers = "Content-Encoding: gzip\n",
                                                  .body = gz,
                                                  .body_len = gzlen});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/gzbig",
                                                  .headers = "Content-Encoding: gzip\n",
                                                  .body = gz,
                                                  .body_len = gzlen});
    free(gz);
    add_server(fx, "ehr", base, 0, 0, 3000);
    submit_get(fx, base, "/gz", NULL, &fx->res[0]);
    run_until_done(fx);
    /* The cap applies after decompression: 3999 bytes inflate past 3000 (a gzip bomb). */
    assert_int_equal(fx->res[0].err, PW_E2BIG);

    struct pw_http_server s2 = {.name = "ehr2", .origin = base};
    assert_int_equal(pw_http_server_add(fx->http, &s2), 0);
    struct pw_http_req *req = NULL;
    char url[256];
    snprintf(url, sizeof(url), "%s/gzbig", base);
    assert_int_equal(pw_http_req_new(&req, "ehr2", "GET", url), 0);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[1]), 0);
    fx->pending++;
    run_until_done(fx);
    assert_int_equal(fx->res[1].err, 0);
    assert_int_equal(fx->res[1].body_len, sizeof(plain) - 1);
    assert_string_equal(fx->res[1].body, plain);
}

static void test_redirect_same_origin_followed(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    char loc[300];

    snprintf(loc, sizeof(loc), "Location: %s/b\n", base);
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/a", .status = 302, .headers = loc});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/b", .body = "{\"at\":\"b\"}"});
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/a", "Authorization: Bearer t0k", &fx->res[0]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 200);
    assert_string_equal(fx->res[0].body, "{\"at\":\"b\"}");
    assert_non_null(strstr(fx->res[0].url, "/b"));
    assert_int_equal(pwt_responder_count(fx->srv), 2);
    assert_string_equal(pwt_request_header(pwt_responder_request(fx->srv, 1), "Authorization"),
                        "Bearer t0k");
    assert_int_equal(pw_http_stats_get(fx->http)->redirects, 1);
}

static void test_redirect_relative_and_loop(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);

    pwt_responder_add(
        fx->srv, &(struct pwt_rule){.path = "/rel", .status = 301, .headers = "Location: next\n"});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/next", .body = "{}"});
    pwt_responder_add(fx->srv, &(struct pwt_rule){
                                   .path = "/loop", .status = 302, .headers = "Location: /loop\n"});
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/rel", NULL, &fx->res[0]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].status, 200);
    assert_int_equal(pwt_responder_count_path(fx->srv, "/next"), 1);
    submit_get(fx, base, "/loop", NULL, &fx->res[1]);
    run_until_done(fx);
    assert_int_equal(fx->res[1].err, PW_EHTTP);
    assert_int_equal(pwt_responder_count_path(fx->srv, "/loop"), 1 + PW_HTTP_REDIRECTS_MAX);
}

static void test_origin_normalised(void **state)
{
    char o[128];

    (void)state;
    assert_int_equal(pw_http_origin("HTTPS://EHR.Example.org/fhir/R4", o, sizeof(o)), 0);
    assert_string_equal(o, "https://ehr.example.org:443");
    assert_int_equal(pw_http_origin("http://ehr.example.org:80/x?y=1", o, sizeof(o)), 0);
    assert_string_equal(o, "http://ehr.example.org:80");
    assert_int_equal(pw_http_origin("http://[::1]:8080/fhir", o, sizeof(o)), 0);
    assert_string_equal(o, "http://[::1]:8080");
    assert_int_equal(pw_http_origin("https://user:pw@ehr.example.org:8443/", o, sizeof(o)), 0);
    assert_string_equal(o, "https://ehr.example.org:8443");
    assert_int_equal(pw_http_origin("ftp://ehr.example.org/", o, sizeof(o)), PW_EINVAL);
    assert_int_equal(pw_http_origin("/fhir/Patient", o, sizeof(o)), PW_EINVAL);
    assert_int_equal(pw_http_origin("https://ehr.example.org/", o, 8), PW_E2BIG);
}

static void test_redirect_other_origin_refused(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    struct pwt_responder *other = pwt_responder_start(NULL);
    char loc[300];

    pwt_responder_add(other, &(struct pwt_rule){.body = "{}"});
    snprintf(loc, sizeof(loc), "Location: %s/steal\n", pwt_responder_url(other));
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/a", .status = 307, .headers = loc});
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/a", "Authorization: Bearer secret", &fx->res[0]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, PW_EORIGIN);
    assert_int_equal(fx->res[0].status, 307);
    /* Nothing, and so no Authorization header, reached the other origin. */
    assert_int_equal(pwt_responder_count(other), 0);
    assert_int_equal(pw_http_stats_get(fx->http)->refused, 1);

    /* A URL off the origin is refused at submit: error returned, no callback. */
    struct pw_http_req *req = NULL;
    char url[300];
    snprintf(url, sizeof(url), "%s/x", pwt_responder_url(other));
    assert_int_equal(pw_http_req_new(&req, "ehr", "GET", url), 0);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[1]), PW_EORIGIN);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(fx->res[1].calls, 0);
    assert_int_equal(pwt_responder_count(other), 0);
    pwt_responder_stop(other);
}

static void test_per_server_concurrency_cap(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);

    /* Each answer is held until two requests are in progress at the server, so the test shows
     * that two run together (no timing) and that a third never joins them. */
    pwt_responder_add(
        fx->srv, &(struct pwt_rule){.path = "/c", .body = "{}", .wait_concurrent = 2, .times = 6});
    add_server(fx, "ehr", base, 2, 0, 0);
    for (int i = 0; i < 6; i++) {
        submit_get(fx, base, "/c", NULL, &fx->res[i]);
    }
    assert_int_equal(pw_http_stats_get(fx->http)->queued, 4);
    run_until_done(fx);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(fx->res[i].calls, 1);
        assert_int_equal(fx->res[i].err, 0);
        assert_int_equal(fx->res[i].status, 200);
    }
    assert_int_equal(pwt_responder_max_concurrent(fx->srv), 2);
    assert_int_equal(pwt_responder_wait_expired(fx->srv), 0);
    assert_int_equal(pwt_responder_count_path(fx->srv, "/c"), 6);
}

static int g_gate_err;

static int gate(void *arg)
{
    (*(int *)arg)++;
    return g_gate_err;
}

/*
 * The gate is asked when a request goes on the wire: the first (a free slot) is sent; the two
 * queued behind it are refused once the gate closes, reach their callbacks with its error and
 * "not sent", and never reach the server; a submit while it is closed fails at once.
 */
static void test_gate_refuses_queued_requests(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    char url[512];
    int asked = 0;

    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/g", .body = "{}"});
    add_server(fx, "ehr", base, 1, 0, 0);
    snprintf(url, sizeof(url), "%s/g", base);
    g_gate_err = 0;
    for (int i = 0; i < 3; i++) {
        struct pw_http_req *req = NULL;
        assert_int_equal(pw_http_req_new(&req, "ehr", "POST", url), 0);
        pw_http_req_set_gate(req, gate, &asked);
        assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[i]), 0);
        fx->pending++;
    }
    assert_int_equal(asked, 1);
    assert_int_equal(pw_http_stats_get(fx->http)->queued, 2);
    g_gate_err = PW_EAUDIT;
    run_until_done(fx);
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 200);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(fx->res[i].calls, 1);
        assert_int_equal(fx->res[i].err, PW_EAUDIT);
        assert_int_equal(fx->res[i].status, 0);
    }
    assert_int_equal(asked, 3);
    assert_int_equal(pwt_responder_count_path(fx->srv, "/g"), 1);

    struct pw_http_req *req = NULL;
    assert_int_equal(pw_http_req_new(&req, "ehr", "POST", url), 0);
    pw_http_req_set_gate(req, gate, &asked);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[3]), PW_EAUDIT);
    assert_int_equal(fx->res[3].calls, 0);
    assert_int_equal(pwt_responder_count_path(fx->srv, "/g"), 1);
}

/* Like submit_get(), through server @p server. */
static void submit_on(struct fx *fx, const char *server, const char *base, const char *path,
                      struct result *r)
{
    char url[512];
    struct pw_http_req *req = NULL;

    snprintf(url, sizeof(url), "%s%s", base, path);
    assert_int_equal(pw_http_req_new(&req, server, "GET", url), 0);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, r), 0);
    fx->pending++;
}

static void test_connections_kept_across_polls_with_two_servers(void **state)
{
    struct fx *fx = *state;
    struct pwt_responder *other = pwt_responder_start(NULL);
    const char *base[2] = {pwt_responder_url(fx->srv), pwt_responder_url(other)};
    struct pwt_responder *srv[2] = {fx->srv, other};

    /* Every answer waits until the server has 3 requests in progress: each server gets its
     * full set of 3 connections in the first round. The second round (the next poll, after
     * everything went idle) must find all 6 alive: none closed by curl's cache in between. */
    for (int k = 0; k < 2; k++) {
        pwt_responder_add(
            srv[k],
            &(struct pwt_rule){.path = "/p", .body = "{}", .wait_concurrent = 3, .times = 6});
    }
    add_server(fx, "a", base[0], 3, 0, 0);
    add_server(fx, "b", base[1], 3, 0, 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 6; i++) {
            submit_on(fx, i % 2 ? "b" : "a", base[i % 2], "/p", &fx->res[round * 6 + i]);
        }
        run_until_done(fx);
        for (int i = 0; i < 6; i++) {
            assert_int_equal(fx->res[round * 6 + i].status, 200);
        }
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(pwt_responder_max_concurrent(srv[k]), 3);
        assert_int_equal(pwt_responder_wait_expired(srv[k]), 0);
    }
    assert_int_equal(pw_http_stats_get(fx->http)->requests, 12);
    assert_int_equal(pw_http_stats_get(fx->http)->connects, 6);
    pw_http_free(fx->http); /* closes the connections before the second responder stops */
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    fx->http = NULL;
    pwt_responder_stop(other);
}

static void test_submit_error_never_calls_back(void **state)
{
    struct fx *fx = *state;
    struct pw_http_req *req = NULL;

    add_server(fx, "ehr", pwt_responder_url(fx->srv), 0, 0, 0);
    assert_int_equal(pw_http_req_new(&req, "nope", "GET", "http://127.0.0.1:1/"), 0);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[0]), PW_ENOENT);
    assert_int_equal(pw_http_submit_new(fx->http, NULL, on_done_counted, &fx->res[0]), PW_EINVAL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(fx->res[0].calls, 0);
    struct pw_http_server dup = {.name = "ehr", .origin = "http://127.0.0.1:9"};
    assert_int_equal(pw_http_server_add(fx->http, &dup), PW_EEXIST);
    struct pw_http_server bad = {.name = "bad", .origin = "ftp://127.0.0.1/"};
    assert_int_equal(pw_http_server_add(fx->http, &bad), PW_EINVAL);
    assert_int_equal(pw_http_req_add_header(NULL, "A: b"), PW_EINVAL);
}

static void test_connection_refused_is_async(void **state)
{
    struct fx *fx = *state;
    struct pwt_responder *gone = pwt_responder_start(NULL);
    char base[128];

    snprintf(base, sizeof(base), "%s", pwt_responder_url(gone));
    pwt_responder_stop(gone); /* the port is closed now */
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/x", NULL, &fx->res[0]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].calls, 1);
    assert_int_equal(fx->res[0].err, PW_EHTTP);
    assert_true(strlen(fx->res[0].error) > 0);
}

static void test_post_body(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    struct pw_http_req *req = NULL;
    char url[256];
    const char *flag = "{\"resourceType\":\"Flag\"}";

    pwt_responder_add(fx->srv,
                      &(struct pwt_rule){.method = "POST", .path = "/fhir/Flag", .status = 201});
    add_server(fx, "ehr", base, 0, 0, 0);
    snprintf(url, sizeof(url), "%s/fhir/Flag", base);
    assert_int_equal(pw_http_req_new(&req, "ehr", "POST", url), 0);
    assert_int_equal(pw_http_req_set_body(req, flag, strlen(flag), "application/fhir+json"), 0);
    assert_int_equal(pw_http_req_add_header(req, "X-A: 1"), 0);
    assert_int_equal(pw_http_req_add_header(req, "x-a: 2"), 0); /* replaces X-A: 1 */
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[0]), 0);
    fx->pending++;
    run_until_done(fx);
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 201);
    const struct pwt_request *rq = pwt_responder_request(fx->srv, 0);
    assert_string_equal(rq->method, "POST");
    assert_string_equal(rq->body, flag);
    assert_string_equal(pwt_request_header(rq, "Content-Type"), "application/fhir+json");
    assert_string_equal(pwt_request_header(rq, "X-A"), "2");
}

static void test_free_cancels_in_flight_once(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);

    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/hang", .never_answer = true});
    add_server(fx, "ehr", base, 2, 0, 0);
    for (int i = 0; i < 4; i++) { /* two in flight, two queued */
        submit_get(fx, base, "/hang", NULL, &fx->res[i]);
    }
    /* The loop must keep running for curl to send; the responder's log is on other threads. */
    while (!pwt_responder_wait_count(fx->srv, 2, 10)) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    fx->resubmit = true; /* a submit from a cancel callback is refused, not queued */
    pw_http_free(fx->http);
    fx->http = NULL;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fx->res[i].calls, 1);
        assert_int_equal(fx->res[i].err, PW_ECANCELED);
        assert_int_equal(fx->res[i].resubmit_err, PW_ECANCELED);
    }
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fx->res[i].calls, 1);
    }
}

static void on_done_then_free(void *arg, int err, const struct pw_http_resp *resp)
{
    on_done_counted(arg, err, resp);
    if (g_fx->http) {
        struct pw_http *h = g_fx->http;
        g_fx->http = NULL;
        pw_http_free(h); /* from inside a done callback: allowed */
    }
}

static void test_free_from_done_callback(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    struct pw_http_req *req = NULL;
    char url[256];

    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/hang", .never_answer = true});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/fast", .body = "{}"});
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/hang", NULL, &fx->res[0]);
    submit_get(fx, base, "/hang", NULL, &fx->res[1]);
    snprintf(url, sizeof(url), "%s/fast", base);
    assert_int_equal(pw_http_req_new(&req, "ehr", "GET", url), 0);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_then_free, &fx->res[2]), 0);
    fx->pending++;
    run_until_done(fx);
    assert_int_equal(fx->res[2].calls, 1);
    assert_int_equal(fx->res[2].status, 200);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fx->res[i].calls, 1);
        assert_int_equal(fx->res[i].err, PW_ECANCELED);
    }
}

/* ---- TLS ------------------------------------------------------------------------------------ */

struct pki {
    char *dir;
    char ca[512], srv_cert[512], srv_key[512];
    char other_ca[512];
    char cli_cert[512], cli_key[512];
};

/* Run @p script in @p dir; fail the test when it fails. */
static void sh(const char *script, const char *dir)
{
    char cmd[4096];

    snprintf(cmd, sizeof(cmd), "cd '%s' && %s", dir, script);
    if (system(cmd) != 0) {
        fail_msg("command failed: %s", cmd);
    }
}

/* A throwaway CA, a server certificate for 127.0.0.1, a client certificate and an unrelated
 * CA, made with the openssl tool. */
static void make_pki(struct pki *p)
{
    p->dir = pwt_mkdtemp();
    const char *d = p->dir;
    sh("printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
       "extendedKeyUsage=serverAuth\\n' > srv.ext && "
       "printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > cli.ext",
       d);
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout ca.key -out ca.pem -days 2 -subj /CN=pw-test-ca 2>/dev/null && "
       "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout other.key -out other.pem -days 2 -subj /CN=pw-other-ca 2>/dev/null",
       d);
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null && "
       "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
       "-extfile srv.ext -out srv.pem 2>/dev/null",
       d);
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout cli.key -out cli.csr -subj /CN=painwatch-client 2>/dev/null && "
       "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
       "-extfile cli.ext -out cli.pem 2>/dev/null && chmod 600 cli.key",
       d);
    snprintf(p->ca, sizeof(p->ca), "%s/ca.pem", d);
    snprintf(p->other_ca, sizeof(p->other_ca), "%s/other.pem", d);
    snprintf(p->srv_cert, sizeof(p->srv_cert), "%s/srv.pem", d);
    snprintf(p->srv_key, sizeof(p->srv_key), "%s/srv.key", d);
    snprintf(p->cli_cert, sizeof(p->cli_cert), "%s/cli.pem", d);
    snprintf(p->cli_key, sizeof(p->cli_key), "%s/cli.key", d);
}

static void free_pki(struct pki *p)
{
    pwt_rmtree(p->dir);
    free(p->dir);
}

static void submit_named(struct fx *fx, const char *server, const char *url, struct result *r)
{
    struct pw_http_req *req = NULL;

    assert_int_equal(pw_http_req_new(&req, server, "GET", url), 0);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, r), 0);
    fx->pending++;
}

static void test_tls_verification(void **state)
{
    struct fx *fx = *state;
    struct pki p;
    char url[256];

    make_pki(&p);
    struct pwt_responder *tls = pwt_responder_start(
        &(struct pwt_responder_opts){.tls_cert_file = p.srv_cert, .tls_key_file = p.srv_key});
    pwt_responder_add(tls, &(struct pwt_rule){.path = "/metadata", .body = "{}"});
    snprintf(url, sizeof(url), "%s/metadata", pwt_responder_url(tls));
    assert_int_equal(strncmp(url, "https://", 8), 0);

    struct pw_http_server good = {.name = "good", .origin = url, .ca_file = p.ca};
    struct pw_http_server wrong = {.name = "wrong", .origin = url, .ca_file = p.other_ca};
    assert_int_equal(pw_http_server_add(fx->http, &good), 0);
    struct pw_http_server system = {.name = "system", .origin = url}; /* system CA bundle */
    assert_int_equal(pw_http_server_add(fx->http, &wrong), 0);
    assert_int_equal(pw_http_server_add(fx->http, &system), 0);
    submit_named(fx, "good", url, &fx->res[0]);
    run_until_done(fx);
    submit_named(fx, "wrong", url, &fx->res[1]);
    run_until_done(fx);
    submit_named(fx, "system", url, &fx->res[2]);
    run_until_done(fx);
    assert_int_equal(fx->res[2].err, PW_EHTTP); /* the throwaway CA is not a system CA */
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 200);
    /* Verification is never silently off: the wrong CA fails the handshake. */
    assert_int_equal(fx->res[1].err, PW_EHTTP);
    assert_int_equal(fx->res[1].status, 0);
    assert_true(strlen(fx->res[1].error) > 0);
    assert_int_equal(pwt_responder_count(tls), 1);
    pw_http_free(fx->http);
    fx->http = NULL;
    pwt_responder_stop(tls);
    free_pki(&p);
}

static void test_mtls_client_certificate(void **state)
{
    struct fx *fx = *state;
    struct pki p;
    char url[256];
    char key_copy[600];

    make_pki(&p);
    struct pwt_responder *tls =
        pwt_responder_start(&(struct pwt_responder_opts){.tls_cert_file = p.srv_cert,
                                                         .tls_key_file = p.srv_key,
                                                         .client_ca_file = p.ca,
                                                         .require_client_cert = true});
    pwt_responder_add(tls, &(struct pwt_rule){.path = "/metadata", .body = "{}"});
    snprintf(url, sizeof(url), "%s/metadata", pwt_responder_url(tls));

    struct pw_http_server with = {.name = "with",
                                  .origin = url,
                                  .ca_file = p.ca,
                                  .client_cert = p.cli_cert,
                                  .client_key = p.cli_key};
    struct pw_http_server without = {.name = "without", .origin = url, .ca_file = p.ca};
    assert_int_equal(pw_http_server_add(fx->http, &with), 0);
    assert_int_equal(pw_http_server_add(fx->http, &without), 0);
    submit_named(fx, "with", url, &fx->res[0]);
    run_until_done(fx);
    submit_named(fx, "without", url, &fx->res[1]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 200);
    assert_true(pwt_responder_request(tls, 0)->client_cert_ok);
    assert_int_equal(fx->res[1].status, 403);
    assert_false(pwt_responder_request(tls, 1)->client_cert_ok);

    /* A world-readable client key is refused when the server is configured. */
    snprintf(key_copy, sizeof(key_copy), "%s/open.key", p.dir);
    size_t len;
    char *k = pwt_read_file(p.cli_key, &len);
    pwt_write_file(key_copy, k);
    free(k);
    assert_int_equal(chmod(key_copy, 0644), 0);
    struct pw_http_server open_key = {.name = "open",
                                      .origin = url,
                                      .ca_file = p.ca,
                                      .client_cert = p.cli_cert,
                                      .client_key = key_copy};
    assert_int_equal(pw_http_server_add(fx->http, &open_key), PW_ESECRET);

    pw_http_free(fx->http);
    fx->http = NULL;
    pwt_responder_stop(tls);
    free_pki(&p);
}

/* Issue 18, finding 9: the proxy environment variables are ignored; a proxy is used only when
 * the server's own setting names it. A loopback "proxy" set in every variable receives nothing. */
static void test_proxy_only_from_setting(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    struct pwt_responder *proxy = pwt_responder_start(NULL);
    const char *pu = pwt_responder_url(proxy);
    const char *vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        assert_int_equal(setenv(vars[i], pu, 1), 0);
    }
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    pwt_responder_add(proxy, &(struct pwt_rule){.body = "{\"via\":\"proxy\"}"});
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/fhir/Patient", .body = "{}"});
    add_server(fx, "ehr", base, 0, 0, 0);
    submit_get(fx, base, "/fhir/Patient", "Authorization: Bearer secret-token", &fx->res[0]);
    run_until_done(fx);
    assert_int_equal(fx->res[0].err, 0);
    assert_int_equal(fx->res[0].status, 200);
    assert_string_equal(fx->res[0].body, "{}");
    assert_int_equal(pwt_responder_count(fx->srv), 1);
    assert_int_equal(pwt_responder_count(proxy), 0);

    /* An explicit proxy for one server is used (here the "proxy" answers itself). */
    struct pw_http_server s = {.name = "via-proxy", .origin = base, .proxy = pu};
    struct pw_http_req *req = NULL;
    char url[512];
    snprintf(url, sizeof(url), "%s/fhir/Patient", base);
    assert_int_equal(pw_http_server_add(fx->http, &s), 0);
    assert_int_equal(pw_http_req_new(&req, "via-proxy", "GET", url), 0);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[1]), 0);
    fx->pending++;
    run_until_done(fx);
    assert_int_equal(fx->res[1].status, 200);
    assert_string_equal(fx->res[1].body, "{\"via\":\"proxy\"}");
    assert_int_equal(pwt_responder_count(proxy), 1);
    assert_int_equal(pwt_responder_count(fx->srv), 1);
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        unsetenv(vars[i]);
    }
    pwt_responder_stop(proxy);
}

/* Issue 18, finding 8: every wiped buffer, as the wipe hook saw it. */
static char *g_wiped[256];
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

/* Was a buffer holding exactly @p text (up to its NUL) wiped? */
static bool wiped(const char *text)
{
    for (size_t i = 0; i < g_nwiped; i++) {
        if (strcmp(g_wiped[i], text) == 0) {
            return true;
        }
    }
    return false;
}

static void wiped_reset(void)
{
    for (size_t i = 0; i < g_nwiped; i++) {
        free(g_wiped[i]);
    }
    g_nwiped = 0;
}

/*
 * Header lines (Authorization) are wiped in every copy curl's lists hold; a sensitive request's
 * body (client secret) and response (access token) are wiped too, even when the response
 * outgrew its first buffer.
 */
static void test_secrets_wiped_when_freed(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    char url[512];
    struct pw_http_req *req = NULL;
    char *big = malloc(20001);

    assert_non_null(big);
    memset(big, 'x', 20000);
    memcpy(big, "{\"access_token\":\"", 17);
    memcpy(big + 19998, "\"}", 2);
    big[20000] = '\0';
    pwt_responder_add(fx->srv, &(struct pwt_rule){.method = "POST", .path = "/token", .body = big});
    add_server(fx, "ehr", base, 0, 0, 0);
    pw_secret_set_wipe_hook(record_wipe);
    snprintf(url, sizeof(url), "%s/token", base);
    assert_int_equal(pw_http_req_new(&req, "ehr", "POST", url), 0);
    pw_http_req_set_sensitive(req);
    assert_int_equal(pw_http_req_add_header(req, "Authorization: Basic c2VjcmV0LWJhc2lj"), 0);
    assert_int_equal(pw_http_req_add_header(req, "Accept: application/json"), 0);
    assert_int_equal(pw_http_req_set_body(req, "client_secret=s3cret-post", 25,
                                          "application/x-www-form-urlencoded"),
                     0);
    assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[0]), 0);
    fx->pending++;
    run_until_done(fx);
    assert_int_equal(fx->res[0].status, 200);
    assert_int_equal(fx->res[0].body_len, 20000);
    assert_true(wiped("Authorization: Basic c2VjcmV0LWJhc2lj"));
    assert_true(wiped("client_secret=s3cret-post"));
    assert_true(wiped(big));

    /* A plain request: its headers are wiped (a bearer token), its FHIR body is not a secret. */
    wiped_reset();
    pwt_responder_add(fx->srv, &(struct pwt_rule){.path = "/fhir/Patient", .body = "{}"});
    submit_get(fx, base, "/fhir/Patient", "Authorization: Bearer tok-plain", &fx->res[1]);
    run_until_done(fx);
    assert_int_equal(fx->res[1].status, 200);
    assert_true(wiped("Authorization: Bearer tok-plain"));
    assert_false(wiped("{}"));
    pw_secret_set_wipe_hook(NULL);
    wiped_reset();
    free(big);
}

/* Issue 18, finding 7: a URL whose path has a dot segment never leaves (curl would resolve
 * "Flag/../../Patient/p1" to Patient/p1); dots inside a segment are ordinary characters. */
static void test_dot_segments_refused(void **state)
{
    struct fx *fx = *state;
    const char *base = pwt_responder_url(fx->srv);
    const char *bad[] = {"/fhir/Flag/../../../Patient/p1", "/fhir/Flag/%2e%2e/%2E%2E/Patient/p1",
                         "/fhir/./Flag", "/fhir/Flag/.%2e/x", "/fhir/Flag/.."};
    char url[512];

    pwt_responder_add(fx->srv, &(struct pwt_rule){.body = "{}"});
    add_server(fx, "ehr", base, 0, 0, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pw_http_req *req = NULL;
        snprintf(url, sizeof(url), "%s%s", base, bad[i]);
        assert_int_equal(pw_http_req_new(&req, "ehr", "PUT", url), 0);
        assert_int_equal(pw_http_submit_new(fx->http, req, on_done_counted, &fx->res[0]),
                         PW_EINVAL);
    }
    assert_int_equal(fx->res[0].calls, 0);
    submit_get(fx, base, "/fhir/Flag/a.b..c?x=../y", NULL, &fx->res[1]);
    run_until_done(fx);
    assert_int_equal(fx->res[1].status, 200);
    assert_int_equal(pwt_responder_count(fx->srv), 1);
    assert_string_equal(pwt_responder_request(fx->srv, 0)->path, "/fhir/Flag/a.b..c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuses_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_is_a_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p1_timeout_on_timer_tick_completes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_mid_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_over_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_same_origin_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_relative_and_loop, setup, teardown),
        cmocka_unit_test(test_origin_normalised),
        cmocka_unit_test_setup_teardown(test_redirect_other_origin_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_server_concurrency_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gate_refuses_queued_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections_kept_across_polls_with_two_servers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_submit_error_never_calls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused_is_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_cancels_in_flight_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_from_done_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_verification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mtls_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_only_from_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_wiped_when_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dot_segments_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
