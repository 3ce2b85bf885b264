/* SPDX-License-Identifier: Apache-2.0 */
/* daemon/core/capability.c: what /metadata advertises. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "painwatch/capability.h"
#include "painwatch/err.h"
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

static void test_parse_statement(void **state)
{
    (void)state;
    struct pw_capability cap;
    json_t *j = load_fixture("capability_r4.json");

    assert_int_equal(pw_capability_parse(&cap, j), 0);
    json_decref(j);
    assert_string_equal(cap.fhir_version, "4.0.1");
    assert_string_equal(cap.software, "Example FHIR Server 6.8.0");
    assert_true(cap.flag_create);
    assert_true(cap.flag_update);
    assert_true(cap.flag_conditional_create);
    assert_true(pw_capability_has_param(&cap, "Observation", "patient"));
    assert_true(pw_capability_has_param(&cap, "Observation", "date"));
    /* Rest-level parameters count for every type. */
    assert_true(pw_capability_has_param(&cap, "MedicationRequest", "_lastUpdated"));
    assert_false(pw_capability_has_param(&cap, "MedicationRequest", "authoredon"));
    assert_false(pw_capability_has_param(&cap, "MedicationRequest", "subject"));
    assert_false(pw_capability_has_param(&cap, "Encounter", "patient"));
    pw_capability_cleanup(&cap);
    pw_capability_cleanup(&cap); /* idempotent */
}

static void test_parse_rejects_non_statements(void **state)
{
    (void)state;
    struct pw_capability cap;
    json_t *j = json_pack("{s:s}", "resourceType", "Patient");
    assert_int_equal(pw_capability_parse(&cap, j), PW_EFHIR);
    json_decref(j);
    /* A client-only statement has no server rest. */
    j = json_pack("{s:s, s:[{s:s}]}", "resourceType", "CapabilityStatement", "rest", "mode",
                  "client");
    assert_int_equal(pw_capability_parse(&cap, j), PW_EFHIR);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_statement),
        cmocka_unit_test(test_parse_rejects_non_statements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
