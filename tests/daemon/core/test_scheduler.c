/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/core/scheduler.c and backoff.c: backoff and jitter bounds, Retry-After in both forms,
 * the delay the scheduler computes after 429/503/500, unhealthy marking that leaves other
 * servers alone, periodic cycles, the startup /metadata check, reloads, and a source adapter
 * declared in this file (the driver runs any pw_source_ops, not only the FHIR search).
 * Delays are asserted as computed values, never by measuring time.
 */
#include "support/sync_harness.h"

static void test_full_jitter_bounds(void **state)
{
    (void)state;
    /* r = 0 gives 0, r = max gives the ceiling: min(cap, base * 2^attempt). */
    assert_int_equal(pw_backoff_full_jitter(1000, 60000, 0, 0), 0);
    assert_int_equal(pw_backoff_full_jitter(1000, 60000, 0, UINT32_MAX), 1000);
    assert_int_equal(pw_backoff_full_jitter(1000, 60000, 3, UINT32_MAX), 8000);
    assert_int_equal(pw_backoff_full_jitter(1000, 60000, 10, UINT32_MAX), 60000);
    assert_int_equal(pw_backoff_full_jitter(1000, 60000, 200, UINT32_MAX), 60000);
    assert_int_equal(pw_backoff_full_jitter(1000, 60000, 3, UINT32_MAX / 2), 4000);
    for (unsigned a = 0; a < 70; a++) {
        for (int i = 0; i < 20; i++) {
            uint64_t d = pw_backoff_full_jitter(500, 900000, a, pw_rand32());
            assert_true(d <= 900000);
            assert_true(a > 20 || d <= 500ull << a);
        }
    }
}

static void test_poll_jitter_bounds(void **state)
{
    (void)state;
    assert_int_equal(pw_poll_jitter(60000, 0.0, 12345), 60000);
    assert_int_equal(pw_poll_jitter(60000, 0.1, 0), 54000);
    assert_int_equal(pw_poll_jitter(60000, 0.1, UINT32_MAX), 66000);
    for (int i = 0; i < 1000; i++) {
        uint64_t d = pw_poll_jitter(300000, 0.2, pw_rand32());
        assert_true(d >= 240000 && d <= 360000);
    }
}

static void test_retry_after_forms(void **state)
{
    (void)state;
    uint64_t ms = 0;
    /* 2024-05-01T10:00:00Z */
    const int64_t now = 1714557600;

    assert_int_equal(pw_retry_after_parse("120", now, &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(pw_retry_after_parse(" 0 ", now, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(pw_retry_after_parse("Wed, 01 May 2024 10:01:30 GMT", now, &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(pw_retry_after_parse("Wednesday, 01-May-24 10:00:10 GMT", now, &ms), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(pw_retry_after_parse("Wed May  1 10:00:05 2024 GMT", now, &ms), 0);
    assert_int_equal(ms, 5000);
    /* In the past: retry now. Absurd: capped. */
    assert_int_equal(pw_retry_after_parse("Tue, 30 Apr 2024 10:00:00 GMT", now, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(pw_retry_after_parse("99999999999999999999", now, &ms), 0);
    assert_int_equal(ms, PW_SYNC_RETRY_AFTER_MAX_MS);
    assert_int_equal(pw_retry_after_parse("-5", now, &ms), PW_EINVAL);
    assert_int_equal(pw_retry_after_parse("soon", now, &ms), PW_EINVAL);
    assert_int_equal(pw_retry_after_parse("", now, &ms), PW_EINVAL);
    assert_int_equal(pw_retry_after_parse("1.5", now, &ms), PW_EINVAL);
    assert_int_equal(pw_retry_after_parse(NULL, now, &ms), PW_EINVAL);
}

#define SRV_WIDE "{\"type\": \"server\"}"

static void one_server(struct sh *h, const char *name, const char *base, unsigned unhealthy)
{
    struct pw_fhir_search_conf conf;
    sh_conf(h, &conf, name, base, 0, 0);
    h->sched.unhealthy_after = unhealthy;
    h->sched.backoff_base_ms = 2000;
    h->sched.backoff_cap_ms = 60000;
    sh_add(h, &conf, SRV_WIDE, NULL);
}

static void test_429_retry_after_sets_next_delay(void **state)
{
    (void)state;
    struct sh h;
    struct pw_sync_health hl;

    sh_init(&h);
    one_server(&h, "ehr", h.base, 3);
    /* 429 on Observation: MedicationRequest (the second stream) must not be asked at all. */
    sh_rule(&h, "/fhir/Observation", NULL, 1, 429, "Retry-After: 7\n", "");
    sh_rule(&h, "/fhir/Observation", NULL, 1, 503, "Retry-After: Wed, 01 May 2024 11:02:00 GMT\n",
            ""); /* clock is 11:00 */
    sh_rule(&h, "/fhir/Observation", NULL, 1, 503, NULL, "");
    sh_run_once(&h);

    assert_int_equal(h.cycle_err, PW_EAGAIN);
    assert_int_equal(pwt_responder_count(h.r), 1);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/MedicationRequest"), 0);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.retry_after_ms, 7000);
    assert_int_equal(hl.next_delay_ms, 7000);
    assert_int_equal(hl.last_status, 429);
    assert_int_equal(hl.consecutive_failures, 1);
    assert_false(hl.unhealthy);
    assert_int_equal(json_array_size(h.pages), 0);

    /* 503 with an HTTP date two minutes ahead of the clock. */
    sh_run_once(&h);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.last_status, 503);
    assert_int_equal(hl.next_delay_ms, 120000);
    assert_int_equal(hl.consecutive_failures, 2);

    /* 503 without Retry-After: full-jitter backoff, attempt 2 -> at most 2 s * 2^2. */
    sh_run_once(&h);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.retry_after_ms, 0);
    assert_true(hl.next_delay_ms <= 8000);
    assert_int_equal(hl.consecutive_failures, 3);
    assert_true(hl.unhealthy);
    assert_int_equal(pwt_responder_count(h.r), 3);
    sh_fini(&h);
}

static void test_unhealthy_server_does_not_stop_others(void **state)
{
    (void)state;
    struct sh h;
    struct pw_sync_health bad;
    struct pw_sync_health good;
    char base2[160];

    sh_init(&h);
    struct pwt_responder *r2 = pwt_responder_start(NULL);
    snprintf(base2, sizeof(base2), "%s/fhir", pwt_responder_url(r2));
    one_server(&h, "down", h.base, 2);
    one_server(&h, "up", base2, 2);
    sh_rule(&h, "/fhir/*", NULL, 2, 500, NULL, "");
    char *empty = sh_bundle(json_array(), NULL);
    char *one = sh_bundle(json_pack("[o]", sh_obs("u1", "1", "2024-05-01T10:00:00Z")), NULL);
    struct pwt_rule ok_obs = {.path = "/fhir/Observation", .body = one};
    struct pwt_rule ok_all = {.path = "/fhir/*", .body = empty};
    pwt_responder_add(r2, &ok_obs);
    pwt_responder_add(r2, &ok_all);
    sh_rule(&h, "/fhir/*", NULL, 0, 200, NULL, empty);

    sh_run_once(&h);
    sh_run_once(&h);
    assert_int_equal(pw_sync_health(h.sync, "down", &bad), 0);
    assert_int_equal(pw_sync_health(h.sync, "up", &good), 0);
    assert_true(bad.unhealthy);
    assert_int_equal(bad.consecutive_failures, 2);
    assert_int_equal(bad.last_status, 500);
    assert_false(good.unhealthy);
    assert_int_equal(good.consecutive_failures, 0);
    assert_int_equal(good.cycles, 2);
    /* 2 cycles x (Observation + MedicationRequest's two first-sync queries: it received
     * nothing, so it has no cursor yet). */
    assert_int_equal(pwt_responder_count(r2), 6);
    assert_true(sh_delivered(&h, "up/Observation/-|Observation/u1/1"));

    /* The down server recovers: healthy again after one clean cycle. */
    sh_run_once(&h);
    assert_int_equal(pw_sync_health(h.sync, "down", &bad), 0);
    assert_false(bad.unhealthy);
    assert_int_equal(bad.consecutive_failures, 0);
    assert_true(bad.next_delay_ms >= 270000 && bad.next_delay_ms <= 330000); /* 5 min +-10% */
    free(empty);
    free(one);
    sh_fini(&h);
    pwt_responder_stop(r2);
}

/* Periodic mode: cycles repeat on the poll timer until stopped. */
struct periodic {
    struct sh *h;
    uv_timer_t check; /* a slow poll of the counters (an idle handle would spin the CPU) */
};

static void on_check(uv_timer_t *i)
{
    struct periodic *p = container_of(i, struct periodic, check);
    struct pw_sync_health hl;
    assert_int_equal(pw_sync_health(p->h->sync, "ehr", &hl), 0);
    if (hl.cycles >= 3) {
        pw_sync_stop(p->h->sync);
        uv_timer_stop(i);
    }
}

static void test_periodic_cycles_and_stop(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct periodic p;

    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    h.sched.poll_ms = 1;
    h.sched.jitter = 0;
    sh_add(&h, &conf, SRV_WIDE, NULL);
    char *empty = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/*", NULL, 0, 200, NULL, empty);
    free(empty);
    assert_int_equal(pw_sync_start(h.sync), 0);
    assert_int_equal(pw_sync_start(h.sync), PW_EINVAL);
    assert_int_equal(pw_sync_run_once(h.sync, sh_on_cycle, &h), PW_EINVAL);
    p.h = &h;
    uv_timer_init(&h.loop, &p.check);
    uv_timer_start(&p.check, on_check, 5, 5);
    /* Runs until on_check stops the engine and the last cycle's requests are done. */
    uv_run(&h.loop, UV_RUN_DEFAULT);
    struct pw_sync_health hl;
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_true(hl.cycles >= 3);
    assert_int_equal(hl.next_delay_ms, 1);
    /* Three requests per finished cycle (Observation, then MedicationRequest's lookback and
     * orders in force: nothing is received, every cycle is a first sync), plus at most two of a
     * cycle cut short by the stop. */
    size_t n = pwt_responder_count(h.r);
    assert_true(n >= 3 * hl.cycles && n <= 3 * hl.cycles + 2);
    uv_close((uv_handle_t *)&p.check, NULL);
    sh_fini(&h);
}

static void test_metadata_check(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    size_t len = 0;
    char *cap = pwt_read_file(pwt_src_path("tests/fixtures/sync/capability_r4.json"), &len);

    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    sh_rule(&h, "/fhir/metadata", NULL, 0, 200, NULL, cap);
    h.cycle_done = false;
    assert_int_equal(pw_sync_check_servers(h.sync, sh_on_cycle, &h), 0);
    while (!h.cycle_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(pwt_responder_count(h.r), 1);
    sh_fini(&h);

    /* A dialect the server cannot serve is a startup error. */
    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    conf.dialect.subject = true;
    sh_add(&h, &conf, SRV_WIDE, NULL);
    sh_rule(&h, "/fhir/metadata", NULL, 0, 200, NULL, cap);
    h.cycle_done = false;
    assert_int_equal(pw_sync_check_servers(h.sync, sh_on_cycle, &h), 0);
    while (!h.cycle_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    assert_int_equal(h.cycle_err, PW_ECONFIG);
    assert_int_equal(h.cycle_failed, 1);
    sh_fini(&h);
    free(cap);
}

/* Requests to @p path among the responder's requests [from, to). */
static size_t requests_to(struct sh *h, const char *path, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t i = from; i < to; i++) {
        n += strcmp(sh_path(h, i), path) == 0;
    }
    return n;
}

/*
 * A reload's searches (pw_sync_replace_server) given while a cycle runs: that cycle finishes
 * under the old ones, the next cycle uses the new ones.
 */
static void test_replace_server_between_cycles(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_conf *next_conf = NULL;
    struct pw_source *next = NULL;
    struct pw_sync_conf sched;
    struct pw_cohort *c = NULL;
    char err[256] = "";
    char yaml[1024];
    json_t *cj = json_loads(SRV_WIDE, 0, NULL);
    size_t first;

    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    /* The reload's searches come through the configuration, as in painwatchd. */
    snprintf(yaml, sizeof(yaml),
             "servers:\n"
             "  - name: ehr\n"
             "    base_url: %s\n"
             "    auth: {type: none}\n"
             "    cohort: {type: server-wide}\n"
             "    resources: [Observation, Condition]\n"
             "    max_concurrent: 1\n",
             h.base);
    sh_source_yaml(yaml, &next_conf, &next, &sched);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    char *empty = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/*", NULL, 0, 200, NULL, empty);
    free(empty);

    /* The cycle starts (its timer fires on the first loop turn), then the reload comes. */
    h.cycle_done = false;
    assert_int_equal(pw_sync_run_once(h.sync, sh_on_cycle, &h), 0);
    uv_run(&h.loop, UV_RUN_ONCE);
    assert_false(h.cycle_done);
    assert_int_equal(pw_cohort_new(&c, cj, err, sizeof(err)), 0);
    assert_int_equal(pw_sync_replace_server(h.sync, &sched, next, c), 0);
    while (!h.cycle_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    first = pwt_responder_count(h.r);
    assert_true(requests_to(&h, "/fhir/MedicationRequest", 0, first) > 0);
    assert_int_equal(requests_to(&h, "/fhir/Condition", 0, first), 0);

    /* The next cycle: Observation and Condition, no MedicationRequest. */
    sh_run_once(&h);
    size_t all = pwt_responder_count(h.r);
    assert_true(requests_to(&h, "/fhir/Observation", first, all) > 0);
    assert_true(requests_to(&h, "/fhir/Condition", first, all) > 0);
    assert_int_equal(requests_to(&h, "/fhir/MedicationRequest", first, all), 0);

    /* An unknown server is refused (and the source and cohort freed). */
    sched.name = "elsewhere";
    assert_int_equal(pw_fhir_search_conf_init(&conf, "elsewhere", h.base), 0);
    next = sh_source(&conf);
    assert_int_equal(pw_cohort_new(&c, cj, err, sizeof(err)), 0);
    assert_int_equal(pw_sync_replace_server(h.sync, &sched, next, c), PW_ENOENT);
    pw_fhir_search_conf_cleanup(&conf);
    pw_conf_free(next_conf);
    json_decref(cj);
    sh_fini(&h);
}

/*
 * A source adapter of this test, declared as any adapter is (source.h): one stream type, each
 * run one page of one resource with its cursor, or a failure for the patient "bad".
 */
struct toy {
    const char *label; /* its one config key (servers[].toy_label), borrowed during init */
    char label_copy[32];
    unsigned runs;
    char p1_cursor[32]; /* the cursor the last run of patient p1 started from */
};

struct toy_run {
    struct pw_source_run *run;
};

static int toy_init(void *ctx, const struct pw_source_env *env, char *errbuf, size_t errlen)
{
    struct toy *t = ctx;
    (void)errbuf;
    (void)errlen;
    snprintf(t->label_copy, sizeof(t->label_copy), "%s", t->label ? t->label : "");
    return env->typed || env->section ? 0 : PW_EINVAL;
}

static void toy_close(void *ctx)
{
    (void)ctx;
}

static const char *toy_stream_type(const void *ctx, size_t i)
{
    (void)ctx;
    return i == 0 ? "Thing" : NULL;
}

static int toy_run_start(void *ctx, struct pw_source_run *run, size_t type, const char *cursor,
                         void **state)
{
    struct toy *t = ctx;
    const struct pw_sync_source *src = pw_source_run_src(run);
    struct toy_run *r;

    assert_int_equal(type, 0);
    *state = NULL;
    t->runs++;
    if (src->patient && strcmp(src->patient, "p1") == 0) {
        snprintf(t->p1_cursor, sizeof(t->p1_cursor), "%s", cursor ? cursor : "-");
    }
    if (src->patient && strcmp(src->patient, "bad") == 0) {
        return PW_EFHIR; /* before any request: the driver ends the run */
    }
    r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->run = run;
    *state = r;
    /* The page goes out at once; the consumer's done ends the run (toy_page_done). */
    pw_source_run_deliver(run,
                          json_pack("[{s:s, s:s, s:{s:s}}]", "resourceType", "Thing", "id", "t1",
                                    "meta", "versionId", "1"),
                          "toy-cursor");
    return 0;
}

static void toy_page_done(void *state, int err)
{
    struct toy_run *r = state;
    struct pw_source_run_result res = {.err = err, .pages = 1};
    pw_source_run_end(r->run, &res);
}

static void toy_run_cleanup(void *state)
{
    free(state);
}

static const struct pw_conf_field toy_map[] = {
    {.name = "toy_label",
     .type = PW_CONF_STRING,
     .def = "plain",
     .offset = offsetof(struct toy, label),
     .help = "toy: a label"},
    {0},
};

static const struct pw_source_ops toy_ops = {
    .adapter = {.name = "toy",
                .config_map = toy_map,
                .ctx_size = sizeof(struct toy),
                .help = "a source of the driver's test"},
    .init = toy_init,
    .close = toy_close,
    .stream_type = toy_stream_type,
    .run_start = toy_run_start,
    .run_page_done = toy_page_done,
    .run_cleanup = toy_run_cleanup,
};

static void test_driver_runs_any_source(void **state)
{
    (void)state;
    struct sh h;
    struct pw_source *src = NULL;
    struct pw_source_env env = {.typed = &toy_ops};
    struct pw_sync_conf sched;
    struct pw_cohort *c = NULL;
    struct pw_sync_health health;
    char err[256] = "";
    char *dir = pwt_mkdtemp();
    char path[512];
    char cohort[700];

    sh_init(&h);
    snprintf(path, sizeof(path), "%s/patients.txt", dir);
    pwt_write_file(path, "p1\nbad\n");
    snprintf(cohort, sizeof(cohort), "{\"type\": \"list\", \"file\": \"%s\"}", path);
    json_t *cj = json_loads(cohort, 0, NULL);
    assert_non_null(cj);
    if (pw_cohort_new(&c, cj, err, sizeof(err)) != 0) {
        fail_msg("cohort: %s", err);
    }
    json_decref(cj);
    assert_int_equal(pw_source_new(&src, &toy_ops, &env, err, sizeof(err)), 0);
    struct toy *t = src->ctx;
    pw_sync_conf_init(&sched, "toy", "http://127.0.0.1:1/none");
    assert_int_equal(pw_sync_add_server(h.sync, &sched, src, c, NULL), 0);

    /* First cycle: p1 delivers its page and cursor, "bad" fails before any request. */
    sh_run_once(&h);
    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(h.cycle_failed, 1);
    assert_int_equal(t->runs, 2);
    assert_string_equal(t->p1_cursor, "-"); /* never synced */
    assert_true(sh_delivered(&h, "toy/Thing/Patient/p1|Thing/t1/1"));
    assert_string_equal(json_string_value(json_object_get(h.cursors, "toy/Thing/Patient/p1")),
                        "toy-cursor");
    assert_null(json_object_get(h.cursors, "toy/Thing/Patient/bad"));
    assert_int_equal(pw_sync_stream_count(h.sync, "toy"), 2);
    assert_int_equal(pw_sync_health(h.sync, "toy", &health), 0);
    assert_int_equal(health.pages, 1);
    assert_int_equal(health.resources, 1);
    assert_int_equal(health.stream_failures, 1);
    assert_int_equal(health.last_error, PW_EFHIR);
    assert_int_equal(health.requests, 0);

    /* Second cycle: each stream starts from the cursor its last completed run left. */
    sh_run_once(&h);
    assert_int_equal(t->runs, 4);
    assert_string_equal(t->p1_cursor, "toy-cursor");
    assert_int_equal(pw_sync_health(h.sync, "toy", &health), 0);
    assert_int_equal(health.cycles, 2);
    assert_int_equal(health.pages, 2);
    sh_fini(&h);
    pwt_rmtree(dir);
    free(dir);
}

/* The toy source registered as any adapter outside the tree is: the configuration accepts its
 * type and its key beside the server's own, and builds it (the real config path). */
static void test_source_declared_by_config(void **state)
{
    (void)state;
    static const char yaml[] = "servers:\n"
                               "  - name: toy\n"
                               "    base_url: http://127.0.0.1:1/none\n"
                               "    auth: {type: none}\n"
                               "    cohort: {type: server-wide}\n"
                               "    type: toy\n"
                               "    toy_label: shiny\n";
    struct pw_conf *conf = NULL;
    struct pw_conf_errors errs = {0};
    struct pw_source *src = NULL;
    char err[256] = "";

    assert_int_equal(pw_adapter_register(&pw_source_kind, &toy_ops.adapter), 0);
    if (pw_conf_load_string(&conf, "toy.yaml", NULL, yaml, strlen(yaml), &errs) != 0) {
        fail_msg("config: %s", errs.n ? errs.lines[0] : "?");
    }
    const struct pw_conf_daemon *cd = pw_conf_daemon(conf);
    assert_int_equal(pw_source_from_conf(&src, json_array_get(pw_conf_get(conf, "servers"), 0),
                                         &cd->servers[0], NULL, cd->sink.section, err, sizeof(err)),
                     0);
    assert_ptr_equal(src->ops, &toy_ops);
    assert_string_equal(((struct toy *)src->ctx)->label_copy, "shiny");
    pw_source_free(src);
    pw_conf_free(conf);

    /* A key of no source is refused, naming it. */
    pw_conf_errors_cleanup(&errs);
    static const char bad[] = "servers:\n"
                              "  - name: toy\n"
                              "    base_url: http://127.0.0.1:1/none\n"
                              "    auth: {type: none}\n"
                              "    cohort: {type: server-wide}\n"
                              "    toy_labell: shiny\n";
    assert_int_equal(pw_conf_load_string(&conf, "toy.yaml", NULL, bad, strlen(bad), &errs),
                     PW_ECONFIG);
    assert_true(errs.n >= 1);
    assert_non_null(strstr(errs.lines[0], "servers[0].toy_labell"));
    pw_conf_errors_cleanup(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_jitter_bounds),
        cmocka_unit_test(test_poll_jitter_bounds),
        cmocka_unit_test(test_retry_after_forms),
        cmocka_unit_test(test_429_retry_after_sets_next_delay),
        cmocka_unit_test(test_unhealthy_server_does_not_stop_others),
        cmocka_unit_test(test_periodic_cycles_and_stop),
        cmocka_unit_test(test_metadata_check),
        cmocka_unit_test(test_replace_server_between_cycles),
        cmocka_unit_test(test_driver_runs_any_source),
        cmocka_unit_test(test_source_declared_by_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
