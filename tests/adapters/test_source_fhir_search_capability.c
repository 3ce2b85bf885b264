/* SPDX-License-Identifier: Apache-2.0 */
/* adapters/source_fhir_search_capability.c: how /metadata meets the configured dialect. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/capability.h"
#include "painwatch/err.h"
#include "painwatch/fhir_search.h"
#include "support/pwtest.h"

static json_t *load_fixture(const char *name)
{
    char rel[256];
    json_error_t jerr;
    snprintf(rel, sizeof(rel), "tests/fixtures/sync/%s", name);
    json_t *j = json_load_file(pwt_src_path(rel), 0, &jerr);
    if (!j) {
        fail_msg("%s: %s", rel, jerr.text);
    }
    return j;
}

/* The fixture server's statement, and the default searches against it. */
static void open_r4(struct pw_capability *cap, struct pw_fhir_search_conf *conf)
{
    json_t *j = load_fixture("capability_r4.json");

    assert_int_equal(pw_capability_parse(cap, j), 0);
    json_decref(j);
    assert_int_equal(pw_fhir_search_conf_init(conf, "ehr", "http://127.0.0.1/fhir"), 0);
}

static void test_check_against_dialects(void **state)
{
    (void)state;
    struct pw_capability cap;
    struct pw_fhir_search_conf conf;
    unsigned errors = 0;
    unsigned warnings = 0;

    open_r4(&cap, &conf);

    /* Defaults: everything needed is there; authoredon is not advertised (a warning). */
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), 0);
    assert_int_equal(errors, 0);
    assert_int_equal(warnings, 1);

    /* subject=: Observation has it, MedicationRequest does not: a startup error. */
    conf.dialect.subject = true;
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), PW_ECONFIG);
    assert_int_equal(errors, 1);
    conf.dialect.subject = false;

    /* _sort configured but not advertised: a warning per type, not an error. */
    conf.dialect.sort = true;
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), 0);
    assert_int_equal(warnings, 3);
    conf.dialect.sort = false;

    /* A type the server cannot search is an error. */
    conf.types[2].type = strdup("Condition");
    conf.ntypes = 3;
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), PW_ECONFIG);
    assert_int_equal(errors, 1);
    pw_fhir_search_conf_cleanup(&conf);

    /* Flag writes missing: a warning (shadow mode still works). */
    cap.flag_create = false;
    assert_int_equal(pw_fhir_search_conf_init(&conf, "ehr", "http://127.0.0.1/fhir"), 0);
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), 0);
    assert_int_equal(warnings, 2);
    pw_fhir_search_conf_cleanup(&conf);
    pw_capability_cleanup(&cap);
}

/* The write check follows what the sink writes (issue 20 loose ends: DetectedIssue sinks). */
static void test_check_follows_the_sink(void **state)
{
    (void)state;
    struct pw_capability cap;
    struct pw_fhir_search_conf conf;
    unsigned errors = 0;
    unsigned warnings = 0;

    open_r4(&cap, &conf);

    /* A DetectedIssue sink: the fixture advertises Flag writes only, so one warning more. */
    conf.writes = (struct pw_sink_writes){.types = {"DetectedIssue"}, .n = 1};
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), 0);
    assert_int_equal(warnings, 2);

    /* DetectedIssue advertised, Flag not: nothing to say about Flag, which is not written. */
    cap.flag_create = false;
    json_object_set_new(cap.types, "DetectedIssue",
                        json_pack("{s:b,s:b,s:[]}", "search", 0, "write", 1, "params"));
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), 0);
    assert_int_equal(warnings, 1);

    /* auto: one writable type of the two suffices; neither is one warning. */
    conf.writes = (struct pw_sink_writes){.types = {"Flag", "DetectedIssue"}, .n = 2, .any = true};
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), 0);
    assert_int_equal(warnings, 1);
    json_object_del(cap.types, "DetectedIssue");
    assert_int_equal(pw_fhir_search_capability_check(&cap, &conf, &errors, &warnings), 0);
    assert_int_equal(warnings, 2);
    pw_fhir_search_conf_cleanup(&conf);
    pw_capability_cleanup(&cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_against_dialects),
        cmocka_unit_test(test_check_follows_the_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
