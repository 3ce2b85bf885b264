/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 21, reconcile with the real engine: an encounter-bound Flag (reassessment after a severe
 * score) carries Flag.encounter while the stay is in progress and is resolved when the stay ends;
 * the per-severity posting setting keeps findings below it out of the sink (audit only) and
 * resolves a Flag painwatch holds for one.
 */
#include <stdio.h>
#include <string.h>

#include "support/pwtest.h"
/* after pwtest.h: the timeline builders use cmocka's asserts */
#include "core/reconcile.h"
#include "daemon/clinical/rules/tl_build.h"
#include "painwatch/engine.h"
#include "painwatch/err.h"
#include "painwatch/finding_text.h"
#include "painwatch/sink.h"

#define RULE "reassessment-overdue-after-high-score"

static void add_stay(struct pw_timeline *tl, int64_t at, int64_t end, bool finished)
{
    struct pw_context c = {.kind = PW_CTX_ENCOUNTER,
                           .at = at,
                           .end = end,
                           .finished = finished,
                           .value = PW_SETTING_INPATIENT};
    tlb_ref(&c.src, "Encounter", "stay-1");
    assert_int_equal(pw_timeline_add_context(tl, &c), 0);
}

/* The findings of RULE on @p tl at @p now (exactly one expected). */
static struct pw_finding eval_one(struct pw_engine *e, struct pw_timeline *tl, int64_t now)
{
    struct pw_findings all = {0};
    struct pw_finding out = {0};
    size_t n = 0;

    pw_timeline_sort(tl);
    assert_int_equal(pw_engine_eval(e, tl, now, &all), 0);
    for (size_t i = 0; i < all.n; i++) {
        if (strcmp(all.v[i].rule, RULE) == 0) {
            out = all.v[i];
            n++;
        }
    }
    pw_findings_cleanup(&all);
    assert_int_equal(n, 1);
    return out;
}

static struct pw_flag_rec active_flag(const struct pw_finding *f)
{
    struct pw_flag_rec r = {.state = PW_FLAG_ACTIVE};

    snprintf(r.key, sizeof(r.key), "%s", f->key);
    snprintf(r.rule, sizeof(r.rule), "%s", f->rule);
    snprintf(r.patient, sizeof(r.patient), "%s", f->patient);
    snprintf(r.server_id, sizeof(r.server_id), "flag-1");
    return r;
}

static void test_encounter_bound_flag_resolved_when_stay_ends(void **state)
{
    struct pw_engine *e = NULL;
    struct pw_timeline tl;
    struct pw_sink *sink = NULL;
    struct pw_rc_plan plan = {0};
    json_t *flag = NULL;

    (void)state;
    assert_int_equal(pw_engine_new(&e, "cdc2022"), 0);
    pw_engine_set_scope(e, PW_SCOPE_COHORT);
    assert_int_equal(pw_sink_new(&sink, "fhir-flag", NULL), 0);
    pw_timeline_init(&tl, "Patient/e1");
    add_stay(&tl, T0 - 40 * H, PW_TIME_FOREVER, false);
    tlb_score(&tl, "s1", T0 - 30 * H, 8);

    /* During the stay: posted, with Flag.encounter. */
    struct pw_finding f = eval_one(e, &tl, T0);
    assert_true(f.encounter_bound);
    assert_false(f.audit_only);
    assert_string_equal(f.encounter, "Encounter/stay-1");
    assert_int_equal(pw_reconcile(&f, 1, NULL, 0, &plan), 0);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.v[0].action, PW_RC_CREATE);
    pw_rc_plan_cleanup(&plan);
    assert_int_equal(sink->ops->format(sink, &f, &flag), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(flag, "encounter"), "reference")),
        "Encounter/stay-1");
    json_decref(flag);

    /* The stay ends; the score is still not repeated: the Flag is resolved, nothing created. */
    pw_timeline_cleanup(&tl);
    pw_timeline_init(&tl, "Patient/e1");
    add_stay(&tl, T0 - 40 * H, T0 + H, true);
    tlb_score(&tl, "s1", T0 - 30 * H, 8);
    struct pw_finding after = eval_one(e, &tl, T0 + 2 * H);
    assert_string_equal(after.key, f.key); /* the same episode */
    assert_true(after.audit_only);
    assert_string_equal(after.encounter, "");
    struct pw_flag_rec held = active_flag(&f);
    assert_int_equal(pw_reconcile(&after, 1, &held, 1, &plan), 0);
    assert_int_equal(plan.n, 2);
    assert_int_equal(plan.v[0].action, PW_RC_NOT_POSTED);
    assert_int_equal(plan.v[1].action, PW_RC_RESOLVE);
    assert_string_equal(plan.v[1].flag->key, f.key);
    pw_rc_plan_cleanup(&plan);

    /* The same story with no encounter at all (outpatient): posted, no Flag.encounter. */
    pw_timeline_cleanup(&tl);
    pw_timeline_init(&tl, "Patient/e1");
    tlb_score(&tl, "s1", T0 - 30 * H, 8);
    struct pw_finding out = eval_one(e, &tl, T0 + 2 * H);
    assert_false(out.audit_only);
    assert_string_equal(out.encounter, "");

    pw_timeline_cleanup(&tl);
    pw_sink_free(sink);
    pw_engine_free(e);
}

/* A finding of @p rule with @p sev, completed as the engine does with @p post_min. */
static struct pw_finding completed(const char *rule, enum pw_severity sev, const char *key,
                                   enum pw_severity post_min)
{
    struct pw_finding f = {.rule = rule, .category = "clinical", .severity = sev};
    struct pw_timeline tl;

    snprintf(f.patient, sizeof(f.patient), "Patient/7");
    snprintf(f.key, sizeof(f.key), "%s", key);
    pw_timeline_init(&tl, "Patient/7");
    pw_finding_complete(&f, pw_rule_find(rule), &tl, T0, post_min);
    pw_timeline_cleanup(&tl);
    return f;
}

static void test_severity_filter(void **state)
{
    struct pw_rc_plan plan = {0};

    (void)state;
    /* Default (low): an info finding is audit-only, a low one is posted. */
    struct pw_finding f[] = {
        completed("pain-type-undocumented", PW_SEV_INFO, "k-info", PW_SEV_LOW),
        completed("neuropathic-pain-no-adjuvant", PW_SEV_LOW, "k-low", PW_SEV_LOW),
    };
    assert_true(f[0].audit_only);
    assert_false(f[1].audit_only);
    /* A Flag painwatch posted earlier for the info episode (before the setting) is resolved. */
    struct pw_flag_rec held = active_flag(&f[0]);
    assert_int_equal(pw_reconcile(f, 2, &held, 1, &plan), 0);
    assert_int_equal(plan.n, 3);
    assert_int_equal(plan.v[0].action, PW_RC_NOT_POSTED);
    assert_int_equal(plan.v[1].action, PW_RC_CREATE);
    assert_int_equal(plan.v[2].action, PW_RC_RESOLVE);
    assert_string_equal(pw_rc_action_name(plan.v[0].action), "not-posted");
    pw_rc_plan_cleanup(&plan);

    /* Audited once: its episode's marker row (outbox_plan writes it) makes it a silent KEEP; a
     * postable finding of a marked episode is created for real. */
    struct pw_flag_rec marker = active_flag(&f[0]);
    marker.state = PW_FLAG_RESOLVED;
    snprintf(marker.server_id, sizeof(marker.server_id), PW_RC_AUDIT_ONLY_PREFIX "k-info");
    assert_true(pw_rc_audit_only_marker(&marker));
    assert_false(pw_rc_audit_only_marker(&held));
    assert_int_equal(pw_reconcile(f, 1, &marker, 1, &plan), 0);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.v[0].action, PW_RC_KEEP);
    pw_rc_plan_cleanup(&plan);
    struct pw_finding now_posted =
        completed("pain-type-undocumented", PW_SEV_INFO, "k-info", PW_SEV_INFO);
    assert_int_equal(pw_reconcile(&now_posted, 1, &marker, 1, &plan), 0);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.v[0].action, PW_RC_CREATE);
    assert_null(plan.v[0].flag);
    pw_rc_plan_cleanup(&plan);

    /* post_min_severity medium: low is audit-only too; info: everything is posted. */
    assert_true(
        completed("neuropathic-pain-no-adjuvant", PW_SEV_LOW, "k", PW_SEV_MEDIUM).audit_only);
    assert_false(completed("titration-too-soon", PW_SEV_MEDIUM, "k", PW_SEV_MEDIUM).audit_only);
    assert_false(completed("pain-type-undocumented", PW_SEV_INFO, "k", PW_SEV_INFO).audit_only);

    enum pw_severity s;
    assert_int_equal(pw_severity_parse("medium", &s), 0);
    assert_int_equal(s, PW_SEV_MEDIUM);
    assert_int_equal(pw_severity_parse("urgent", &s), PW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encounter_bound_flag_resolved_when_stay_ends),
        cmocka_unit_test(test_severity_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
