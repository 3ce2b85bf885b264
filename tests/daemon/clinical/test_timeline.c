/* SPDX-License-Identifier: Apache-2.0 */
/* timeline: latest version wins, deterministic sorting, the per-patient cap, baseline TDD. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "painwatch/err.h"
#include "painwatch/timeline.h"
#include "support/pwtest.h"

static struct pw_ref ref(const char *type, const char *id, const char *version)
{
    struct pw_ref r;
    memset(&r, 0, sizeof(r));
    strcpy(r.type, type);
    strcpy(r.id, id);
    strcpy(r.version, version);
    return r;
}

static struct pw_med_order order(const char *id, enum pw_order_role role, int64_t start,
                                 int64_t end, double mme)
{
    struct pw_med_order o;
    memset(&o, 0, sizeof(o));
    o.src = ref("MedicationRequest", id, "1");
    o.classes = PW_MED_OPIOID;
    o.role = role;
    o.start = start;
    o.end = end;
    o.mme_per_day = mme;
    return o;
}

static void test_latest_version_replaces(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/1");
    assert_string_equal(tl.patient, "Patient/1");
    struct pw_pain_score s = {.at = 100, .value = 5, .src = ref("Observation", "a", "1")};
    assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
    s.value = 6; /* same version again: a duplicate, the first copy stays */
    assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
    assert_int_equal(tl.scores.n, 1);
    assert_true(tl.scores.v[0].value == 5);
    s.src = ref("Observation", "a", "2");
    s.value = 7;
    assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
    assert_int_equal(tl.scores.n, 1);
    assert_true(tl.scores.v[0].value == 7);
    /* An older version arriving late does not win: numeric versions compare as numbers. */
    s.src = ref("Observation", "a", "10");
    s.value = 8;
    assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
    s.src = ref("Observation", "a", "9");
    s.value = 1;
    assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
    assert_true(tl.scores.v[0].value == 8);
    s.src = ref("Observation", "b", "1");
    assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
    assert_int_equal(tl.scores.n, 2);
    pw_timeline_cleanup(&tl);
    pw_timeline_cleanup(&tl); /* a zeroed timeline is accepted */
}

static void test_new_version_drops_old_dq(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/1");
    struct pw_dq_event d;
    memset(&d, 0, sizeof(d));
    strcpy(d.code, "unstructured-sig");
    d.src = ref("MedicationRequest", "m", "1");
    assert_int_equal(pw_timeline_add_dq(&tl, &d), 0);
    struct pw_med_order o = order("m", PW_ROLE_BASELINE, 0, PW_TIME_FOREVER, NAN);
    assert_int_equal(pw_timeline_add_order(&tl, &o), 0);
    /* Version 2 fixed the sig: its order replaces version 1 and the old complaint goes. */
    o.src = ref("MedicationRequest", "m", "2");
    o.mme_per_day = 30;
    assert_int_equal(pw_timeline_add_order(&tl, &o), 0);
    assert_int_equal(tl.orders.n, 1);
    assert_true(tl.orders.v[0].mme_per_day == 30);
    assert_int_equal(tl.dq.n, 0);
    pw_timeline_cleanup(&tl);
}

static void test_sort_is_by_time_then_id(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/1");
    const char *ids[] = {"c", "a", "b", "d"};
    const int64_t at[] = {200, 300, 200, 100};
    for (size_t i = 0; i < 4; i++) {
        struct pw_pain_score s = {.at = at[i], .value = 1, .src = ref("Observation", ids[i], "")};
        assert_int_equal(pw_timeline_add_score(&tl, &s), 0);
        struct pw_med_order o = order(ids[i], PW_ROLE_BASELINE, at[i], PW_TIME_FOREVER, 10);
        assert_int_equal(pw_timeline_add_order(&tl, &o), 0);
    }
    pw_timeline_sort(&tl);
    const char *want[] = {"d", "b", "c", "a"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(tl.scores.v[i].src.id, want[i]);
        assert_string_equal(tl.orders.v[i].src.id, want[i]);
    }
    pw_timeline_cleanup(&tl);
}

static void test_baseline_mme_at(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/1");
    struct pw_med_order o[] = {
        order("er", PW_ROLE_BASELINE, 100, PW_TIME_FOREVER, 60),
        order("er2", PW_ROLE_BASELINE, 200, 300, 30),
        order("rescue", PW_ROLE_RESCUE, 100, PW_TIME_FOREVER, 90),
        order("unknown", PW_ROLE_BASELINE, 400, 500, NAN),
    };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pw_timeline_add_order(&tl, &o[i]), 0);
    }
    assert_true(pw_timeline_baseline_mme_at(&tl, 99) == 0);
    assert_true(pw_timeline_baseline_mme_at(&tl, 100) == 60);
    assert_true(pw_timeline_baseline_mme_at(&tl, 200) == 90);
    assert_true(pw_timeline_baseline_mme_at(&tl, 299) == 90);
    assert_true(pw_timeline_baseline_mme_at(&tl, 300) == 60);  /* end is exclusive */
    assert_true(isnan(pw_timeline_baseline_mme_at(&tl, 400))); /* an unknown dose */
    assert_true(pw_timeline_baseline_mme_at(&tl, 500) == 60);
    assert_true(pw_order_active_at(&o[0], INT64_MAX - 1));
    pw_timeline_cleanup(&tl);
}

static void test_cap_and_dq(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/1");
    struct pw_dq_event d;
    memset(&d, 0, sizeof(d));
    strcpy(d.code, "unknown-drug");
    d.src = ref("MedicationRequest", "m", "");
    assert_int_equal(pw_timeline_add_dq(&tl, &d), 0);
    assert_int_equal(pw_timeline_add_dq(&tl, &d), 0); /* exact duplicate dropped */
    assert_int_equal(tl.dq.n, 1);
    strcpy(d.code, "unstructured-sig"); /* another problem with the same resource is kept */
    assert_int_equal(pw_timeline_add_dq(&tl, &d), 0);
    assert_int_equal(tl.dq.n, 2);
    int rc = 0;
    for (int i = 0; rc == 0 && i < PW_RESOURCES_PER_PATIENT_MAX + 10; i++) {
        struct pw_pain_score s = {.at = i, .value = 1};
        s.src = ref("Observation", "x", "");
        snprintf(s.src.id, sizeof(s.src.id), "o%d", i);
        rc = pw_timeline_add_score(&tl, &s);
    }
    assert_int_equal(rc, PW_E2BIG);
    assert_int_equal(tl.scores.n + tl.dq.n, PW_RESOURCES_PER_PATIENT_MAX);
    pw_timeline_cleanup(&tl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latest_version_replaces),
        cmocka_unit_test(test_new_version_drops_old_dq),
        cmocka_unit_test(test_sort_is_by_time_then_id),
        cmocka_unit_test(test_baseline_mme_at),
        cmocka_unit_test(test_cap_and_dq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
