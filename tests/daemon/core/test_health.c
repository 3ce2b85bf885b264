/* SPDX-License-Identifier: Apache-2.0 */
/*
 * health.c: a real loopback listener on the test's loop, queried with libcurl from the thread
 * pool: /healthz, /readyz (checks fail then pass), /metrics (strict Prometheus parse, counters
 * move between two scrapes), 404 and 405; more idle connections than the limit, held until timed
 * out and released, after which the listener still answers. Ends with every handle closed.
 */
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "painwatch/check.h"
#include "painwatch/err.h"
#include "painwatch/health.h"
#include "painwatch/limits.h"
#include "painwatch/metrics.h"
#include "promtext.h"
#include "support/loop.h"
#include "support/pwtest.h"

struct fetch {
    uv_work_t work;
    unsigned port;
    const char *path;
    const char *method;
    long status;
    char content_type[128];
    char *body;
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct fetch *f = arg;
    char *grown = realloc(f->body, f->len + size * n + 1);

    assert_non_null(grown);
    f->body = grown;
    memcpy(f->body + f->len, data, size * n);
    f->len += size * n;
    f->body[f->len] = '\0';
    return size * n;
}

/* Runs on a thread-pool thread while the loop thread serves the request. */
static void do_fetch(uv_work_t *work)
{
    struct fetch *f = container_of(work, struct fetch, work);
    char url[256];
    CURL *c = curl_easy_init();
    char *ct = NULL;

    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", f->port, f->path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, f->method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    f->status = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    if (f->status == 0) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(f->content_type, sizeof(f->content_type), "%s", ct ? ct : "");
    }
    curl_easy_cleanup(c);
}

/* The test's script: a list of requests run one after the other from after_fetch. */
static struct pw_health *health;
static bool store_ok;
static int step;
static struct fetch fetches[8];
static const struct {
    const char *method;
    const char *path;
} script[] = {
    {"GET", "/healthz"}, {"GET", "/readyz"},   {"GET", "/metrics"},
    {"GET", "/nope"},    {"POST", "/metrics"}, {"GET", "/readyz"},
    {"GET", "/metrics"}, {"GET", "/status"}, /* issue 22 */
};

static bool check_store(void *arg, char *detail, size_t size)
{
    (void)arg;
    snprintf(detail, size, "%s", store_ok ? "open" : "not open yet");
    return store_ok;
}

static bool check_audit(void *arg, char *detail, size_t size)
{
    snprintf(detail, size, "writable (%s)", (const char *)arg);
    return true;
}

static void after_fetch(uv_work_t *work, int status);

static void start_step(uv_loop_t *loop)
{
    struct fetch *f = &fetches[step];

    f->port = pw_health_port(health);
    f->method = script[step].method;
    f->path = script[step].path;
    assert_int_equal(uv_queue_work(loop, &f->work, do_fetch, after_fetch), 0);
}

static void after_fetch(uv_work_t *work, int status)
{
    assert_int_equal(status, 0);
    /* Between the scrapes: the pipeline does work and the store opens. */
    if (step == 2) {
        pw_metric_inc(PW_M_FLAGS_CREATED, "bowel-regimen", NULL);
        pw_metric_add(PW_M_INGESTED, 40, "ehr", "MedicationRequest", NULL);
        store_ok = true;
    }
    if (++step < (int)PW_ARRAY_SIZE(script)) {
        start_step(work->loop);
    } else {
        pw_health_close(health);
        health = NULL;
    }
}

static void test_endpoints(void **state)
{
    uv_loop_t loop;
    struct prom_text *a = calloc(1, sizeof(*a));
    struct prom_text *b = calloc(1, sizeof(*b));
    static char audit_name[] = "audit.jsonl";

    (void)state;
    pw_metrics_reset();
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(pw_health_new(&health, &loop, "127.0.0.1:0"), 0);
    assert_true(pw_health_port(health) > 0);
    assert_int_equal(pw_health_add_check(health, "store", check_store, NULL), 0);
    assert_int_equal(pw_health_add_check(health, "audit", check_audit, audit_name), 0);
    pw_metric_inc(PW_M_FLAGS_CREATED, "bowel-regimen", NULL);
    start_step(&loop);
    pwt_loop_close(&loop);

    assert_int_equal(fetches[0].status, 200);
    assert_string_equal(fetches[0].body, "ok\n");

    assert_int_equal(fetches[1].status, 503);
    assert_non_null(strstr(fetches[1].body, "not ready\n"));
    assert_non_null(strstr(fetches[1].body, "store: FAIL not open yet\n"));
    assert_non_null(strstr(fetches[1].body, "audit: ok writable (audit.jsonl)\n"));

    assert_int_equal(fetches[2].status, 200);
    assert_string_equal(fetches[2].content_type, PW_METRICS_CONTENT_TYPE);
    prom_parse(a, fetches[2].body);
    assert_int_equal(fetches[3].status, 404);
    assert_int_equal(fetches[4].status, 405);

    assert_int_equal(fetches[5].status, 200);
    assert_non_null(strstr(fetches[5].body, "ready"));
    assert_non_null(strstr(fetches[5].body, "store: ok open\n"));

    /* The counters moved between the two scrapes. */
    prom_parse(b, fetches[6].body);
    assert_true(prom_value(a, PW_M_FLAGS_CREATED, "rule=\"bowel-regimen\"") == 1.0);
    assert_true(prom_value(b, PW_M_FLAGS_CREATED, "rule=\"bowel-regimen\"") == 2.0);
    assert_true(
        isnan(prom_value(a, PW_M_INGESTED, "server=\"ehr\",resource=\"MedicationRequest\"")));
    assert_true(prom_value(b, PW_M_INGESTED, "server=\"ehr\",resource=\"MedicationRequest\"") ==
                40.0);

    /* Issue 22: the status page without a daemon's data shows the readiness checks. */
    assert_int_equal(fetches[7].status, 200);
    assert_string_equal(fetches[7].content_type, "text/html; charset=utf-8");
    assert_non_null(strstr(fetches[7].body, "<td>store</td><td>ok</td><td>open</td>"));
    assert_non_null(strstr(fetches[7].body, "<td>audit</td><td>ok</td><td>writable (audit.jsonl)"));
    assert_non_null(strstr(fetches[7].body, "No FHIR server is configured."));

    for (size_t i = 0; i < PW_ARRAY_SIZE(fetches); i++) {
        free(fetches[i].body);
    }
    free(a);
    free(b);
}

static void test_bad_listen(void **state)
{
    uv_loop_t loop;
    struct pw_health *h = NULL;
    struct pw_health *h2 = NULL;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(pw_health_new(&h, &loop, "localhost:9187"), PW_EINVAL);
    assert_int_equal(pw_health_new(&h, &loop, "127.0.0.1"), PW_EINVAL);
    assert_int_equal(pw_health_new(&h, &loop, "127.0.0.1:99999"), PW_EINVAL);
    /* A port already taken is a clean error, not a crash. */
    assert_int_equal(pw_health_new(&h, &loop, "127.0.0.1:0"), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", pw_health_port(h));
    assert_int_equal(pw_health_new(&h2, &loop, addr), PW_EIO);
    assert_null(h2);
    pw_health_close(h);
    pwt_loop_close(&loop);
}

/*
 * Issue 18 finding 6: more idle connections than the limit, held until the listener times them
 * out, then closed; the listener must answer again. Waits are bounded, never timed assertions.
 */
#define HOLD_N (PW_HEALTH_CONN_MAX + 1)

static struct {
    uv_work_t work;
    unsigned port;
    size_t timed_out; /* connections the listener closed */
    struct fetch after, again;
} hold;

static void do_hold(uv_work_t *work)
{
    struct pollfd p[HOLD_N];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hold.port)};

    (void)work;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (size_t i = 0; i < HOLD_N; i++) {
        p[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        p[i].events = POLLIN;
        assert_true(p[i].fd >= 0);
        /* Over the limit the kernel still completes the handshake (listen backlog). */
        assert_int_equal(connect(p[i].fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    /* Until the listener has closed (idle timeout) at least the limit's worth: 60 s at most. */
    for (int rounds = 0; hold.timed_out < PW_HEALTH_CONN_MAX && rounds < 600; rounds++) {
        if (poll(p, HOLD_N, 100) <= 0) {
            continue;
        }
        for (size_t i = 0; i < HOLD_N; i++) {
            char c;
            if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
                read(p[i].fd, &c, 1) <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                hold.timed_out++;
            }
        }
    }
    for (size_t i = 0; i < HOLD_N; i++) {
        if (p[i].fd >= 0) {
            close(p[i].fd);
        }
    }
    do_fetch(&hold.after.work);
    /* Over the limit again, this time closed by the client at once. */
    for (size_t i = 0; i < HOLD_N; i++) {
        p[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(p[i].fd >= 0);
        assert_int_equal(connect(p[i].fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    for (size_t i = 0; i < HOLD_N; i++) {
        close(p[i].fd);
    }
    do_fetch(&hold.again.work);
}

static void after_hold(uv_work_t *work, int status)
{
    (void)work;
    assert_int_equal(status, 0);
    pw_health_close(health);
    health = NULL;
}

static void test_idle_connections_over_limit(void **state)
{
    uv_loop_t loop;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(pw_health_new_idle(&health, &loop, "127.0.0.1:0", 1), 0);
    hold.port = pw_health_port(health);
    hold.after.port = hold.port;
    hold.after.method = "GET";
    hold.after.path = "/healthz";
    hold.again = hold.after;
    hold.again.path = "/readyz";
    assert_int_equal(uv_queue_work(&loop, &hold.work, do_hold, after_hold), 0);
    pwt_loop_close(&loop);
    assert_true(hold.timed_out >= PW_HEALTH_CONN_MAX);
    assert_int_equal(hold.after.status, 200);
    assert_string_equal(hold.after.body, "ok\n");
    assert_int_equal(hold.again.status, 200);
    free(hold.after.body);
    free(hold.again.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_bad_listen),
        cmocka_unit_test(test_idle_connections_over_limit),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_ALL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    pw_metrics_reset();
    return rc;
}
