/* SPDX-License-Identifier: Apache-2.0 */
/* Reconcile: create, keep, resolve, reactivate, clinician decisions stand, episode changes. */
#include <stdio.h>
#include <string.h>

#include "core/reconcile.h"
#include "support/pwtest.h"

static struct pw_finding finding(const char *rule, const char *key)
{
    struct pw_finding f = {.rule = rule, .category = "clinical", .severity = PW_SEV_MEDIUM};

    snprintf(f.patient, sizeof(f.patient), "Patient/7");
    snprintf(f.key, sizeof(f.key), "%s", key);
    return f;
}

static struct pw_flag_rec flag(const char *rule, const char *key, enum pw_flag_state state)
{
    struct pw_flag_rec r = {.state = state};

    snprintf(r.key, sizeof(r.key), "%s", key);
    snprintf(r.rule, sizeof(r.rule), "%s", rule);
    snprintf(r.patient, sizeof(r.patient), "Patient/7");
    snprintf(r.server_id, sizeof(r.server_id), "flag-%s", key);
    snprintf(r.version, sizeof(r.version), "1");
    return r;
}

static void expect(const struct pw_rc_item *it, enum pw_rc_action a, const char *key)
{
    assert_string_equal(pw_rc_action_name(it->action), pw_rc_action_name(a));
    if (it->finding) {
        assert_string_equal(it->finding->key, key);
    }
    if (it->flag) {
        assert_string_equal(it->flag->key, key);
    }
    assert_true(it->finding || it->flag);
}

static void test_new_finding_creates(void **state)
{
    struct pw_finding f[] = {finding("r1", "k1")};
    struct pw_rc_plan plan = {0};

    (void)state;
    assert_int_equal(pw_reconcile(f, 1, NULL, 0, &plan), 0);
    assert_int_equal(plan.n, 1);
    expect(&plan.v[0], PW_RC_CREATE, "k1");
    assert_null(plan.v[0].flag);
    assert_ptr_equal(plan.v[0].finding, &f[0]);
    pw_rc_plan_cleanup(&plan);
}

static void test_same_episode_keeps(void **state)
{
    struct pw_finding f[] = {finding("r1", "k1")};
    struct pw_flag_rec fl[] = {flag("r1", "k1", PW_FLAG_ACTIVE)};
    struct pw_rc_plan plan = {0};

    (void)state;
    assert_int_equal(pw_reconcile(f, 1, fl, 1, &plan), 0);
    assert_int_equal(plan.n, 1);
    expect(&plan.v[0], PW_RC_KEEP, "k1");
    assert_ptr_equal(plan.v[0].flag, &fl[0]);
    pw_rc_plan_cleanup(&plan);
}

static void test_gone_finding_resolves(void **state)
{
    struct pw_flag_rec fl[] = {flag("r1", "k1", PW_FLAG_ACTIVE), flag("r2", "k2", PW_FLAG_ACTIVE)};
    struct pw_finding f[] = {finding("r2", "k2")};
    struct pw_rc_plan plan = {0};

    (void)state;
    assert_int_equal(pw_reconcile(f, 1, fl, 2, &plan), 0);
    assert_int_equal(plan.n, 2);
    expect(&plan.v[0], PW_RC_KEEP, "k2");
    expect(&plan.v[1], PW_RC_RESOLVE, "k1");
    assert_null(plan.v[1].finding);
    pw_rc_plan_cleanup(&plan);

    /* No findings at all: every active flag resolves; resolved ones stay quiet. */
    fl[1].state = PW_FLAG_RESOLVED;
    assert_int_equal(pw_reconcile(NULL, 0, fl, 2, &plan), 0);
    assert_int_equal(plan.n, 1);
    expect(&plan.v[0], PW_RC_RESOLVE, "k1");
    pw_rc_plan_cleanup(&plan);
}

static void test_clinician_inactivated_stays_inactive(void **state)
{
    struct pw_finding f[] = {finding("r1", "k1"), finding("r2", "k2")};
    struct pw_flag_rec fl[] = {flag("r1", "k1", PW_FLAG_CLINICIAN_INACTIVE),
                               flag("r2", "k2", PW_FLAG_ENTERED_IN_ERROR)};
    struct pw_rc_plan plan = {0};

    (void)state;
    assert_int_equal(pw_reconcile(f, 2, fl, 2, &plan), 0);
    assert_int_equal(plan.n, 2);
    expect(&plan.v[0], PW_RC_SUPPRESSED, "k1");
    expect(&plan.v[1], PW_RC_SUPPRESSED, "k2");
    pw_rc_plan_cleanup(&plan);

    /* And when the finding goes away, nothing is written either. */
    assert_int_equal(pw_reconcile(NULL, 0, fl, 2, &plan), 0);
    assert_int_equal(plan.n, 0);
    pw_rc_plan_cleanup(&plan);
}

static void test_episode_change_creates_new_and_resolves_old(void **state)
{
    struct pw_finding f[] = {finding("r1", "k1-new")};
    struct pw_flag_rec fl[] = {flag("r1", "k1-old", PW_FLAG_ACTIVE)};
    struct pw_rc_plan plan = {0};

    (void)state;
    assert_int_equal(pw_reconcile(f, 1, fl, 1, &plan), 0);
    assert_int_equal(plan.n, 2);
    expect(&plan.v[0], PW_RC_CREATE, "k1-new");
    expect(&plan.v[1], PW_RC_RESOLVE, "k1-old");
    pw_rc_plan_cleanup(&plan);

    /* A clinician-closed old episode does not block the new one. */
    fl[0].state = PW_FLAG_CLINICIAN_INACTIVE;
    assert_int_equal(pw_reconcile(f, 1, fl, 1, &plan), 0);
    assert_int_equal(plan.n, 1);
    expect(&plan.v[0], PW_RC_CREATE, "k1-new");
    pw_rc_plan_cleanup(&plan);
}

static void test_resolved_episode_back_reactivates(void **state)
{
    struct pw_finding f[] = {finding("r1", "k1")};
    struct pw_flag_rec fl[] = {flag("r1", "k1", PW_FLAG_RESOLVED)};
    struct pw_rc_plan plan = {0};

    (void)state;
    assert_int_equal(pw_reconcile(f, 1, fl, 1, &plan), 0);
    assert_int_equal(plan.n, 1);
    expect(&plan.v[0], PW_RC_REACTIVATE, "k1");
    pw_rc_plan_cleanup(&plan);
}

static void test_duplicate_keys_planned_once(void **state)
{
    struct pw_finding f[] = {finding("r1", "k1"), finding("r1", "k1"), finding("r2", "k2")};
    struct pw_rc_plan plan = {0};

    (void)state;
    assert_int_equal(pw_reconcile(f, 3, NULL, 0, &plan), 0);
    assert_int_equal(plan.n, 2);
    expect(&plan.v[0], PW_RC_CREATE, "k1");
    expect(&plan.v[1], PW_RC_CREATE, "k2");
    pw_rc_plan_cleanup(&plan);
}

static void test_observe_read_back(void **state)
{
    struct pw_flag_rec r = flag("r1", "k1", PW_FLAG_ACTIVE);

    (void)state;
    /* Our own write read back: nothing changes. */
    assert_false(pw_flag_observe(&r, "inactive", "1"));
    assert_int_equal(r.state, PW_FLAG_ACTIVE);
    /* Someone else set it inactive. */
    assert_true(pw_flag_observe(&r, "inactive", "2"));
    assert_int_equal(r.state, PW_FLAG_CLINICIAN_INACTIVE);
    assert_string_equal(r.version, "2");
    assert_false(pw_flag_observe(&r, "inactive", "3"));
    /* Then entered-in-error. */
    assert_true(pw_flag_observe(&r, "entered-in-error", "4"));
    assert_int_equal(r.state, PW_FLAG_ENTERED_IN_ERROR);
    /* A clinician re-opens it: painwatch follows it again. */
    assert_true(pw_flag_observe(&r, "active", "5"));
    assert_int_equal(r.state, PW_FLAG_ACTIVE);
    /* A Flag painwatch resolved itself, read back inactive with a newer version: still ours. */
    r.state = PW_FLAG_RESOLVED;
    assert_false(pw_flag_observe(&r, "inactive", "6"));
    assert_int_equal(r.state, PW_FLAG_RESOLVED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_finding_creates),
        cmocka_unit_test(test_same_episode_keeps),
        cmocka_unit_test(test_gone_finding_resolves),
        cmocka_unit_test(test_clinician_inactivated_stays_inactive),
        cmocka_unit_test(test_episode_change_creates_new_and_resolves_old),
        cmocka_unit_test(test_resolved_episode_back_reactivates),
        cmocka_unit_test(test_duplicate_keys_planned_once),
        cmocka_unit_test(test_observe_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
