/* SPDX-License-Identifier: Apache-2.0 */
/* The rule registry, parameter overrides, enable/disable, episode keys and determinism. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "clinical/rules/rule_util.h"
#include "painwatch/err.h"
#include "support/pwtest.h"
#include "tl_build.h"

static void registry_is_complete_and_sane(void **state)
{
    (void)state;
    static const char *const ids[] = {
        "titration-step-too-large",
        "titration-too-soon",
        "titration-step-too-small",
        "pain-uncontrolled-no-titration",
        "rescue-dose-missing",
        "rescue-dose-out-of-range",
        "bowel-regimen-missing",
        "neuropathic-pain-no-adjuvant",
        "pain-type-undocumented",
        "reassessment-overdue-after-dose-change",
        "reassessment-overdue-after-high-score",
        "palliative-referral-suggested",
        "opioid-rotation-without-reduction",
        "opioid-benzodiazepine-concurrent",
        "order-dose-implausible",
        "methadone-conversion-review",
        "opioid-sedation-risk",
        "rescue-use-frequent",
        "pain-not-assessed-at-visit",
    };
    size_t n = 0;
    const struct pw_rule *const *all = pw_rules_all(&n);
    assert_int_equal(n, sizeof(ids) / sizeof(ids[0]));
    for (size_t i = 0; i < n; i++) {
        const struct pw_rule *r = pw_rule_find(ids[i]);
        assert_non_null(r);
        assert_ptr_equal(r, all[i]);
        assert_true(strcmp(r->category, "clinical") == 0 || strcmp(r->category, "drug") == 0);
        /* issue 17: every rule declares what it reads, and rests only on what it reads */
        assert_true(r->reads != 0);
        assert_int_equal(r->absence & ~r->reads, 0);
        assert_non_null(r->title);
        assert_non_null(r->eval);
        for (size_t p = 0; p < r->n_params; p++) {
            const struct pw_rule_param *pp = &r->params[p];
            assert_non_null(pp->name);
            assert_true(pp->help && strlen(pp->help) > 20);
            assert_true(pp->min <= pp->def && pp->def <= pp->max);
            for (size_t q = 0; q < p; q++) {
                assert_string_not_equal(pp->name, r->params[q].name);
            }
        }
    }
    assert_null(pw_rule_find("no-such-rule"));
    assert_null(pw_rule_find(NULL));
}

static void params_override_with_range_check(void **state)
{
    (void)state;
    struct pw_engine *e = NULL;
    assert_int_equal(pw_engine_new(&e, NULL), 0);
    assert_string_equal(pw_engine_factor_set(e), "cdc2022");
    assert_int_equal(pw_engine_set_param(e, "rescue-dose-out-of-range", "max_pct", 25), 0);
    assert_int_equal(pw_engine_set_param(e, "rescue-dose-out-of-range", "max_pct", 101), PW_ERANGE);
    assert_int_equal(pw_engine_set_param(e, "rescue-dose-out-of-range", "max_pct", NAN), PW_ERANGE);
    assert_int_equal(pw_engine_set_param(e, "rescue-dose-out-of-range", "nope", 1), PW_ENOENT);
    assert_int_equal(pw_engine_set_param(e, "nope", "max_pct", 1), PW_ENOENT);
    assert_int_equal(pw_engine_enable(e, "nope", false), PW_ENOENT);

    /* 30 mg with 120 MME = 25 %: in range once the site allows 25 %. */
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/p2");
    tlb_baseline(&tl, "er", "Morphine", "7052", 0, T0, PW_TIME_FOREVER, 120);
    tlb_rescue(&tl, "ir", T0, 30);
    pw_timeline_sort(&tl);
    struct pw_findings f = {0};
    assert_int_equal(pw_engine_eval(e, &tl, T0 + 3600, &f), 0);
    for (size_t i = 0; i < f.n; i++) {
        assert_string_not_equal(f.v[i].rule, "rescue-dose-out-of-range");
    }
    pw_findings_cleanup(&f);

    /* Disabling a rule silences it; the others still run. */
    assert_int_equal(pw_engine_set_param(e, "rescue-dose-out-of-range", "max_pct", 20), 0);
    assert_int_equal(pw_engine_enable(e, "rescue-dose-out-of-range", false), 0);
    assert_int_equal(pw_engine_eval(e, &tl, T0 + 3600, &f), 0);
    size_t others = f.n;
    for (size_t i = 0; i < f.n; i++) {
        assert_string_not_equal(f.v[i].rule, "rescue-dose-out-of-range");
    }
    pw_findings_cleanup(&f);
    assert_int_equal(pw_engine_enable(e, "rescue-dose-out-of-range", true), 0);
    assert_int_equal(pw_engine_eval(e, &tl, T0 + 3600, &f), 0);
    assert_int_equal(f.n, others + 1);
    pw_findings_cleanup(&f);
    pw_timeline_cleanup(&tl);
    pw_engine_free(e);
}

static void key_is_sha256_of_rule_patient_situation(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/p3");
    tlb_score(&tl, "hs", T0, 9);
    struct pw_findings f = {0};
    assert_int_equal(tlb_eval(&tl, T0 + 25 * H, "reassessment-overdue-after-high-score", &f), 1);
    const struct pw_finding *x = &f.v[0];
    assert_string_equal(x->situation, "score:Observation/hs@1;");
    assert_string_equal(x->factor_set, "cdc2022");
    assert_int_equal(x->since, T0);

    char msg[512];
    (void)snprintf(msg, sizeof(msg), "%s|%s|%s", x->rule, x->patient, x->situation);
    unsigned char md[32];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(msg, strlen(msg), md, &len, EVP_sha256(), NULL), 1);
    char hex[65];
    for (size_t i = 0; i < len; i++) {
        (void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    assert_string_equal(x->key, hex);
    pw_findings_cleanup(&f);
    pw_timeline_cleanup(&tl);
}

static void evaluation_is_deterministic(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/p4");
    tlb_baseline(&tl, "a", "Morphine", "7052", 0, T0, T0 + 12 * H, 60);
    tlb_baseline(&tl, "b", "Morphine", "7052", 0, T0 + 12 * H, PW_TIME_FOREVER, 150);
    tlb_rescue(&tl, "ir", T0, 5);
    tlb_score(&tl, "s1", T0 + 11 * H, 9);
    tlb_other(&tl, "lz", PW_MED_BENZODIAZEPINE, false, T0, PW_TIME_FOREVER, "lorazepam");
    pw_timeline_sort(&tl);
    struct pw_engine *e = NULL;
    assert_int_equal(pw_engine_new(&e, "cdc2016"), 0);
    struct pw_findings a = {0}, b = {0};
    assert_int_equal(pw_engine_eval(e, &tl, T0 + 40 * H, &a), 0);
    assert_int_equal(pw_engine_eval(e, &tl, T0 + 40 * H, &b), 0);
    assert_true(a.n >= 5);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.v[i].rule, b.v[i].rule);
        assert_string_equal(a.v[i].key, b.v[i].key);
        assert_string_equal(a.v[i].text, b.v[i].text);
        assert_string_equal(a.v[i].factor_set, "cdc2016");
        assert_true(a.v[i].n_evidence > 0);
        assert_true(a.v[i].text[0] != '\0');
    }
    pw_findings_cleanup(&a);
    pw_findings_cleanup(&b);
    pw_engine_free(e);
    pw_timeline_cleanup(&tl);
}

static void numbers_are_readable(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(pw_ru_num(b, 4.1666), "4.2");
    assert_string_equal(pw_ru_num(b, 120), "120");
    assert_string_equal(pw_ru_num(b, 12.5), "12.5");
    assert_string_equal(pw_ru_num(b, 0.04), "0.04");
    assert_string_equal(pw_ru_num(b, NAN), "unknown"); /* issue 16: never "?" */
    assert_string_equal(pw_ru_dur(b, 12 * H), "12 h");
    assert_string_equal(pw_ru_dur(b, 120 * H), "5 days");
    assert_string_equal(pw_ru_time(b, 0), "1970-01-01 00:00 UTC");
}

static void steps_and_exposure(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/p5");
    tlb_baseline(&tl, "a", "Morphine", "7052", 0, T0, T0 + 24 * H, 60);
    tlb_baseline(&tl, "b", "Morphine", "7052", 0, T0 + 24 * H, T0 + 48 * H, 90);
    tlb_baseline(&tl, "c", "Morphine", "7052", 0, T0 + 48 * H, PW_TIME_FOREVER, 90);  /* renewal */
    tlb_baseline(&tl, "d", "Morphine", "7052", 0, T0 + 100 * H, PW_TIME_FOREVER, 30); /* future */
    pw_timeline_sort(&tl);
    struct pw_steps s;
    assert_int_equal(pw_steps_build(&tl, T0 + 50 * H, &s), 0);
    assert_int_equal(s.n, 2); /* initiation, 60 -> 90; the renewal is no step */
    assert_int_equal(s.v[0].at, T0);
    assert_true(isnan(pw_step_pct(&s.v[0])));
    assert_int_equal(s.v[1].at, T0 + 24 * H);
    assert_true(fabs(pw_step_pct(&s.v[1]) - 50.0) < 1e-9);
    assert_int_equal(pw_steps_last_increase(&s, (long)s.n - 1), 1);
    pw_steps_cleanup(&s);
    assert_int_equal(pw_ru_exposure_start(&tl, T0 + 50 * H, PW_MED_OPIOID), T0);
    assert_int_equal(pw_ru_exposure_start(&tl, T0 - 1, PW_MED_OPIOID), PW_TIME_NONE);
    pw_timeline_cleanup(&tl);
}

/* The clinician-facing README names every rule and every parameter (kept in step with code). */
static void readme_documents_every_rule_and_param(void **state)
{
    (void)state;
    size_t len = 0;
    char *readme = pwt_read_file(pwt_src_path("tests/daemon/clinical/rules/cases/README.md"), &len);
    size_t n = 0;
    const struct pw_rule *const *all = pw_rules_all(&n);
    for (size_t i = 0; i < n; i++) {
        char want[160];
        (void)snprintf(want, sizeof(want), "### `%s`", all[i]->id);
        if (!strstr(readme, want)) {
            fail_msg("README.md lacks %s", want);
        }
        for (size_t p = 0; p < all[i]->n_params; p++) {
            (void)snprintf(want, sizeof(want), "| `%s` |", all[i]->params[p].name);
            if (!strstr(readme, want)) {
                fail_msg("README.md lacks parameter %s of %s", want, all[i]->id);
            }
        }
    }
    free(readme);
}

static void unknown_dose_is_not_judged(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/p6");
    tlb_baseline(&tl, "a", "Morphine", "7052", 0, T0, T0 + 24 * H, 60);
    tlb_baseline(&tl, "b", "Morphine", "7052", 0, T0 + 24 * H, PW_TIME_FOREVER, 150);
    tlb_rescue(&tl, "ir", T0, 2);
    tlb_score(&tl, "s", T0 + 23 * H, 3);
    pw_timeline_sort(&tl);
    assert_int_equal(tlb_eval(&tl, T0 + 25 * H, "titration-step-too-large", NULL), 1);
    assert_int_equal(tlb_eval(&tl, T0 + 25 * H, "rescue-dose-out-of-range", NULL), 1);
    /* The new order's dose could not be computed: no step and no percentage is judged. */
    for (size_t i = 0; i < tl.orders.n; i++) {
        if (strcmp(tl.orders.v[i].src.id, "b") == 0) {
            tl.orders.v[i].mme_per_day = NAN;
        }
    }
    assert_true(isnan(pw_ru_tdd(&tl, T0 + 25 * H)));
    assert_int_equal(tlb_eval(&tl, T0 + 25 * H, "titration-step-too-large", NULL), 0);
    assert_int_equal(tlb_eval(&tl, T0 + 25 * H, "rescue-dose-out-of-range", NULL), 0);
    pw_timeline_cleanup(&tl);
}

/* Events without a time (PW_TIME_NONE) must neither crash (UBSan: no overflow) nor count. */
static void untimed_events_are_safe(void **state)
{
    (void)state;
    struct pw_timeline tl;
    pw_timeline_init(&tl, "Patient/p7");
    tlb_score(&tl, "s", PW_TIME_NONE, 9);
    tlb_pain_type(&tl, "pt", PW_TIME_NONE, PW_PAIN_NEUROPATHIC);
    tlb_baseline(&tl, "a", "Morphine", "7052", 0, PW_TIME_NONE, PW_TIME_FOREVER, 60);
    tlb_other(&tl, "lz", PW_MED_BENZODIAZEPINE, false, PW_TIME_NONE, PW_TIME_FOREVER, "lorazepam");
    tlb_other(&tl, "lax", PW_MED_LAXATIVE_OSMOTIC, true, PW_TIME_NONE, PW_TIME_FOREVER, "PEG");
    tlb_baseline(&tl, "b", "Oxycodone", "7804", 0, PW_TIME_NONE, T0, 60);
    pw_timeline_sort(&tl);
    struct pw_engine *e = NULL;
    assert_int_equal(pw_engine_new(&e, NULL), 0);
    struct pw_findings f = {0};
    assert_int_equal(pw_engine_eval(e, &tl, T0 + 100 * H, &f), 0);
    for (size_t i = 0; i < f.n; i++) {
        assert_string_not_equal(f.v[i].rule, "reassessment-overdue-after-high-score");
        assert_string_not_equal(f.v[i].rule, "pain-uncontrolled-no-titration");
    }
    assert_int_equal(tlb_eval(&tl, T0 + 100 * H, "bowel-regimen-missing", NULL), 1);
    assert_int_equal(tlb_eval(&tl, T0 + 100 * H, "opioid-benzodiazepine-concurrent", NULL), 1);
    pw_findings_cleanup(&f);
    pw_engine_free(e);
    pw_timeline_cleanup(&tl);
}

/* Long ids must not make two regimens share a truncated situation (and so one episode key). */
static void long_situations_stay_distinct(void **state)
{
    (void)state;
    char a[PW_SITUATION_MAX] = "";
    char b[PW_SITUATION_MAX] = "";
    struct pw_ref r;
    for (int i = 0; i < 4; i++) {
        char id[PW_ID_MAX];
        (void)snprintf(id, sizeof(id), "%060d", i);
        tlb_ref(&r, "MedicationRequest", id);
        pw_ru_sit_ref(a, sizeof(a), &r);
        if (i == 3) {
            r.version[0] = '2';
        }
        pw_ru_sit_ref(b, sizeof(b), &r);
    }
    assert_true(strlen(a) < sizeof(a));
    assert_int_equal(a[0], '#');
    assert_string_not_equal(a, b);
    char c[PW_SITUATION_MAX] = "";
    pw_ru_sit(c, sizeof(c), "short|");
    assert_string_equal(c, "short|");
}

static void finding_lists_and_caps(void **state)
{
    (void)state;
    assert_string_equal(pw_severity_name(PW_SEV_INFO), "info");
    assert_string_equal(pw_severity_name(PW_SEV_LOW), "low");
    assert_string_equal(pw_severity_name(PW_SEV_MEDIUM), "medium");
    assert_string_equal(pw_severity_name(PW_SEV_HIGH), "high");
    struct pw_finding f;
    memset(&f, 0, sizeof(f));
    struct pw_ref r;
    for (int i = 0; i < PW_EVIDENCE_MAX + 3; i++) {
        char id[16];
        (void)snprintf(id, sizeof(id), "o%d", i);
        tlb_ref(&r, "MedicationRequest", id);
        pw_finding_add_evidence(&f, &r);
        pw_finding_add_evidence(&f, &r); /* the same resource is named once */
    }
    assert_int_equal(f.n_evidence, PW_EVIDENCE_MAX);
    for (int i = 0; i < PW_NUMBERS_MAX + 3; i++) {
        pw_finding_add_number(&f, "n", i);
    }
    assert_int_equal(f.n_numbers, PW_NUMBERS_MAX);
    struct pw_findings list = {0};
    for (int i = 0; i < 100; i++) {
        f.since = i;
        assert_int_equal(pw_findings_push(&list, &f), 0);
    }
    assert_int_equal(list.n, 100);
    assert_int_equal(list.v[99].since, 99);
    pw_findings_cleanup(&list);
    assert_int_equal(list.n, 0);
    assert_null(list.v);
}

static bool has_offset(const int64_t *v, size_t n, int64_t s)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] == s) {
            return true;
        }
    }
    return false;
}

/* Issue 22: the offsets the backtest skips by: parameter units from the names, site values, the
 * fixed offsets, only enabled rules; sorted and unique. */
static void time_offsets_follow_params(void **state)
{
    (void)state;
    assert_int_equal(pw_engine_param_unit("overdue_h"), 3600);
    assert_int_equal(pw_engine_param_unit("min_interval_h_methadone"), 3600);
    assert_int_equal(pw_engine_param_unit("lookback_days"), 86400);
    assert_int_equal(pw_engine_param_unit("window_days"), 86400);
    assert_int_equal(pw_engine_param_unit("doses_24h"), 0);
    assert_int_equal(pw_engine_param_unit("max_pct"), 0);
    assert_int_equal(pw_engine_param_unit("high_pain"), 0);
    assert_int_equal(pw_engine_param_unit("hours"), 0);

    struct pw_engine *e = NULL;
    int64_t *v = NULL;
    size_t n = 0;
    assert_int_equal(pw_engine_new(&e, NULL), 0);
    assert_int_equal(pw_engine_time_offsets(e, &v, &n), 0);
    assert_true(n >= 5);
    for (size_t i = 1; i < n; i++) {
        assert_true(v[i - 1] < v[i]);
    }
    assert_true(v[0] > 0);
    assert_true(has_offset(v, n, 86400));     /* 24 h defaults and the fixed day */
    assert_true(has_offset(v, n, 2 * 86400)); /* rescue-use-frequent's second day */
    assert_true(has_offset(v, n, 7 * 86400)); /* lookback_days 7 */
    assert_false(has_offset(v, n, 27000));
    free(v);

    /* A site value counts (7.5 h); a disabled rule's parameters do not. */
    assert_int_equal(
        pw_engine_set_param(e, "reassessment-overdue-after-high-score", "overdue_h", 7.5), 0);
    assert_int_equal(pw_engine_time_offsets(e, &v, &n), 0);
    assert_true(has_offset(v, n, 27000));
    free(v);
    assert_int_equal(pw_engine_enable(e, "reassessment-overdue-after-high-score", false), 0);
    assert_int_equal(pw_engine_time_offsets(e, &v, &n), 0);
    assert_false(has_offset(v, n, 27000));
    free(v);
    pw_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry_is_complete_and_sane),
        cmocka_unit_test(params_override_with_range_check),
        cmocka_unit_test(key_is_sha256_of_rule_patient_situation),
        cmocka_unit_test(evaluation_is_deterministic),
        cmocka_unit_test(numbers_are_readable),
        cmocka_unit_test(steps_and_exposure),
        cmocka_unit_test(readme_documents_every_rule_and_param),
        cmocka_unit_test(unknown_dose_is_not_judged),
        cmocka_unit_test(untimed_events_are_safe),
        cmocka_unit_test(long_situations_stay_distinct),
        cmocka_unit_test(finding_lists_and_caps),
        cmocka_unit_test(time_offsets_follow_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
