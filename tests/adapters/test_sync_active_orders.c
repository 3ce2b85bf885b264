/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The first sync of a MedicationRequest stream (daemon/core/scheduler.c): besides the lookback
 * (authoredon), the orders still in force whatever their date, through the same paging, dedupe
 * and cursor; later runs are incremental only. Real loop, real HTTP core, loopback responder.
 */
#include "support/sync_harness.h"

#define SRV_WIDE "{\"type\": \"server\"}"

/* The lookback query and the orders-in-force query, as the responder sees them (decoded). */
#define Q_LOOKBACK "authoredon=ge2024-04-17T11:00:00Z"
#define Q_IN_FORCE "status=active,on-hold&"
/* The in-force query is bounded on the other side of the lookback: no order comes twice. */
#define Q_BEFORE "authoredon=lt2024-04-17T11:00:00Z&"

/* A MedicationRequest-only source on server "ehr". */
static void med_only(struct sh *h, struct pw_fhir_search_conf *conf)
{
    sh_conf(h, conf, "ehr", h->base, 0, 0);
    free(conf->types[0].type);
    free(conf->types[0].codes);
    conf->types[0] = conf->types[1];
    memset(&conf->types[1], 0, sizeof(conf->types[1]));
    conf->ntypes = 1;
}

/* m1: written in January, still active, changed at 10:20 (only the in-force query sees it).
 * m2: written yesterday, active (both queries see it). m3: written yesterday, completed. */
static json_t *m1(void)
{
    return sh_med("m1", "1", "2024-05-01T10:20:00Z", "active", "2024-01-10T08:00:00Z");
}

static json_t *m2(void)
{
    return sh_med("m2", "1", "2024-05-01T09:00:00Z", "active", "2024-04-30T08:00:00Z");
}

static json_t *m3(void)
{
    return sh_med("m3", "1", "2024-05-01T09:30:00Z", "completed", "2024-04-30T09:00:00Z");
}

static void rule_json(struct sh *h, const char *query, unsigned times, json_t *entries,
                      const char *next)
{
    char *body = sh_bundle(entries, next);
    sh_rule(h, "/fhir/MedicationRequest", query, times, 200, NULL, body);
    free(body);
}

static int64_t cursor_ms(struct sh *h, const char *key)
{
    struct pw_sync_state st;
    int64_t ms;
    const char *text = json_string_value(json_object_get(h->cursors, key));
    assert_non_null(text);
    assert_int_equal(pw_sync_state_init(&st), 0);
    assert_int_equal(pw_sync_state_load(&st, text), 0);
    ms = st.cursor_ms;
    pw_sync_state_cleanup(&st);
    return ms;
}

static size_t count_delivered(struct sh *h, const char *line)
{
    size_t n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(h->delivered, i, v)
    {
        n += strcmp(json_string_value(v), line) == 0;
    }
    return n;
}

static void test_first_sync_fetches_orders_in_force(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    struct pw_sync_health hl;

    sh_init(&h);
    med_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    rule_json(&h, Q_LOOKBACK, 0, json_pack("[o, o]", m2(), m3()), NULL);
    rule_json(&h, Q_IN_FORCE, 0, json_pack("[o, o]", m2(), m1()), NULL);
    sh_run_once(&h);

    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(h.cycle_failed, 0);
    /* Asked: the lookback, then the orders in force authored before it, server-wide. */
    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_non_null(strstr(sh_query(&h, 0), Q_LOOKBACK));
    assert_string_equal(sh_path(&h, 1), "/fhir/MedicationRequest");
    assert_non_null(strstr(sh_query(&h, 1), Q_IN_FORCE));
    assert_non_null(strstr(sh_query(&h, 1), Q_BEFORE Q_IN_FORCE));
    assert_null(strstr(sh_query(&h, 1), "_lastUpdated"));
    assert_null(strstr(sh_query(&h, 1), "patient"));
    assert_non_null(strstr(sh_query(&h, 1), "_count=100"));
    /* Received: the old order once, m2 (in both answers) once. */
    assert_int_equal(json_array_size(h.delivered), 3);
    assert_int_equal(count_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m1/1"), 1);
    assert_int_equal(count_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m2/1"), 1);
    assert_int_equal(count_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m3/1"), 1);
    assert_int_equal(pw_sync_health(h.sync, "ehr", &hl), 0);
    assert_int_equal(hl.duplicates, 1);
    /* The cursor came only with the last page of the second query: the newest of both. */
    assert_int_equal(json_array_size(h.pages), 2);
    assert_false(json_is_true(json_object_get(json_array_get(h.pages, 0), "cursor")));
    assert_true(json_is_true(json_object_get(json_array_get(h.pages, 1), "cursor")));
    assert_int_equal(cursor_ms(&h, "ehr/MedicationRequest/-"), SH_T0 + 20 * 60000);

    /* Later runs are incremental: one query, every status, from the cursor minus the overlap.
     * m1 is back inside the overlap (dropped), m2 has a new version (delivered). */
    rule_json(
        &h, "_lastUpdated=gt2024-05-01T10:15:00Z", 0,
        json_pack("[o, o]", m1(),
                  sh_med("m2", "2", "2024-05-01T10:40:00Z", "stopped", "2024-04-30T08:00:00Z")),
        NULL);
    sh_run_once(&h);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(pwt_responder_count(h.r), 3);
    assert_non_null(strstr(sh_query(&h, 2), "_lastUpdated=gt2024-05-01T10:15:00Z"));
    assert_non_null(strstr(sh_query(&h, 2), "status=active,on-hold,cancelled,completed"));
    assert_null(strstr(sh_query(&h, 2), Q_IN_FORCE));
    assert_null(strstr(sh_query(&h, 2), "authoredon"));
    assert_int_equal(json_array_size(h.delivered), 4);
    assert_int_equal(count_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m1/1"), 1);
    assert_int_equal(count_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m2/2"), 1);
    assert_int_equal(cursor_ms(&h, "ehr/MedicationRequest/-"), SH_T0 + 40 * 60000);
    sh_fini(&h);
}

/* Per-patient mode: each patient's stream asks both queries for that patient only. */
static void per_patient_run(bool subject)
{
    struct sh h;
    struct pw_fhir_search_conf conf;
    char *dir = pwt_mkdtemp();
    char path[512];
    char cohort[700];
    char q[128];

    sh_init(&h);
    snprintf(path, sizeof(path), "%s/patients.txt", dir);
    pwt_write_file(path, "p1\np2\n");
    snprintf(cohort, sizeof(cohort), "{\"type\": \"list\", \"file\": \"%s\"}", path);
    med_only(&h, &conf);
    conf.dialect.subject = subject;
    sh_add(&h, &conf, cohort, NULL);
    snprintf(q, sizeof(q), "%s&" Q_BEFORE Q_IN_FORCE,
             subject ? "subject=Patient/p1" : "patient=p1");
    rule_json(&h, q, 0, json_pack("[o]", m1()), NULL);
    rule_json(&h, NULL, 0, json_array(), NULL);
    sh_run_once(&h);

    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(pwt_responder_count(h.r), 4);
    for (int p = 1; p <= 2; p++) {
        size_t lookback = 0;
        size_t in_force = 0;
        snprintf(q, sizeof(q), "%s%d&", subject ? "subject=Patient/p" : "patient=p", p);
        for (size_t i = 0; i < 4; i++) {
            const char *query = sh_query(&h, i);
            if (strncmp(query, q, strlen(q)) != 0) {
                continue;
            }
            lookback += strstr(query, Q_LOOKBACK) != NULL;
            in_force += strstr(query, Q_BEFORE Q_IN_FORCE) != NULL;
        }
        assert_int_equal(lookback, 1);
        assert_int_equal(in_force, 1);
    }
    assert_int_equal(json_array_size(h.delivered), 1);
    assert_true(sh_delivered(&h, "ehr/MedicationRequest/Patient/p1|MedicationRequest/m1/1"));
    assert_int_equal(cursor_ms(&h, "ehr/MedicationRequest/Patient/p1"), SH_T0 + 20 * 60000);
    /* p2 received nothing: no cursor yet, its next run is a first sync again. */
    assert_int_equal(cursor_ms(&h, "ehr/MedicationRequest/Patient/p2"), PW_SYNC_NO_CURSOR);
    sh_fini(&h);
    pwt_rmtree(dir);
    free(dir);
}

static void test_per_patient_by_patient(void **state)
{
    (void)state;
    per_patient_run(false);
}

static void test_per_patient_by_subject(void **state)
{
    (void)state;
    per_patient_run(true);
}

/* The second query fails: the lookback page was delivered, but no cursor; the next run asks
 * both queries again. */
static void test_second_query_failure_leaves_no_cursor(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    med_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    rule_json(&h, Q_LOOKBACK, 0, json_pack("[o, o]", m2(), m3()), NULL);
    sh_rule(&h, "/fhir/MedicationRequest", Q_IN_FORCE, 1, 500, NULL, "oops");
    rule_json(&h, Q_IN_FORCE, 0, json_pack("[o]", m1()), NULL);
    sh_run_once(&h);

    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_int_equal(h.cycle_err, PW_EHTTP);
    assert_int_equal(h.cycle_failed, 1);
    assert_int_equal(json_array_size(h.pages), 1);
    assert_false(json_is_true(json_object_get(json_array_get(h.pages, 0), "cursor")));
    assert_null(json_object_get(h.cursors, "ehr/MedicationRequest/-"));

    sh_run_once(&h);
    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(pwt_responder_count(h.r), 4);
    assert_non_null(strstr(sh_query(&h, 2), Q_LOOKBACK));
    assert_non_null(strstr(sh_query(&h, 3), Q_IN_FORCE));
    /* No cursor was committed, so the lookback is delivered again (the store is idempotent). */
    assert_int_equal(count_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m2/1"), 2);
    assert_int_equal(count_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m1/1"), 1);
    assert_int_equal(cursor_ms(&h, "ehr/MedicationRequest/-"), SH_T0 + 20 * 60000);
    sh_fini(&h);
}

/* A server that advertises status but refuses the in-force query: the lookback still gets its
 * cursor (the stream is not stuck retrying for ever) and the query is not sent again. */
static void test_refused_second_query_is_dropped(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    med_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    rule_json(&h, Q_LOOKBACK, 0, json_pack("[o, o]", m2(), m3()), NULL);
    sh_rule(&h, "/fhir/MedicationRequest", Q_IN_FORCE, 0, 400, NULL, "unknown parameter");
    sh_run_once(&h);

    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(count_delivered(&h, "ehr/MedicationRequest/-|MedicationRequest/m2/1"), 1);
    assert_int_equal(cursor_ms(&h, "ehr/MedicationRequest/-"), SH_T0 - 30 * 60000);

    /* The cursors are lost (say the state was reset): a first sync again, lookback only. */
    json_object_clear(h.cursors);
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count(h.r), 3);
    assert_non_null(strstr(sh_query(&h, 2), Q_LOOKBACK));
    assert_int_equal(h.cycle_err, 0);
    sh_fini(&h);
}

/* The page cap cuts the sorted lookback at 09:00: the cursor must not jump to the in-force
 * query's 10:20, or the lookback's rest between them would never be fetched. */
static void test_capped_lookback_bounds_cursor(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    char next[256];

    sh_init(&h);
    med_only(&h, &conf);
    conf.pages_max = 1;
    conf.dialect.sort = true;
    sh_add(&h, &conf, SRV_WIDE, NULL);
    snprintf(next, sizeof(next), "%s?_getpages=abc&_page=2", h.base);
    rule_json(&h, Q_LOOKBACK, 0, json_pack("[o]", m2()), next);
    rule_json(&h, Q_IN_FORCE, 0, json_pack("[o]", m1()), NULL);
    sh_run_once(&h);

    assert_int_equal(h.cycle_failed, 0);
    /* The capped lookback's page 2 is never asked; the second query runs (its own budget). */
    assert_int_equal(pwt_responder_count(h.r), 2);
    assert_non_null(strstr(sh_query(&h, 1), Q_IN_FORCE));
    assert_int_equal(json_array_size(h.delivered), 2);
    assert_int_equal(cursor_ms(&h, "ehr/MedicationRequest/-"), SH_T0 - 3600000);

    /* The next run resumes from 09:00 minus the overlap. */
    rule_json(&h, "_lastUpdated=gt2024-05-01T08:55:00Z", 0, json_array(), NULL);
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count(h.r), 3);
    assert_non_null(strstr(sh_query(&h, 2), "_lastUpdated=gt2024-05-01T08:55:00Z"));
    sh_fini(&h);
}

/* /metadata decides: a server that lists MedicationRequest search parameters without status
 * gets the lookback only; one that lists status gets both. */
static void metadata_run(bool with_status, size_t want_searches)
{
    struct sh h;
    struct pw_fhir_search_conf conf;
    char *cap = pwt_read_file(pwt_src_path("tests/fixtures/sync/capability_r4.json"), NULL);
    json_t *cj = json_loads(cap, 0, NULL);
    size_t i;
    json_t *res;

    assert_non_null(cj);
    json_array_foreach(json_object_get(json_array_get(json_object_get(cj, "rest"), 0), "resource"),
                       i, res)
    {
        if (!with_status &&
            strcmp(json_string_value(json_object_get(res, "type")), "MedicationRequest") == 0) {
            json_object_set_new(res, "searchParam",
                                json_pack("[{s:s, s:s}]", "name", "patient", "type", "reference"));
        }
    }
    char *body = json_dumps(cj, JSON_COMPACT);
    sh_init(&h);
    med_only(&h, &conf);
    sh_add(&h, &conf, SRV_WIDE, NULL);
    sh_rule(&h, "/fhir/metadata", NULL, 0, 200, NULL, body);
    rule_json(&h, NULL, 0, json_pack("[o]", m2()), NULL);
    h.cycle_done = false;
    assert_int_equal(pw_sync_check_servers(h.sync, sh_on_cycle, &h), 0);
    while (!h.cycle_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    assert_int_equal(h.cycle_err, 0);
    sh_run_once(&h);
    assert_int_equal(h.cycle_failed, 0);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/MedicationRequest"), want_searches);
    assert_non_null(strstr(sh_query(&h, 1), Q_LOOKBACK));
    assert_non_null(json_object_get(h.cursors, "ehr/MedicationRequest/-"));
    sh_fini(&h);
    free(body);
    json_decref(cj);
    free(cap);
}

static void test_status_not_advertised_skips_second_query(void **state)
{
    (void)state;
    metadata_run(false, 1);
    metadata_run(true, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_sync_fetches_orders_in_force),
        cmocka_unit_test(test_per_patient_by_patient),
        cmocka_unit_test(test_per_patient_by_subject),
        cmocka_unit_test(test_second_query_failure_leaves_no_cursor),
        cmocka_unit_test(test_refused_second_query_is_dropped),
        cmocka_unit_test(test_capped_lookback_bounds_cursor),
        cmocka_unit_test(test_status_not_advertised_skips_second_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
