/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 18, finding 10: no server bytes in the operational log. Poisoned bodies (a page, the
 * CapabilityStatement, a Group) that jansson cannot parse are logged with their position and a
 * fixed category, never with jansson's error text, which quotes the bytes near the error.
 */
#define _GNU_SOURCE
#include <syslog.h>

#include "painwatch/json_err.h"
#include "painwatch/log.h"
#include "support/sync_harness.h"

/* A name as a patient's would appear, cut where the parse fails. */
#define POISON "JANE-Q-PATIENT"

static char *g_log;
static size_t g_log_len;
static FILE *g_log_f;

static void capture_begin(void)
{
    g_log_f = open_memstream(&g_log, &g_log_len);
    assert_non_null(g_log_f);
    pw_log_init();
    pw_log_set_level(LOG_DEBUG);
    pw_log_set_output(g_log_f, false);
}

/* Stop capturing; the text is in g_log until capture_free(). */
static const char *capture_end(void)
{
    pw_log_flush();
    pw_log_set_output(stderr, false);
    pw_log_set_level(LOG_INFO);
    fclose(g_log_f);
    g_log_f = NULL;
    fprintf(stderr, "%s", g_log); /* what was logged, for the test output */
    return g_log;
}

static void capture_free(void)
{
    free(g_log);
    g_log = NULL;
}

static void run_cycle(struct sh *h)
{
    sh_run_once(h);
}

static void test_describe_has_no_input_bytes(void **state)
{
    json_error_t jerr;
    char buf[160];
    const char *bad[] = {
        "{\"name\":\"" POISON,
        "{\"name\": " POISON "}",
        "{\"n\":\"" POISON "\"} " POISON,
        "{\"n\":1e400, \"x\":\"" POISON "\"}",
        "{\"n\":\"\xff" POISON "\"}",
    };

    size_t quoted = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(json_loads(bad[i], 0, &jerr));
        quoted += strstr(jerr.text, "JANE") != NULL; /* what jansson itself would have logged */
        pw_json_error_describe(&jerr, buf, sizeof(buf));
        assert_null(strstr(buf, "JANE"));
        assert_int_equal(strncmp(buf, "line 1, column ", 15), 0);
    }
    assert_true(quoted >= 2);
    assert_null(json_loads("{\"n\":1e400}", 0, &jerr));
    assert_string_equal(pw_json_error_category(&jerr), "number out of range");
    assert_null(json_loads("{\"n\":\"\xff\"}", 0, &jerr));
    assert_string_equal(pw_json_error_category(&jerr), "invalid UTF-8");
    assert_null(json_loads("{\"n\":", 0, &jerr));
    assert_string_equal(pw_json_error_category(&jerr), "truncated");
}

static void test_page_not_json(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    sh_add(&h, &conf, "{\"type\": \"server\"}", NULL);
    sh_rule(&h, "/fhir/*", NULL, 0, 200, NULL,
            "{\"resourceType\":\"Bundle\",\"entry\":[{\"resource\":{\"name\":" POISON);
    capture_begin();
    run_cycle(&h);
    const char *log = capture_end();
    assert_true(pwt_responder_count(h.r) >= 1);
    assert_null(strstr(log, "JANE"));
    assert_non_null(strstr(log, "is not JSON (line 1, column"));
    capture_free();
    sh_fini(&h);
}

static void test_metadata_not_json(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    sh_add(&h, &conf, "{\"type\": \"server\"}", NULL);
    sh_rule(&h, "/fhir/metadata", NULL, 0, 200, NULL,
            "{\"resourceType\":\"CapabilityStatement\",\"publisher\":\"" POISON "\"} " POISON);
    capture_begin();
    h.cycle_done = false;
    assert_int_equal(pw_sync_check_servers(h.sync, sh_on_cycle, &h), 0);
    while (!h.cycle_done) {
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    const char *log = capture_end();
    assert_int_not_equal(h.cycle_err, 0);
    assert_null(strstr(log, "JANE"));
    assert_non_null(strstr(log, "/metadata: malformed JSON (line 1, column"));
    capture_free();
    sh_fini(&h);
}

static void test_group_not_json(void **state)
{
    (void)state;
    struct sh h;
    struct pw_fhir_search_conf conf;

    sh_init(&h);
    sh_conf(&h, &conf, "ehr", h.base, 0, 0);
    sh_add(&h, &conf, "{\"type\": \"group\", \"group\": \"Group/ward4\", \"refresh\": \"1h\"}",
           NULL);
    sh_rule(&h, "/fhir/Group/ward4", NULL, 0, 200, NULL,
            "{\"resourceType\":\"Group\",\"member\":[{\"entity\":{\"display\":" POISON);
    capture_begin();
    run_cycle(&h);
    const char *log = capture_end();
    assert_int_equal(pwt_responder_count_path(h.r, "/fhir/Group/ward4"), 1);
    assert_null(strstr(log, "JANE"));
    assert_non_null(strstr(log, "Group/ward4: malformed JSON (line 1, column"));
    capture_free();
    sh_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe_has_no_input_bytes),
        cmocka_unit_test(test_page_not_json),
        cmocka_unit_test(test_metadata_not_json),
        cmocka_unit_test(test_group_not_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
