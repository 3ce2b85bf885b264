/* SPDX-License-Identifier: Apache-2.0 */
/*
 * adapters/cohort_group.c: active Patient members of a Group, and the Group re-read from a
 * loopback server once per refresh interval (a failed re-read keeps the members).
 */
#include "support/sync_harness.h"

static void test_group_members(void **state)
{
    (void)state;
    json_error_t jerr;
    char **ids = NULL;
    size_t n = 0;
    json_t *g = json_load_file(pwt_src_path("tests/fixtures/sync/group_ward.json"), 0, &jerr);

    assert_non_null(g);
    /* g1 active, g2 inactive, g3 period ended, dr1 not a Patient, g4 open period. */
    assert_int_equal(pw_cohort_group_members(g, SH_NOW, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "g1");
    assert_string_equal(ids[1], "g4");
    for (size_t i = 0; i < n; i++) {
        free(ids[i]);
    }
    free(ids);
    json_decref(g);

    g = json_pack("{s:s}", "resourceType", "List");
    assert_int_equal(pw_cohort_group_members(g, SH_NOW, &ids, &n), PW_EFHIR);
    json_decref(g);
    g = json_pack("{s:s}", "resourceType", "Group");
    assert_int_equal(pw_cohort_group_members(g, SH_NOW, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    json_decref(g);
}

static void test_group_config_errors(void **state)
{
    (void)state;
    struct pw_cohort *c = NULL;
    char err[256] = "";
    json_t *conf = json_pack("{s:s, s:s}", "type", "group", "group", "Group/a b");
    assert_int_equal(pw_cohort_new(&c, conf, err, sizeof(err)), PW_ECONFIG);
    assert_non_null(strstr(err, "cohort.group"));
    json_decref(conf);
    conf = json_pack("{s:s}", "type", "group");
    assert_int_equal(pw_cohort_new(&c, conf, err, sizeof(err)), PW_ECONFIG);
    json_decref(conf);
    conf = json_pack("{s:s, s:s, s:i}", "type", "group", "group", "g", "refresh_s", 1);
    assert_int_equal(pw_cohort_new(&c, conf, err, sizeof(err)), PW_ECONFIG);
    assert_non_null(strstr(err, "refresh_s"));
    json_decref(conf);
}

static void test_group_cohort_sync(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    size_t len = 0;
    char *group = pwt_read_file(pwt_src_path("tests/fixtures/sync/group_ward.json"), &len);

    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    h.sched.parallel = 2;
    sh_add(&h, &conf, "{\"type\": \"group\", \"group\": \"Group/ward4\", \"refresh\": \"1h\"}",
           NULL);
    sh_rule(&h, "/fhir/Group/ward4", NULL, 1, 200, NULL, group);
    sh_rule(&h, "/fhir/Group/ward4", NULL, 0, 500, NULL, "");
    char *empty = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/*", NULL, 0, 200, NULL, empty);
    free(empty);
    sh_run_once(&h);

    /* One Group read, then g1 and g4 x (Observation, MedicationRequest lookback and orders in
     * force: a first sync). */
    assert_int_equal(h.cycle_err, 0);
    assert_string_equal(sh_path(&h, 0), "/fhir/Group/ward4");
    assert_int_equal(pwt_responder_count(h.r), 7);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/Group/ward4"), 1);
    assert_int_equal(pw_sync_stream_count(h.sync, "ehr"), 4);
    size_t g1 = 0;
    for (size_t i = 1; i < 7; i++) {
        g1 += strstr(sh_query(&h, i), "patient=g1&") != NULL;
        assert_null(strstr(sh_query(&h, i), "patient=g2&"));
    }
    assert_int_equal(g1, 3);

    /* Within the refresh interval the Group is not read again. The streams received nothing,
     * so they have no cursor and run their first sync again. */
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/Group/ward4"), 1);
    assert_int_equal(pwt_responder_count(h.r), 13);
    sh_fini(&h);
    free(group);
}

static int64_t later_now = SH_NOW;

static int64_t later_clock(void)
{
    return later_now;
}

static void test_group_reread_failure_keeps_members(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    size_t len = 0;
    char *group = pwt_read_file(pwt_src_path("tests/fixtures/sync/group_ward.json"), &len);

    sh_init(&h);
    later_now = SH_NOW;
    pw_sync_set_clock(h.sync, later_clock);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    sh_add(&h, &conf, "{\"type\": \"group\", \"group\": \"ward4\", \"refresh\": \"1m\"}", NULL);
    sh_rule(&h, "/fhir/Group/ward4", NULL, 1, 200, NULL, group);
    sh_rule(&h, "/fhir/Group/ward4", NULL, 0, 503, NULL, "");
    char *empty = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/*", NULL, 0, 200, NULL, empty);
    free(empty);
    sh_run_once(&h);
    assert_int_equal(pw_sync_stream_count(h.sync, "ehr"), 4);

    /* Two minutes later the Group is due again; the server fails it; members stay. */
    later_now = SH_NOW + 120000;
    sh_run_once(&h);
    assert_int_equal(h.cycle_err, 0);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/Group/ward4"), 2);
    assert_int_equal(pw_sync_stream_count(h.sync, "ehr"), 4);
    /* 2 x (Group + 2 patients x 3 first-sync queries). */
    assert_int_equal(pwt_responder_count(h.r), 14);
    sh_fini(&h);

    /* A Group that cannot be read the first time fails the cycle (nobody to watch). */
    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    sh_add(&h, &conf, "{\"type\": \"group\", \"group\": \"ward4\"}", NULL);
    sh_rule(&h, "/fhir/Group/ward4", NULL, 0, 404, NULL, "");
    sh_run_once(&h);
    assert_int_equal(h.cycle_err, PW_EHTTP);
    assert_int_equal(pwt_responder_count(h.r), 1);
    sh_fini(&h);
    free(group);
}

/* Without refresh of its own, the Group follows the source's group_refresh_ms. */
static void test_group_refresh_from_source(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;
    size_t len = 0;
    char *group = pwt_read_file(pwt_src_path("tests/fixtures/sync/group_ward.json"), &len);

    sh_init(&h);
    later_now = SH_NOW;
    pw_sync_set_clock(h.sync, later_clock);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    h.sched.group_refresh_ms = 600000;
    sh_add(&h, &conf, "{\"type\": \"group\", \"group\": \"ward4\"}", NULL);
    sh_rule(&h, "/fhir/Group/ward4", NULL, 0, 200, NULL, group);
    char *empty = sh_bundle(json_array(), NULL);
    sh_rule(&h, "/fhir/*", NULL, 0, 200, NULL, empty);
    free(empty);
    sh_run_once(&h);
    later_now = SH_NOW + 300000; /* 5 min: not due */
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/Group/ward4"), 1);
    later_now = SH_NOW + 660000; /* 11 min: due */
    sh_run_once(&h);
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/Group/ward4"), 2);
    sh_fini(&h);
    free(group);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_members),
        cmocka_unit_test(test_group_config_errors),
        cmocka_unit_test(test_group_cohort_sync),
        cmocka_unit_test(test_group_reread_failure_keeps_members),
        cmocka_unit_test(test_group_refresh_from_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
