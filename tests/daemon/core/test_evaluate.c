/* SPDX-License-Identifier: Apache-2.0 */
/*
 * evaluate.c: the one evaluation entry point. The configuration applied once (rules, scope,
 * pain codes), timelines from resources and from a real SQLite store (rows of an older schema,
 * the per-patient cap), evaluation with sync coverage, the time-driven schedule, and episodes
 * reconciled with the daemon's reconcile code. Real terminology and engine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/reconcile.h"
#include "painwatch/conf.h"
#include "painwatch/err.h"
#include "painwatch/evaluate.h"
#include "painwatch/fhir.h"
#include "painwatch/terminology.h"
#include "support/pwtest.h"

#define BASE                                       \
    "servers:\n"                                   \
    "  - name: ehr\n"                              \
    "    base_url: https://ehr.example.org/fhir\n" \
    "    auth:\n"                                  \
    "      type: none\n"                           \
    "    cohort:\n"                                \
    "      type: server-wide\n"

struct fx {
    char *dir;
    struct pw_terminology *term;
    struct pw_conf *conf;
    struct pw_evaluator *ev;
    int64_t t0; /* the morphine order */
};

/* A pain score of 5 an hour before, then morphine ER 30 mg q12h started at t0, no rescue. */
static const char *const RESOURCES =
    "[{\"resourceType\":\"Observation\",\"id\":\"obs-1\",\"meta\":{\"versionId\":\"1\"},"
    "\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":"
    "\"72514-3\"}]},\"subject\":{\"reference\":\"Patient/p1\"},\"effectiveDateTime\":"
    "\"2026-03-02T07:00:00Z\",\"valueQuantity\":{\"value\":5,\"unit\":\"{score}\"}},"
    "{\"resourceType\":\"MedicationRequest\",\"id\":\"mr-1\",\"meta\":{\"versionId\":\"1\"},"
    "\"status\":\"active\",\"intent\":\"order\",\"medicationCodeableConcept\":{\"coding\":[{"
    "\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\"891885\"}]},"
    "\"subject\":{\"reference\":\"Patient/p1\"},\"authoredOn\":\"2026-03-02T08:00:00Z\","
    "\"dosageInstruction\":[{\"timing\":{\"repeat\":{\"frequency\":1,\"period\":12,"
    "\"periodUnit\":\"h\"}},\"doseAndRate\":[{\"doseQuantity\":{\"value\":1,\"unit\":\"TAB\","
    "\"system\":\"http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm\",\"code\":"
    "\"TAB\"}}]}]}]";

static json_t *resources(void)
{
    json_error_t jerr;
    json_t *a = json_loads(RESOURCES, 0, &jerr);

    if (!a) {
        fail_msg("fixture JSON: %s at %d:%d", jerr.text, jerr.line, jerr.column);
    }
    return a;
}

static void load_conf(struct fx *fx, const char *extra)
{
    char text[2048];
    struct pw_conf_errors errs = {0};

    snprintf(text, sizeof(text), "%s%s", BASE, extra);
    pw_conf_free(fx->conf);
    fx->conf = NULL;
    assert_int_equal(pw_conf_load_string(&fx->conf, "t.yaml", fx->dir, text, strlen(text), &errs),
                     0);
    pw_conf_errors_cleanup(&errs);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    char err[256] = "";

    assert_non_null(fx);
    fx->dir = pwt_mkdtemp();
    assert_int_equal(
        pw_terminology_load(&fx->term, pwt_src_path("config/terminology"), err, sizeof(err)), 0);
    assert_int_equal(pw_fhir_parse_time("2026-03-02T08:00:00Z", &fx->t0), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    pw_evaluator_free(fx->ev);
    pw_conf_free(fx->conf);
    pw_terminology_free(fx->term);
    pwt_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static bool has_rule(const struct pw_findings *fs, const char *rule)
{
    for (size_t i = 0; i < fs->n; i++) {
        if (strcmp(fs->v[i].rule, rule) == 0) {
            return true;
        }
    }
    return false;
}

static bool has_dq(const struct pw_timeline *tl, const char *code)
{
    for (size_t i = 0; i < tl->dq.n; i++) {
        if (strcmp(tl->dq.v[i].code, code) == 0) {
            return true;
        }
    }
    return false;
}

/* Evaluate RESOURCES with @p ev at @p at into @p fs (cleaned by the caller). */
static void eval_resources(const struct pw_evaluator *ev, int64_t at, struct pw_timeline *tl,
                           struct pw_findings *fs)
{
    json_t *res = resources();
    int rule_err = -1;

    pw_timeline_init(tl, "Patient/p1");
    assert_int_equal(pw_eval_timeline_add_resources(ev, res, NULL, tl), 0);
    assert_int_equal(pw_evaluate(ev->engine, tl, NULL, at, fs, &rule_err), 0);
    assert_int_equal(rule_err, 0);
    json_decref(res);
}

/* rules.<id>.enabled from the configuration applies; the scope defaults to problem-list. */
static void test_configuration_applied_once(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term, .scope = "cohort"};
    struct pw_timeline tl;
    struct pw_findings fs = {0};

    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    eval_resources(fx->ev, fx->t0 + 3600, &tl, &fs);
    assert_true(has_rule(&fs, "rescue-dose-missing"));
    pw_findings_cleanup(&fs);
    pw_timeline_cleanup(&tl);
    pw_evaluator_free(fx->ev);

    load_conf(fx, "scope: cohort\nrules:\n  rescue-dose-missing:\n    enabled: false\n");
    eo.cd = pw_conf_daemon(fx->conf);
    eo.scope = NULL;
    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    eval_resources(fx->ev, fx->t0 + 3600, &tl, &fs);
    assert_false(has_rule(&fs, "rescue-dose-missing"));
    pw_findings_cleanup(&fs);
    pw_timeline_cleanup(&tl);
}

/*
 * The engine a reload builds (pw_evaluator_engine_new) has the configured scope, problem-list by
 * default, as at start (the reload built its engine at the engine's default, cohort).
 */
static void test_reload_engine_keeps_the_scope(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term};
    struct pw_engine *engine = NULL;
    struct pw_timeline tl;
    struct pw_findings fs = {0};

    load_conf(fx, "");
    eo.cd = pw_conf_daemon(fx->conf);
    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    assert_int_equal(pw_evaluator_engine_new(&engine, eo.cd, NULL, NULL, NULL, 0), 0);
    pw_engine_free(fx->ev->engine);
    fx->ev->engine = engine;
    /* No cancer on the problem list: out of scope, no findings, and said so. */
    eval_resources(fx->ev, fx->t0 + 3600, &tl, &fs);
    assert_int_equal(fs.n, 0);
    assert_true(has_dq(&tl, PW_DQ_OUT_OF_SCOPE));
    pw_findings_cleanup(&fs);
    pw_timeline_cleanup(&tl);
}

/* A refused rule setting names its place. */
static void test_rule_setting_refused_names_the_place(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term};
    char err[256] = "";

    /* (the configuration loader refuses it first; a caller may build a conf by hand) */
    struct pw_conf_daemon cd = {0};
    json_t *rules = json_pack("{s:{s:i}}", "rescue-dose-missing", "no_such_param", 3);
    cd.rules = rules;
    eo.cd = &cd;
    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, err, sizeof(err)), PW_ECONFIG);
    assert_null(fx->ev);
    assert_non_null(strstr(err, "rules.rescue-dose-missing.no_such_param"));
    json_decref(rules);
    eo.cd = NULL;
    eo.factor_set = "no-such-set";
    assert_true(pw_evaluator_new(&fx->ev, &eo, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "no-such-set"));
}

/* Rules resting on an absence are off where the type was not fetched, and the timeline says so. */
static void test_sync_coverage(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term, .scope = "cohort"};
    struct pw_synced none = {.known = true, .synced = 0};
    json_t *res = resources();
    struct pw_timeline tl;
    struct pw_findings fs = {0};

    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    pw_timeline_init(&tl, "Patient/p1");
    assert_int_equal(pw_eval_timeline_add_resources(fx->ev, res, NULL, &tl), 0);
    assert_int_equal(pw_evaluate(fx->ev->engine, &tl, &none, fx->t0 + 3600, &fs, NULL), 0);
    assert_false(has_rule(&fs, "rescue-dose-missing"));
    assert_true(has_dq(&tl, PW_DQ_RULES_OFF));
    pw_findings_cleanup(&fs);
    pw_timeline_cleanup(&tl);
    json_decref(res);
}

/* The store's rows: events, a row of schema <= 3 (JSON) and the cap, through one loader. */
static void test_timeline_from_the_store(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term, .scope = "cohort"};
    struct pw_store_opts so = {.dir = fx->dir};
    struct pw_store *st = NULL;
    json_t *res = resources();
    char *mr = json_dumps(json_array_get(res, 1), JSON_COMPACT);
    struct pw_store_resource legacy = {.type = "MedicationRequest",
                                       .id = "mr-1",
                                       .version = "1",
                                       .last_updated = fx->t0,
                                       .patient = "Patient/p1",
                                       .norm = "",
                                       .events = mr,
                                       .events_len = strlen(mr)};
    struct pw_timeline tl;
    struct pw_findings fs = {0};

    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    assert_int_equal(pw_store_open(&st, &so), 0);
    assert_int_equal(pw_store_put_resource(st, &legacy, NULL), 0);
    pw_timeline_init(&tl, "Patient/p1");
    assert_int_equal(pw_eval_timeline_load(st, &fx->ev->norm, "Patient/p1", &tl), 0);
    assert_int_equal(tl.orders.n, 1);
    assert_int_equal(pw_evaluate(fx->ev->engine, &tl, NULL, fx->t0 + 3600, &fs, NULL), 0);
    assert_true(has_rule(&fs, "rescue-dose-missing"));
    assert_false(has_dq(&tl, PW_DQ_TIMELINE_CAP));
    pw_findings_cleanup(&fs);
    pw_timeline_cleanup(&tl);

    /* Over the cap: evaluated on what fits, and a data-quality event says so. */
    pw_timeline_init(&tl, "Patient/many");
    for (int i = 0; i < PW_RESOURCES_PER_PATIENT_MAX + 10; i++) {
        struct pw_timeline one;
        struct pw_bytes enc = {0};
        struct pw_pain_score sc = {.at = fx->t0 - i * 60, .value = i % 11};
        char id[32];
        snprintf(id, sizeof(id), "o%05d", i);
        pw_timeline_init(&one, "Patient/many");
        snprintf(sc.src.type, sizeof(sc.src.type), "Observation");
        snprintf(sc.src.id, sizeof(sc.src.id), "%s", id);
        assert_int_equal(pw_timeline_add_score(&one, &sc), 0);
        assert_int_equal(pw_timeline_encode(&one, &enc), 0);
        struct pw_store_resource r = {.type = "Observation",
                                      .id = id,
                                      .version = "1",
                                      .last_updated = PW_TIME_NONE,
                                      .patient = "Patient/many",
                                      .norm = "x",
                                      .events = enc.v,
                                      .events_len = enc.n};
        assert_int_equal(pw_store_put_resource(st, &r, NULL), 0);
        pw_bytes_cleanup(&enc);
        pw_timeline_cleanup(&one);
    }
    assert_int_equal(pw_eval_timeline_load(st, &fx->ev->norm, "Patient/many", &tl), 0);
    assert_true(has_dq(&tl, PW_DQ_TIMELINE_CAP));
    assert_true(tl.scores.n > 0);
    pw_timeline_cleanup(&tl);
    pw_store_close(st);
    free(mr);
    json_decref(res);
}

/* The same cap from resources: the newest are kept. */
static void test_cap_from_resources_keeps_the_newest(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term, .scope = "cohort"};
    json_t *list = json_array();
    struct pw_timeline tl;
    int64_t newest = 0;

    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    for (int i = 0; i < PW_RESOURCES_PER_PATIENT_MAX + 20; i++) {
        char t[32];
        json_t *o;
        int64_t at = fx->t0 - (int64_t)(PW_RESOURCES_PER_PATIENT_MAX + 20 - i) * 600;
        pw_fhir_format_time(at, t, sizeof(t));
        o = json_pack("{s:s, s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:s}, s:s, s:i}", "resourceType",
                      "Observation", "id", "", "status", "final", "code", "coding", "system",
                      "http://loinc.org", "code", "72514-3", "subject", "reference", "Patient/p1",
                      "effectiveDateTime", t, "valueInteger", i % 11);
        char id[32];
        snprintf(id, sizeof(id), "o%d", i);
        json_object_set_new(o, "id", json_string(id));
        json_array_append_new(list, o);
        newest = at;
    }
    pw_timeline_init(&tl, "Patient/p1");
    assert_int_equal(pw_eval_timeline_add_resources(fx->ev, list, NULL, &tl), 0);
    assert_true(has_dq(&tl, PW_DQ_TIMELINE_CAP));
    pw_timeline_sort(&tl);
    assert_true(tl.scores.n > 0);
    assert_true(tl.scores.v[tl.scores.n - 1].at == newest);
    pw_timeline_cleanup(&tl);
    json_decref(list);
}

/* Live while an order is active or an event is recent; off the schedule otherwise. */
static void test_next_due(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term, .scope = "cohort"};
    json_t *res = resources();
    struct pw_timeline tl;
    struct pw_timeline empty;

    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    pw_timeline_init(&tl, "Patient/p1");
    pw_timeline_init(&empty, "Patient/p2");
    assert_int_equal(pw_eval_timeline_add_resources(fx->ev, res, NULL, &tl), 0);
    assert_true(pw_eval_next_due(&tl, fx->t0 + 3600, 300) == fx->t0 + 3900);
    assert_true(pw_eval_next_due(&empty, fx->t0, 300) == PW_TIME_NONE);
    pw_timeline_cleanup(&tl);
    pw_timeline_cleanup(&empty);
    json_decref(res);
}

/* Episodes as the daemon keeps them: create, keep, resolve, reactivate; a clinician's stands. */
static void test_episodes_reconcile(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term, .scope = "cohort"};
    struct pw_flag_list flags = {0};
    struct pw_rc_plan plan = {0};
    struct pw_timeline tl;
    struct pw_findings fs = {0};
    struct pw_findings none = {0};

    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    /* every finding posted (issue 21: below post_min_severity a finding is NOT_POSTED) */
    pw_engine_set_post_min(fx->ev->engine, PW_SEV_INFO);
    eval_resources(fx->ev, fx->t0 + 3600, &tl, &fs);
    assert_true(fs.n > 0);

    assert_int_equal(pw_episodes_reconcile(&flags, fs.v, fs.n, fx->t0 + 3600, &plan), 0);
    assert_int_equal(plan.n, fs.n);
    assert_int_equal(flags.n, fs.n);
    for (size_t i = 0; i < plan.n; i++) {
        assert_int_equal(plan.v[i].action, PW_RC_CREATE);
        assert_ptr_equal(plan.v[i].flag, &flags.v[i]);
        assert_int_equal(flags.v[i].state, PW_FLAG_ACTIVE);
        assert_string_equal(flags.v[i].key, fs.v[i].key);
        assert_true(flags.v[i].since == fs.v[i].since);
        assert_true(flags.v[i].updated == fx->t0 + 3600);
    }
    pw_rc_plan_cleanup(&plan);

    /* The same findings again: kept, nothing changes. */
    assert_int_equal(pw_episodes_reconcile(&flags, fs.v, fs.n, fx->t0 + 7200, NULL), 0);
    assert_int_equal(flags.n, fs.n);
    assert_true(flags.v[0].updated == fx->t0 + 3600);

    /* Gone: resolved. */
    assert_int_equal(pw_episodes_reconcile(&flags, none.v, 0, fx->t0 + 9000, &plan), 0);
    assert_int_equal(plan.n, fs.n);
    assert_int_equal(plan.v[0].action, PW_RC_RESOLVE);
    assert_int_equal(plan.v[0].flag->state, PW_FLAG_RESOLVED);
    assert_int_equal(flags.v[0].state, PW_FLAG_RESOLVED);
    assert_true(flags.v[0].updated == fx->t0 + 9000);
    pw_rc_plan_cleanup(&plan);

    /* Back with the same key: reactivated, not a second episode. */
    assert_int_equal(pw_episodes_reconcile(&flags, fs.v, fs.n, fx->t0 + 9600, &plan), 0);
    assert_int_equal(plan.v[0].action, PW_RC_REACTIVATE);
    assert_int_equal(flags.n, fs.n);
    assert_int_equal(flags.v[0].state, PW_FLAG_ACTIVE);
    pw_rc_plan_cleanup(&plan);

    /* A clinician set it inactive: it stays so. */
    flags.v[0].state = PW_FLAG_CLINICIAN_INACTIVE;
    assert_int_equal(pw_episodes_reconcile(&flags, fs.v, fs.n, fx->t0 + 9900, &plan), 0);
    assert_int_equal(plan.v[0].action, PW_RC_SUPPRESSED);
    assert_int_equal(flags.v[0].state, PW_FLAG_CLINICIAN_INACTIVE);
    pw_rc_plan_cleanup(&plan);

    pw_flag_list_cleanup(&flags);
    pw_findings_cleanup(&fs);
    pw_timeline_cleanup(&tl);
}

/*
 * Issue 21 with issue 20's reconcile: a finding below post_min_severity is audited once and
 * remembered by an audit-only marker record (no Flag); reconciled again, it is kept, not audited
 * again, and the posted findings beside it are episodes as usual.
 */
static void test_episodes_audit_only(void **state)
{
    struct fx *fx = *state;
    struct pw_eval_opts eo = {.term = fx->term, .scope = "cohort"};
    struct pw_flag_list flags = {0};
    struct pw_rc_plan plan = {0};
    struct pw_timeline tl;
    struct pw_findings fs = {0};
    size_t audit_only = 0;

    assert_int_equal(pw_evaluator_new(&fx->ev, &eo, NULL, 0), 0);
    pw_engine_set_post_min(fx->ev->engine, PW_SEV_HIGH); /* every lower finding is audit-only */
    eval_resources(fx->ev, fx->t0 + 3600, &tl, &fs);
    for (size_t i = 0; i < fs.n; i++) {
        audit_only += fs.v[i].audit_only;
    }
    assert_true(audit_only > 0);

    assert_int_equal(pw_episodes_reconcile(&flags, fs.v, fs.n, fx->t0 + 3600, &plan), 0);
    assert_int_equal(flags.n, fs.n);
    for (size_t i = 0; i < plan.n; i++) {
        const struct pw_flag_rec *rec = plan.v[i].flag;

        assert_non_null(rec);
        if (plan.v[i].finding->audit_only) {
            assert_int_equal(plan.v[i].action, PW_RC_NOT_POSTED);
            assert_int_equal(rec->state, PW_FLAG_RESOLVED);
            assert_true(pw_rc_audit_only_marker(rec));
        } else {
            assert_int_equal(plan.v[i].action, PW_RC_CREATE);
            assert_int_equal(rec->state, PW_FLAG_ACTIVE);
        }
    }
    pw_rc_plan_cleanup(&plan);

    /* Again: nothing new to audit or post. */
    assert_int_equal(pw_episodes_reconcile(&flags, fs.v, fs.n, fx->t0 + 7200, &plan), 0);
    assert_int_equal(flags.n, fs.n);
    for (size_t i = 0; i < plan.n; i++) {
        assert_int_equal(plan.v[i].action, PW_RC_KEEP);
    }
    pw_rc_plan_cleanup(&plan);

    pw_flag_list_cleanup(&flags);
    pw_findings_cleanup(&fs);
    pw_timeline_cleanup(&tl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_configuration_applied_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_engine_keeps_the_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_setting_refused_names_the_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_coverage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeline_from_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_from_resources_keeps_the_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_episodes_reconcile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_episodes_audit_only, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
