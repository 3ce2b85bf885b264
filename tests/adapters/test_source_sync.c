/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The incremental FHIR search against a real loopback server through the real HTTP core:
 * paging, dedupe within and across runs, overlap, expired links, off-origin links, broken
 * bodies, timeouts, resets, token renewal, and a cohort sync that asks nothing twice.
 * Each scenario asserts what the consumer received and what the server was asked. Pages are
 * parsed into the jansson page arena as in painwatchd (installed in main): under ASan a value
 * used after its page was dropped is reported, and a page never dropped fails the exit.
 */
#include <stdatomic.h>
#include <sys/stat.h>

#include "painwatch/jarena.h"
#include "support/sync_harness.h"

#define SRV_WIDE "{\"type\": \"server\"}"

/* A server-wide Observation-only source (one stream: "ehr/Observation/-"). */
static void obs_only(struct sh *h, struct pw_fhir_search_conf *conf, long timeout_ms,
                     size_t body_max)
{
    sh_conf(h, conf, "ehr", h->base, timeout_ms, body_max);
    free(conf->types[1].type);
    conf->types[1].type = NULL;
    conf->ntypes = 1;
}

static const char *page_url(struct sh *h, char *buf, size_t len, int n)
{
    snprintf(buf, len, "%s?_getpages=abc&_page=%d", h->base, n);
    return buf;
}

static void script_three_pages(struct sh *h)
{
    char next[256];
    /* First sync: 14-day lookback by date from the injected clock (11:00). */
    char *p1 = sh_bundle(json_pack("[o, o]", sh_obs("o1", "1", "2024-05-01T10:00:00Z"),
                                   sh_obs("o2", "1", "2024-05-01T10:01:00Z")),
                         page_url(h, next, sizeof(next), 2));
    /* Page 2 only repeats page 1 (a server paging on a moving result set): not the end. */
    char *p2 = sh_bundle(json_pack("[o, o]", sh_obs("o2", "1", "2024-05-01T10:01:00Z"),
                                   sh_obs("o1", "1", "2024-05-01T10:00:00Z")),
                         page_url(h, next, sizeof(next), 3));
    char *p3 = sh_bundle(json_pack("[o, o]", sh_obs("o3", "1", "2024-05-01T10:02:00Z"),
                                   sh_obs("o4", "1", "2024-05-01T10:03:00.500Z")),
                         NULL);
    sh_rule(h, "/fhir/Observation", "date=ge2024-04-17T11:00:00Z", 0, 200, NULL, p1);
    sh_rule(h, "/fhir", "_page=2", 0, 200, NULL, p2);
    sh_rule(h, "/fhir", "_page=3", 0, 200, NULL, p3);
    free(p1);
    free(p2);
    free(p3);
}

static void test_paging_dedupe_and_cursor_across_runs(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_sync_health hl;

    sh_init(&h);
    obs_only(&h, &conf, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    script_three_pages(&h);
    sh_run_once(&h);

    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(h.cycle_failed, 0);
    /* What was asked: three pages, the next links verbatim, no patient on a server-wide run. */
    assert_int_equal(pwt_responder_count(h.r), 3);
    assert_string_equal(sh_path(&h, 0), "/fhir/Observation");
    assert_non_null(strstr(sh_query(&h, 0), "code=http://loinc.org|72514-3"));
    assert_non_null(strstr(sh_query(&h, 0), "_count=100"));
    assert_null(strstr(sh_query(&h, 0), "patient="));
    assert_null(strstr(sh_query(&h, 0), "_lastUpdated"));
    assert_string_equal(sh_path(&h, 1), "/fhir");
    assert_string_equal(sh_query(&h, 1), "_getpages=abc&_page=2");
    assert_string_equal(sh_query(&h, 2), "_getpages=abc&_page=3");
    /* What was received: four resources once each; the all-duplicate page was not handed
     * over; the cursor came only with the last page. */
    assert_int_equal(json_array_size(h.delivered), 4);
    assert_true(sh_delivered(&h, "ehr/Observation/-|Observation/o1/1"));
    assert_true(sh_delivered(&h, "ehr/Observation/-|Observation/o4/1"));
    assert_int_equal(json_array_size(h.pages), 2);
    assert_false(json_is_true(json_object_get(json_array_get(h.pages, 0), "cursor")));
    assert_true(json_is_true(json_object_get(json_array_get(h.pages, 1), "cursor")));
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.duplicates, 2);
    assert_int_equal(hl.requests, 3);

    /* Second run: from the cursor (10:03:00.5) minus the 5 min overlap, floored. The overlap
     * brings o4 back (dropped as a duplicate); o5 and a new version of o2 are new. */
    char *p = sh_bundle(json_pack("[o, o, o]", sh_obs("o4", "1", "2024-05-01T10:03:00.500Z"),
                                  sh_obs("o5", "1", "2024-05-01T10:04:00Z"),
                                  sh_obs("o2", "2", "2024-05-01T10:05:00Z")),
                        NULL);
    sh_rule(&h, "/fhir/Observation", "_lastUpdated=gt2024-05-01T09:58:00Z", 0, 200, NULL, p);
    free(p);
    sh_run_once(&h);
    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(pwt_responder_count(h.r), 4);
    assert_null(strstr(sh_query(&h, 3), "date="));
    assert_non_null(strstr(sh_query(&h, 3), "_lastUpdated=gt2024-05-01T09:58:00Z"));
    assert_int_equal(json_array_size(h.delivered), 6);
    assert_true(sh_delivered(&h, "ehr/Observation/-|Observation/o5/1"));
    assert_true(sh_delivered(&h, "ehr/Observation/-|Observation/o2/2"));

    /* The stored cursor is the largest lastUpdated received. */
    struct pw_sync_state st;
    assert_int_equal(pw_sync_state_init(&st), 0);
    assert_int_equal(
        pw_sync_state_load(&st, json_string_value(json_object_get(h.cursors, "ehr/Observation/-"))),
        0);
    assert_int_equal(st.cursor_ms, SH_T0 + 300000);
    pw_sync_state_cleanup(&st);
    sh_fini(&h);
}

static void test_next_page_waits_for_durable_commit(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    h.defer = true;
    obs_only(&h, &conf, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    script_three_pages(&h);
    sh_run_once(&h);
    assert_int_equal(h.cycle_err, 0);
    /* When the last page was made durable, no fourth request had been made, and page 3 was
     * asked for only after page 1's done (page 2 was all duplicates, fetched straight on). */
    assert_int_equal(h.requests_at_done, 3);
    assert_int_equal(json_array_size(h.delivered), 4);
    sh_fini(&h);
}

static void test_consumer_failure_keeps_cursor(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    h.page_error = PW_ESTORE;
    obs_only(&h, &conf, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    script_three_pages(&h);
    sh_run_once(&h);
    /* The first page's commit failed: the run stops there, nothing advances. */
    assert_int_equal(pwt_responder_count(h.r), 1);
    assert_int_equal(h.cycle_failed, 1);
    assert_null(json_object_get(h.cursors, "ehr/Observation/-"));
    sh_fini(&h);
}

static void test_expired_next_link_restarts_from_cursor(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char next[256];

    sh_init(&h);
    obs_only(&h, &conf, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    char *p1 = sh_bundle(json_pack("[o]", sh_obs("o1", "1", "2024-05-01T10:00:00Z")),
                         page_url(&h, next, sizeof(next), 2));
    char *p2 = sh_bundle(json_pack("[o]", sh_obs("o2", "1", "2024-05-01T10:01:00Z")), NULL);
    sh_rule(&h, "/fhir/Observation", NULL, 0, 200, NULL, p1);
    sh_rule(&h, "/fhir", "_page=2", 1, 410, NULL,
            "{\"resourceType\":\"OperationOutcome\",\"issue\":[]}");
    sh_rule(&h, "/fhir", "_page=2", 0, 200, NULL, p2);
    free(p1);
    free(p2);
    sh_run_once(&h);

    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(h.cycle_failed, 0);
    /* first, page 2 (gone), first again (same URL, from the unchanged cursor), page 2. */
    assert_int_equal(pwt_responder_count(h.r), 4);
    assert_string_equal(sh_path(&h, 2), "/fhir/Observation");
    assert_string_equal(sh_query(&h, 0), sh_query(&h, 2));
    assert_string_equal(sh_query(&h, 3), "_getpages=abc&_page=2");
    /* o1 came twice from the server, once to the consumer. */
    assert_int_equal(json_array_size(h.delivered), 2);
    assert_non_null(json_object_get(h.cursors, "ehr/Observation/-"));
    sh_fini(&h);
}

static void test_next_link_to_other_origin_refused(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char next[256];

    sh_init(&h);
    struct pwt_responder *evil = pwt_responder_start(NULL);
    obs_only(&h, &conf, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    snprintf(next, sizeof(next), "%s/fhir?_page=2", pwt_responder_url(evil));
    char *p1 = sh_bundle(json_pack("[o]", sh_obs("o1", "1", "2024-05-01T10:00:00Z")), next);
    sh_rule(&h, "/fhir/Observation", NULL, 0, 200, NULL, p1);
    free(p1);
    sh_run_once(&h);

    /* The page in hand was good data and is delivered, without a cursor; the other origin
     * never sees a request; the stream failed, the server did not (no backoff). */
    assert_int_equal(pwt_responder_count(h.r), 1);
    assert_int_equal(pwt_responder_count(evil), 0);
    assert_int_equal(json_array_size(h.delivered), 1);
    assert_null(json_object_get(h.cursors, "ehr/Observation/-"));
    assert_int_equal(h.cycle_failed, 1);
    assert_int_equal(h.cycle_err, 0);
    struct pw_sync_health hl;
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.last_error, PW_EORIGIN);
    assert_int_equal(hl.consecutive_failures, 0);
    sh_fini(&h);
    pwt_responder_stop(evil);
}

/* The page cap: a sorted search commits what it has and resumes; an unsorted one cannot. */
static void page_cap_run(bool sorted)
{
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    obs_only(&h, &conf, 0, 0);
    conf.pages_max = 2;
    conf.dialect.sort = sorted;
    sh_add(&h, &conf, SRV_WIDE, NULL);
    script_three_pages(&h);
    sh_run_once(&h);

    /* Two pages asked, never the third. */
    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_int_equal(sorted, strstr(sh_query(&h, 0), "_sort=_lastUpdated") != NULL);
    assert_int_equal(json_array_size(h.delivered), 2);
    const char *cur = json_string_value(json_object_get(h.cursors, "ehr/Observation/-"));
    if (sorted) {
        assert_int_equal(h.cycle_failed, 0);
        struct pw_sync_state st;
        assert_int_equal(pw_sync_state_init(&st), 0);
        assert_int_equal(pw_sync_state_load(&st, cur), 0);
        assert_int_equal(st.cursor_ms, SH_T0 + 60000); /* o2, the newest received */
        pw_sync_state_cleanup(&st);
    } else {
        assert_null(cur);
        assert_int_equal(h.cycle_failed, 1);
        assert_int_equal(h.cycle_err, 0); /* not the server's fault: no backoff */
    }
    sh_fini(&h);
}

static void test_page_cap_sorted_resumes(void **state)
{
    (void)state;
    page_cap_run(true);
}

static void test_page_cap_unsorted_keeps_cursor(void **state)
{
    (void)state;
    page_cap_run(false);
}

/* One broken answer on the first page: what the engine reports, and that nothing moved. */
static void broken_first_page(const struct pwt_rule *rule, long timeout_ms, size_t body_max,
                              int want_err, bool server_level)
{
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_sync_health hl;

    sh_init(&h);
    obs_only(&h, &conf, timeout_ms, body_max);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    pwt_responder_add(h.r, rule);
    sh_run_once(&h);
    /* A page that is not JSON is asked again with half the _count down to 1 (100, 50, 25, 12,
     * 6, 3, 1: issue 18); other failures are not retried within the run. */
    assert_int_equal(pwt_responder_count(h.r), want_err == PW_EJSON ? 7 : 1);
    assert_int_equal(json_array_size(h.pages), 0);
    assert_null(json_object_get(h.cursors, "ehr/Observation/-"));
    assert_int_equal(h.cycle_failed, 1);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.last_error, want_err);
    assert_int_equal(h.cycle_err, server_level ? want_err : 0);
    /* A page the run cannot use fails the cycle for readiness too (issue 18), without the
     * transport backoff. */
    bool page_level = want_err == PW_EJSON || want_err == PW_EFHIR;
    assert_int_equal(hl.consecutive_failures, server_level || page_level ? 1 : 0);
    assert_int_equal(hl.page_failures, page_level ? 1 : 0);
    sh_fini(&h);
}

static void test_invalid_json(void **state)
{
    (void)state;
    struct pwt_rule rule = {.path = "/fhir/Observation", .body = "{\"resourceType\": \"Bundle\","};
    broken_first_page(&rule, 0, 0, PW_EJSON, false);
}

static void test_not_a_bundle(void **state)
{
    (void)state;
    struct pwt_rule rule = {.path = "/fhir/Observation",
                            .body = "{\"resourceType\": \"Patient\", \"id\": \"x\"}"};
    broken_first_page(&rule, 0, 0, PW_EFHIR, false);
}

static void test_body_over_cap(void **state)
{
    (void)state;
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[8191] = '\0';
    memcpy(big, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[]}", 53);
    struct pwt_rule rule = {.path = "/fhir/Observation", .body = big};
    broken_first_page(&rule, 0, 1024, PW_E2BIG, false);
    free(big);
}

static void test_server_error_500(void **state)
{
    (void)state;
    struct pwt_rule rule = {.path = "/fhir/Observation", .status = 500, .body = "oops"};
    broken_first_page(&rule, 0, 0, PW_EHTTP, true);
}

static void test_server_never_answers(void **state)
{
    (void)state;
    struct pwt_rule rule = {.path = "/fhir/Observation", .never_answer = true};
    broken_first_page(&rule, 300, 0, PW_ETIMEDOUT, true);
}

static void test_connection_reset_mid_body(void **state)
{
    (void)state;
    char *p = sh_bundle(json_pack("[o, o, o]", sh_obs("o1", "1", "2024-05-01T10:00:00Z"),
                                  sh_obs("o2", "1", "2024-05-01T10:00:00Z"),
                                  sh_obs("o3", "1", "2024-05-01T10:00:00Z")),
                        NULL);
    struct pwt_rule rule = {.path = "/fhir/Observation", .body = p, .close_mid_body = true};
    broken_first_page(&rule, 0, 0, PW_EHTTP, true);
    free(p);
}

/*
 * Token renewal with the real auth layer (auth.h, "bearer" adapter: the token file is re-read
 * after a 401). In phase 0 the server accepts only "Bearer t2"; when it sees the stale "t1" it
 * rotates the file to t2 (as an external token refresher would) and answers 401. In phase 1 it
 * accepts no token at all.
 */
struct auth_srv {
    const char *path;
    atomic_int phase;
};

static void auth_handler(void *arg, const struct pwt_request *req, struct pwt_reply *reply)
{
    struct auth_srv *as = arg;
    const char *path = as->path;
    const char *a = pwt_request_header(req, "Authorization");

    if (atomic_load(&as->phase) == 0 && a && strcmp(a, "Bearer t2") == 0) {
        reply->status = 200;
        reply->body = sh_bundle(json_pack("[o]", sh_obs("o1", "1", "2024-05-01T10:00:00Z")), NULL);
        reply->body_len = strlen(reply->body);
        return;
    }
    if (a && strcmp(a, "Bearer t1") == 0) {
        FILE *f = fopen(path, "w");
        fputs("t2\n", f);
        fclose(f);
    }
    reply->status = 401;
    reply->headers = strdup("WWW-Authenticate: Bearer error=\"invalid_token\"\n");
    reply->body = strdup("{\"resourceType\":\"OperationOutcome\",\"issue\":[]}");
    reply->body_len = strlen(reply->body);
}

static void test_401_fixed_by_token_renewal(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char *dir = pwt_mkdtemp();
    char path[512];

    snprintf(path, sizeof(path), "%s/token", dir);
    pwt_write_file(path, "t1\n");
    assert_int_equal(chmod(path, 0600), 0);
    sh_init(&h);
    obs_only(&h, &conf, 0, 0);
    json_t *sec = json_pack("{s:s}", "token_file", path);
    struct pw_auth_conf ac = {.type = "bearer", .server = "ehr", .section = sec};
    assert_int_equal(pw_auth_new(&h.auth, h.http, &ac), 0);
    json_decref(sec);
    sh_add(&h, &conf, SRV_WIDE, h.auth);
    struct auth_srv as = {.path = path};
    atomic_init(&as.phase, 0);
    struct pwt_rule rule = {
        .path = "/fhir/Observation", .handler = auth_handler, .handler_arg = &as};
    pwt_responder_add(h.r, &rule);
    sh_run_once(&h);

    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_string_equal(pwt_request_header(pwt_responder_request(h.r, 0), "Authorization"),
                        "Bearer t1");
    assert_string_equal(pwt_request_header(pwt_responder_request(h.r, 1), "Authorization"),
                        "Bearer t2");
    assert_string_equal(sh_query(&h, 0), sh_query(&h, 1));
    assert_int_equal(json_array_size(h.delivered), 1);
    assert_non_null(json_object_get(h.cursors, "ehr/Observation/-"));

    /* A token the server never accepts: one renewal, one retry, then PW_EAUTH, no data. */
    atomic_store(&as.phase, 1);
    pwt_write_file(path, "t9\n");
    json_object_clear(h.cursors);
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count(h.r), 4);
    assert_string_equal(pwt_request_header(pwt_responder_request(h.r, 2), "Authorization"),
                        "Bearer t2");
    assert_string_equal(pwt_request_header(pwt_responder_request(h.r, 3), "Authorization"),
                        "Bearer t9");
    assert_int_equal(h.cycle_err, PW_EAUTH);
    assert_null(json_object_get(h.cursors, "ehr/Observation/-"));
    sh_fini(&h);
    pwt_rmtree(dir);
    free(dir);
}

/* A cohort sync: every (patient, type) asked exactly once, with the right patient; the first
 * sync of MedicationRequest adds one query (orders in force), later cycles do not. */
static void test_cohort_sync_asks_nothing_twice(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char *dir = pwt_mkdtemp();
    char path[512];
    char cohort[700];

    sh_init(&h);
    snprintf(path, sizeof(path), "%s/patients.txt", dir);
    pwt_write_file(path, "# ward 4\np1\nPatient/p2\np3\np2\n");
    snprintf(cohort, sizeof(cohort), "{\"type\": \"list\", \"file\": \"%s\"}", path);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    h.sched.parallel = 3;
    sh_add(&h, &conf, cohort, NULL);
    char *empty = sh_bundle(json_array(), NULL);
    char *one = sh_bundle(json_pack("[o]", sh_obs("x1", "1", "2024-05-01T10:00:00Z")), NULL);
    /* An order still in force, written long before the lookback. */
    char *order = sh_bundle(
        json_pack("[o]", sh_med("m1", "1", "2024-05-01T10:20:00Z", "active", "2024-01-10")), NULL);
    sh_rule(&h, "/fhir/Observation", "patient=p2&", 0, 200, NULL, one);
    sh_rule(&h, "/fhir/MedicationRequest", "&status=active,on-hold&", 0, 200, NULL, order);
    sh_rule(&h, "/fhir/*", NULL, 0, 200, NULL, empty);
    sh_run_once(&h);

    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(pw_sync_stream_count(h.sync, "ehr"), 6);
    /* 3 patients x (Observation + MedicationRequest lookback + orders in force), no duplicate
     * request. */
    size_t n = pwt_responder_count(h.r);
    assert_int_equal(n, 9);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++) {
            assert_false(strcmp(sh_path(&h, i), sh_path(&h, j)) == 0 &&
                         strcmp(sh_query(&h, i), sh_query(&h, j)) == 0);
        }
    }
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/Observation"), 3);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/MedicationRequest"), 6);
    size_t lookback = 0;
    size_t in_force = 0;
    for (size_t i = 0; i < n; i++) {
        const char *q = sh_query(&h, i);
        if (strcmp(sh_path(&h, i), "/fhir/MedicationRequest") != 0) {
            continue;
        }
        if (strstr(q, "authoredon=ge2024-04-17T11:00:00Z")) {
            assert_non_null(strstr(q, "status=active,on-hold,cancelled"));
            lookback++;
        } else {
            /* Orders in force: authored before the lookback, only the two statuses. */
            assert_non_null(strstr(q, "&status=active,on-hold&"));
            assert_non_null(strstr(q, "authoredon=lt2024-04-17T11:00:00Z"));
            assert_null(strstr(q, "_lastUpdated"));
            in_force++;
        }
    }
    assert_int_equal(lookback, 3);
    assert_int_equal(in_force, 3);
    /* Every stream committed a cursor, even the empty ones. */
    assert_int_equal(json_object_size(h.cursors), 6);
    assert_true(sh_delivered(&h, "ehr/Observation/Patient/p2|Observation/x1/1"));
    assert_true(sh_delivered(&h, "ehr/MedicationRequest/Patient/p1|MedicationRequest/m1/1"));
    assert_true(sh_delivered(&h, "ehr/MedicationRequest/Patient/p3|MedicationRequest/m1/1"));
    assert_int_equal(json_array_size(h.delivered), 4);

    /* The next cycle: again one request per stream. p2's Observation and every
     * MedicationRequest stream (they received m1) are incremental; the two Observation streams
     * that never received anything repeat their lookback. */
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count(h.r), 15);
    size_t incremental = 0;
    for (size_t i = 9; i < 15; i++) {
        incremental += strstr(sh_query(&h, i), "_lastUpdated=gt") != NULL;
        assert_null(strstr(sh_query(&h, i), "&status=active,on-hold&"));
    }
    assert_int_equal(incremental, 4);
    /* m1 comes back through no query: nothing new is delivered. */
    assert_int_equal(json_array_size(h.delivered), 4);
    free(empty);
    free(one);
    free(order);
    sh_fini(&h);
    pwt_rmtree(dir);
    free(dir);
}

/* Shutdown with a request in flight, then with a page the consumer still holds. */
static void test_free_mid_run(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    obs_only(&h, &conf, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    struct pwt_rule hold = {.path = "/fhir/Observation", .never_answer = true};
    pwt_responder_add(h.r, &hold);
    assert_int_equal(pw_sync_run_once(h.sync, sh_on_cycle, &h), 0);
    for (int i = 0; i < 1000 && !pwt_responder_wait_count(h.r, 1, 10); i++) {
        uv_run(&h.loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(pwt_responder_count(h.r), 1);
    /* Freed with the request in flight: canceled, no cycle callback, nothing leaks. */
    sh_fini(&h);
    assert_false(h.cycle_done);

    sh_init(&h);
    h.hold = true;
    obs_only(&h, &conf, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    script_three_pages(&h);
    assert_int_equal(pw_sync_run_once(h.sync, sh_on_cycle, &h), 0);
    while (!h.pending_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    pw_sync_free(h.sync);
    /* The consumer finishes its commit after the free: the engine waited for it. */
    h.pending_done(h.pending_arg, 0);
    h.sync = NULL;
    /* No request for page 2 was made after the free. */
    assert_int_equal(pwt_responder_count(h.r), 1);
    sh_fini(&h);
    assert_false(h.cycle_done);
}

static size_t arena_used(void)
{
    struct pw_jarena_stats st;
    pw_jarena_stats(&st);
    return st.segments_used;
}

/* A page's parse stays whole while the consumer holds the page and goes at its done. */
static void test_page_tree_dropped_at_done(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_jarena_stats st0;
    struct pw_jarena_stats st;
    pw_sync_page_done_fn *done;

    sh_init(&h);
    h.hold = true;
    obs_only(&h, &conf, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    script_three_pages(&h);
    pw_jarena_stats(&st0);
    assert_int_equal(st0.segments_used, 0);
    assert_int_equal(pw_sync_run_once(h.sync, sh_on_cycle, &h), 0);
    while (!h.pending_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    /* Page 1 is with the consumer: parsed in the arena, still there. */
    pw_jarena_stats(&st);
    assert_true(st.arena_allocs > st0.arena_allocs);
    assert_int_equal(st.segments_used, 1);
    done = h.pending_done;
    h.pending_done = NULL;
    done(h.pending_arg, 0);
    assert_int_equal(arena_used(), 0);
    /* Page 2 (all duplicates) is dropped without reaching the consumer; page 3 is held. */
    while (!h.pending_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    assert_int_equal(arena_used(), 1);
    done = h.pending_done;
    h.pending_done = NULL;
    done(h.pending_arg, 0);
    assert_int_equal(arena_used(), 0);
    while (!h.cycle_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(pwt_responder_count(h.r), 3);
    assert_int_equal(json_array_size(h.delivered), 4);
    assert_true(sh_delivered(&h, "ehr/Observation/-|Observation/o4/1"));
    sh_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paging_dedupe_and_cursor_across_runs),
        cmocka_unit_test(test_next_page_waits_for_durable_commit),
        cmocka_unit_test(test_consumer_failure_keeps_cursor),
        cmocka_unit_test(test_expired_next_link_restarts_from_cursor),
        cmocka_unit_test(test_next_link_to_other_origin_refused),
        cmocka_unit_test(test_page_cap_sorted_resumes),
        cmocka_unit_test(test_page_cap_unsorted_keeps_cursor),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_not_a_bundle),
        cmocka_unit_test(test_body_over_cap),
        cmocka_unit_test(test_server_error_500),
        cmocka_unit_test(test_server_never_answers),
        cmocka_unit_test(test_connection_reset_mid_body),
        cmocka_unit_test(test_401_fixed_by_token_renewal),
        cmocka_unit_test(test_cohort_sync_asks_nothing_twice),
        cmocka_unit_test(test_free_mid_run),
        cmocka_unit_test(test_page_tree_dropped_at_done),
    };
    /* As painwatchd does, before any thread starts. */
    if (pw_jarena_install() != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
