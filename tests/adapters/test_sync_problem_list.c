/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 17 in the sync engine (daemon/core/scheduler.c, adapters/source_fhir_search.c): the first
 * sync of a Condition stream fetches the active problem list whatever its date (a cancer recorded
 * years ago), and a 403 on one type fails only that stream and tells the consumer. Real loop, real
 * HTTP core, loopback responder.
 */
#include "support/sync_harness.h"

#define SRV_WIDE "{\"type\": \"server\"}"

/* A Condition entry recorded at @p recorded, clinical status @p status. */
static json_t *cond(const char *id, const char *recorded, const char *status)
{
    return json_pack(
        "{s:{s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s}]}, s:{s:[{s:s, s:s}]}, s:{s:s}, s:s}, s:{s:s}}",
        "resource", "resourceType", "Condition", "id", id, "meta", "versionId", "1", "lastUpdated",
        "2024-05-01T09:00:00Z", "clinicalStatus", "coding", "code", status, "code", "coding",
        "system", "http://hl7.org/fhir/sid/icd-10-cm", "code", "C34.90", "subject", "reference",
        "Patient/p1", "recordedDate", recorded, "search", "mode", "match");
}

/* A source of @p n types on server "ehr", the first being @p first. */
static void types_conf(struct sh *h, struct pw_fhir_search_conf *conf, const char *first, size_t n)
{
    sh_conf(h, conf, "ehr", h->base, 0, 0);
    free(conf->types[0].type);
    free(conf->types[0].codes);
    conf->types[0].codes = NULL;
    conf->types[0].type = strdup(first);
    assert_non_null(conf->types[0].type);
    if (n == 1) {
        free(conf->types[1].type);
        free(conf->types[1].codes);
        memset(&conf->types[1], 0, sizeof(conf->types[1]));
    }
    conf->ntypes = n;
}

static void test_first_sync_fetches_old_active_problems(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char *body;

    sh_init(&h);
    types_conf(&h, &conf, "Condition", 1);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    /* The lookback finds nothing recent; the problem-list query finds the 2019 cancer. */
    body = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/Condition", "recorded-date=ge", 0, 200, NULL, body);
    free(body);
    body = sh_bundle(json_pack("[o]", cond("ca", "2019-03-01", "active")), NULL);
    sh_rule(&h, "/fhir/Condition", "clinical-status=active,recurrence,relapse", 0, 200, NULL, body);
    free(body);
    sh_run_once(&h);

    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_non_null(strstr(sh_query(&h, 0), "recorded-date=ge"));
    assert_non_null(strstr(sh_query(&h, 1), "clinical-status=active,recurrence,relapse"));
    assert_null(strstr(sh_query(&h, 1), "recorded-date")); /* whatever its date */
    assert_true(sh_delivered(&h, "ehr/Condition/-|Condition/ca/1"));
    assert_non_null(json_object_get(h.cursors, "ehr/Condition/-"));

    /* Later runs are incremental only. */
    body = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/Condition", "_lastUpdated=gt", 0, 200, NULL, body);
    free(body);
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count(h.r), 3);
    assert_null(strstr(sh_query(&h, 2), "clinical-status"));
    sh_fini(&h);
}

/* A server that refuses the problem-list query (400) keeps the lookback for Condition, and its
 * MedicationRequest orders-in-force query is still asked (a bug fix: the refusal used to switch
 * that one off for the whole server). */
static void test_refused_problem_list_query_spares_orders(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char *body;

    sh_init(&h);
    types_conf(&h, &conf, "Condition", 2); /* Condition, MedicationRequest: one at a time */
    sh_add(&h, &conf, SRV_WIDE, NULL);
    body = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/Condition", "recorded-date=ge", 0, 200, NULL, body);
    sh_rule(&h, "/fhir/Condition", "clinical-status=", 0, 400, NULL, "unknown parameter");
    sh_rule(&h, "/fhir/MedicationRequest", NULL, 0, 200, NULL, body);
    free(body);
    sh_run_once(&h);

    assert_int_equal(h.cycle_failed, 0);
    assert_non_null(json_object_get(h.cursors, "ehr/Condition/-"));
    /* MedicationRequest: the lookback and the orders in force, both asked. */
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/MedicationRequest"), 2);
    sh_fini(&h);
}

/* ---- a 403 on one type --------------------------------------------------------------------- */

static json_t *access_log;

static void on_type_access(void *arg, const struct pw_sync_source *src, long status)
{
    (void)arg;
    json_array_append_new(access_log,
                          json_pack("{s:s, s:i}", "type", src->type, "status", (json_int_t)status));
}

static void test_403_fails_only_that_type(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char *body;

    sh_init(&h);
    /* The harness's consumer, plus on_type_access. */
    pw_sync_free(h.sync);
    struct pw_sync_consumer c = {.cursor_load = sh_cursor_load,
                                 .on_page = sh_on_page,
                                 .arg = &h,
                                 .on_type_access = on_type_access};
    assert_int_equal(pw_sync_new(&h.sync, &h.loop, h.http, &c), 0);
    pw_sync_set_clock(h.sync, sh_clock);
    access_log = json_array();

    types_conf(&h, &conf, "Condition", 2); /* Condition, MedicationRequest */
    sh_add(&h, &conf, SRV_WIDE, NULL);
    sh_rule(&h, "/fhir/Condition", NULL, 0, 403, NULL, "{\"resourceType\":\"OperationOutcome\"}");
    body = sh_bundle(json_pack("[o]", sh_med("m1", "1", "2024-05-01T09:00:00Z", "active",
                                             "2024-04-30T08:00:00Z")),
                     NULL);
    sh_rule(&h, "/fhir/MedicationRequest", NULL, 0, 200, NULL, body);
    free(body);
    sh_run_once(&h);

    /* Condition failed alone; the orders still came (a 403 is not the server's trouble). */
    assert_int_equal(h.cycle_failed, 1);
    assert_true(sh_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m1/1"));
    size_t refused = 0, readable = 0;
    size_t i;
    json_t *v;
    json_array_foreach(access_log, i, v)
    {
        const char *type = json_string_value(json_object_get(v, "type"));
        json_int_t st = json_integer_value(json_object_get(v, "status"));
        refused += strcmp(type, "Condition") == 0 && st == 403;
        readable += strcmp(type, "MedicationRequest") == 0 && st == 0;
    }
    assert_int_equal(refused, 1);
    assert_true(readable >= 1);
    json_decref(access_log);
    sh_fini(&h);
}

/* How many on_type_access(@p type, @p status) calls the log holds. */
static size_t access_count(const char *type, long status)
{
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(access_log, i, v)
    {
        n += strcmp(json_string_value(json_object_get(v, "type")), type) == 0 &&
             json_integer_value(json_object_get(v, "status")) == status;
    }
    return n;
}

/* Bug N1: a stream that never completed a run and fails (here a page that is not JSON even at
 * _count=1, the cycle goes on) was never read: the consumer is told, and told again once a run
 * completes. Failing after that, what it stored stays valid: nothing is said. */
static void test_failed_first_run_is_unread(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    const char *html = "<html><body>Service temporarily unavailable</body></html>";

    sh_init(&h);
    pw_sync_free(h.sync);
    struct pw_sync_consumer c = {.cursor_load = sh_cursor_load,
                                 .on_page = sh_on_page,
                                 .arg = &h,
                                 .on_type_access = on_type_access};
    assert_int_equal(pw_sync_new(&h.sync, &h.loop, h.http, &c), 0);
    pw_sync_set_clock(h.sync, sh_clock);
    access_log = json_array();
    types_conf(&h, &conf, "Condition", 2); /* Condition, MedicationRequest */
    sh_add(&h, &conf, SRV_WIDE, NULL);
    char *empty = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/Condition", NULL, 0, 200, "Content-Type: text/html", html);
    sh_rule(&h, "/fhir/MedicationRequest", NULL, 0, 200, NULL, empty);
    sh_run_once(&h);
    assert_int_equal(h.cycle_failed, 1);
    assert_int_equal(access_count("Condition", PW_SYNC_TYPE_UNREAD), 1);
    assert_int_equal(access_count("MedicationRequest", PW_SYNC_TYPE_UNREAD), 0);
    assert_true(access_count("MedicationRequest", 0) >= 1);

    /* The Condition stream reads: readable again. */
    pwt_responder_clear_rules(h.r);
    json_array_clear(access_log);
    sh_rule(&h, "/fhir/Condition", NULL, 0, 200, NULL, empty);
    sh_rule(&h, "/fhir/MedicationRequest", NULL, 0, 200, NULL, empty);
    sh_run_once(&h);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(access_count("Condition", 0), 1);

    /* It fails again: it has been read, its stored data stands. */
    pwt_responder_clear_rules(h.r);
    json_array_clear(access_log);
    sh_rule(&h, "/fhir/Condition", NULL, 0, 200, "Content-Type: text/html", html);
    sh_rule(&h, "/fhir/MedicationRequest", NULL, 0, 200, NULL, empty);
    sh_run_once(&h);
    assert_int_equal(h.cycle_failed, 1);
    assert_int_equal(access_count("Condition", PW_SYNC_TYPE_UNREAD), 0);
    free(empty);
    json_decref(access_log);
    sh_fini(&h);
}

/* Bug N1: a transport-level failure aborts the cycle; a stream it never started and that was
 * never read is reported too (here MedicationRequest, after Condition's HTTP 500). */
static void test_aborted_first_cycle_reports_unstarted_streams(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    pw_sync_free(h.sync);
    struct pw_sync_consumer c = {.cursor_load = sh_cursor_load,
                                 .on_page = sh_on_page,
                                 .arg = &h,
                                 .on_type_access = on_type_access};
    assert_int_equal(pw_sync_new(&h.sync, &h.loop, h.http, &c), 0);
    pw_sync_set_clock(h.sync, sh_clock);
    access_log = json_array();
    types_conf(&h, &conf, "Condition", 2); /* Condition, MedicationRequest */
    sh_add(&h, &conf, SRV_WIDE, NULL);
    char *empty = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/Condition", NULL, 0, 500, NULL, "{\"resourceType\":\"OperationOutcome\"}");
    sh_rule(&h, "/fhir/MedicationRequest", NULL, 0, 200, NULL, empty);
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/MedicationRequest"), 0);
    assert_int_equal(access_count("Condition", PW_SYNC_TYPE_UNREAD), 1);
    assert_int_equal(access_count("MedicationRequest", PW_SYNC_TYPE_UNREAD), 1);
    free(empty);
    json_decref(access_log);
    sh_fini(&h);
}

/* A context type /metadata does not advertise is not synced (and the consumer is told), not a
 * startup error; the core types still sync. */
static void test_unadvertised_context_type_is_dropped(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char *cap = pwt_read_file(pwt_src_path("tests/fixtures/sync/capability_r4.json"), NULL);
    json_t *cj = json_loads(cap, 0, NULL);
    json_t *kept = json_array();
    size_t i;
    json_t *res;
    json_t *rest = json_array_get(json_object_get(cj, "rest"), 0);
    json_array_foreach(json_object_get(rest, "resource"), i, res)
    {
        if (strcmp(json_string_value(json_object_get(res, "type")), "Condition") != 0) {
            json_array_append(kept, res);
        }
    }
    json_object_set_new(rest, "resource", kept);
    char *body = json_dumps(cj, JSON_COMPACT);

    sh_init(&h);
    pw_sync_free(h.sync);
    struct pw_sync_consumer c = {.cursor_load = sh_cursor_load,
                                 .on_page = sh_on_page,
                                 .arg = &h,
                                 .on_type_access = on_type_access};
    assert_int_equal(pw_sync_new(&h.sync, &h.loop, h.http, &c), 0);
    pw_sync_set_clock(h.sync, sh_clock);
    access_log = json_array();
    types_conf(&h, &conf, "Condition", 2); /* Condition, MedicationRequest */
    sh_add(&h, &conf, SRV_WIDE, NULL);
    sh_rule(&h, "/fhir/metadata", NULL, 0, 200, NULL, body);
    char *page = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/MedicationRequest", NULL, 0, 200, NULL, page);
    free(page);
    h.cycle_done = false;
    assert_int_equal(pw_sync_check_servers(h.sync, sh_on_cycle, &h), 0);
    while (!h.cycle_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    assert_int_equal(h.cycle_err, 0); /* not a startup error */
    assert_int_equal(json_array_size(access_log), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(access_log, 0), "type")),
                        "Condition");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(access_log, 0), "status")),
                     -1);
    sh_run_once(&h);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/Condition"), 0);
    assert_true(pwt_responder_count_path(h.r, "/fhir/MedicationRequest") >= 1);
    json_decref(access_log);
    sh_fini(&h);
    free(body);
    json_decref(cj);
    free(cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_sync_fetches_old_active_problems),
        cmocka_unit_test(test_refused_problem_list_query_spares_orders),
        cmocka_unit_test(test_403_fails_only_that_type),
        cmocka_unit_test(test_failed_first_run_is_unread),
        cmocka_unit_test(test_aborted_first_cycle_reports_unstarted_streams),
        cmocka_unit_test(test_unadvertised_context_type_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
